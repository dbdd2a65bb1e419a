"""The studies of notebook 03: the GESTO failure rebuilt on real data, and how much data is enough.

Both hold out whole subjects: a model is only ever scored on people it never saw.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.config import VALIDATION_FRACTION
from gesturelab.datasets.sequences import SequenceSet, pick_classes, subject_split
from gesturelab.training.seq_training import TrainConfig, fit, predict_proba

GESTO_GESTURES = ("grab", "swipe_right", "shake")
GESTO_FRAMES = 30
GESTO_PER_CLASS = 30


def held_out_subjects(
    data: SequenceSet, fraction: float = VALIDATION_FRACTION, seed: int = config.SEQUENCE_SEED
):
    """(pool, held_out): the subjects to learn from and the subjects to score on."""
    pool, held_out = subject_split(data.subjects, fraction, seed=seed)
    return data.subset(pool), data.subset(held_out)


def sample_per_class(
    data: SequenceSet, per_class: int | None, seed: int = config.SEQUENCE_SEED
) -> SequenceSet:
    """``per_class`` random sequences of every class (all of them when None)."""
    if per_class is None:
        return data
    rng = np.random.default_rng(seed)
    rows = [
        rng.choice(np.flatnonzero(data.labels == c), per_class, replace=False)
        for c in range(len(data.classes))
    ]
    return data.subset(np.sort(np.concatenate(rows)))


def accuracy(model, data: SequenceSet, frames: int) -> float:
    scores = predict_proba(model, data, frames)
    if not np.isfinite(scores).all():
        return float("nan")
    return float((scores.argmax(axis=1) == data.labels).mean())


# Landmarks in pixels or millimetres, not metres or [0, 1]: what an unnormalised pipeline feeds.
PIXEL_SCALE = 1000.0


def gesto_conditions(epochs: int = 500) -> list[tuple[str, TrainConfig, str, float]]:
    """Each step of the ladder: (name, training config, how it is validated, input scale)."""
    gesto = TrainConfig(
        arch="lstm",
        frames=GESTO_FRAMES,
        features="raw",
        epochs=epochs,
        batch_size=32,
        learning_rate=1e-3,
        weight_decay=0.0,
        label_smoothing=0.0,
        augment=False,
        optimizer="adam",
        schedule="constant",
        early_stopping=False,
    )
    by_subject = replace(gesto, early_stopping=True, patience=max(epochs // 5, 10))
    normalised = replace(by_subject, features="full")
    augmented = replace(normalised, augment=True)
    tuned = replace(augmented, optimizer="adamw", schedule="cosine", label_smoothing=0.1)
    tcn = replace(tuned, arch="tcn", dropout=0.3)
    relu = replace(gesto, recurrent_activation="relu")
    return [
        ("0a GESTO recipe on pixel-scale coordinates (x1000)", gesto, "random", PIXEL_SCALE),
        ("0b same, ReLU inside the LSTMs", relu, "random", PIXEL_SCALE),
        ("1 GESTO recipe on coordinates in metres", gesto, "random", 1.0),
        ("1b same, ReLU inside the LSTMs (tutorial code)", relu, "random", 1.0),
        ("2 validation by subject + early stopping", by_subject, "subject", 1.0),
        ("3 + per-sequence normalisation and features", normalised, "subject", 1.0),
        ("4 + augmentation", augmented, "subject", 1.0),
        ("5 + AdamW, cosine schedule, label smoothing", tuned, "subject", 1.0),
        ("6 reference TCN instead of the LSTM", tcn, "subject", 1.0),
    ]


def _scaled(data: SequenceSet, factor: float) -> SequenceSet:
    if factor == 1.0:
        return data
    out = data.subset(np.arange(len(data)))
    out.sequences = [s * np.float32(factor) for s in data.sequences]
    return out


def gesto_study(
    data: SequenceSet, epochs: int = 500, seed: int = config.SEQUENCE_SEED, engine=None, steps=None
) -> tuple[pd.DataFrame, dict]:
    """The GESTO experiment on real data: 3 gestures x 30 sequences, 30 frames x 63 values.

    The 90 training sequences come from some subjects; every condition is also scored on the
    same 3 gestures performed by subjects none of the 90 came from. Each condition is a task of
    ``engine`` (``training.engine.Engine``; serial when None): a fit gives the same weights in
    a worker process as here (``seq_training.fit`` seeds everything it draws from).
    steps: the ladder's steps to run, by their numbers ("0b", "5"); None: every step.
    """
    from gesturelab.training.engine import Engine

    three = pick_classes(data, GESTO_GESTURES)
    pool, held_out = held_out_subjects(three, seed=seed)
    gesto = sample_per_class(pool, GESTO_PER_CLASS, seed=seed)
    rng = np.random.default_rng(seed)
    # train_test_split(test_size=0.05) on 90 sequences: 5 random sequences, any subject.
    random_val = np.zeros(len(gesto), dtype=bool)
    random_val[rng.choice(len(gesto), 5, replace=False)] = True
    subject_train, subject_val = subject_split(gesto.subjects, 0.25, seed=seed)
    splits = {
        "random": (gesto.subset(~random_val), gesto.subset(random_val)),
        "subject": (gesto.subset(subject_train), gesto.subset(subject_val)),
    }
    conditions = gesto_conditions(epochs)
    if steps is not None:
        conditions = [c for c in conditions if c[0].split(" ", 1)[0] in steps]
    rows, histories = [], {}
    with (engine or Engine("serial")).open((splits, held_out)) as tasks:
        for (name, *_), (row, history) in zip(
            conditions, tasks.map(_gesto_condition, conditions), strict=True
        ):
            histories[name] = history
            rows.append(row)
    info = {
        "gestures": GESTO_GESTURES,
        "training_subjects": sorted(set(gesto.subjects.tolist())),
        "held_out_subjects": sorted(set(held_out.subjects.tolist())),
        "held_out_sequences": len(held_out),
        "histories": histories,
    }
    return pd.DataFrame(rows), info


def _gesto_condition(shared, condition) -> tuple[dict, dict]:
    """One step of the GESTO ladder, wherever the engine runs it: (its row, its history)."""
    splits, held_out = shared
    name, config, validation, scale = condition
    train, val = splits[validation]
    train, val, scored_on = _scaled(train, scale), _scaled(val, scale), _scaled(held_out, scale)
    result = fit(train, config, val)
    history = result.history
    row = {
        "condition": name,
        "train_sequences": len(train),
        "validation_sequences": len(val),
        "epochs_run": result.epochs_run,
        "final_train_loss": history["loss"][-1],
        "final_train_accuracy": history["accuracy"][-1],
        "max_val_loss": float(np.nanmax(history["val_loss"])),
        "final_val_accuracy": history["val_accuracy"][-1],
        "train_accuracy": accuracy(result.model, train, config.frames),
        "held_out_subjects_accuracy": accuracy(result.model, scored_on, config.frames),
        "seconds": result.fit_seconds,
    }
    return row, history


def scaling_study(
    data: SequenceSet,
    archs=("lstm", "tcn"),
    sizes=(5, 10, 20, 40, None),
    steps: int = 1200,
    min_epochs: int = 30,
    max_epochs: int = 300,
    seed: int = config.SEQUENCE_SEED,
    base: TrainConfig | None = None,
    features: str | None = "full",
    engine=None,
) -> pd.DataFrame:
    """Held-out-subject accuracy against sequences per class (None = every sequence).

    Every run gets about the same number of weight updates (``steps``), so small sets are not
    cut short; there is no early stopping, because there is no validation data to spare.
    Every architecture gets the same ``features`` (None: each one's tuned default), so the
    curves compare architectures, not inputs. Each (architecture, size) is a task of ``engine``
    (serial when None).
    """
    from gesturelab.training.engine import Engine
    from gesturelab.training.seq_training import config_for

    pool, held_out = held_out_subjects(data, seed=seed)
    points = []
    for arch in archs:
        for size in sizes:
            train = sample_per_class(pool, size, seed=seed)
            config = base or config_for(arch, len(data.classes))
            batches = int(np.ceil(len(train) / config.batch_size))
            epochs = int(np.clip(round(steps / batches), min_epochs, max_epochs))
            config = replace(config, arch=arch, epochs=epochs, seed=seed)
            if features:
                config = replace(config, features=features)
            points.append((size, train, config))
    with (engine or Engine("serial")).open(held_out) as tasks:
        rows = list(tasks.map(_scaling_point, points))
    return pd.DataFrame(rows)


def _scaling_point(held_out, point) -> dict:
    """One point of the scaling curves, wherever the engine runs it."""
    size, train, config = point
    result = fit(train, config, None)
    return {
        "arch": config.arch,
        "per_class": size or int(np.bincount(train.labels).min()),
        "all": size is None,
        "train_sequences": len(train),
        "epochs": config.epochs,
        "held_out_accuracy": accuracy(result.model, held_out, config.frames),
        "seconds": result.fit_seconds,
    }
