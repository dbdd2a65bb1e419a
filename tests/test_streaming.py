"""Streaming recognition on real SHREC'17 gestures played back with pauses between them."""

import numpy as np
import pytest

from gesturelab.serving.streaming import NO_GESTURE, StreamingRecognizer

GESTURES = ("grab", "swipe_right", "swipe_up")


@pytest.fixture(scope="module")
def validated(small_tcn):
    """The session's small TCN on three real gestures, validated on held-out subjects."""
    assert tuple(small_tcn.data.classes) == GESTURES
    return small_tcn.data, small_tcn.validated


def _predictor(validated, **metadata):
    from gesturelab.models.predictor import SequencePredictor

    data, out = validated
    return SequencePredictor(out.model, {"frames": 24, "classes": list(GESTURES), **metadata})


def test_played_back_gestures_give_one_segment_each_with_their_label(validated):
    data, out = validated
    predictor = _predictor(validated, median_frames=40, frame_rate=30.0)
    held_out = np.flatnonzero(np.isin(data.subjects, out.validation_subjects))
    chosen = [held_out[data.labels[held_out] == k][0] for k in range(3)]
    recognizer = StreamingRecognizer(predictor, fps=30.0, stride=5, threshold=0.5)
    assert recognizer.window == 40  # the training gestures' median duration
    spans, events = [], []
    for i in chosen:
        pause = recognizer.frame_index + 1
        for _ in range(45):  # 1.5 s without a hand between gestures
            event = recognizer.push(None)
            # The gesture before may close here, once its hand is gone; none starts in a pause.
            assert event is None or event.start_frame < pause, event
            events.append(event)
        start = recognizer.frame_index + 1
        for frame in data.sequences[i]:
            events.append(recognizer.push(frame))
        spans.append((start, recognizer.frame_index, GESTURES[data.labels[i]]))
    for _ in range(45):
        events.append(recognizer.push(None))
    recognizer.flush()
    segments = recognizer.segments_table()
    assert [e for e in events if e is not None] == recognizer.segments
    found = 0
    for first, last, label in spans:
        overlapping = segments[(segments.start_frame <= last) & (segments.end_frame >= first)]
        found += label in set(overlapping.label)
    assert found >= 2, segments
    assert len(segments) <= 2 * len(spans)  # no storm of segments
    windows = recognizer.windows_table()
    assert (windows.loc[windows.hand_fraction < 0.5, "label"] == NO_GESTURE).all()


def test_a_left_hand_reaches_the_model_as_the_right_hand_it_mirrors(validated):
    """A real gesture played with the left hand (the right-hand recording mirrored) gives the
    same windows and labels as the right hand itself, in a model whose data's left hands were
    mirrored; a model of right hands only sees no hand in it."""
    from gesturelab.datasets.landmarks import mirror_hand

    data, out = validated
    gesture = data.sequences[
        int(np.flatnonzero(np.isin(data.subjects, out.validation_subjects))[0])
    ]
    tables = []
    for hand, frames in (("Right", gesture), ("Left", mirror_hand(gesture))):
        recognizer = StreamingRecognizer(
            _predictor(validated, hand="dominant"), fps=30.0, window=24, stride=4, threshold=0.0
        )
        for frame in frames:
            recognizer.push(frame, handedness=hand)
        tables.append(recognizer.windows_table())
    assert len(tables[0]) > 0
    assert tables[0]["label"].tolist() == tables[1]["label"].tolist()
    np.testing.assert_allclose(tables[0]["confidence"], tables[1]["confidence"], atol=1e-5)
    predictor = _predictor(validated, hand="dominant")
    np.testing.assert_allclose(
        predictor.predict_distribution(gesture),
        predictor.predict_distribution(
            np.stack([predictor.takes_hand(f, "Left") for f in mirror_hand(gesture)])
        ),
        atol=1e-5,
    )
    right_only = _predictor(validated, hand="right")
    assert right_only.takes_hand(gesture[0], "Left") is None
    assert right_only.takes_hand(gesture[0], "Right") is not None


def test_a_stream_without_hands_gives_no_gesture_and_bad_input_is_refused(validated):
    predictor = _predictor(validated)
    recognizer = StreamingRecognizer(predictor, fps=30.0)
    assert recognizer.window == 24 and recognizer.stride == 6  # the model's own frames
    for _ in range(100):
        assert recognizer.push(None) is None
    assert recognizer.segments == [] and (recognizer.windows_table().label == NO_GESTURE).all()
    with pytest.raises(ValueError, match="push takes an RGB frame"):
        recognizer.push(np.zeros(10))
    with pytest.raises(TypeError, match="needs a sequence model"):
        from gesturelab.models.predictor import StaticPredictor

        StreamingRecognizer(StaticPredictor.__new__(StaticPredictor))


def test_built_streams_put_each_real_gesture_where_the_truth_says(validated):
    from gesturelab.datasets.sequences import frame_mask
    from gesturelab.studies.stream_eval import build_stream

    data, _ = validated
    few = data.subset(np.arange(6))
    for pause in ("no hand", "still"):
        frames, truth = build_stream(few, fps=30.0, pause_s=(0.5, 2.0), pause=pause, seed=3)
        assert len(truth) == 6 and sorted(truth["label"]) == sorted(few.label_names)
        gaps = truth["start_frame"].to_numpy()[1:] - truth["end_frame"].to_numpy()[:-1] - 1
        assert (gaps >= 15).all() and (gaps <= 60).all()
        hands = frame_mask(frames)
        for row in truth.itertuples():
            played = frames[row.start_frame : row.end_frame + 1]
            assert any(np.array_equal(played, s) for s in few.sequences)
        in_pauses = ~np.zeros(len(frames), bool)
        for row in truth.itertuples():
            in_pauses[row.start_frame : row.end_frame + 1] = False
        assert hands[in_pauses].any() == (pause == "still")


def test_segment_scores_count_found_gestures_false_alarms_and_delay():
    import pandas as pd

    from gesturelab.studies.stream_eval import score_segments

    truth = pd.DataFrame(
        {"label": ["a", "b", "a"], "start_s": [1.0, 4.0, 8.0], "end_s": [2.0, 5.0, 9.0]}
    )
    segments = pd.DataFrame(
        {
            "label": ["a", "a", "b", "c"],
            "start_s": [1.2, 1.5, 3.0, 6.0],
            "end_s": [2.1, 2.4, 3.5, 6.5],
            "event_s": [1.9, 2.3, 3.4, 6.4],
        }
    )
    scores = score_segments(segments, truth, duration_s=120.0)
    assert scores["recall"] == pytest.approx(1 / 3, abs=1e-4)  # only the first "a" is found
    assert scores["precision"] == 0.25  # the second "a" segment repeats a found gesture
    assert scores["false_alarms"] == 3 and scores["repeats"] == 1
    assert scores["false_alarms_per_min"] == 1.5
    assert scores["median_delay_s"] == pytest.approx(-0.1)  # the first match fired early
    # One long segment over two gestures of its label finds one of them, not both; a segment
    # that fired before a gesture began does not find it.
    long = pd.DataFrame({"label": ["a"], "start_s": [0.5], "end_s": [9.5], "event_s": [1.5]})
    scores = score_segments(long, truth, duration_s=60.0)
    assert scores["recall"] == pytest.approx(1 / 3, abs=1e-4) and scores["precision"] == 1.0
    early = pd.DataFrame({"label": ["b"], "start_s": [3.0], "end_s": [4.5], "event_s": [3.5]})
    assert score_segments(early, truth, duration_s=60.0)["recall"] == 0.0


def test_a_stream_is_also_scored_by_the_shrec22_protocol():
    import pandas as pd

    from gesturelab.studies.stream_eval import protocol_scores

    fps = 10.0
    truth = pd.DataFrame({"label": ["a", "b"], "start_frame": [10, 40], "end_frame": [20, 50]})
    segments = pd.DataFrame(
        {
            "label": ["a", "b", "b"],
            "start_frame": [11, 40, 70],
            "end_frame": [21, 49, 80],
            "event_s": [1.5, 4.8, 7.5],  # fired at frames 15, 48, 75
        }
    )
    scores = protocol_scores(segments, truth, fps)
    assert scores["protocol_dr"] == 1.0
    assert scores["protocol_fp"] == 0.5  # the third segment: b's false positive, 1 of 2 classes
    assert scores["protocol_ji"] == pytest.approx((1 + 0.5) / 2)
    assert scores["protocol_delay_frames"] == pytest.approx((4 + 8) / 2)
