"""Causal per-frame gesture detectors: for every frame of a stream, which gesture is under way,
or "no gesture".

A sequence classifier (``seq_models``) names a gesture somebody already cut out; live, nothing is
cut, and what decides where a gesture starts and ends must itself be learnt, from rests,
transitions and idle motion as much as from gestures (``datasets.life_streams``). The model here
reads a stream frame by frame and never looks ahead: ``FrameFeatures`` uses only the current and
the previous frame, and the temporal convolutions are causal, so its answer for frame t is the
same whether the stream ends at t or goes on. It can run over a whole recording at once
(evaluation) or over the last ``receptive_field`` frames at a time (live) with the same output.

Outputs: a softmax over the gesture classes and a last "no gesture" class, per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers, ops

from gesturelab.datasets.landmarks import MIDDLE_MCP, N_COORDS, N_LANDMARKS, WRIST
from gesturelab.errors import lookup


@keras.saving.register_keras_serializable(package="gesturelab")
class FrameFeatures(layers.Layer):
    """Raw (frames, 63) landmarks (zeros: no hand) to causal per-frame features.

    local: the hand relative to its own wrist, in its size (the shape); motion: every point's
    step since the previous frame, in hand sizes (how the hand moves, which a swipe is; zero
    when either frame has no hand); present: 1 where a hand is. Nothing depends on where the
    hand is or on any later frame.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def call(self, x):
        frames = ops.shape(x)[1]
        pts = ops.reshape(x, (-1, frames, N_LANDMARKS, N_COORDS))
        present = ops.cast(ops.any(ops.not_equal(x, 0.0), axis=-1), x.dtype)  # (B, T)
        wrist = pts[:, :, WRIST : WRIST + 1, :]
        size = ops.sqrt(ops.sum(ops.square(pts[:, :, MIDDLE_MCP, :] - pts[:, :, WRIST, :]), -1))
        size = ops.maximum(size, 1e-6)[..., None, None]
        m = present[..., None, None]
        local = (pts - wrist) / size * m
        step = (pts[:, 1:] - pts[:, :-1]) / size[:, 1:] * m[:, 1:] * m[:, :-1]
        step = ops.concatenate([ops.zeros_like(step[:, :1]), step], axis=1)
        flat = (-1, frames, N_LANDMARKS * N_COORDS)
        return ops.concatenate(
            [ops.reshape(local, flat), ops.reshape(step, flat), present[..., None]], axis=-1
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], 2 * N_LANDMARKS * N_COORDS + 1)


def _causal_block(x, filters: int, dilation: int, dropout: float):
    residual = x
    x = layers.Conv1D(filters, 3, padding="causal", dilation_rate=dilation)(x)
    x = layers.LayerNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.SpatialDropout1D(dropout)(x)
    x = layers.Conv1D(filters, 1)(x)
    return layers.ReLU()(layers.Add()([x, residual]))


def _causal_tcn(n_outputs: int, width: int, dilations, dropout: float) -> keras.Model:
    """A causal temporal convolution network (Bai et al., 2018) with a softmax per frame.

    Layer normalisation, not batch normalisation: a live window and a training chunk then
    normalise alike (batch statistics of training chunks are not a live stream's)."""
    inputs = keras.Input((None, N_LANDMARKS * N_COORDS), name="landmarks")
    x = FrameFeatures(name="features")(inputs)
    x = layers.Dense(width, activation="relu")(x)
    for d in dilations:
        x = _causal_block(x, width, d, dropout)
    outputs = layers.Dense(n_outputs, activation="softmax", name="frame_gesture")(x)
    return keras.Model(inputs, outputs, name="frame_tcn")


@dataclass(frozen=True)
class FrameArchitecture:
    """A per-frame detector: build(n_outputs, width, dilations, dropout) and its settings
    (the frames an output sees: ``receptive_field_of`` the built model)."""

    name: str
    build: Callable
    defaults: dict = field(default_factory=dict)


FRAME_ARCHITECTURES: dict[str, FrameArchitecture] = {
    spec.name: spec
    for spec in (
        FrameArchitecture(
            "causal_tcn",
            _causal_tcn,
            {"width": 64, "dilations": (1, 2, 4, 8, 16, 32), "dropout": 0.1},
        ),
    )
}


def receptive_field_of(model: keras.Model) -> int:
    """The frames a detector's output sees (itself included), read from its convolutions,
    and one more: ``FrameFeatures``' motion of the oldest frame reads the frame before it."""
    seen = 2
    for layer in model.layers:
        if isinstance(layer, layers.Conv1D):
            seen += (layer.kernel_size[0] - 1) * layer.dilation_rate[0]
    return seen


def stream_probabilities(model: keras.Model, frames) -> np.ndarray:
    """Per-frame probabilities (n, classes + 1) of a whole stream ((n, 21, 3) or (n, 63); NaN:
    no hand). The stream is read as if a receptive field of frames without a hand came before
    it, which is how a live recognizer starts (``frame_predictor.FrameDetector``), so frame t's
    row is what it says live at frame t."""
    flat = np.nan_to_num(np.asarray(frames, np.float32).reshape(len(frames), -1), nan=0.0)
    lead = receptive_field_of(model) - 1
    padded = np.concatenate([np.zeros((lead, flat.shape[1]), np.float32), flat])
    return np.asarray(model(padded[None], training=False))[0, lead:]


def frame_architecture(name: str) -> FrameArchitecture:
    return lookup(FRAME_ARCHITECTURES, name, "frame architecture")
