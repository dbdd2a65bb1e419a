"""A per-frame detector's training as an MLflow run, keyed so that a finished one is reused.

The key holds what decides the weights: the settings (seed included), the streams it fitted on
and was stopped on (their frames and truth), the training code and the libraries' versions. The
run holds the settings, the per-epoch curves, the segment rules chosen on the validation
subjects' streams (with every rule's scores), and the model with its metadata (classes, rules,
receptive field), which is what ``predict`` and ``--camera`` load.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from gesturelab import config
from gesturelab.training import run_keys
from gesturelab.training.frame_training import FrameTrainResult

FRAME_TRAINING_CODE = (
    "training/frame_training.py", "models/frame_models.py", "datasets/life_streams.py",
    "datasets/sequences.py", "datasets/landmarks.py", "models/seq_models.py",
    "training/seq_training.py",
)  # fmt: skip


def streams_digest(streams) -> str:
    """SHA-256 of streams as a fit sees them: frames and per-frame labels."""
    digest = hashlib.sha256()
    for stream in streams:
        digest.update(json.dumps(list(map(str, stream.classes))).encode())
        digest.update(np.ascontiguousarray(stream.frames, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(stream.frame_labels()).tobytes())
    return digest.hexdigest()


def detector_key(settings: dict, fit_streams, validation_streams) -> str:
    return run_keys.run_key(
        config={k: str(v) for k, v in sorted(settings.items())},
        train=streams_digest(fit_streams),
        validation=streams_digest(validation_streams),
        code=run_keys.code_version(FRAME_TRAINING_CODE, run_keys.SEQUENCE_LIBRARIES),
        role="frame-detector",
    )


def find_detector(key: str, experiment: str = config.LIVE_EXPERIMENT, fresh: bool = False):
    """The newest finished detector run with ``key`` that still has its model, or None."""
    from gesturelab.training.seq_runs import find_finished

    return find_finished(experiment, key, fresh)


def reused_detector(found, settings: dict, classes) -> tuple[FrameTrainResult, dict]:
    """A finished run's (``RunRecord``) detector as ``train_frame_detector`` returned it, and
    its model metadata (the segment rules it was logged with)."""
    from gesturelab.models.predictor import open_model
    from gesturelab.training.seq_runs import tracking

    loaded = open_model(found.model_uri)
    metrics = found.metrics
    curves = tracking().read_curves(found.run_id, [m for m in metrics if m.startswith("epoch_")])
    history = {
        name.removeprefix("epoch_").removeprefix("train_"): values
        for name, values in curves.items()
    }
    result = FrameTrainResult(
        model=loaded.model,
        history=history,
        best_epoch=int(metrics["best_epoch"]),
        epochs_run=int(metrics["epochs_run"]),
        fit_seconds=float(metrics["fit_time_s"]),
        classes=tuple(classes),
        settings=dict(settings),
    )
    return result, dict(loaded.metadata)


def log_detector(
    result: FrameTrainResult,
    key: str,
    rules: dict,
    rule_table=None,
    *,
    experiment: str = config.LIVE_EXPERIMENT,
    run_name: str = "live detector",
    data: dict | None = None,
    metrics: dict | None = None,
    tags: dict | None = None,
):
    """The fitted detector as a run (module docstring); its RunRecord."""
    from gesturelab.models.frame_models import receptive_field_of
    from gesturelab.training.seq_runs import tracking

    curves = {
        f"epoch_{name if name.startswith('val_') else f'train_{name}'}": values
        for name, values in result.history.items()
    }
    with tracking().start_run(
        experiment,
        run_name,
        kind="config",
        tags={"model_family": result.settings["arch"], "run_key": key, **(tags or {})},
        label_set=result.classes,
    ) as run:
        run.log_params({**result.settings, **{f"data_{k}": v for k, v in (data or {}).items()}})
        run.log_curves(curves)
        run.log(
            {
                "fit_time_s": result.fit_seconds,
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "n_parameters": result.model.count_params(),
                **(metrics or {}),
            },
            dicts={"segment_rules.json": {"chosen": rules, "tried": _records(rule_table)}},
        )
        run.log_keras_model(
            result.model,
            None,
            {
                "classes": list(result.classes),
                "detector": config.FRAME_DETECTOR_KIND,
                "segment_rules": rules,
                "receptive_field": receptive_field_of(result.model),
                "input": "a stream of raw landmarks (frames, 21*3), MediaPipe order, y up; "
                "zeros = no hand; one output row per frame: the classes, then no gesture",
                "custom_objects_module": "gesturelab.models.seq_models",
            },
        )
    return run.record()


def _records(table) -> list:
    if table is None:
        return []
    return json.loads(table.to_json(orient="records"))
