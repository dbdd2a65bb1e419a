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


def test_an_augmented_pipeline_trains_on_perturbed_copies_and_predicts_as_a_pipeline(
    sample_frame,
):
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from gesturelab.models.static_families import AugmentedPipeline, build_pipeline

    X = sample_frame[list(LANDMARK_COLUMNS)]
    y = sample_frame["label"].to_numpy(dtype=object)
    params = {"kernel": "linear", "C": 1.0}
    plain = build_pipeline("svm", params).fit(X, y)
    augmented = clone(build_pipeline("svm", {**params, "augment": 2}))
    assert type(plain) is Pipeline and isinstance(augmented, AugmentedPipeline)
    augmented.fit(X, y)
    # the scaler saw every row three times (itself and two copies), the classifier its classes
    assert augmented.named_steps["scale"].n_samples_seen_ == 3 * len(X)
    assert list(augmented.classes_) == list(plain.classes_)
    # copies drawn with fixed seeds: the same fit twice; not the plain pipeline's fit
    again = clone(augmented).fit(X, y)
    np.testing.assert_array_equal(augmented.decision_function(X), again.decision_function(X))
    assert not np.allclose(augmented.decision_function(X), plain.decision_function(X))
