"""SequencePredictor on a logged sequence model: every input form, the model's invariances,
and the refusals of input (and models) of the other kind."""

import numpy as np
import pandas as pd
import pytest

from gesturelab import config
from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.errors import LandmarkInputError, ModelLoadError
from gesturelab.models.predictor import (
    SequencePredictor,
    StaticPredictor,
    load_predictor,
)
from tests.conftest import SMALL_GESTURES, run_cli, using_store

GESTURES = SMALL_GESTURES


@pytest.fixture(scope="module")
def logged(small_tcn):
    """The session's small TCN on three real gestures, loaded from its MLflow store."""
    uri, data, out = small_tcn.store, small_tcn.data, small_tcn.validated
    with using_store(uri):  # and back: the registry URI MLflow set must not outlive this
        predictor = load_predictor(out.run.model_uri)
    out.store = uri  # tests that reopen the model point MLflow at this store again
    return predictor, data, out


def test_load_gives_a_sequence_predictor_with_its_metadata(logged):
    predictor, data, _ = logged
    assert isinstance(predictor, SequencePredictor)
    assert predictor.get_label_map() == dict(enumerate(GESTURES))
    info = predictor.get_model_info()
    assert info["kind"] == "sequence" and info["input_shape"] == [24, 21, 3]
    assert "distances" in info["features"]


def test_every_input_form_gives_the_same_answer(logged):
    predictor, data, _ = logged
    seq = data.sequences[0]
    expected = predictor.predict_distribution(seq)
    assert expected.shape == (1, 3)
    np.testing.assert_allclose(expected.sum(), 1, atol=1e-5)
    frame = pd.DataFrame(seq.reshape(len(seq), 63), columns=LANDMARK_COLUMNS)
    for form in (seq.reshape(len(seq), 63), frame, seq.astype(np.float64)):
        np.testing.assert_allclose(predictor.predict_distribution(form), expected, atol=1e-6)
    batch = predictor.predict_distribution(data.sequences[:5])  # five different lengths
    np.testing.assert_allclose(batch[0], expected[0], atol=1e-6)
    label, confidence = predictor.predict_single(seq)
    assert label in GESTURES and 0 < confidence <= 1
    top = predictor.predict_top_k(data.sequences[:2], k=2)
    assert len(top) == 2 and len(top[0]) == 2
    with pytest.raises(LandmarkInputError, match=r"got shape \(5, 4\)"):
        predictor.predict_distribution(np.zeros((5, 4)))


def test_a_single_hand_is_refused_by_a_sequence_model(logged):
    predictor, data, _ = logged
    hand = data.sequences[0][0]
    for single in (hand, hand.reshape(63), data.sequences[0][:1]):
        with pytest.raises(LandmarkInputError, match="needs a sequence of at least 4 frames"):
            predictor.predict_distribution(single)
    one_row = pd.DataFrame(hand.reshape(1, 63), columns=LANDMARK_COLUMNS)
    with pytest.raises(LandmarkInputError, match="a table of 1 row"):
        predictor.predict_single(one_row)


def test_the_kinds_refuse_each_other(logged, monkeypatch):
    """A static predictor refuses sequences and a sequence model; ``load`` on the base gives
    the model's own kind."""
    from sklearn.linear_model import LogisticRegression

    predictor, data, out = logged
    monkeypatch.setenv("MLFLOW_TRACKING_URI", out.store)
    with pytest.raises(ModelLoadError, match="is a sequence model .*not a static model"):
        StaticPredictor.load(out.run.model_uri)
    hands = data.sequences[0][:20]
    static = StaticPredictor(LogisticRegression().fit(hands.reshape(20, 63), [0, 1] * 10))
    assert static.predict_distribution(hands).shape == (20, 2)  # a batch of hands is fine
    for sequences in (data.sequences[:3], np.stack([hands, hands])):
        with pytest.raises(LandmarkInputError, match="static model of single hands"):
            static.predict_distribution(sequences)


def test_moving_or_scaling_the_hand_keeps_the_prediction(logged):
    predictor, data, _ = logged
    seqs = data.sequences[:20]
    base = predictor.predict_distribution(seqs)
    moved = [s + np.array([0.2, -0.1, 0.3], dtype=np.float32) for s in seqs]
    scaled = [s * 1.5 for s in seqs]
    np.testing.assert_allclose(predictor.predict_distribution(moved), base, atol=1e-3)
    np.testing.assert_allclose(predictor.predict_distribution(scaled), base, atol=1e-3)


def test_missing_frames_are_bridged_not_fatal(logged):
    predictor, data, _ = logged
    seq = data.sequences[3].copy()
    base = predictor.predict_distribution(seq)
    seq[5:7] = np.nan  # MediaPipe lost the hand for two frames
    damaged = predictor.predict_distribution(seq)
    assert damaged.argmax() == base.argmax()


def test_predictions_reach_every_gesture_on_held_out_subjects(logged):
    predictor, data, out = logged
    held_out = np.isin(data.subjects, out.validation_subjects)
    sequences = [data.sequences[i] for i in np.flatnonzero(held_out)]
    predicted = predictor.predict_distribution(sequences)
    assert set(predicted.argmax(1)) == {0, 1, 2}
    assert (predicted.argmax(1) == data.labels[held_out]).mean() > 0.8


def test_the_invariance_check_catches_a_model_without_the_feature_layer(logged):
    """The same check on a model fed raw coordinates (as GESTO's was) fails: it is a real test."""
    from gesturelab.models.seq_models import build_model

    _, data, _ = logged
    raw = SequencePredictor(build_model("tcn", 24, 3, features="raw", width=32), {"frames": 24})
    seqs = data.sequences[:20]
    base = raw.predict_distribution(seqs)
    moved = raw.predict_distribution([s + np.float32(0.2) for s in seqs])
    assert np.abs(moved - base).max() > 1e-2


@pytest.mark.slow
def test_predict_on_a_video_reports_segments_and_writes_the_annotated_copy(logged, tmp_path):
    _, _, out = logged
    video = config.DATA_DIR / "mediapipe_samples" / "gestures_video.mp4"
    result = run_cli(
        "predict",
        "--model",
        out.run.model_uri,
        "--input",
        video,
        "--seq-window",
        24,
        "--stride",
        8,
        "--out",
        tmp_path / "out",
        "--no-progress",
        store=out.store,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "window 24 frames, stride 8" in result.stdout
    windows = pd.read_csv(tmp_path / "out" / "gestures_video_windows.csv")
    assert len(windows) == (195 - 24) // 8 + 1
    assert set(windows["label"]) <= {*GESTURES, "no gesture"}
    assert (windows.loc[windows["hand_fraction"] < 0.5, "label"] == "no gesture").all()
    segments = pd.read_csv(tmp_path / "out" / "gestures_video_segments.csv")
    assert list(segments.columns[:4]) == ["label", "start_s", "end_s", "event_s"]
    assert (tmp_path / "out" / "gestures_video_annotated.mp4").stat().st_size > 10_000


def test_chunks_of_one_size_give_each_sequence_its_own_scores():
    """predict_fixed pads the last chunk to the batch size (one traced graph, not two): every
    sequence still gets the scores it gets alone, and only the real sequences come back."""
    from gesturelab.models.seq_models import build_model

    model = build_model("cnn", 8, 3, width=8, seed=0)
    predictor = SequencePredictor(model, {"frames": 8})
    batch = np.random.default_rng(0).normal(size=(11, 8, 21, 3)).astype(np.float32)
    chunked = predictor.predict_fixed(batch, batch_size=4)  # 4 + 4 + 3 (padded to 4)
    alone = np.concatenate([predictor.predict_fixed(batch[i : i + 1]) for i in range(11)])
    assert chunked.shape == (11, 3)
    np.testing.assert_allclose(chunked, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(predictor.predict_fixed(batch[:4], batch_size=4).shape, (4, 3))
