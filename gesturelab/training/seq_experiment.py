"""Sequence experiments end to end: what ``train-seq``, ``evaluate-seq`` and notebook 03 call.

Validation is always by subject: the subjects whose sequences score a model never trained it.
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet, subject_split
from gesturelab.evaluation.full_report import RunArtifacts, evaluation_report, report_artifacts
from gesturelab.models.predictor import model_classes
from gesturelab.training import seq_runs
from gesturelab.training.seq_runs import SeqTask, tensorboard_dir, tracking
from gesturelab.training.seq_training import (
    TrainConfig,
    TrainResult,
    combine_results,
    fit,
    member_configs,
    refit_config,
)


def dataset_info(data: SequenceSet, path=None) -> dict:
    from gesturelab.datasets.loading import file_fingerprint

    info = {
        "source": str(path or data.source),
        "n_sequences": len(data),
        "n_subjects": len(np.unique(data.subjects)),
        "n_classes": len(data.classes),
    }
    if path is not None and Path(path).exists():
        info["sha256"] = file_fingerprint(path)
    return info


def evaluate_sequences(
    model,
    data: SequenceSet,
    frames: int,
    n_bootstrap: int = config.N_BOOTSTRAP,
    seed: int = config.SEQUENCE_SEED,
    return_scores: bool = False,
):
    """The full evaluation report of ``model`` on ``data``, sliced by subject and by finger.

    model: a Keras model, or the ``SequencePredictor`` that serves it (``evaluate-seq`` scores
    through the predictor, so a served model is scored by the code that serves it).
    """
    from gesturelab.models.predictor import SequencePredictor

    predictor = model if isinstance(model, SequencePredictor) else None
    if predictor is None:
        predictor = SequencePredictor(model, {"frames": frames, "classes": list(data.classes)})
    start = time.perf_counter()
    scores = predictor.predict_fixed(data.to_fixed(predictor.frames, "resample"))
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
    return (report, scores) if return_scores else report


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
        return _validate_trained(
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


def _validate_trained(
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
    validated = _validated(result, val, n_bootstrap)
    if log:
        info = dataset_info(data, data_path)
        info["subjects_train"] = " ".join(map(str, np.unique(train.subjects)))
        _log_validation(
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


def _validated(result: TrainResult, val: SequenceSet, n_bootstrap: int) -> ValidatedModel:
    report, scores = evaluate_sequences(
        result.model, val, result.config.frames, n_bootstrap, return_scores=True
    )
    subjects = [s.item() if hasattr(s, "item") else s for s in np.unique(val.subjects)]
    return ValidatedModel(result, report, scores, val.labels, subjects)


def _log_validation(validated: ValidatedModel, info, experiment, run_name, tags, **kwargs):
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


def tensorboard_url(log_dir) -> str:
    """Where ``make tensorboard`` shows one fit's curves (TensorBoard's run filter)."""
    return f"{config.TENSORBOARD_URL}/?runFilter={Path(log_dir).name}#timeseries"


def default_architecture(n_classes: int) -> tuple[str, str]:
    """The architecture ``train-seq`` uses unless told, and why: that of the registered
    champion of SHREC'17's ``n_classes`` gestures, else ``config.SEQUENCE_ARCHITECTURES``."""
    name = config.SEQUENCE_MODEL_NAMES.get(n_classes)
    tags = tracking().alias_tags(name) if name else None
    if tags and tags.get("arch"):
        return tags["arch"], f"that of the registered {name}@{config.CHAMPION_ALIAS}"
    arch = config.SEQUENCE_ARCHITECTURES.get(n_classes, config.SEQUENCE_ARCHITECTURES[14])
    return arch, "config.SEQUENCE_ARCHITECTURES: no registered champion to follow"


# Frames a model of a new dataset resamples each sequence to, unless told: its median length,
# within what the architectures were tuned for (SHREC'17's median is 57 frames at 30 fps).
FRAMES_RANGE = (8, 64)


def frames_for(data: SequenceSet) -> int:
    low, high = FRAMES_RANGE
    return int(np.clip(round(float(np.median(data.lengths))), low, high))


def sequence_model_name(classes, dataset_name) -> str:
    """The registered name of a sequence model of any dataset but SHREC'17: its own, with
    the number of classes, so that no other label set can take SHREC's champion alias."""
    from gesturelab.training.sweep import dataset_slug

    return f"{dataset_slug(dataset_name)}-{len(classes)}-sequence-gestures"


def sequence_experiment(dataset_name) -> str:
    from gesturelab.training.sweep import dataset_slug

    return f"{dataset_slug(dataset_name)}-sequence-models"


def evaluate_model_uri(
    model_uri: str,
    data_root=None,
    split: str = "test",
    out=None,
    log: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
    data=None,
) -> dict:
    """Score a logged sequence model on a SHREC'17/DHG split, or on any sequence dataset
    (``data``: a file, folder or imported dataset's name); JSON report and MLflow run."""
    from gesturelab.datasets import shrec
    from gesturelab.errors import ModelLoadError
    from gesturelab.evaluation.full_report import write_report
    from gesturelab.models.predictor import SequencePredictor, load_predictor

    predictor = load_predictor(model_uri)
    if not isinstance(predictor, SequencePredictor):
        raise ModelLoadError(
            f"{model_uri} is a static (scikit-learn) model of single hands; this takes a "
            "sequence model (score a static one with `evaluate --model ... --data <CSV>`)"
        )
    classes = tuple(predictor.metadata.get("classes") or ())
    n_classes = len(predictor.classes)
    data_spec = data
    if data_spec is not None:
        from gesturelab.datasets.sequence_formats import read_sequences

        loaded = read_sequences(
            data_spec, classes=list(predictor.classes), verbose=False, split=split
        )
        data = loaded.data
        split = split if loaded.format == "shrec" else loaded.name
    else:
        data = shrec.load(data_root, split, n_classes)
    if classes and classes != tuple(data.classes):
        raise ModelLoadError(
            f"{model_uri} predicts {len(classes)} classes ({', '.join(classes[:3])}, ...), "
            f"the data has {len(data.classes)} ({', '.join(data.classes[:3])}, ...)"
        )
    report = evaluate_sequences(predictor, data, predictor.frames, n_bootstrap)
    report["model_uri"] = model_uri
    report["model"] = tracking().model_version_info(model_uri)
    report["split"] = split
    return write_report(
        report,
        run_name=f"{model_uri} on {split}",
        tags={
            "model_uri": model_uri,
            "data": str(data_spec or data_root or data.source),
            "split": split,
        },
        out=out,
        log=log,
    )


def architecture_leaderboard(
    data: SequenceSet,
    archs=("lstm", "gru", "tcn", "cnn"),
    class_counts=(14, 28),
    epochs: int | None = None,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    validation_fraction: float = config.VALIDATION_FRACTION,
    seed: int = config.SEQUENCE_SEED,
    n_bootstrap: int = config.N_BOOTSTRAP,
    log: bool = True,
    ensemble=None,
    engine=None,
    fresh: bool = False,
):
    """Every architecture on every label set, validated on the same held-out subjects.

    ``seed`` picks the held-out subjects and initialises every model (an ensemble's repeated
    architecture gets the next seeds), so the champions refit from this board carry it too.

    With ``ensemble`` (architecture names, repeated for more seeds), the average of those
    members is scored too, as one more row: members the leaderboard has already validated are
    reused as they are; only the others (a second seed) are trained.

    Every training has a run key (``seq_runs.run_key``): a finished run of the experiment with
    the same key is reused (its model loaded and scored again on the held-out subjects) instead
    of trained, unless ``fresh``. The others are tasks of ``engine`` (``training.engine``;
    None: this process), one TensorFlow process per task; this process scores and logs them.
    Returns the leaderboard (one row per model, best first within a label set) and the
    training outputs keyed by (n_classes, arch), for the champion's refit; the board's
    ``attrs`` say how many trainings were reused.
    """
    from gesturelab.training.seq_training import config_for

    # None: the default members of arch "ensemble"; () scores no ensemble.
    ensemble = config_for("ensemble").members if ensemble is None else tuple(ensemble)
    # every model of the board is validated the same way, on the same subjects
    common = {
        "validation_fraction": validation_fraction,
        "seed": seed,
        "experiment": experiment,
        "log": log,
        "n_bootstrap": n_bootstrap,
        "fresh": fresh,
    }
    board_id = uuid.uuid4().hex[:12]
    plan = _plan_board(data, archs, class_counts, epochs, ensemble, common)
    # every run of this leaderboard carries its id: the saved runs view shows this one only
    tagging = tracking().tagging(leaderboard_id=board_id) if log else nullcontext()
    with tagging:
        rows, outputs = _train_board(plan, common, engine)
    board = _rank_board(data, rows, outputs, n_bootstrap)
    board.attrs["trainings"] = len(plan.tasks)
    board.attrs["reused"] = sum(task.found is not None for task in plan.tasks)
    print(
        f"sequence leaderboard: {board.attrs['reused']} of {len(plan.tasks)} trainings reused "
        "from finished runs with the same key"
        + ("" if fresh else " (fresh=True trains them all again)")
    )
    if log:
        publish_sequence_leaderboard(board, data, experiment, board_id, validation_fraction)
    return board, outputs


@dataclass
class _BoardPlan:
    splits: dict  # {n_classes: (labelled set, training subjects, held-out subjects)}
    tasks: list  # SeqTask, in the order the board trains them
    ensembles: dict  # {n_classes: the ensemble's member tasks}


def _plan_board(data, archs, class_counts, epochs, ensemble, common) -> _BoardPlan:
    """Every training of the board, its run key, and the finished run that answers it."""
    from gesturelab.training.seq_training import config_for, member_configs

    log, experiment = common["log"], common["experiment"]
    plan = _BoardPlan({}, [], {})
    for n_classes in class_counts:
        labelled = data.with_classes(n_classes)
        train_mask, val_mask = subject_split(
            labelled.subjects, common["validation_fraction"], seed=common["seed"]
        )
        train, val = labelled.subset(train_mask), labelled.subset(val_mask)
        plan.splits[n_classes] = (labelled, train, val)
        digests = (seq_runs.data_digest(train), seq_runs.data_digest(val))

        def task(train_config, run_name, study, n_classes=n_classes, digests=digests):
            key = seq_runs.run_key(train_config, *digests, "validation")
            found = seq_runs.find_finished(experiment, key, common["fresh"]) if log else None
            task = SeqTask(
                n_classes,
                train_config,
                run_name,
                {"validation": "by subject", "study": study, "n_classes": n_classes},
                key,
                board_dir=tensorboard_dir(run_name) if log else None,
                found=found,
            )
            plan.tasks.append(task)
            return task

        singles = {
            arch: task(
                config_for(arch, n_classes, epochs=epochs, seed=common["seed"]),
                f"{arch} {n_classes}-class",
                "leaderboard",
            )
            for arch in archs
        }
        if not ensemble:
            continue
        members = []
        for member in member_configs(
            config_for("ensemble", n_classes, members=ensemble, epochs=epochs, seed=common["seed"]),
            n_classes,
        ):
            known = singles.get(member.arch)
            if known is None or known.config.seed != member.seed:
                # a member the leaderboard has not trained (another seed of an arch)
                name = f"{member.arch} seed {member.seed} {n_classes}-class"
                known = task(member, name, "ensemble member")
            members.append(known)
        plan.ensembles[n_classes] = members
    return plan


def _train_board(plan: _BoardPlan, common, engine):
    """Validate every task of the plan (trained on the engine, or reused), then the ensembles
    (``architecture_leaderboard``). Returns the board's rows and outputs."""
    from gesturelab.evaluation.full_report import headline_row
    from gesturelab.training.engine import Engine

    experiment, log, n_bootstrap = common["experiment"], common["log"], common["n_bootstrap"]
    pending = [task for task in plan.tasks if task.found is None]
    engine = engine if engine is not None and pending else Engine("serial")
    shared = {n: (train, val) for n, (_, train, val) in plan.splits.items()}
    validated = {}
    with engine.open(shared) as pool:
        # Serial: each fit runs when it is asked for, inside its open run (system metrics).
        trained = pool.map(seq_runs.fit_task, pending)
        for task in plan.tasks:
            labelled, train, val = plan.splits[task.n_classes]
            if task.found is not None:
                result = seq_runs.reused_result(task.found, task.config, labelled.classes)
                tracking().adopt_run(task.found.run_id)
                out = _validated(result, val, n_bootstrap)
                out.run = task.found
            else:
                arch, classes = task.config.arch, labelled.classes
                tags = task.train_tags
                with training_run(log, experiment, task.run_name, arch, classes, tags) as run:
                    out = _validate_trained(
                        next(trained),
                        labelled,
                        train,
                        val,
                        run=run,
                        experiment=experiment,
                        run_name=task.run_name,
                        tags=tags,
                        board_dir=task.board_dir,
                        log=log,
                        n_bootstrap=n_bootstrap,
                    )
            validated[id(task)] = out
    rows, outputs = [], {}
    for n_classes, (labelled, _, _) in plan.splits.items():
        for task in plan.tasks:
            if task.n_classes == n_classes and task.tags["study"] == "leaderboard":
                out = validated[id(task)]
                outputs[(n_classes, task.config.arch)] = out
                rows.append(_board_row(n_classes, task.config.arch, out, headline_row))
        members = plan.ensembles.get(n_classes)
        if not members:
            continue
        key = seq_runs.ensemble_key([member.key for member in members])
        found = seq_runs.find_finished(experiment, key, common["fresh"]) if log else None
        out = validate_ensemble(
            labelled,
            [validated[id(member)] for member in members],
            run_name=f"ensemble {n_classes}-class",
            tags={"study": "leaderboard", "n_classes": n_classes, "run_key": key},
            experiment=experiment,
            log=log and found is None,
            n_bootstrap=n_bootstrap,
        )
        if found is not None:
            tracking().adopt_run(found.run_id)
            out.run = found
        outputs[(n_classes, "ensemble")] = out
        rows.append(_board_row(n_classes, "ensemble", out, headline_row))
    return rows, outputs


def _rank_board(data, rows, outputs, n_bootstrap):
    """The leaderboard best first per label set, each row tested against the next."""
    import pandas as pd

    from gesturelab.evaluation.full_report import paired_comparison

    # Best first; a tie goes to the smaller model (on 28 classes DD-Net and its ensemble with
    # the 1D-CNN both scored 0.916).
    board = pd.DataFrame(rows).sort_values(
        ["classes", "val_accuracy", "parameters"],
        ascending=[True, False, True],
        ignore_index=True,
        kind="stable",
    )
    # Is the winner really better than the runner-up on these subjects? A paired test says.
    board["vs_next_p_value"] = np.nan
    for n_classes, rows_n in board.groupby("classes"):
        ranked = rows_n.index.tolist()
        for first, second in zip(ranked, ranked[1:]):
            a = outputs[(n_classes, board.loc[first, "arch"])]
            b = outputs[(n_classes, board.loc[second, "arch"])]
            names = np.asarray(data.with_classes(n_classes).classes, dtype=object)
            test = paired_comparison(
                names[a.labels],
                names[a.scores.argmax(1)],
                names[b.scores.argmax(1)],
                n=n_bootstrap,
            )
            board.loc[first, "vs_next_p_value"] = test["mcnemar_p"]
    return board


SEQUENCE_BOARD_METRICS = [
    "val_accuracy",
    "val_f1_macro",
    "val_top3_accuracy",
    "val_ece",
    "n_parameters",
    "seconds_per_epoch",
    "fit_time_s",
]


def publish_sequence_leaderboard(board, data, experiment, board_id, validation_fraction):
    """The sequence leaderboard in the MLflow UI (``gesturelab.tracking.leaderboard_page``)."""
    from gesturelab.evaluation.plots import interval_bars_figure
    from gesturelab.tracking import leaderboard_page

    shown = board.copy()
    shown["run_page"] = [tracking().run_link(r) if r else None for r in shown["run_id"]]
    shown["val_accuracy_interval"] = [
        f"{lo:.3f}–{hi:.3f}"
        for lo, hi in zip(shown["val_accuracy_low"], shown["val_accuracy_high"])
    ]
    subjects = len(np.unique(data.subjects))
    label_sets = ", ".join(map(str, sorted(shown["classes"].unique())))
    summary = (
        f"deep sequence models on `{Path(str(data.source)).name}` ({len(data)} sequences, "
        f"{subjects} subjects; label sets: {label_sets} classes). Every model is validated "
        "on the same held-out subjects "
        f"({validation_fraction:.0%} of them, never trained on), with 95% bootstrap intervals; "
        "`vs next`: McNemar p-value against the row below it."
    )
    table = leaderboard_page.markdown_table(
        shown,
        {
            "classes": "classes",
            "arch": "model",
            "val_accuracy": "accuracy",
            "val_accuracy_interval": "95% interval",
            "val_f1_macro": "macro-F1",
            "parameters": "parameters",
            "vs_next_p_value": "vs next",
        },
        links={"arch": "run_page"},
    )
    figure = interval_bars_figure(
        board, "val_accuracy", "val_accuracy_low", "val_accuracy_high", "arch", "classes"
    )
    return leaderboard_page.publish(
        experiment,
        board,
        title=experiment,
        summary=summary,
        table=table,
        sort_by="val_accuracy",
        metrics=SEQUENCE_BOARD_METRICS,
        tags=["model_family", "n_classes"],
        where={"leaderboard_id": board_id, "study": "leaderboard"},
        figure=figure,
        label_set=None,
        footer="Champions (refit on every subject) are the runs tagged `study = champion`.",
    )


def _board_row(n_classes: int, arch: str, out: ValidatedModel, headline_row) -> dict:
    report, result = out.report, out.result
    return {
        "classes": n_classes,
        "arch": arch,
        **headline_row(report, "val_"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "seconds_per_epoch": result.seconds_per_epoch,
        "fit_seconds": result.fit_seconds,
        "parameters": result.model.count_params(),
        "run_id": out.run.run_id if out.run else None,
    }


def validate_ensemble(
    data: SequenceSet,
    members: list[ValidatedModel],
    *,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    run_name: str = "ensemble",
    tags: dict | None = None,
    log: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
) -> ValidatedModel:
    """The average of members already validated by ``train_and_log``, scored and logged.

    The ensemble is scored on the members' held-out subjects, which none of them trained on;
    members validated on different subjects are refused (one of them has seen the others').
    """
    from gesturelab.training.seq_training import combine_results, config_for

    held_out = {tuple(member.validation_subjects) for member in members}
    if len(held_out) != 1:
        raise ValueError(f"ensemble members were validated on different subjects: {held_out}")
    results = [member.result for member in members]
    archs = tuple(r.config.arch for r in results)
    frames = results[0].config.frames
    ensemble_config = config_for("ensemble", len(data.classes), members=archs, frames=frames)
    result = combine_results(results, ensemble_config)
    val = data.subset(np.isin(data.subjects, held_out.pop()))
    validated = _validated(result, val, n_bootstrap)
    if log:
        _log_validation(
            validated,
            dataset_info(data),
            experiment,
            run_name,
            {"validation": "by subject", "members": " ".join(archs), **(tags or {})},
            extra_metrics={f"member_{r.config.arch}_best_epoch": r.best_epoch for r in results},
        )
    return validated
