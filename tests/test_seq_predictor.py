"""GesturePredictor on a logged sequence model: every input form, and the model's invariances."""

import numpy as np
import pandas as pd
import pytest

from gesturelab import shrec
from gesturelab.landmarks import LANDMARK_COLUMNS
from gesturelab.predictor import GesturePredictor, SequencePredictor
from gesturelab.seq_experiment import train_and_log
from gesturelab.seq_studies import pick_classes
from gesturelab.seq_training import TrainConfig

GESTURES = ("grab", "swipe_right", "swipe_up")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A small TCN on three real gestures, logged to a fresh MLflow store."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        data = pick_classes(shrec.load_compact(), GESTURES)
        config = TrainConfig(arch="tcn", frames=24, epochs=10, width=32, patience=10)
        out = train_and_log(data, config, n_bootstrap=20, run_name="predictor test")
        predictor = GesturePredictor.load(out.run.model_uri)
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
    with pytest.raises(ValueError, match=r"got shape \(5, 4\)"):
        predictor.predict_distribution(np.zeros((5, 4)))


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
    from gesturelab.seq_models import build_model

    _, data, _ = logged
    raw = SequencePredictor(build_model("tcn", 24, 3, features="raw", width=32), {"frames": 24})
    seqs = data.sequences[:20]
    base = raw.predict_distribution(seqs)
    moved = raw.predict_distribution([s + np.float32(0.2) for s in seqs])
    assert np.abs(moved - base).max() > 1e-2
