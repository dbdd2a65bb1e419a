"""The sequence leaderboard's trainings: keyed, so that a finished run is not trained again, and
run as tasks of the engine (``gesturelab.training.engine``), one TensorFlow process per task.

A worker fits one configuration on its label set's training subjects (early stopping on the
held-out ones) and returns the fitted model; the process that started the leaderboard scores
and logs it, as the classical sweep does: one writer per store.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet
from gesturelab.training import run_keys
from gesturelab.training.seq_training import TrainConfig, TrainResult, fit


def data_digest(data: SequenceSet) -> str:
    """SHA-256 of what a fit sees: every sequence's values, the labels, subjects and classes."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(map(str, data.classes)), data.frame_rate]).encode())
    if data.hand:  # only then, so that the keys of data without a hand choice stay as they were
        digest.update(f"hand={data.hand}".encode())
    digest.update(np.ascontiguousarray(data.labels).tobytes())
    digest.update(np.asarray(data.subjects).astype(str).astype("U").tobytes())
    for sequence in data.sequences:
        digest.update(str(sequence.shape).encode())
        digest.update(np.ascontiguousarray(sequence, dtype=np.float64).tobytes())
    return digest.hexdigest()


def run_key(train_config: TrainConfig, train_digest: str, val_digest: str, role: str) -> str:
    """What determines a validation run's result: the configuration (seed included), the
    training and held-out subjects' data, the training code, and the run's role."""
    return run_keys.run_key(
        config={k: str(v) for k, v in sorted(train_config.params().items())},
        train=train_digest,
        validation=val_digest,
        code=run_keys.sequence_code_version(),
        role=role,
    )


def ensemble_key(member_keys: list[str]) -> str:
    return hashlib.sha256(json.dumps(["ensemble", *member_keys]).encode()).hexdigest()


@dataclass
class SeqTask:
    """One validation training of the leaderboard, and the finished run that answers it."""

    n_classes: int
    config: TrainConfig
    run_name: str
    tags: dict
    key: str
    board_dir: Path | None = None  # the fit's TensorBoard folder; None: no TensorBoard
    found: object = None  # train_with_mlflow.RunRecord of a finished run with this key

    @property
    def train_tags(self) -> dict:
        return {**self.tags, "run_key": self.key}


def tensorboard_dir(run_name: str) -> Path:
    return config.TENSORBOARD_DIR / f"{run_name.replace(' ', '_')}-{time.strftime('%H%M%S')}"


def fit_task(shared: dict, task: SeqTask) -> TrainResult:
    """Wherever the engine runs it (never logs): ``task``'s configuration fitted on its label
    set's training subjects, early stopping on the held-out ones. ``shared``: {n_classes:
    (training SequenceSet, held-out SequenceSet)}."""
    import keras

    train, val = shared[task.n_classes]
    callbacks = []
    if task.board_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(task.board_dir), histogram_freq=0))
    return fit(train, task.config, val, callbacks=callbacks)


def refit_task(shared: dict, item) -> TrainResult:
    """Wherever the engine runs it (never logs): one final fit on every subject, no validation.
    ``item``: (n_classes, TrainConfig); ``shared``: {n_classes: every subject's SequenceSet}."""
    n_classes, train_config = item
    return fit(shared[n_classes], train_config, None)


def reused_result(found, train_config: TrainConfig, classes) -> TrainResult:
    """A finished run's (``RunRecord``) model and training record, as ``fit`` returned them."""
    from gesturelab.models.predictor import open_model

    metrics = found.metrics
    logged = [name for name in metrics if name.startswith("epoch_")]
    curves = tracking().read_curves(found.run_id, logged)
    # log_sequence_run wrote "loss" as epoch_train_loss and "val_loss" as epoch_val_loss
    history = {
        name.removeprefix("epoch_").removeprefix("train_"): values
        for name, values in curves.items()
    }
    return TrainResult(
        model=open_model(found.model_uri).model,
        history=history,
        best_epoch=int(metrics["best_epoch"]),
        epochs_run=int(metrics["epochs_run"]),
        fit_seconds=float(metrics["fit_time_s"]),
        seconds_per_epoch=float(metrics["seconds_per_epoch"]),
        config=train_config,
        classes=tuple(classes),
    )


def find_finished(experiment: str, key: str, fresh: bool):
    """The newest finished run with ``key`` that still has its model, unless ``fresh``."""
    if fresh:
        return None
    found = tracking().finished_run_with_key(experiment, key)
    return found if found is not None and found.model_uri else None


def tracking():
    """train_with_mlflow, imported when a run is logged (it imports MLflow)."""
    import train_with_mlflow

    return train_with_mlflow
