"""Landmark normalisation and features: the first step of every logged pipeline.

The transformer takes the raw 63 columns (x1..z21 as in the HaGRID CSV, a DataFrame or an
array of shape (n, 63) or (n, 21, 3)) so that a logged model needs nothing but raw landmarks
and inference cannot drift from training.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from gesturelab.datasets.landmarks import (
    FINGER_CHAINS,
    LANDMARK_COLUMNS,
    LANDMARK_COLUMNS_2D,
    LANDMARK_NAMES,
    MAX_ABS_COORDINATE,
    MIDDLE_MCP,
    N_LANDMARKS,
    WRIST,
    columns_dims,
    landmark_columns,
    no_size,
)
from gesturelab.errors import LandmarkInputError

PAIRS = tuple(combinations(range(N_LANDMARKS), 2))
ANGLE_TRIPLES = tuple(
    (chain[i], chain[i + 1], chain[i + 2]) for chain in FINGER_CHAINS for i in range(len(chain) - 2)
)
LEFT_LABELS = frozenset({"left", "l"})


def as_hands(X) -> np.ndarray:
    """Any natural landmark input as an (n, 21, 3) or, for 2-D landmarks, (n, 21, 2) array.

    A DataFrame is 3-D when it has every x, y, z column and 2-D when it has every x, y column
    and no z; arrays are told apart by their size (63 or 42 values per hand).
    """
    if isinstance(X, pd.DataFrame):
        dims = columns_dims(X.columns)
        if dims is None:
            missing = [c for c in LANDMARK_COLUMNS if c not in X.columns]
            if not any(c.startswith("z") for c in X.columns):  # report against the 2-D set
                missing = [c for c in LANDMARK_COLUMNS_2D if c not in X.columns] or missing
            raise ValueError(f"landmark input lacks column(s) {missing[:5]}")
        X = X[list(landmark_columns(dims))].to_numpy(np.float64)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 2 and X.shape[0] == N_LANDMARKS and X.shape[1] in (2, 3):
        X = X[None]
    elif X.ndim == 1 and X.size in (N_LANDMARKS * 3, N_LANDMARKS * 2):
        X = X[None]
    if X.ndim == 2 and X.shape[1] in (N_LANDMARKS * 3, N_LANDMARKS * 2):
        X = X.reshape(len(X), N_LANDMARKS, -1)
    if X.ndim != 3 or X.shape[1] != N_LANDMARKS or X.shape[2] not in (2, 3):
        raise ValueError(
            "expected landmarks of shape (n, 63) or (n, 21, 3), or 2-D (n, 42) or (n, 21, 2); "
            f"got {X.shape}"
        )
    return X


def check_landmarks(hands: np.ndarray) -> np.ndarray:
    """The model's door: every coordinate finite and plausible, else an error naming the first.

    scikit-learn would stop at "Input X contains infinity" with no row or column, or not at
    all: 1e160 squares to infinity inside the distance features.
    """
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(hands) | (np.abs(hands) > MAX_ABS_COORDINATE)
    if bad.any():
        row, point, axis = np.argwhere(bad)[0]
        n_bad = int(bad.any(axis=(1, 2)).sum())
        column = landmark_columns(hands.shape[2])[point * hands.shape[2] + axis]
        raise LandmarkInputError(
            f"{n_bad} of {len(hands)} hands have unusable coordinates; first: row {row}, "
            f"column {column!r} = {hands[row, point, axis]!r} "
            f"(finite values within ±{MAX_ABS_COORDINATE:g} expected)"
        )
    return hands


def _refuse_pointless(hands: np.ndarray) -> None:
    """No answer for a "hand" whose wrist and middle-finger MCP coincide (63 zeros, one point
    repeated): no camera sees that, the readers reject such rows, and without this a served
    model gave it a label with a confidence."""
    bad = np.flatnonzero(no_size(hands))
    if len(bad):
        raise LandmarkInputError(
            f"{len(bad)} of {len(hands)} hands have no size (wrist and middle-finger MCP at "
            f"one point, e.g. all zeros); first: row {bad[0]}"
        )


def left_hand_mask(X, n: int) -> np.ndarray:
    """Rows whose MediaPipe handedness says Left, if the input carries a handedness column."""
    if isinstance(X, pd.DataFrame) and "handedness" in X.columns:
        values = X["handedness"].astype(str).str.strip().str.lower()
        return values.isin(LEFT_LABELS).to_numpy()
    return np.zeros(n, dtype=bool)


class LandmarkNormalizer(TransformerMixin, BaseEstimator):
    """Wrist-centred, scale-free, mirror-canonical landmark features.

    coords: "2d" keeps x, y; "3d" adds z. HaGRID stores x, y in pixels but z in MediaPipe's
        unit-free depth, so z gets its own per-hand scale (largest |z| of the hand).
    distances: add all 210 pairwise landmark distances (in the chosen coordinates).
    angles: add the 15 finger-joint angles (cosines) and the 20 bone directions.
    depth: add which way the hand faces (needs z): each landmark's depth relative to the wrist
        over the hand's largest |depth|, and each fingertip's depth relative to its finger's
        base. Fingers bend towards the palm, so their tips come towards the camera when the
        palm faces it and go away when the back does: in x, y alone a right palm and a left
        back of the hand are mirror images, and without handedness indistinguishable
        (HaGRID's *_inverted classes are that difference).
    normalise: False passes the raw coordinates through untouched (the baseline that shows
        what normalisation buys; nothing else is then invariant).
    mirror: "handedness" mirrors hands labelled Left in a ``handedness`` column onto the right
        hand. Whether it does is fixed at fit time (``mirrors_left_hands_``): a model trained on
        rows without handedness (the HaGRID CSV has none) never mirrors, so handedness that
        arrives only at inference cannot shift its input. The hand's own geometry cannot tell a
        left palm from a right back of the hand, and HaGRID's *_inverted classes are exactly
        that difference, so mirroring is never guessed from the shape.
    """

    def __init__(
        self,
        normalise=True,
        coords="2d",
        distances=True,
        angles=False,
        mirror="handedness",
        depth=False,
    ):
        self.normalise = normalise
        self.coords = coords
        self.distances = distances
        self.angles = angles
        self.mirror = mirror
        self.depth = depth

    def fit(self, X, y=None):
        if self.coords not in ("2d", "3d"):
            raise ValueError(f"coords must be '2d' or '3d', not {self.coords!r}")
        if self.mirror not in ("handedness", "none"):
            raise ValueError(f"mirror must be 'handedness' or 'none', not {self.mirror!r}")
        # What the model takes is fixed by its training data: a model of 2-D landmarks reads
        # x, y of anything; a model of 3-D landmarks refuses input without z.
        self.input_dims_ = as_hands(X).shape[2]
        if self.input_dims_ == 2 and self.coords == "3d":
            raise ValueError(
                "the feature set uses z (coords='3d') but the data is 2-D (x, y only); "
                "use a 2-D feature set"
            )
        if self.depth and (self.input_dims_ == 2 or not self.normalise):
            raise ValueError(
                "the feature set uses depth (which way the hand faces, from z) but "
                + (
                    "the data is 2-D (x, y only); use a 2-D feature set"
                    if self.input_dims_ == 2
                    else "normalise=False passes raw coordinates only"
                )
            )
        self.mirrors_left_hands_ = bool(
            self.mirror == "handedness"
            and isinstance(X, pd.DataFrame)
            and "handedness" in X.columns
        )
        self.n_features_in_ = N_LANDMARKS * self.input_dims_
        self.feature_names_out_ = np.array(self._names(), dtype=object)
        return self

    def transform(self, X):
        hands = check_landmarks(as_hands(X)).copy()
        dims = getattr(self, "input_dims_", 3)  # models logged before 2-D data were 3-D
        if hands.shape[2] < dims:
            raise LandmarkInputError(
                f"this model was trained on 3-D landmarks (x, y, z: {N_LANDMARKS * 3} values "
                f"per hand) and the input has only x, y ({N_LANDMARKS * 2} values); use a "
                "model trained on 2-D data, or give it MediaPipe's x, y, z"
            )
        hands = hands[:, :, :dims]
        _refuse_pointless(hands)
        if not self.normalise:
            points = hands if self.coords == "3d" else hands[:, :, :2]
            return self._with_extras(points)
        if self.mirrors_left_hands_:
            if not (isinstance(X, pd.DataFrame) and "handedness" in X.columns):
                raise ValueError(
                    "this model was trained with a 'handedness' column and mirrors left hands; "
                    "pass a DataFrame with handedness (Left/Right) for every hand"
                )
            hands[left_hand_mask(X, len(hands)), :, 0] *= -1.0
        hands -= hands[:, WRIST : WRIST + 1, :]
        scale = np.linalg.norm(hands[:, MIDDLE_MCP, :2], axis=1)
        scale = np.where(scale > 1e-12, scale, 1.0)[:, None]
        points = hands[:, :, :2] / scale[:, :, None]
        if self.coords == "3d":
            points = np.concatenate([points, unit_depths(hands[:, :, 2])[:, :, None]], axis=2)
        features = self._with_extras(points)
        if getattr(self, "depth", False):  # models logged before depth features had none
            features = np.hstack([features, facing_depths(hands[:, :, 2])])
        return features

    def _with_extras(self, points):
        parts = [points.reshape(len(points), -1)]
        if self.distances:
            i, j = np.array(PAIRS).T
            parts.append(np.linalg.norm(points[:, i] - points[:, j], axis=2))
        if self.angles:
            parts.append(_joint_angles(points))
            parts.append(_bone_directions(points))
        return np.hstack(parts)

    def get_feature_names_out(self, input_features=None):
        return np.array(self._names(), dtype=object)

    def _names(self) -> list[str]:
        axes = ("x", "y") if self.coords == "2d" else ("x", "y", "z")
        names = [f"{n}_{a}" for n in LANDMARK_NAMES for a in axes]
        if self.distances:
            names += [f"dist_{LANDMARK_NAMES[i]}_{LANDMARK_NAMES[j]}" for i, j in PAIRS]
        if self.angles:
            names += [f"angle_{LANDMARK_NAMES[b]}" for _, b, _ in ANGLE_TRIPLES]
            names += [
                f"bone_{LANDMARK_NAMES[c[i + 1]]}_{a}"
                for c in FINGER_CHAINS
                for i in range(len(c) - 1)
                for a in ("x", "y")
            ]
        if getattr(self, "depth", False):
            names += [f"depth_{n}" for n in LANDMARK_NAMES]
            names += [f"tip_depth_{LANDMARK_NAMES[c[-1]]}" for c in FINGER_CHAINS]
        return names


TIPS = tuple(chain[-1] for chain in FINGER_CHAINS)
FINGER_BASES = tuple(chain[1] for chain in FINGER_CHAINS)


def unit_depths(z: np.ndarray) -> np.ndarray:
    """(n, 21) depths relative to the wrist over the hand's largest |depth|: a per-hand scale,
    since files give z in MediaPipe's unit whatever their x, y are in (HaGRID: pixels)."""
    scale = np.abs(z).max(axis=1, keepdims=True)
    return z / np.where(scale > 1e-12, scale, 1.0)


def facing_depths(z: np.ndarray) -> np.ndarray:
    """(n, 21) depths relative to the wrist -> (n, 26): ``unit_depths``, then each fingertip's
    minus its finger's base."""
    z = unit_depths(z)
    return np.hstack([z, z[:, TIPS] - z[:, FINGER_BASES]])


def _joint_angles(points: np.ndarray) -> np.ndarray:
    a, b, c = (np.array(t) for t in zip(*ANGLE_TRIPLES))
    u = points[:, a] - points[:, b]
    v = points[:, c] - points[:, b]
    norms = np.linalg.norm(u, axis=2) * np.linalg.norm(v, axis=2)
    return (u * v).sum(axis=2) / np.where(norms > 1e-12, norms, 1.0)


def _bone_directions(points: np.ndarray) -> np.ndarray:
    bones = [(c[i], c[i + 1]) for c in FINGER_CHAINS for i in range(len(c) - 1)]
    start, end = (np.array(t) for t in zip(*bones))
    d = points[:, end, :2] - points[:, start, :2]
    d = d / np.maximum(np.linalg.norm(d, axis=2, keepdims=True), 1e-12)
    return d.reshape(len(points), -1)
