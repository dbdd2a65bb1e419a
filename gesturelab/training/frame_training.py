"""Training a per-frame gesture detector (``models.frame_models``) on life-like streams.

The material is what a detector meets live, drawn from the training subjects only: their real
gestures joined by rests with a still hand's jitter, transitions and idle motion
(``datasets.life_streams``), several differently seeded streams per subject. Batches are random
crops of those streams, a label per frame (the gesture under way, or "no gesture"); each crop is
turned by a small random rotation about the vertical axis and tilted a little (people do not
stand square to the camera), which leaves a swipe's direction as it is.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from gesturelab import config
from gesturelab.datasets.life_streams import LifeStream
from gesturelab.models.frame_models import frame_architecture
from gesturelab.models.seq_models import AdamW
from gesturelab.training.seq_training import python_random_of_its_own

CHUNK_FRAMES = 256
BATCH_SIZE = 16
TURN_DEGREES = 20.0  # about the vertical axis
TILT_DEGREES = 8.0  # about the other two


@dataclass
class FrameTrainResult:
    model: keras.Model
    history: dict
    best_epoch: int
    epochs_run: int
    fit_seconds: float
    classes: tuple
    settings: dict = field(default_factory=dict)


def stream_arrays(stream: LifeStream) -> tuple[np.ndarray, np.ndarray]:
    """(frames (n, 63) with zeros where no hand, labels (n,)): what the model reads."""
    frames = np.nan_to_num(stream.frames.reshape(len(stream.frames), -1), nan=0.0)
    return frames.astype(np.float32), stream.frame_labels()


def _rotation(rng: np.random.Generator) -> np.ndarray:
    turn, tilt_x, tilt_z = np.radians(
        [rng.uniform(-1, 1) * TURN_DEGREES, *rng.uniform(-1, 1, 2) * TILT_DEGREES]
    )
    c, s = np.cos(turn), np.sin(turn)
    about_y = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    c, s = np.cos(tilt_x), np.sin(tilt_x)
    about_x = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    c, s = np.cos(tilt_z), np.sin(tilt_z)
    about_z = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return about_y @ about_x @ about_z


class StreamChunks(keras.utils.PyDataset):
    """Random crops of streams with their per-frame labels, a fresh draw each epoch; as many
    crops an epoch as it takes to see every frame about once."""

    def __init__(self, streams, chunk: int, batch_size: int, seed: int, augment: bool = True):
        super().__init__()
        self.arrays = [stream_arrays(s) for s in streams]
        self.chunk, self.batch_size, self.augment = chunk, batch_size, augment
        self.rng = np.random.default_rng(seed)
        total = sum(len(f) for f, _ in self.arrays)
        self.weights = np.array([len(f) for f, _ in self.arrays], dtype=np.float64) / total
        self.batches = max(1, math.ceil(total / chunk / batch_size))

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        x = np.zeros((self.batch_size, self.chunk, 63), np.float32)
        y = np.zeros((self.batch_size, self.chunk), np.int64)
        weight = np.zeros((self.batch_size, self.chunk), np.float32)  # padding counts nothing
        for b in range(self.batch_size):
            frames, labels = self.arrays[self.rng.choice(len(self.arrays), p=self.weights)]
            start = self.rng.integers(0, max(1, len(frames) - self.chunk + 1))
            piece = frames[start : start + self.chunk]
            if self.augment:
                present = np.any(piece != 0, axis=1, keepdims=True)
                turned = piece.reshape(-1, 21, 3) @ _rotation(self.rng).T
                piece = np.where(present, turned.reshape(len(piece), 63), 0.0)
            x[b, : len(piece)] = piece
            y[b, : len(piece)] = labels[start : start + self.chunk]
            weight[b, : len(piece)] = 1.0
        return x, y, weight


def detector_settings(
    arch: str = "causal_tcn",
    epochs: int = 40,
    seed: int = config.SEQUENCE_SEED,
    **overrides,
) -> dict:
    """Everything that decides a detector's fit: the architecture's defaults, then
    ``overrides`` (width, dilations, dropout, learning_rate, patience, copies of each subject's
    stream, ...)."""
    defaults = {"learning_rate": 2e-3, "patience": 8, "chunk": CHUNK_FRAMES, "batch": BATCH_SIZE}
    settings = {"arch": arch, **frame_architecture(arch).defaults, **defaults, **overrides}
    settings.update(epochs=int(epochs), seed=int(seed))
    settings["dilations"] = tuple(settings["dilations"])
    return settings


def train_frame_detector(
    train_streams, validation_streams, settings: dict | None = None, verbose: int = 0
) -> FrameTrainResult:
    """Fits the detector on crops of ``train_streams``, keeping the weights of the epoch with
    the lowest loss on ``validation_streams`` (other subjects, scored whole, frame by frame).
    settings: ``detector_settings()``'s."""
    settings = settings or detector_settings()
    spec = frame_architecture(settings["arch"])
    seed = settings["seed"]
    classes = train_streams[0].classes
    keras.utils.set_random_seed(seed)
    with python_random_of_its_own(seed):
        model = spec.build(len(classes) + 1, settings["width"], settings["dilations"],
                           settings["dropout"])  # fmt: skip
        model.compile(
            optimizer=AdamW(learning_rate=settings["learning_rate"], weight_decay=1e-4),
            loss="sparse_categorical_crossentropy",
            weighted_metrics=["accuracy"],  # validation padding has weight 0
        )
        batches = StreamChunks(train_streams, settings["chunk"], settings["batch"], seed)
        validation = [stream_arrays(s) for s in validation_streams]
        longest = max(len(f) for f, _ in validation)
        val_x = np.zeros((len(validation), longest, 63), np.float32)
        val_y = np.zeros((len(validation), longest), np.int64)
        val_w = np.zeros((len(validation), longest), np.float32)
        for i, (frames, labels) in enumerate(validation):
            val_x[i, : len(frames)], val_y[i, : len(frames)], val_w[i, : len(frames)] = (
                frames,
                labels,
                1.0,
            )
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=settings["patience"], restore_best_weights=True
        )
        started = time.perf_counter()
        history = model.fit(
            batches,
            epochs=settings["epochs"],
            validation_data=(val_x, val_y, val_w),
            callbacks=[stop],
            verbose=verbose,
        ).history
    seconds = time.perf_counter() - started
    losses = history["val_loss"]
    return FrameTrainResult(
        model=model,
        history=history,
        best_epoch=int(np.argmin(losses)) + 1,
        epochs_run=len(losses),
        fit_seconds=seconds,
        classes=tuple(classes),
        settings=dict(settings),
    )
