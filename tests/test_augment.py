"""Viewpoint perturbation: rotations and foreshortening about the wrist, nothing else."""

import numpy as np

from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.features.augment import perturb_viewpoint
from gesturelab.features.landmark_features import as_hands


def test_perturbation_keeps_wrist_and_shrinks_at_most_to_the_floor(sample_frame):
    X = sample_frame[list(LANDMARK_COLUMNS)].iloc[:50]
    out = perturb_viewpoint(X.assign(handedness="Right"), seed=1, min_foreshortening=0.6)
    before, after = as_hands(X), as_hands(out)
    np.testing.assert_allclose(after[:, 0], before[:, 0])
    np.testing.assert_allclose(after[:, :, 2], before[:, :, 2])
    size = lambda h: np.linalg.norm(h[:, :, :2] - h[:, :1, :2], axis=2).max(axis=1)  # noqa: E731
    ratio = size(after) / size(before)
    assert (ratio <= 1 + 1e-9).all() and (ratio >= 0.6 - 1e-9).all() and ratio.min() < 0.95
    assert list(out["handedness"].unique()) == ["Right"]


def test_zero_perturbation_is_identity(sample_frame):
    X = sample_frame[list(LANDMARK_COLUMNS)].iloc[:10]
    out = perturb_viewpoint(X, max_rotation_deg=0.0, min_foreshortening=1.0)
    np.testing.assert_allclose(out.to_numpy(), X.to_numpy())


def test_same_seed_same_perturbation(sample_frame):
    X = sample_frame[list(LANDMARK_COLUMNS)].iloc[:10]
    np.testing.assert_array_equal(
        perturb_viewpoint(X, 3).to_numpy(), perturb_viewpoint(X, 3).to_numpy()
    )
    assert not np.allclose(perturb_viewpoint(X, 3).to_numpy(), perturb_viewpoint(X, 4).to_numpy())
