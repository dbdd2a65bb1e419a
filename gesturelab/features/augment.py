"""Viewpoint perturbations of raw landmarks: how a hand looks from a slightly different angle.

A camera that sees the hand rotated in the image plane, or turned away so that it is
foreshortened along one direction, changes the 2D landmarks in ways the wrist-centred,
scale-free features do not undo. Scoring a model on perturbed copies of its validation rows
measures how much it relies on the exact viewpoint of its training photos.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import WRIST, landmark_columns
from gesturelab.features.landmark_features import as_hands


def perturb_viewpoint(
    X, seed: int = config.SEED, max_rotation_deg: float = 20.0, min_foreshortening: float = 0.6
) -> pd.DataFrame:
    """Each hand rotated in the image plane and foreshortened along a random direction.

    Rotation is uniform in ±max_rotation_deg about the wrist; foreshortening scales the hand
    by a factor uniform in [min_foreshortening, 1] along a random in-plane direction (a hand
    turned up to ~53° away from the camera). z is left as it is. Other columns are kept.
    """
    rng = np.random.default_rng(seed)
    hands = as_hands(X).copy()
    n = len(hands)
    wrist = hands[:, WRIST : WRIST + 1, :2]
    points = hands[:, :, :2] - wrist
    angle = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, n))
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    points = np.stack(
        [cos * points[..., 0] - sin * points[..., 1], sin * points[..., 0] + cos * points[..., 1]],
        axis=-1,
    )
    direction = rng.uniform(0, np.pi, n)
    unit = np.stack([np.cos(direction), np.sin(direction)], axis=1)[:, None, :]
    factor = rng.uniform(min_foreshortening, 1.0, n)[:, None, None]
    along = (points * unit).sum(axis=2, keepdims=True)
    points = points + (factor - 1.0) * along * unit
    hands[:, :, :2] = points + wrist
    columns = landmark_columns(hands.shape[2])
    out = pd.DataFrame(hands.reshape(n, -1), columns=columns)
    if isinstance(X, pd.DataFrame):
        out.index = X.index
        for column in X.columns:
            if column not in columns:
                out[column] = X[column]
    return out
