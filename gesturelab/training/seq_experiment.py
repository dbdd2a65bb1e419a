"""Sequence experiments end to end: what ``train-seq``, ``evaluate-seq`` and notebook 03 call.

Validation is always by subject: the subjects whose sequences score a model never trained it.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet, subject_split
from gesturelab.evaluation.full_report import RunArtifacts, report_artifacts
from gesturelab.models.predictor import model_classes
from gesturelab.training import seq_runs
from gesturelab.training.seq_defaults import dataset_info, tensorboard_url
from gesturelab.training.seq_runs import tensorboard_dir, tracking
from gesturelab.training.seq_scoring import evaluate_sequences
from gesturelab.training.seq_training import (
    TrainConfig,
    TrainResult,
    combine_results,
    fit,
    member_configs,
    refit_config,
)


@dataclass
class ValidatedModel:
    """A sequence model fitted on some subjects and scored on the others."""

    result: TrainResult
    report: dict  # evaluation_report of the held-out subjects
    scores: np.ndarray  # their class probabilities, one row per held-out sequence
    labels: np.ndarray  # their true class indices
    validation_subjects: list[int]
    run: object = None  # the validation run's RunRecord, when it was logged

    @property
    def model(self):
        return self.result.model


@dataclass
class Champion:
    """A model trained on every subject for the epochs validation chose, maybe registered."""

    validated: ValidatedModel | None  # None: no subjects held out (tuned epochs)
    final: TrainResult
    run: object = None  # the final run's RunRecord, when it was logged
    registered: str | None = None  # models:/name@champion
    registered_version: str | None = None

    @property
    def model(self):
        return self.final.model

    @property
    def model_uri(self) -> str | None:
        return self.registered or (self.run.model_uri if self.run else None)


def train_and_log(
    data: SequenceSet,
    train_config: TrainConfig,
    *,
    validation_fraction: float = config.VALIDATION_FRACTION,
    split_seed: int = config.SEQUENCE_SEED,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    run_name: str | None = None,
    data_path=None,
    tags: dict | None = None,
    log: bool = True,
    log_model: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
    verbose: int = 0,
) -> ValidatedModel:
    """Fit on some subjects, validate on the others (early stopping on them), log the run."""
    import keras

    run_name = run_name or f"{train_config.arch} {len(data.classes)}-class"
    train_mask, val_mask = subject_split(data.subjects, validation_fraction, seed=split_seed)
    train, val = data.subset(train_mask), data.subset(val_mask)
    board_dir = tensorboard_dir(run_name)
    callbacks = [keras.callbacks.TensorBoard(str(board_dir), histogram_freq=0)] if log else []
    tags = {"validation": "by subject", **(tags or {})}
    with training_run(log, experiment, run_name, train_config.arch, data.classes, tags) as run:
        result = fit(train, train_config, val, callbacks=callbacks, verbose=verbose)
        return validate_trained(
            result,
            data,
            train,
            val,
            run=run,
            experiment=experiment,
            run_name=run_name,
            tags=tags,
            board_dir=board_dir,
            log=log,
            log_model=log_model,
            n_bootstrap=n_bootstrap,
            data_path=data_path,
        )


def validate_trained(
    result: TrainResult,
    data: SequenceSet,
    train: SequenceSet,
    val: SequenceSet,
    *,
    run,
    experiment: str,
    run_name: str,
    tags: dict,
    board_dir,
    log: bool,
    log_model: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
    data_path=None,
) -> ValidatedModel:
    """A model fitted on ``train``, scored on the held-out ``val`` and logged to ``run``."""
    validated = validated_model(result, val, n_bootstrap)
    if log:
        info = dataset_info(data, data_path)
        info["subjects_train"] = " ".join(map(str, np.unique(train.subjects)))
        log_validation(
            validated,
            info,
            experiment,
            run_name,
            tags,
            tensorboard_dir=board_dir,
            log_model=log_model,
            run=run,
            model_metadata=stream_metadata(data, validated),
        )
    return validated


# Streaming calls a window "no gesture" below this share of correct validation sequences'
# confidence: the threshold keeps 95 % of what the model gets right on held-out subjects.
STREAM_COVERAGE = 0.95


def stream_threshold(validated: ValidatedModel | None) -> float | None:
    """The confidence below which a streaming window is "no gesture", chosen on validation:
    the (1 - STREAM_COVERAGE) quantile of the top probability of correctly labelled held-out
    sequences."""
    if validated is None:
        return None
    top = validated.scores.max(axis=1)
    correct = validated.scores.argmax(axis=1) == validated.labels
    if not correct.any():
        return None
    return round(float(np.quantile(top[correct], 1 - STREAM_COVERAGE)), 4)


def stream_metadata(data: SequenceSet, validated: ValidatedModel | None) -> dict:
    """What streaming needs to know of the data a model learnt: how long its gestures last
    (median frames, frame rate) and the threshold ``stream_threshold`` chose."""
    out = {"median_frames": int(np.median(data.lengths))}
    if data.frame_rate:
        out["frame_rate"] = float(data.frame_rate)
    if data.hand:
        out["hand"] = data.hand  # the predictor and streaming choose and mirror hands the same
    threshold = stream_threshold(validated)
    if threshold is not None:
        out["stream_threshold"] = threshold
    return out


@contextmanager
def training_run(log: bool, experiment: str, run_name: str, arch: str, classes, tags: dict):
    """The run a Keras fit is logged to, open while it trains (so MLflow samples the fit's
    CPU and memory as system metrics); None when nothing is logged."""
    if not log:
        yield None
        return
    with tracking().start_run(
        experiment,
        run_name,
        kind="config",
        tags={"model_family": arch, **tags},
        label_set=classes,
        system_metrics=True,
    ) as run:
        yield run


def train_champion(
    data: SequenceSet,
    train_config: TrainConfig | None = None,
    *,
    validated: ValidatedModel | None = None,
    validation_fraction: float = config.VALIDATION_FRACTION,
    refit: bool = True,
    register_as: str | None = None,
    register_alias: str = config.CHAMPION_ALIAS,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    run_name: str | None = None,
    data_path=None,
    tags: dict | None = None,
    log: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
    verbose: int = 0,
    reuse: bool = False,
    fitted: TrainResult | None = None,
) -> Champion:
    """Validate, refit on every subject, register: what ``train-seq`` and notebook 03 call.

    validated: a model already validated (notebook 03's leaderboard row), else ``train_config``
    is validated here; ``validation_fraction`` 0 validates nothing and trains every subject
    for the tuned epochs. The final model is trained on all subjects for the epochs validation
    chose (more people in training is worth more than anything else here, see the scaling
    study); ``refit=False`` keeps the validated model instead. ``reuse``: a finished final run
    with the same run key (``seq_runs.run_key`` of the refit's configuration and every subject's
    data) is reused instead of refit; registered again only if the alias points elsewhere.
    ``fitted``: the final model already trained (``refit_champions``), logged here as it is.
    """
    info = dataset_info(data, data_path)  # hashes the data file once
    if log and register_as:  # fail before training, not after it
        _check_registration(register_as, data, info, register_alias)
    train_config = validated.result.config if validated is not None else train_config
    run_name = run_name or f"{train_config.arch} {len(data.classes)}-class"
    if validated is None and validation_fraction > 0:
        validated = train_and_log(
            data,
            train_config,
            validation_fraction=validation_fraction,
            experiment=experiment,
            run_name=run_name,
            data_path=data_path,
            tags=tags,
            log=log,
            log_model=not refit,
            n_bootstrap=n_bootstrap,
            verbose=verbose,
        )
    found = None  # a finished final run reused instead of refit
    if validated is not None and not refit:
        champion = Champion(validated, validated.result, validated.run)
    else:
        final_config = refit_config(validated.result) if validated else train_config
        if validated is None:
            tags = {"validation": "none (all subjects, tuned epochs)", **(tags or {})}
        final_tags = {
            "run_kind": "final",
            "validated_by_run": validated.run.run_id if validated and validated.run else "",
            **(tags or {}),
        }
        final_name = f"{run_name} (all subjects)"
        arch = final_config.arch
        key = seq_runs.run_key(final_config, seq_runs.data_digest(data), "", "final")
        found = seq_runs.find_finished(experiment, key, fresh=not reuse) if log else None
        if found is not None:
            final = seq_runs.reused_result(found, final_config, data.classes)
            tracking().adopt_run(found.run_id)
            champion = Champion(validated, final, found)
        else:
            final_tags["run_key"] = key
            with training_run(log, experiment, final_name, arch, data.classes, final_tags) as run:
                if fitted is not None and fitted.config != final_config:
                    raise ValueError("fitted was trained with another configuration")
                final = fitted or fit(data, final_config, None, verbose=verbose)
                champion = Champion(validated, final)
                if log:
                    champion.run = _log_final(
                        final, validated, info, experiment, final_name, run, data
                    )
    if log and register_as and found is not None:
        registered = tracking().alias_run_id(register_as, register_alias)
        if registered == found.run_id:  # the reused run is the champion already
            champion.registered = f"models:/{register_as}@{register_alias}"
            champion.registered_version = tracking().alias_version(register_as, register_alias)
            return champion
    if log and register_as:
        version_tags = {"arch": train_config.arch}
        if validated is not None:
            version_tags["val_accuracy"] = validated.report["metrics"]["accuracy"]
        version = tracking().register_model(
            champion.run.model_uri,
            register_as,
            register_alias,
            tags=version_tags,
            label_set=data.classes,
            data_sha256=info.get("sha256"),
            classes_of=model_classes,
        )
        champion.registered = f"models:/{register_as}@{register_alias}"
        champion.registered_version = str(version.version)
        from gesturelab.models.model_card import log_card

        log_card(register_as, version.version)
        if register_alias == config.CHAMPION_ALIAS:
            note_champion(experiment, len(data.classes), champion.run.run_id, register_as, version)
    return champion


def refit_champions(
    data: SequenceSet,
    picks: dict,
    *,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    reuse: bool = False,
    engine=None,
) -> dict:
    """The final fits of several champions side by side, for ``train_champion(fitted=...)``.

    picks: {n_classes: the leaderboard's ValidatedModel}. Every final fit (each member of an
    ensemble its own task, the longest first) is a task of ``engine``; a fit the final run of
    ``train_champion(reuse=True)`` would find is left out. Returns {n_classes: TrainResult},
    each the model ``fit`` gives in this process (``tests/test_seq_board.py``).
    """
    from gesturelab.training.engine import Engine

    shared, tasks, finals = {}, [], {}
    for n_classes, validated in picks.items():
        labelled = data.with_classes(n_classes)
        final_config = refit_config(validated.result)
        key = seq_runs.run_key(final_config, seq_runs.data_digest(labelled), "", "final")
        if seq_runs.find_finished(experiment, key, fresh=not reuse) is not None:
            continue
        shared[n_classes] = labelled
        finals[n_classes] = final_config
        members = (
            member_configs(final_config, n_classes)
            if final_config.arch == "ensemble"
            else [final_config]
        )
        tasks += [(n_classes, member) for member in members]
    if not tasks:
        return {}
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i][1].epochs)
    with (engine or Engine("serial")).open(shared) as pool:
        results = dict(zip(order, pool.map(seq_runs.refit_task, [tasks[i] for i in order])))
    fitted = {}
    for n_classes, final_config in finals.items():
        mine = [results[i] for i, (n, _) in enumerate(tasks) if n == n_classes]
        fitted[n_classes] = (
            combine_results(mine, final_config) if final_config.arch == "ensemble" else mine[0]
        )
    return fitted


def note_champion(experiment: str, n_classes: int, run_id: str, name: str, version) -> None:
    """Name a registered champion in the experiment's description (one line per label set,
    replaced by the next champion of that label set)."""
    lead = f"- Champion, {n_classes} classes:"
    line = (
        f"{lead} [{tracking().get_run(run_id).run_name}]({tracking().run_link(run_id)}), "
        f"registered as [{name} version {version.version}]"
        f"({tracking().model_version_link(name, version.version)})"
    )
    text = tracking().experiment_description(experiment)
    paragraphs = [x for x in text.split("\n\n") if x and not x.startswith(lead)]
    champions = sorted([x for x in paragraphs if x.startswith("- Champion,")] + [line])
    body = [x for x in paragraphs if not x.startswith("- Champion,")]
    at = next((i for i, x in enumerate(body) if x.startswith("_Rewritten")), len(body))
    tracking().describe_experiment(experiment, "\n\n".join(body[:at] + champions + body[at:]))


def _log_final(final: TrainResult, validated, info: dict, experiment, run_name, run, data):
    report = validated.report if validated is not None else {}
    epochs = final.extra.get("member_epochs_run") or final.epochs_run
    return log_sequence_run(
        final,
        report={},
        experiment=experiment,
        run_name=run_name,
        dataset={**info, "epochs_from_validation": str(epochs)},
        run=run,
        extra_metrics={
            f"selection_val_{k}": report["metrics"][k]
            for k in ("accuracy", "f1_macro")
            if k in report.get("metrics", {})
        },
        model_metadata=stream_metadata(data, validated),
    )


def validated_model(result: TrainResult, val: SequenceSet, n_bootstrap: int) -> ValidatedModel:
    report, scores = evaluate_sequences(
        result.model, val, result.config.frames, n_bootstrap, return_scores=True
    )
    subjects = [s.item() if hasattr(s, "item") else s for s in np.unique(val.subjects)]
    return ValidatedModel(result, report, scores, val.labels, subjects)


def log_validation(validated: ValidatedModel, info, experiment, run_name, tags, **kwargs):
    """Log a validated model's run (its held-out subjects among the data params)."""
    info = {**info, "subjects_validation": " ".join(map(str, validated.validation_subjects))}
    validated.run = log_sequence_run(
        validated.result,
        report=validated.report,
        experiment=experiment,
        run_name=run_name,
        dataset=info,
        tags=tags,
        **kwargs,
    )


def _check_registration(name: str, data: SequenceSet, info: dict, alias=config.CHAMPION_ALIAS):
    tracking().check_registration(
        name, data.classes, info.get("sha256"), alias, classes_of=model_classes
    )


def log_sequence_run(
    result: TrainResult,
    *,
    report: dict,
    experiment: str,
    run_name: str,
    dataset: dict,
    tags: dict | None = None,
    extra_metrics: dict | None = None,
    tensorboard_dir=None,
    log_model: bool = True,
    run=None,
    model_metadata: dict | None = None,
):
    """One trained sequence model as a run: params, per-epoch curves, the validation report
    (``report``, may be empty), the model. Returns the run's RunRecord.

    run: the run that was open while the model trained (``training_run``); else one is opened.
    """
    metrics = {
        "fit_time_s": result.fit_seconds,
        "seconds_per_epoch": result.seconds_per_epoch,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "n_parameters": result.model.count_params(),
        **(extra_metrics or {}),
    }
    artifacts = report_artifacts(report, run_name, prefix="val_") if report else RunArtifacts()
    curves = {
        f"epoch_{key if key.startswith('val_') else f'train_{key}'}": values
        for key, values in result.history.items()
    }
    opened = (
        nullcontext(run)
        if run is not None
        else tracking().start_run(
            experiment,
            run_name,
            kind="config",
            tags={"model_family": result.config.arch, **(tags or {})},
            label_set=result.classes,
        )
    )
    with opened as run:
        run.log_params({**result.config.params(), **{f"data_{k}": v for k, v in dataset.items()}})
        run.log_curves(curves)
        run.log({**metrics, **artifacts.metrics}, artifacts.figures, artifacts.dicts)
        if tensorboard_dir is not None and Path(tensorboard_dir).is_dir():
            run.log_artifacts(folder=tensorboard_dir, folder_name="tensorboard")
            url = tensorboard_url(tensorboard_dir)
            run.set_tags({"tensorboard_dir": str(tensorboard_dir), "tensorboard_url": url})
            run.describe(
                f"TensorBoard of this fit: [{Path(tensorboard_dir).name}]({url}) "
                "(`make tensorboard` serves `build/tensorboard/`); the same event files are "
                "this run's `tensorboard/` artifacts."
            )
        if log_model:
            run.log_keras_model(
                result.model,
                result.config.frames,
                {
                    "classes": list(result.classes),
                    "input": "raw landmark sequences (frames, 21*3), MediaPipe order; "
                    "zeros = padding",
                    "custom_objects_module": "gesturelab.models.seq_models",
                    **(model_metadata or {}),
                },
            )
    return run.record()
