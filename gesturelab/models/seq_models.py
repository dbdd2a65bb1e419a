"""Keras 3 sequence classifiers: the ``ARCHITECTURES`` registry and ``build_model``.

Every model takes raw landmark sequences, (frames, 63) in MediaPipe order, and starts with the
``SequenceFeatures`` layer: the normalisation and the features travel inside the saved
``.keras`` file, so training and inference cannot drift apart. All-zero frames are padding; the
layer turns them into a Keras mask that the recurrent layers and the pooling honour.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers, ops

from gesturelab import config
from gesturelab.datasets.landmarks import MIDDLE_MCP, N_COORDS, N_LANDMARKS, WRIST
from gesturelab.errors import lookup
from gesturelab.models.frame_models import FrameFeatures

FEATURE_SETS = {
    # The raw coordinates as recorded, no normalisation: what the GESTO LSTM was given.
    "raw": ("raw",),
    "positions": ("positions",),
    "positions+velocities": ("positions", "velocities"),
    "full": ("positions", "local", "velocities", "distances"),
    "full+finger_motion": ("positions", "local", "velocities", "finger_motion", "distances"),
}
DEFAULT_FEATURES = "full"
_PAIRS = np.asarray(list(itertools.combinations(range(N_LANDMARKS), 2)), dtype=np.int32)


@keras.saving.register_keras_serializable(package="gesturelab")
class AdamW(keras.optimizers.AdamW):
    """Keras' AdamW with the learning-rate schedule evaluated once per step.

    It lives here, with the layers, because a saved compiled model names its optimizer:
    importing this module is what makes a ``.keras`` file loadable.

    Keras evaluates the schedule again for every weight it decays (over a hundred times a
    step for DD-Net), one small op after another: in interleaved runs on 2 cores a DD-Net
    epoch took 3.5-3.9 s with Keras' AdamW and 1.9-2.3 s with this one (equal in a third,
    noisier run). The arithmetic is the same, so the weights are too.
    """

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        rate = self.learning_rate
        for variable in variables:
            if self._use_weight_decay(variable):
                decay = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * decay * ops.cast(rate, variable.dtype))


@keras.saving.register_keras_serializable(package="gesturelab")
class SequenceFeatures(layers.Layer):
    """Raw (frames, 63) landmarks to per-frame features, scale- and position-free.

    positions: every frame relative to the wrist's mean position over the sequence, divided by
    the hand's mean size (wrist to middle-finger base), so the hand's path is kept but not where
    or how far from the camera it happened. local: each frame relative to its own wrist (the hand
    shape alone). velocities: frame-to-frame change of positions. distances: the 210 distances
    between landmark pairs (the joint collection distances of DD-Net), divided by hand size.

    hands=2 (``--hand both``, (frames, 126): the right hand, then the left): each hand gets the
    features above on its own (its own centre, size and mask: a hand missing in a frame is
    zeros there), followed by ``between``, the left wrist relative to the right, divided by
    their mean size, where both are there: how the two hands stand to each other.
    """

    def __init__(self, features=FEATURE_SETS[DEFAULT_FEATURES], emit_mask=True, hands=1, **kwargs):
        super().__init__(**kwargs)
        self.emit_mask = bool(emit_mask)
        known = {"raw", "positions", "local", "velocities", "finger_motion", "distances"}
        unknown = set(features) - known
        if unknown:
            raise ValueError(f"unknown sequence features {sorted(unknown)}")
        self.features = tuple(features)
        self.hands = int(hands)
        if self.hands not in (1, 2):
            raise ValueError(f"hands must be 1 or 2, not {hands}")
        self.supports_masking = True

    def feature_size(self) -> int:
        per_point = N_LANDMARKS * N_COORDS
        sizes = {
            "raw": per_point,
            "positions": per_point,
            "local": per_point,
            "velocities": per_point,
            "finger_motion": per_point,
            "distances": len(_PAIRS),
        }
        between = N_COORDS if self.hands > 1 else 0
        return self.hands * sum(sizes[f] for f in self.features) + between

    def call(self, x):
        frames = ops.shape(x)[1]
        k = self.hands
        pts = ops.reshape(x, (-1, frames, k, N_LANDMARKS, N_COORDS))
        # (B, T, k): a hand is there when any of its values is not zero
        values = ops.reshape(x, (-1, frames, k, N_LANDMARKS * N_COORDS))
        valid = ops.cast(ops.any(ops.not_equal(values, 0.0), axis=-1), x.dtype)
        count = ops.maximum(ops.sum(valid, axis=1, keepdims=True), 1.0)  # (B, 1, k)
        m = valid[..., None, None]
        wrist = pts[:, :, :, WRIST : WRIST + 1, :]
        centre = ops.sum(wrist * m, axis=1, keepdims=True) / count[..., None, None]
        size = ops.sqrt(
            ops.sum(ops.square(pts[:, :, :, MIDDLE_MCP, :] - pts[:, :, :, WRIST, :]), -1)
        )
        scale = ops.sum(size * valid, axis=1, keepdims=True) / count  # (B, 1, k)
        scale = ops.maximum(scale, 1e-6)[..., None, None]
        per_hand = (-1, frames, k * N_LANDMARKS * N_COORDS)
        out = []
        positions = (pts - centre) / scale * m
        both = m[:, 1:] * m[:, :-1]
        for name in self.features:
            if name == "raw":
                out.append(x)
            elif name == "positions":
                out.append(ops.reshape(positions, per_hand))
            elif name == "local":
                local = (pts - wrist) / scale * m
                out.append(ops.reshape(local, per_hand))
            elif name in ("velocities", "finger_motion"):
                # finger_motion: how the fingers move relative to the wrist, without the arm.
                moving = positions if name == "velocities" else (pts - wrist) / scale * m
                step = (moving[:, 1:] - moving[:, :-1]) * both
                step = ops.concatenate([ops.zeros_like(step[:, :1]), step], axis=1)
                out.append(ops.reshape(step, per_hand))
            elif name == "distances":
                a = ops.take(positions, _PAIRS[:, 0], axis=3)
                b = ops.take(positions, _PAIRS[:, 1], axis=3)
                d = ops.sqrt(ops.sum(ops.square(a - b), axis=-1) + 1e-12) * valid[..., None]
                out.append(ops.reshape(d, (-1, frames, k * len(_PAIRS))))
        if k > 1:
            pair = valid[:, :, 0] * valid[:, :, 1]
            apart = pts[:, :, 1, WRIST, :] - pts[:, :, 0, WRIST, :]
            mean_size = (scale[:, :, 0, 0, 0] + scale[:, :, 1, 0, 0]) / 2.0
            out.append(apart / mean_size[..., None] * pair[..., None])
        return ops.concatenate(out, axis=-1) if len(out) > 1 else out[0]

    def compute_mask(self, x, mask=None):
        if not self.emit_mask:
            return None
        return ops.any(ops.not_equal(x, 0.0), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.feature_size())

    def get_config(self):
        return {
            **super().get_config(),
            "features": list(self.features),
            "emit_mask": self.emit_mask,
            "hands": self.hands,
        }


def build_model(
    arch: str,
    frames: int,
    n_classes: int,
    features: str = DEFAULT_FEATURES,
    width: int = 128,
    dropout: float = 0.3,
    recurrent_activation: str = "tanh",
    seed: int = config.SEQUENCE_SEED,
    hands: int = 1,
) -> keras.Model:
    """One architecture of ``ARCHITECTURES`` for (frames, 63) raw landmark input ((frames, 126)
    with ``hands`` 2)."""
    spec = architecture(arch)
    if spec.build is None:
        raise ValueError(
            f"{arch!r} is not built from scratch: it averages trained members "
            "(gesturelab.training.seq_training.fit trains them; average_ensemble joins them)"
        )
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {sorted(FEATURE_SETS)}, not {features!r}")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((frames, hands * N_LANDMARKS * N_COORDS), name="landmarks")
    return spec.build(inputs, n_classes, features, width, dropout, recurrent_activation)


def _on_features(name: str, body, recurrent: bool):
    """A builder: the feature layer, ``body`` (x, width, dropout, activation), a softmax head.

    Convolutions cannot use a mask (padded frames are zeroed features instead); recurrent
    layers skip masked frames, so only they get one.
    """

    def build(inputs, n_classes, features, width, dropout, recurrent_activation):
        hands = int(inputs.shape[-1]) // (N_LANDMARKS * N_COORDS)
        x = SequenceFeatures(
            FEATURE_SETS[features], emit_mask=recurrent, hands=hands, name="features"
        )(inputs)
        x = body(x, width, dropout, recurrent_activation)
        outputs = layers.Dense(n_classes, activation="softmax", name="gesture")(x)
        return keras.Model(inputs, outputs, name=f"{name}_{features.replace('+', '_')}")

    return build


def _lstm(x, width, dropout, recurrent_activation):
    """The reference LSTM exactly: LSTM 64, LSTM 32, Dense 32 (``width``, ``dropout`` unused)."""
    x = layers.LSTM(64, return_sequences=True, activation=recurrent_activation)(x)
    x = layers.LSTM(32, activation=recurrent_activation)(x)
    return layers.Dense(32, activation="relu")(x)


def _gru(x, width, dropout, recurrent_activation):
    x = layers.Dense(width, activation="relu")(x)
    x = layers.Dropout(dropout / 2)(x)
    x = layers.GRU(width, return_sequences=True)(x)
    x = layers.GRU(width // 2)(x)
    x = layers.Dropout(dropout)(x)
    return layers.Dense(64, activation="relu")(x)


def _tcn(x, width, dropout, recurrent_activation):
    """The reference TCN: a 1x1 projection to ``width``, residual blocks with dilations 1, 2,
    4, average and max pooling, Dense 64 with dropout."""
    x = layers.Conv1D(width, 1)(x)
    for dilation in (1, 2, 4):
        x = _residual_block(x, width, dilation, dropout / 3)
    x = _pool(x)
    x = layers.Dense(64, activation="relu")(x)
    return layers.Dropout(dropout)(x)


def _cnn(x, width, dropout, recurrent_activation):
    """Three double-convolution blocks with pooling."""
    for filters in (width // 2, width, width):
        x = layers.Conv1D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv1D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling1D(2)(x)
    x = _pool(x)
    x = layers.Dense(64, activation="relu")(x)
    return layers.Dropout(dropout)(x)


def average_ensemble(members, name: str = "ensemble") -> keras.Model:
    """One model, one input: the mean of the members' class probabilities.

    Each member keeps its own feature layer, so the ensemble is a plain ``.keras`` file that
    loads, logs and predicts like any single model here.
    """
    members = list(members)
    if not members:
        raise ValueError("an ensemble needs at least one member")
    shapes = {tuple(m.input_shape[1:]) for m in members} | {(m.output_shape[-1],) for m in members}
    if len(shapes) != 2:
        raise ValueError(f"members differ in input or output shape: {sorted(shapes)}")
    inputs = keras.Input(members[0].input_shape[1:], name="landmarks")
    outputs = [
        keras.Model(m.input, m.output, name=f"member{i}_{m.name}")(inputs)
        for i, m in enumerate(members)
    ]
    average = layers.Average(name="gesture")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, average, name=name)


def feature_layers(model: keras.Model) -> list[SequenceFeatures]:
    """Every ``SequenceFeatures`` layer of a model, looking inside ensemble members."""
    found = []
    for layer in model.layers:
        if isinstance(layer, SequenceFeatures):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(feature_layers(layer))
    return found


def model_features(model: keras.Model) -> list[str]:
    """The features a model computes from its raw input, in order, each once."""
    return list(dict.fromkeys(f for layer in feature_layers(model) for f in layer.features))


def _residual_block(x, filters: int, dilation: int, dropout: float):
    residual = x
    x = layers.Conv1D(filters, 3, padding="same", dilation_rate=dilation, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.SpatialDropout1D(dropout)(x)
    x = layers.Conv1D(filters, 1, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Add()([x, residual])
    return layers.ReLU()(x)


def _pool(x):
    average = layers.GlobalAveragePooling1D()(x)
    return layers.Concatenate()([average, layers.GlobalMaxPooling1D()(x)])


@keras.saving.register_keras_serializable(package="gesturelab")
class FrameDifference(layers.Layer):
    """Motion at a time scale: x[t] - x[t - stride], keeping every ``stride``-th frame.

    DD-Net's "slow" (stride 1) and "fast" (stride 2) global motion; the first frame has none.
    """

    def __init__(self, stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, x):
        x = x[:, :: self.stride]
        valid = ops.cast(ops.any(ops.not_equal(x, 0.0), axis=-1, keepdims=True), x.dtype)
        step = (x[:, 1:] - x[:, :-1]) * valid[:, 1:] * valid[:, :-1]
        return ops.concatenate([ops.zeros_like(step[:, :1]), step], axis=1)

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        frames = None if frames is None else -(-frames // self.stride)
        return (input_shape[0], frames, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


def _conv(x, filters: int, kernel: int):
    x = layers.Conv1D(filters, kernel, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.LeakyReLU(negative_slope=0.2)(x)


def _ddnet(inputs, n_classes, features, width, dropout, recurrent_activation) -> keras.Model:
    """DD-Net (Yang et al., 2019): joint distances plus slow and fast global motion, 1D CNN.

    ``width`` is DD-Net's ``filters`` x 4 (the paper uses 16 filters on SHREC'17: width 64).
    """
    filters = max(width // 4, 4)
    drop = dropout / 3
    hands = int(inputs.shape[-1]) // (N_LANDMARKS * N_COORDS)
    jcd = SequenceFeatures(("distances",), emit_mask=False, hands=hands, name="features")(inputs)
    pos = SequenceFeatures(("positions",), emit_mask=False, hands=hands, name="positions")(inputs)
    streams = []
    for x, pool in (
        (jcd, True),
        (FrameDifference(1, name="slow_motion")(pos), True),
        (FrameDifference(2, name="fast_motion")(pos), False),
    ):
        x = _conv(x, filters * 2, 1)
        x = layers.SpatialDropout1D(drop)(x)
        x = _conv(x, filters, 3)
        x = layers.SpatialDropout1D(drop)(x)
        x = _conv(x, filters, 1)
        if pool:  # "same": ceil(frames / 2), the length of the stride-2 stream, odd or even
            x = layers.MaxPooling1D(2, padding="same")(x)
        streams.append(layers.SpatialDropout1D(drop)(x))
    x = layers.Concatenate()(streams)
    for scale, pool in ((2, True), (4, True), (8, False)):
        x = _conv(x, filters * scale, 3)
        x = _conv(x, filters * scale, 3)
        if pool:
            x = layers.MaxPooling1D(2)(x)
        x = layers.SpatialDropout1D(drop)(x)
    x = layers.GlobalMaxPooling1D()(x)
    for _ in range(2):
        x = layers.Dense(128, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        x = layers.Dropout(dropout * 5 / 3)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="gesture")(x)
    return keras.Model(inputs, outputs, name="ddnet")


@dataclass(frozen=True)
class Architecture:
    """One sequence architecture: how to build it and the training settings tuned for it.

    build: (inputs, n_classes, features, width, dropout, recurrent_activation) -> keras.Model,
        or None for an ensemble, which averages members trained one by one.
    defaults: ``TrainConfig`` values that differ from the general defaults, chosen on
        subject-wise validation of the shipped training split (subjects 7, 12, 15, 21, 27).
    """

    name: str
    build: Callable | None
    defaults: dict = field(default_factory=dict)


ARCHITECTURES: dict[str, Architecture] = {
    spec.name: spec
    for spec in (
        # Early stopping on validation accuracy gave the LSTM 0.912-0.914 against 0.894 on
        # validation loss.
        Architecture(
            "lstm",
            _on_features("lstm", _lstm, recurrent=True),
            {"epochs": 150, "monitor": "val_accuracy", "patience": 40},
        ),
        Architecture("gru", _on_features("gru", _gru, recurrent=True), {"epochs": 80}),
        Architecture("tcn", _on_features("tcn", _tcn, recurrent=False), {"epochs": 100}),
        Architecture("cnn", _on_features("cnn", _cnn, recurrent=False), {"epochs": 100}),
        Architecture("ddnet", _ddnet, {"epochs": 150, "width": 64}),
        # epochs 0: every member trains for its own default (an --epochs N applies to all).
        # Chosen on the validation subjects: DD-Net + 1D-CNN 0.958 (14) and 0.918/0.920 (28,
        # DD-Net seeds 0/1), TCN + 1D-CNN + DD-Net 0.956 and 0.912/0.924, two DD-Nets 0.918
        # (28); DD-Net alone 0.964 (14), 0.904/0.910 (28). The 1D-CNN is the cheapest second
        # opinion.
        Architecture("ensemble", None, {"epochs": 0, "members": ("ddnet", "cnn")}),
    )
}
# The architectures built from scratch (everything but the ensemble of trained members).
SINGLE_ARCHITECTURES = tuple(name for name, spec in ARCHITECTURES.items() if spec.build)


def architecture(name: str) -> Architecture:
    return lookup(ARCHITECTURES, name, "architecture")


# What a saved model of ours may name beyond Keras' own layers: loading passes exactly these.
# The per-frame detectors' layer too: one list, so that every loader (ours, MLflow's pyfunc
# through the door) opens both kinds.
CUSTOM_OBJECTS = {
    keras.saving.get_registered_name(cls): cls
    for cls in (AdamW, SequenceFeatures, FrameDifference, FrameFeatures)
}
