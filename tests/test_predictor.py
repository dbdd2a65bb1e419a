"""GesturePredictor and `predict` on real photos and video, with a model from an MLflow store."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import log_static_model

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.datasets.loading import load_landmarks_csv
from gesturelab.models.predictor import GesturePredictor, mediapipe_to_hands
from gesturelab.models.static_families import build_pipeline

SAMPLES = config.DATA_DIR / "mediapipe_samples"


@pytest.fixture(scope="module")
def sample():
    return load_landmarks_csv(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)


@pytest.fixture(scope="module")
def predictor(sample):
    return GesturePredictor(build_pipeline("logreg", {"C": 1.0}).fit(sample.data, sample.y))


def test_every_input_form_gives_the_same_answer(predictor, sample):
    hand = sample.X[5]
    expected = predictor.predict_distribution(hand)
    frame = pd.DataFrame(hand.reshape(1, -1), columns=LANDMARK_COLUMNS)
    for form in (hand.ravel(), hand[None], hand.reshape(1, -1), frame, hand.tolist()):
        np.testing.assert_allclose(predictor.predict_distribution(form), expected)
    assert expected.shape == (1, 18)
    np.testing.assert_allclose(expected.sum(), 1.0)


def test_top_k_single_batch_and_label_map(predictor, sample):
    top = predictor.predict_top_k(sample.X[:4], k=3)
    assert len(top) == 4 and all(len(t) == 3 for t in top)
    assert all(t[0][1] >= t[1][1] >= t[2][1] for t in top)
    label, confidence = predictor.predict_single(sample.X[0])
    assert label == sample.y[0] and 0.5 < confidence <= 1.0
    assert [b[0] for b in predictor.predict_batch(sample.X[:4])] == [t[0][0] for t in top]
    with pytest.raises(ValueError, match="one hand"):
        predictor.predict_single(sample.X[:2])
    assert predictor.get_label_map()[0] == "call" and len(predictor.get_label_map()) == 18
    info = predictor.get_model_info()
    assert info["kind"] == "static" and info["input_shape"] == [21, 3]
    assert info["classifier"] == "LogisticRegression" and info["features"]["distances"] is True


def test_svm_without_probabilities_still_ranks(sample):
    svm = GesturePredictor(build_pipeline("svm", {"kernel": "linear"}).fit(sample.data, sample.y))
    distribution = svm.predict_distribution(sample.X[:3])
    np.testing.assert_allclose(distribution.sum(axis=1), 1.0)
    rows = sample.data[list(LANDMARK_COLUMNS)].iloc[::20]
    np.testing.assert_allclose(svm._decision_scores(rows), svm.model.decision_function(rows))
    assert [svm.classes[i] for i in distribution.argmax(axis=1)] == list(
        svm.model.predict(sample.data.iloc[:3])
    )


def test_mediapipe_result_is_accepted(predictor):
    import cv2
    import mediapipe as mp

    image = cv2.cvtColor(cv2.imread(str(SAMPLES / "thumb_up.jpg")), cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2) as hands:
        result = hands.process(image)
    hands_px = mediapipe_to_hands(result, (width, height))
    assert hands_px.shape == (1, 21, 3) and hands_px[0, :, 0].max() > 1
    assert predictor.predict_single(result, image_size=(width, height))[0] == "like"
    np.testing.assert_allclose(
        predictor.predict_distribution(result.multi_hand_landmarks[0], (width, height)),
        predictor.predict_distribution(hands_px),
    )


@pytest.mark.slow
def test_predict_cli_on_photos_and_video(mlflow_store, sample, tmp_path):
    model = build_pipeline("logreg", {"C": 1.0}).fit(sample.data, sample.y)
    model_uri = log_static_model(model, sample.data, "predict-test")
    tracking.register_model(
        model_uri, "predict-test-model", label_set=model.classes_, data_sha256=None
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gesturelab",
            "predict",
            "--model",
            "models:/predict-test-model@champion",
            "--input",
            str(SAMPLES),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if "\thand " in line]
    assert len(lines) == 4 and all("\tlike\t" in line for line in lines), out.stdout
    frames = pd.read_csv(tmp_path / "out" / "gestures_video_frames.csv")
    assert len(frames) == 195 and frames["hand"].sum() > 150
    assert (tmp_path / "out" / "gestures_video_annotated.mp4").stat().st_size > 100_000
    assert "frames" in out.stdout and "hand_video.mp4: 202 frames" in out.stdout
