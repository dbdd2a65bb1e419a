"""The reject option ("no gesture") and models of 2-D landmarks."""

import numpy as np
import pytest

from gesturelab import config, datasets
from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.errors import LandmarkInputError
from gesturelab.models.predictor import GesturePredictor
from gesturelab.models.rejection import NO_GESTURE, labels, none_class, reject_rule
from gesturelab.models.static_families import build_pipeline, feature_sets_for


def test_the_threshold_keeps_the_target_coverage_of_validation_hands():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 1000)
    correct = rng.uniform(0, 1, 1000) < confidence  # confident answers are right more often
    rule = reject_rule(["a", "b"], confidence, correct, coverage=0.9)
    assert rule["method"] == "threshold"
    assert rule["val_coverage"] == pytest.approx(0.9, abs=0.002)
    assert rule["val_accuracy_answered"] > rule["val_accuracy"]
    coverages = [row["coverage"] for row in rule["trade_off"]]
    assert coverages == sorted(coverages, reverse=True)
    probabilities = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    rule["threshold"] = 0.6
    assert list(labels(probabilities, ["a", "b"], rule)) == ["a", NO_GESTURE, "b"]
    assert list(labels(probabilities, ["a", "b"], None)) == ["a", "a", "b"]


def test_a_none_class_is_the_reject_option():
    assert none_class(["fist", "None", "open"]) == "None"
    assert none_class(["fist", "open"]) is None
    rule = reject_rule(["fist", "none"], np.ones(4), np.ones(4, bool))
    assert rule == {"method": "class", "class": "none", "val_accuracy": 1.0}
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert list(labels(probabilities, ["fist", "none"], rule)) == ["fist", NO_GESTURE]


@pytest.fixture(scope="module")
def keypoints():
    return datasets.read(config.KEYPOINT_CSV, quarantine_dir=None, verbose=False)


@pytest.fixture(scope="module")
def two_d_model(keypoints):
    rows = keypoints.data.iloc[::10]
    return build_pipeline("logreg", {"C": 1.0}).fit(rows[keypoints.columns], rows["label"])


def test_a_2d_model_reads_x_y_of_3d_landmarks_and_says_it_is_2d(two_d_model, keypoints):
    predictor = GesturePredictor(two_d_model)
    info = predictor.get_model_info()
    assert info["input"] == "x, y (2-D landmarks)" and info["input_shape"] == [21, 2]
    hands = keypoints.X[:50]
    with_z = np.concatenate([hands, np.random.default_rng(0).normal(size=(50, 21, 1))], axis=2)
    np.testing.assert_allclose(
        predictor.predict_distribution(with_z), predictor.predict_distribution(hands)
    )
    # MediaPipe's pixels: the same hand moved and scaled is the same gesture.
    pixels = hands * 180.0 + np.array([320.0, 240.0])
    np.testing.assert_allclose(
        predictor.predict_distribution(pixels), predictor.predict_distribution(hands), atol=1e-9
    )


def test_a_3d_model_refuses_2d_landmarks(sample_frame, keypoints):
    model = build_pipeline("logreg", {"C": 1.0}).fit(
        sample_frame[list(LANDMARK_COLUMNS)], sample_frame["label"]
    )
    with pytest.raises(LandmarkInputError, match="trained on 3-D landmarks .* only x, y"):
        GesturePredictor(model).predict_distribution(keypoints.X[:3])


def test_features_that_need_z_are_not_offered_for_2d_data(keypoints):
    assert feature_sets_for(2) == ["xy", "xy+dist", "xy+dist+angles"]
    assert "xyz+dist" in feature_sets_for(3) and "xy+dist+depth" in feature_sets_for(3)
    from gesturelab.models.static_families import sweep_grid

    assert any(c.get("features") == "xy+dist+depth" for c in sweep_grid("random_forest"))
    assert not any("depth" in c.get("features", "") for c in sweep_grid("random_forest", dims=2))
    from gesturelab.models.static_families import FEATURE_SETS

    with pytest.raises(ValueError, match="the data is 2-D"):
        build_pipeline("logreg", {"C": 1.0}, FEATURE_SETS["xyz"]).fit(
            keypoints.data[keypoints.columns].iloc[:30], keypoints.y[:30]
        )
    with pytest.raises(ValueError, match=r"uses depth \(which way the hand faces.* 2-D"):
        build_pipeline("logreg", {"C": 1.0}, FEATURE_SETS["xy+dist+depth"]).fit(
            keypoints.data[keypoints.columns].iloc[:30], keypoints.y[:30]
        )
