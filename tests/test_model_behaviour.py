"""Models built by the sweep predict the same for a moved, scaled or mirrored hand."""

import numpy as np
import pandas as pd
import pytest

from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.datasets.static_data import prepare
from gesturelab.models.static_families import build_pipeline

X_COLUMNS = [c for c in LANDMARK_COLUMNS if c.startswith("x")]
Y_COLUMNS = [c for c in LANDMARK_COLUMNS if c.startswith("y")]


@pytest.fixture(scope="module")
def data(sample_csv):
    prepared = prepare(sample_csv, quarantine_dir=None, verbose=False)
    return prepared.Xy("train"), prepared.Xy("test")


def moved(X: pd.DataFrame, scale=1.8, dx=250.0, dy=-120.0) -> pd.DataFrame:
    out = X.copy()
    out[X_COLUMNS] = out[X_COLUMNS] * scale + dx
    out[Y_COLUMNS] = out[Y_COLUMNS] * scale + dy
    return out


@pytest.mark.parametrize(
    "family,params",
    [
        ("svm", {"kernel": "poly", "C": 100.0, "gamma": "scale", "degree": 2}),
        ("random_forest", {"n_estimators": 100, "max_depth": 30}),
        ("knn", {"n_neighbors": 3}),
    ],
)
def test_prediction_survives_translation_scaling_and_mirroring(data, family, params):
    (X_train, y_train), (X_test, y_test) = data
    model = build_pipeline(family, params).fit(X_train, y_train)
    expected = model.predict(X_test)
    assert (expected == y_test).mean() > 0.9
    np.testing.assert_array_equal(model.predict(moved(X_test)), expected)
    # A model trained on rows that carry handedness sees a mirrored left hand as the right one.
    with_hand = build_pipeline(family, params).fit(X_train.assign(handedness="Right"), y_train)
    right = X_test.assign(handedness="Right")
    left = right.copy()
    left[X_COLUMNS] = -left[X_COLUMNS]
    left["handedness"] = "Left"
    np.testing.assert_array_equal(with_hand.predict(left), with_hand.predict(right))
    np.testing.assert_array_equal(with_hand.predict(right), expected)


def test_model_without_normalisation_is_not_invariant(data):
    """The same check fails on a model that skips the preprocessing: the test has teeth."""
    (X_train, y_train), (X_test, _) = data
    raw = {"normalise": False, "coords": "3d", "distances": False, "angles": False}
    model = build_pipeline("svm", {"kernel": "rbf", "C": 10.0}, raw).fit(X_train, y_train)
    changed = (model.predict(moved(X_test)) != model.predict(X_test)).mean()
    assert changed > 0.3


CHAMPION = ("svm", {"kernel": "linear", "C": 0.1}, "xy+dist+angles")  # see README results


@pytest.fixture(scope="module")
def champion(data):
    from gesturelab.models.static_families import FEATURE_SETS

    (X_train, y_train), _ = data
    family, params, features = CHAMPION
    return build_pipeline(family, params, FEATURE_SETS[features]).fit(X_train, y_train)


def test_champion_is_robust_to_small_landmark_jitter(data, champion):
    """MediaPipe's landmarks wobble by about 1 % of the hand size between frames."""
    _, (X_test, _) = data
    expected = champion.predict(X_test)
    rng = np.random.default_rng(0)
    hands = X_test.to_numpy().reshape(-1, 21, 3)
    size = np.linalg.norm(hands[:, 9, :2] - hands[:, 0, :2], axis=1)[:, None, None]
    jittered = hands.copy()
    jittered[:, :, :2] += rng.normal(0, 0.01, hands[:, :, :2].shape) * size
    changed = (
        champion.predict(pd.DataFrame(jittered.reshape(len(hands), -1), columns=X_test.columns))
        != expected
    ).mean()
    assert changed < 0.03


def test_every_class_is_reached_by_a_real_sample(data, champion):
    _, (X_test, y_test) = data
    assert set(champion.predict(X_test)) == set(y_test) == set(champion.classes_)


def test_an_unknown_family_is_refused_with_the_known_ones():
    from gesturelab.models.static_families import FAMILIES, build_pipeline, sweep_grid

    with pytest.raises(ValueError, match="unknown model family 'xgboost'; known: svm, random"):
        build_pipeline("xgboost", {})
    with pytest.raises(ValueError, match="known: " + ", ".join(FAMILIES)):
        sweep_grid("xgboost")


def test_every_family_builds_and_its_reference_is_in_its_quick_grid():
    from gesturelab.models.static_families import REGISTRY, SKOPS_TRUSTED_TYPES, make_classifier

    for name, spec in REGISTRY.items():
        assert hasattr(make_classifier(name, {}), "fit")
        assert spec.reference is None or spec.reference in spec.quick_grid
        assert set(spec.skops_types) <= set(SKOPS_TRUSTED_TYPES)
