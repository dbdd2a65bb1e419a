"""Sequence experiments end to end: what ``train-seq``, ``evaluate-seq`` and notebook 03 call.

Validation is always by subject: the subjects whose sequences score a model never trained it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.evaluation import evaluation_report
from gesturelab.sequences import SequenceSet, subject_split


def dataset_info(data: SequenceSet, path=None) -> dict:
    from gesturelab.shrec import file_digest

    info = {
        "source": str(path or data.source),
        "n_sequences": len(data),
        "n_subjects": len(np.unique(data.subjects)),
        "n_classes": len(data.classes),
    }
    if path is not None and Path(path).is_file():
        info["sha256"] = file_digest(path)
    return info


def evaluate_sequences(
    model, data: SequenceSet, frames: int, n_bootstrap: int = 1000, seed: int = 0
) -> dict:
    """The full evaluation report of ``model`` on ``data``, sliced by subject and by finger."""
    from gesturelab.seq_training import predict_proba

    start = time.perf_counter()
    scores = predict_proba(model, data, frames)
    seconds = time.perf_counter() - start
    classes = np.asarray(data.classes, dtype=object)
    slices = {"subject": data.subjects.astype(str)}
    if "finger" in data.meta:
        slices["finger"] = np.where(np.asarray(data.meta["finger"]) == 1, "one", "whole_hand")
    report = evaluation_report(
        classes[data.labels],
        classes[scores.argmax(axis=1)],
        scores=scores,
        classes=list(classes),
        slices=slices,
        row_ids=[f"seq{i}_subject{s}" for i, s in enumerate(data.subjects)],
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    report["predict_ms_per_sequence"] = 1000 * seconds / max(len(data), 1)
    report["data"] = {"source": data.source, "n_sequences": len(data)}
    return report


def train_and_log(
    data: SequenceSet,
    train_config,
    *,
    validation_fraction: float = 0.25,
    split_seed: int = 0,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    run_name: str | None = None,
    refit: bool = False,
    register_as: str | None = None,
    data_path=None,
    tags: dict | None = None,
    log: bool = True,
    n_bootstrap: int = 1000,
    verbose: int = 0,
) -> dict:
    """Fit on some subjects, validate on the others, log; optionally refit on every subject.

    With ``refit`` the final model is trained on all subjects for the number of epochs that
    was best on validation, logged as its own run, and registered when ``register_as`` is set.
    """
    import keras

    from gesturelab.seq_training import fit

    run_name = run_name or f"{train_config.arch} {len(data.classes)}-class"
    train_mask, val_mask = subject_split(data.subjects, validation_fraction, seed=split_seed)
    train, val = data.subset(train_mask), data.subset(val_mask)
    board_dir = config.TENSORBOARD_DIR / f"{run_name.replace(' ', '_')}-{time.strftime('%H%M%S')}"
    callbacks = [keras.callbacks.TensorBoard(str(board_dir), histogram_freq=0)] if log else []
    result = fit(train, train_config, val, callbacks=callbacks, verbose=verbose)
    report = evaluate_sequences(result.model, val, train_config.frames, n_bootstrap)
    info = dataset_info(data, data_path)
    info.update(
        subjects_train=" ".join(map(str, np.unique(train.subjects))),
        subjects_validation=" ".join(map(str, np.unique(val.subjects))),
    )
    out = {
        "result": result,
        "report": report,
        "validation_subjects": [int(s) for s in np.unique(val.subjects)],
        "validation_run": None,
        "final_run": None,
    }
    if log:
        import train_with_mlflow as tracking

        out["validation_run"] = tracking.log_sequence_run(
            result,
            report=report,
            experiment=experiment,
            run_name=run_name,
            dataset=info,
            tags={"validation": "by subject", **(tags or {})},
            tensorboard_dir=board_dir,
            log_model_artifact=not refit,
        )
    final = result
    if refit:
        final_config = replace(train_config, epochs=result.best_epoch)
        final = fit(data, final_config, None, verbose=verbose)
        out["final_result"] = final
        if log:
            out["final_run"] = tracking.log_sequence_run(
                final,
                report={},
                experiment=experiment,
                run_name=f"{run_name} (all subjects)",
                dataset={**dataset_info(data, data_path), "epochs_from_validation": True},
                tags={
                    "run_kind": "final",
                    "validated_by_run": out["validation_run"]["run_id"],
                    **(tags or {}),
                },
                extra_metrics={
                    f"selection_val_{k}": report["metrics"][k] for k in ("accuracy", "f1_macro")
                },
            )
    out["model"] = final.model
    model_run = out["final_run"] or out["validation_run"]
    if log and register_as and model_run:
        version = tracking.register_model(
            model_run["model_uri"],
            register_as,
            tags={"arch": train_config.arch, "val_accuracy": report["metrics"]["accuracy"]},
        )
        out["registered"] = f"models:/{register_as}@{config.CHAMPION_ALIAS}"
        out["registered_version"] = version.version
    return out


def evaluate_model_uri(
    model_uri: str,
    data_root=None,
    split: str = "test",
    out=None,
    log: bool = True,
    n_bootstrap: int = 1000,
) -> dict:
    """Score a logged sequence model on a SHREC'17/DHG split; JSON report and MLflow run."""
    import json

    import mlflow.exceptions

    import train_with_mlflow as tracking
    from gesturelab import shrec

    try:
        model, metadata = tracking.load_keras_model(model_uri)
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise FileNotFoundError(f"cannot load the sequence model {model_uri}: {exc}") from exc
    classes = tuple(metadata.get("classes") or ())
    frames = int(metadata.get("frames") or model.input_shape[1])
    n_classes = int(model.output_shape[-1])
    data = shrec.load(data_root, split, n_classes)
    if classes and classes != tuple(data.classes):
        raise ValueError(f"{model_uri} predicts {classes[:3]}..., the data has {data.classes[:3]}")
    report = evaluate_sequences(model, data, frames, n_bootstrap)
    report["model_uri"] = model_uri
    report["split"] = split
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2, default=float))
    if log:
        report["run_id"] = tracking.log_evaluation_report(
            report,
            run_name=f"{model_uri} on {split}",
            tags={"model_uri": model_uri, "data": str(data_root or data.source), "split": split},
        )
    return report
