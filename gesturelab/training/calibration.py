"""Per-user calibration by fine-tuning (reference guide, section 4): freeze the early layers,
train the last ones on a few of the user's own samples at a very low learning rate, keep the
result only if it is better on the user's held-back samples, else keep the original model.

Works on any Keras model of ours whose input is raw landmarks: a sequence model, (frames, 63),
or a static one, (63,) or (42,). The preprocessing layers hold no weights and stay as they are.

Freeze strategies, counted over the layers that hold weights, in the model's order (in an
ensemble, within each member):

    head_only   only the last layer (the softmax head) trains
    last_block  the last 40 % train (the guide's recommendation)
    half        the last 50 % train

Batch normalisation layers are always frozen: statistics of a batch of 4 samples of one user
would replace those of thousands of training sequences, and a frozen BatchNormalization runs
in inference mode in Keras 3 (the moving averages are used, not updated).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.errors import LandmarkInputError

STRATEGIES = ("head_only", "last_block", "half")
_TRAINED_SHARE = {"head_only": None, "last_block": 0.4, "half": 0.5}


@dataclass(frozen=True)
class CalibrationConfig:
    """The guide's recommended settings (learning rate 1e-5, 10-20 epochs, batch 4, 5 per class).

    holdout_share: the share of each class's samples held back to decide whether calibration
    helped (at least one per class that has two or more samples).
    patience: epochs without a lower held-back loss before stopping (the best epoch is kept).
    """

    freeze_strategy: str = "last_block"
    learning_rate: float = 1e-5
    epochs: int = 20
    batch_size: int = 4
    patience: int = 5
    min_samples_per_gesture: int = 5
    holdout_share: float = 1 / 3
    seed: int = config.SEQUENCE_SEED

    def __post_init__(self):
        if self.freeze_strategy not in STRATEGIES:
            raise ValueError(
                f"freeze_strategy must be one of {', '.join(STRATEGIES)}, "
                f"not {self.freeze_strategy!r}"
            )


@dataclass
class CalibrationResult:
    """What calibration did, measured on the user's held-back samples.

    accuracy_after / loss_after are the calibrated model's, kept or not: a calibration that made
    things worse says by how much, and ``kept`` says the original was kept instead.
    """

    strategy: str
    n_calibration: int
    n_holdout: int
    accuracy_before: float
    accuracy_after: float
    loss_before: float
    loss_after: float
    epochs_run: int
    best_epoch: int
    trainable_layers: list = field(default_factory=list)
    kept: str = "original"  # "calibrated" or "original"
    validated_on: str = "held-back samples"
    message: str = ""
    # The calibrated copy, kept or not (what the fallback protected against); not serialised.
    candidate: object = field(default=None, repr=False, compare=False)

    @property
    def improvement(self) -> float:
        return self.accuracy_after - self.accuracy_before

    @property
    def success(self) -> bool:
        return self.kept == "calibrated"

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "candidate"}
        return {**values, "improvement": self.improvement, "success": self.success}


def _weighted_units(model) -> list[list]:
    """The layers with weights, per unit: the model itself, or each member of an ensemble."""
    import keras

    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    units = members or [model]
    return [[layer for layer in unit.layers if layer.weights] for unit in units]


def freeze(model, strategy: str) -> list[str]:
    """Set ``trainable`` for ``strategy``; returns the names of the layers that train."""
    import keras

    if strategy not in STRATEGIES:
        raise ValueError(f"freeze strategy must be one of {', '.join(STRATEGIES)}")
    model.trainable = True
    trained = []
    for unit in _weighted_units(model):
        share = _TRAINED_SHARE[strategy]
        n = 1 if share is None else max(1, int(np.ceil(share * len(unit))))
        # Counted over every weighted layer; the batch normalisations inside the block stay
        # frozen (see the module's docstring).
        chosen = {
            id(layer)
            for layer in unit[-n:]
            if not isinstance(layer, keras.layers.BatchNormalization)
        }
        for layer in unit:
            layer.trainable = id(layer) in chosen
            if layer.trainable:
                trained.append(layer.name)
    return trained


def copy_model(model):
    """An independent copy (weights included) of a Keras model of ours."""
    import keras

    from gesturelab.models.seq_models import CUSTOM_OBJECTS

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)


def model_input(model, samples) -> np.ndarray:
    """User samples as the model's input batch: sequences resampled to its frames, or hands."""
    from gesturelab.datasets.sequences import resample

    shape = tuple(model.input_shape[1:])
    if isinstance(samples, np.ndarray) and samples.shape[1:] == shape:
        return samples.astype(np.float32)
    if len(shape) == 2:  # a sequence model: (frames, values)
        frames, values = shape
        batch = []
        for i, sample in enumerate(samples):
            array = np.asarray(sample, dtype=np.float64)
            if array.ndim == 2 and array.shape[1] == values:
                array = array.reshape(len(array), 21, values // 21)
            if array.ndim != 3 or array.shape[1] * array.shape[2] != values:
                raise LandmarkInputError(
                    f"sample {i}: a sequence is (frames, 21, {values // 21}) or "
                    f"(frames, {values}); got shape {array.shape}"
                )
            batch.append(resample(array, frames).reshape(frames, values))
        return np.stack(batch).astype(np.float32)
    (values,) = shape
    batch = np.asarray(samples, dtype=np.float32).reshape(len(samples), -1)
    if batch.shape[1] != values:
        raise LandmarkInputError(
            f"a hand for this model has {values} values; the samples have {batch.shape[1]}"
        )
    return batch


def holdout_split(
    labels, share: float, seed: int = config.SEQUENCE_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (calibration, held back): per class, ``share`` of its samples (at least one when
    it has two or more) are held back; a class with one sample is only calibrated on."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    calibration, holdout = [], []
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        n_back = 0 if len(index) < 2 else max(1, int(round(share * len(index))))
        n_back = min(n_back, len(index) - 1)
        holdout.extend(index[:n_back])
        calibration.extend(index[n_back:])
    return np.sort(calibration), np.sort(holdout)


def _score(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    probabilities = np.asarray(model.predict_on_batch(x), dtype=np.float64)
    accuracy = float((probabilities.argmax(axis=1) == y).mean())
    loss = float(-np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, None)).mean())
    return accuracy, loss


def calibrate(model, x, y, config: CalibrationConfig | None = None, copies=None):
    """Fine-tune a copy of ``model`` on (x, y); returns (the model to use, CalibrationResult).

    x: the model's input batch (``model_input``); y: class indices of the model's outputs.
    The model returned is the calibrated copy only when it is better on the held-back samples
    (higher accuracy, or the same accuracy with a lower loss); otherwise it is ``model`` itself,
    unchanged. ``model`` is never modified. ``copies``: a ``personalisation.ReusedCopies`` of
    ``model`` when calibrating it many times over (its steps are traced once).
    """
    import keras

    config = config or CalibrationConfig()
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    n_classes = int(model.output_shape[-1])
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"calibration needs samples and as many labels ({len(x)} vs {len(y)})")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must be class indices 0..{n_classes - 1}")
    fit_index, back_index = holdout_split(y, config.holdout_share, config.seed)
    validated_on = "held-back samples"
    if len(back_index) == 0:
        # One sample per class: nothing can be held back, so the check is on the samples the
        # model was tuned on, which can only say it did not get worse on them.
        back_index, validated_on = fit_index, "the calibration samples (too few to hold back)"
    x_fit, y_fit, x_back, y_back = x[fit_index], y[fit_index], x[back_index], y[back_index]
    accuracy_before, loss_before = _score(model, x_back, y_back)

    # Seeded before the copy too: its dropout layers draw their seeds from the global state
    # when they are made, which would otherwise depend on what the process ran before (a
    # model loaded earlier made a study's calibrations differ from fresh ones on an AMD EPYC host).
    keras.utils.set_random_seed(config.seed)
    if copies is None:
        tuned, trainable = compiled_copy(model, config)
    else:
        tuned, trainable = copies.reset(config)
    keras.utils.set_random_seed(config.seed)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    history = tuned.fit(
        x_fit,
        y_fit,
        validation_data=(x_back, y_back),
        epochs=config.epochs,
        batch_size=config.batch_size,
        callbacks=[stop],
        shuffle=True,
        verbose=0,
    )
    val_loss = history.history.get("val_loss", [])
    best_epoch = int(np.argmin(val_loss)) + 1 if val_loss else 0
    accuracy_after, loss_after = _score(tuned, x_back, y_back)
    better = accuracy_after > accuracy_before or (
        accuracy_after == accuracy_before and loss_after < loss_before
    )
    result = CalibrationResult(
        strategy=config.freeze_strategy,
        n_calibration=len(fit_index),
        n_holdout=len(back_index) if validated_on == "held-back samples" else 0,
        accuracy_before=accuracy_before,
        accuracy_after=accuracy_after,
        loss_before=loss_before,
        loss_after=loss_after,
        epochs_run=len(val_loss),
        best_epoch=best_epoch,
        trainable_layers=trainable,
        kept="calibrated" if better else "original",
        validated_on=validated_on,
        candidate=tuned,
    )
    change = (
        f"accuracy {accuracy_before:.3f} -> {accuracy_after:.3f}, "
        f"loss {loss_before:.3f} -> {loss_after:.3f} on {len(back_index)} {validated_on}"
    )
    result.message = (
        f"calibrated ({config.freeze_strategy}): {change}"
        if better
        else f"kept the original model: calibration did not improve it ({change})"
    )
    if not better:
        return model, result
    if copies is None:  # a reused copy keeps its frozen layers for the next calibration
        tuned.trainable = True  # a saved calibrated model can be calibrated again
    return tuned, result


def compiled_copy(model, config: CalibrationConfig):
    """(a copy of ``model`` frozen for ``config``'s strategy and compiled, its trained layers)."""
    import keras

    tuned = copy_model(model)
    trainable = freeze(tuned, config.freeze_strategy)
    tuned.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
    )
    return tuned, trainable


def _load_base(base_model):
    """A Keras model, a ``.keras`` path, or a model URI of ours -> (model, classes or None)."""
    import keras

    if isinstance(base_model, keras.Model):
        return base_model, None
    from gesturelab.models.seq_models import CUSTOM_OBJECTS

    path = Path(str(base_model))
    if path.suffix == ".keras" and path.is_file():
        return keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, safe_mode=True), None
    from gesturelab.models.predictor import open_model

    loaded = open_model(str(base_model))
    if loaded.kind != "sequence":
        raise LandmarkInputError(
            f"{base_model} is a scikit-learn model: only Keras models can be calibrated by "
            "fine-tuning (train the static 'mlp' family for a static model that can)"
        )
    return loaded.model, loaded.metadata.get("classes")


def _label_indices(labels, classes) -> np.ndarray:
    labels = list(labels)
    if classes is None or all(isinstance(v, (int, np.integer)) for v in labels):
        return np.asarray(labels, dtype=np.int64)
    index = {str(c): i for i, c in enumerate(classes)}
    unknown = sorted({str(v) for v in labels} - set(index))
    if unknown:
        raise LandmarkInputError(
            f"labels {unknown[:5]} are not classes of this model ({', '.join(map(str, classes))})"
        )
    return np.asarray([index[str(v)] for v in labels], dtype=np.int64)


def quick_calibrate(
    base_model_path,
    user_samples,
    user_labels,
    class_names=None,
    freeze_strategy: str = "last_block",
    **settings,
):
    """The guide's one call: (model to use, CalibrationResult) from a user's samples.

    base_model_path: a ``.keras`` file, a model URI (``models:/name@champion``) or a Keras
    model. user_labels: class names (of ``class_names`` or the model's own) or indices.
    """
    model, classes = _load_base(base_model_path)
    classes = class_names if class_names is not None else classes
    config = CalibrationConfig(freeze_strategy=freeze_strategy, **settings)
    x = model_input(model, user_samples)
    return calibrate(model, x, _label_indices(user_labels, classes), config)


class UserCalibrator:
    """Collect a user's samples gesture by gesture, then calibrate (the guide's interactive API).

    ``add_sample(sequence, gesture_name)``, ``get_sample_counts()``, ``is_ready()`` ->
    (ready, message), ``calibrate()`` -> CalibrationResult, ``save(path)`` writes the model to
    use (the calibrated one, or the original when calibration did not help).
    """

    def __init__(self, base_model_path, class_names=None, config: CalibrationConfig | None = None):
        self.base_model, classes = _load_base(base_model_path)
        self.class_names = [str(c) for c in (class_names or classes or [])]
        if len(self.class_names) != int(self.base_model.output_shape[-1]):
            raise ValueError(
                f"the model predicts {self.base_model.output_shape[-1]} classes; "
                f"{len(self.class_names)} class names given"
            )
        self.config = config or CalibrationConfig()
        self.model = self.base_model
        self.result: CalibrationResult | None = None
        self._samples: list = []
        self._labels: list[str] = []

    def add_sample(self, sample, gesture_name: str) -> None:
        if str(gesture_name) not in self.class_names:
            raise LandmarkInputError(
                f"{gesture_name!r} is not a gesture of this model ({', '.join(self.class_names)})"
            )
        model_input(self.base_model, [sample])  # refuse a wrong shape now, not at calibrate()
        self._samples.append(np.asarray(sample))
        self._labels.append(str(gesture_name))

    def get_sample_counts(self) -> dict[str, int]:
        counts = Counter(self._labels)
        return {name: counts.get(name, 0) for name in self.class_names}

    def is_ready(self) -> tuple[bool, str]:
        need = self.config.min_samples_per_gesture
        missing = {k: need - v for k, v in self.get_sample_counts().items() if v < need}
        if not missing:
            return True, f"ready: at least {need} samples of every gesture"
        shown = ", ".join(f"{k} ({v} more)" for k, v in list(missing.items())[:6])
        more = f" and {len(missing) - 6} more gestures" if len(missing) > 6 else ""
        return False, f"{len(missing)} gestures need samples: {shown}{more}"

    def calibrate(self, force: bool = False) -> CalibrationResult:
        ready, message = self.is_ready()
        if not ready and not force:
            raise ValueError(f"not ready to calibrate: {message} (or calibrate(force=True))")
        x = model_input(self.base_model, self._samples)
        y = _label_indices(self._labels, self.class_names)
        self.model, self.result = calibrate(self.base_model, x, y, self.config)
        return self.result

    def save(self, path) -> Path:
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"{path}: a calibrated model is saved as a .keras file")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(path)
        return path


# ---- the command ----------------------------------------------------------------------------


def pick_per_class(
    labels, k: int, seed: int = config.SEQUENCE_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (k samples of each class, the rest); a class with k or fewer keeps one back
    when it can, so every class has something left to score."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        chosen.extend(index[: min(k, max(len(index) - 1, 1))])
    chosen = np.sort(np.asarray(chosen, dtype=int))
    return chosen, np.setdiff1d(np.arange(len(labels)), chosen)


USER_COLUMNS = ("user_id", "user", "subject")


def _static_samples(loaded, model_uri, data, subject):
    """(network, scaled features, class indices, classes, three raw rows) of a static MLP
    model's user rows; the raw rows are the calibrated model's input example."""
    from gesturelab import datasets
    from gesturelab.models.static_mlp import KerasMLPClassifier

    pipeline = loaded.model
    classifier = getattr(pipeline, "steps", [(None, pipeline)])[-1][1]  # an ensemble: itself
    if not isinstance(classifier, KerasMLPClassifier):
        raise LandmarkInputError(
            f"{model_uri} is a {type(classifier).__name__}: only Keras models are calibrated by "
            "fine-tuning (sweep the 'mlp' family for a static model that can be)"
        )
    rows = datasets.read(data, verbose=False, quarantine_dir=None)
    frame = rows.data
    if subject is not None:
        column = next((c for c in USER_COLUMNS if c in frame.columns), None)
        if column is None:
            raise LandmarkInputError(
                f"{data}: --subject needs a user column ({', '.join(USER_COLUMNS)})"
            )
        keep = (frame[column].astype(str) == str(subject)).to_numpy()
        if not keep.any():
            raise LandmarkInputError(f"{data}: no rows of {column} {subject!r}")
        frame = frame[keep]
    classes = [str(c) for c in classifier.classes_]
    labels = frame["label"].astype(str)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise LandmarkInputError(f"{data}: labels {unknown[:5]} are not classes of {model_uri}")
    features = pipeline[:-1].transform(frame[rows.columns]).astype(np.float32)
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    return classifier.network_, features, y, classes, frame[rows.columns].iloc[:3]


def calibrate_model(
    model_uri: str,
    data,
    strategy: str = "last_block",
    samples_per_class: int | None = None,
    subject=None,
    user: str | None = None,
    register: bool = True,
    split: str = "train",
    settings: dict | None = None,
) -> dict:
    """``python -m gesturelab calibrate``: calibrate a registered sequence model to a user.

    data: the user's sequences (any sequence dataset; ``subject`` keeps one subject's).
    samples_per_class: calibrate on that many per class and score the original and the model
    to use on the remaining sequences (what the user would meet next); None calibrates on all.
    A calibrated model is logged as a run of the base model's experiment and registered as a
    new version of the same name, tagged with its parent (version, run, URI) and the result;
    the alias ``user-<user>`` points at it. A calibration that did not help logs the run (the
    numbers) but no model, and registers nothing.
    """
    import train_with_mlflow as tracking
    from gesturelab.datasets.sequence_formats import read_sequences
    from gesturelab.models.predictor import open_model

    loaded = open_model(model_uri)
    if loaded.kind == "static":
        model, x, y, classes, example = _static_samples(loaded, model_uri, data, subject)
    else:
        model, metadata = loaded.model, loaded.metadata
        classes = [str(c) for c in metadata.get("classes") or []]
        sequences = read_sequences(data, classes=classes, verbose=False, split=split).data
        if subject is not None:
            keep = np.asarray([str(s) for s in sequences.subjects]) == str(subject)
            if not keep.any():
                raise LandmarkInputError(f"{data}: no sequences of subject {subject!r}")
            sequences = sequences.subset(keep)
        frames = int(metadata.get("frames") or model.input_shape[1])
        x = sequences.to_fixed(frames).reshape(len(sequences), frames, -1)
        y = np.asarray(sequences.labels)
    config = CalibrationConfig(freeze_strategy=strategy, **(settings or {}))
    if samples_per_class:
        chosen, rest = pick_per_class(y, samples_per_class, config.seed)
    else:
        chosen, rest = np.arange(len(y)), np.array([], dtype=int)
    use, result = calibrate(model, x[chosen], y[chosen], config)
    outcome = {"model_uri": model_uri, "data": str(data), "result": result.to_dict()}
    if len(rest):
        before = float((model.predict_on_batch(x[rest]).argmax(1) == y[rest]).mean())
        after = float((use.predict_on_batch(x[rest]).argmax(1) == y[rest]).mean())
        outcome["remaining"] = {"sequences": len(rest), "before": before, "after": after}
    info = tracking.model_version_info(model_uri)
    user = user or (f"subject-{subject}" if subject is not None else "user")
    outcome["user"] = user
    base_run = info.get("run_id") or tracking.run_of_model(model_uri)
    experiment = tracking.experiment_of_run(base_run) if base_run else "calibrations"
    tags = {
        "calibrated_from": model_uri,
        "parent_run_id": base_run or "",
        "parent_version": info.get("version", ""),
        "calibration_user": user,
        "calibration_strategy": strategy,
        "calibration_kept": result.kept,
    }
    metrics = {
        f"calibration_{k}": v
        for k, v in result.to_dict().items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if "remaining" in outcome:
        metrics["remaining_accuracy_before"] = outcome["remaining"]["before"]
        metrics["remaining_accuracy_after"] = outcome["remaining"]["after"]
    with tracking.start_run(
        experiment,
        f"calibrated {strategy} for {user}",
        kind="calibration",
        tags=tags,
        label_set=classes,
    ) as run:
        run.log_params(
            {f"calibration_{k}": v for k, v in asdict(config).items()}
            | {"calibration_data": str(data), "calibration_samples": len(chosen)}
        )
        run.log_metrics(metrics)
        run.log_dicts({"calibration.json": outcome})
        if result.success and loaded.kind == "static":
            import copy

            from gesturelab.models.static_families import SKOPS_TRUSTED_TYPES

            pipeline = copy.deepcopy(loaded.model)
            pipeline.steps[-1][1].network_ = use
            outcome["logged_model"] = run.log_sklearn_model(
                pipeline, example, SKOPS_TRUSTED_TYPES, metadata=dict(loaded.metadata)
            )
        elif result.success:
            outcome["logged_model"] = run.log_keras_model(
                use,
                frames,
                {**metadata, "calibrated_from": model_uri, "calibration_user": user},
            )
    outcome["run_id"] = run.run_id
    if result.success and register and "name" in info:
        alias = f"user-{user}".replace("_", "-")
        version = tracking.register_model(
            outcome["logged_model"],
            info["name"],
            alias,
            tags={**tags, "calibration_accuracy_after": f"{result.accuracy_after:.4f}"},
            label_set=classes,
            data_sha256=None,
        )
        outcome["registered"] = f"models:/{info['name']}@{alias}"
        outcome["version"] = version.version
        from gesturelab.models.model_card import log_card

        log_card(info["name"], version.version)
    return outcome
