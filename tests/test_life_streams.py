"""Life-like streams from real SHREC'17 gestures, the causal per-frame detector and its
segmenter: built pieces checked against what they promise."""

import numpy as np
import pytest

from gesturelab.datasets import shrec
from gesturelab.datasets.life_streams import (
    Jitter,
    build_life_stream,
    image_tracks,
    life_streams,
    measure_jitter,
)
from gesturelab.serving.frame_segments import FrameSegmenter, SegmentRules, segment_stream


@pytest.fixture(scope="module")
def two_subjects():
    data = shrec.load_compact()
    keep = np.isin(data.subjects, np.unique(data.subjects)[:2])
    return data.subset(np.flatnonzero(keep)[::4])  # a quarter of two subjects' gestures


JITTER = Jitter(sigma=0.0125, drift=0.005, windows=1, window=10)


def test_a_life_stream_holds_every_real_gesture_unchanged_where_its_truth_says(two_subjects):
    own = two_subjects.subset(two_subjects.subjects == two_subjects.subjects[0])
    idle = [np.cumsum(np.full((40, 21, 3), 0.01), axis=0) + np.arange(21)[None, :, None]]
    stream = build_life_stream(own, JITTER, idle, seed=3, idle_share=1.0)
    assert len(stream.truth) == len(own)
    assert not np.isnan(stream.frames).any()  # SHREC'17 has a hand in every frame
    for g in stream.truth.itertuples():
        played = stream.frames[g.start_frame : g.end_frame + 1]
        matches = [
            k
            for k in range(len(own))
            if len(own.sequences[k]) == len(played) and np.allclose(own.sequences[k], played)
        ]
        assert matches and own.classes[own.labels[matches[0]]] == g.label
    parts = stream.parts
    # the parts tile the stream, in order, without a gap
    assert (
        parts["start_frame"].iloc[0] == 0 and parts["end_frame"].iloc[-1] == len(stream.frames) - 1
    )
    assert (parts["start_frame"].to_numpy()[1:] == parts["end_frame"].to_numpy()[:-1] + 1).all()
    assert {"rest", "transition", "idle", "gesture"} <= set(parts["kind"])
    labels = stream.frame_labels()
    assert (labels == len(own.classes)).sum() == len(stream.frames) - sum(map(len, own.sequences))
    assert stream.minutes("rest") < stream.minutes()


def test_a_rest_shows_the_jitter_it_was_given_and_a_transition_arrives_where_it_goes(two_subjects):
    own = two_subjects.subset(two_subjects.subjects == two_subjects.subjects[0])
    stream = build_life_stream(own, JITTER, seed=0)
    rests = stream.parts[stream.parts["kind"] == "rest"]
    longest = rests.loc[(rests["end_frame"] - rests["start_frame"]).idxmax()]
    still = stream.frames[longest.start_frame : longest.end_frame + 1]
    measured = measure_jitter([still], window=10, share=1.0)
    assert measured.sigma == pytest.approx(JITTER.sigma, rel=0.25)
    for move in stream.parts[stream.parts["kind"] == "transition"].itertuples():
        arrival = stream.frames[move.end_frame]
        following = stream.frames[move.end_frame + 1]
        size = np.linalg.norm(following[9] - following[0])
        # the last transition frame is one small step from the gesture's first frame
        assert np.linalg.norm(arrival[0] - following[0]) / size < 0.35


def test_jitter_is_measured_from_still_stretches_not_from_motion():
    rng = np.random.default_rng(0)
    hand = rng.normal(0, 1, (21, 3))
    hand[9] = hand[0] + [1.0, 0, 0]  # a hand size of 1
    moving = hand[None] + np.linspace(0, 5, 200)[:, None, None] * [1.0, 0, 0]
    still = hand[None] + rng.normal(0, 0.02, (200, 21, 3))
    measured = measure_jitter([moving + rng.normal(0, 0.02, moving.shape), still], share=0.5)
    assert measured.sigma == pytest.approx(0.02, rel=0.15)
    assert measured.drift < 0.02


def test_image_tracks_turn_y_up_and_leave_out_short_ones(two_subjects):
    from dataclasses import replace

    short = [np.full((5, 21, 3), 0.5)]
    rising = np.zeros((30, 21, 3)) + np.linspace(0.9, 0.1, 30)[:, None, None]  # y shrinking
    data = replace(two_subjects.subset([0, 1]), sequences=[*short, rising], frame_rate=None)
    tracks = image_tracks(data)
    assert len(tracks) == 1
    assert tracks[0][-1, 0, 1] > tracks[0][0, 0, 1]  # up the image is up


def test_one_stream_per_subject(two_subjects):
    streams = life_streams(two_subjects, JITTER, seed=1)
    assert len(streams) == 2
    assert [set(s.truth["subject"]) for s in streams] == [
        {s} for s in np.unique(two_subjects.subjects)
    ]


def _rows(pattern, classes=3):
    """Probability rows: a class index per frame, or None for "no gesture"."""
    rows = np.zeros((len(pattern), classes + 1))
    for t, k in enumerate(pattern):
        rows[t, classes if k is None else k] = 1.0
    return rows


def test_the_segmenter_fires_after_min_frames_and_ends_after_a_gap():
    classes = ("a", "b", "c")
    rules = SegmentRules(on=0.5, min_frames=4, fire=0.6, gap=3, min_length=5)
    # 10 frames of b with a 2-frame dip inside (shorter than the gap), then rest
    pattern = [None] * 5 + [1] * 4 + [None] * 2 + [1] * 4 + [None] * 6
    table = segment_stream(_rows(pattern), classes, rules)
    assert len(table) == 1
    seg = table.iloc[0]
    assert (seg.label, seg.start_frame, seg.detected_at, seg.end_frame) == ("b", 5, 8, 14)


def test_the_segmenter_is_causal_and_fires_late_runs_at_their_end():
    classes = ("a", "b", "c")
    rules = SegmentRules(on=0.5, min_frames=3, fire=0.9, gap=2, min_length=5)
    # an unsure run (a and c alternate: no class reaches 0.9) fires when it ends, labelled by
    # its whole evidence; a 2-frame blip (shorter than min_frames) is dropped
    pattern = [None] * 3 + [0, 2, 0, 2, 0, 0] + [None] * 4 + [1] * 2 + [None] * 4
    rows = _rows(pattern)
    segmenter = FrameSegmenter(classes, rules)
    fired = [segmenter.step(r) for r in rows]
    segmenter.flush()
    events = [(t, s.label) for t, s in enumerate(fired) if s is not None]
    assert events == [(10, "a")]  # the second no-gesture frame after the run
    assert len(segmenter.segments) == 1
    assert (segmenter.segments[0].start_frame, segmenter.segments[0].end_frame) == (3, 8)


def test_a_video_hand_is_read_in_shrec17s_axes():
    from gesturelab.models.frame_predictor import from_pixels

    hand = np.zeros((21, 3))
    hand[0] = (100.0, 200.0, 0.0)  # the wrist, pixels
    hand[12] = (110.0, 150.0, -0.05)  # the middle fingertip: above it, nearer the camera
    right = from_pixels(hand, width=640, handedness="Right")
    assert right[12, 1] > right[0, 1]  # above in the image is up
    assert right[12, 2] == pytest.approx(-0.05 * 640)  # nearer stays smaller, as SHREC'17's z
    left = from_pixels(hand, width=640, handedness="Left")
    assert left[12, 0] - left[0, 0] == pytest.approx(-(right[12, 0] - right[0, 0]))


def test_beginnings_are_each_gestures_first_frames_with_its_label(two_subjects):
    from gesturelab.datasets.prefixes import accuracy_by_length, gesture_prefixes

    data = two_subjects.subset(np.arange(6))
    beginnings = gesture_prefixes(data, lengths=(6, 10, 1000), late_start=0)
    whole = beginnings.meta["whole"]
    assert whole.sum() == len(data)  # every gesture once whole; no 1000-frame beginning
    for sequence, label in zip(data.sequences, data.labels):
        mine = [s for s, y in zip(beginnings.sequences, beginnings.labels) if y == label]
        assert any(len(s) == 10 and np.array_equal(s, sequence[:10]) for s in mine)
        assert any(np.array_equal(s, sequence) for s in mine)
    late = gesture_prefixes(data, lengths=(10,), late_start=3, seed=1)
    starts = [
        next(k for k in range(4) if np.array_equal(s, seq[k : k + 10]))
        for s, seq in zip(late.sequences[::2], data.sequences)
    ]
    assert len(set(starts)) > 1  # each found starting 0-3 frames late, not always the same
    right = accuracy_by_length(beginnings, beginnings.labels)
    assert right == {6: 1.0, 10: 1.0, "whole": 1.0}


def test_the_early_namer_fires_when_sure_names_unsure_runs_at_their_end_and_drops_blips():
    from types import SimpleNamespace

    import pandas as pd

    from gesturelab.studies.early_naming import EarlyReadings, named_early

    classes = ("a", "b")
    runs = SegmentRules(on=0.5, gap=3, min_length=5)
    unsure, sure_b = np.array([0.6, 0.4]), np.array([0.1, 0.9])
    # run 1 (frames 2-11): sure of b from frame 6 on; run 2 (15-22): never sure, a at the end;
    # run 3 (30-32): too short to name at its end
    reading = EarlyReadings(
        pd.DataFrame({"start_frame": [2, 15, 30], "end_frame": [11, 22, 32]}),
        [np.arange(4, 12), np.arange(17, 23), np.arange(32, 33)],
        [np.array([unsure] * 2 + [sure_b] * 6), np.array([unsure] * 6), np.array([unsure])],
    )
    stream = SimpleNamespace(frames=np.zeros((40, 21, 3)))
    table = named_early([stream], [reading], classes, runs, min_frames=3, confidence=0.8)[0]
    assert table[["label", "start_frame", "end_frame", "detected_at"]].values.tolist() == [
        ["b", 2, 11, 6],
        ["a", 15, 22, 25],
    ]
    # not before min_frames: with 6, run 1 fires at its 6th frame (7), not at 6
    later = named_early([stream], [reading], classes, runs, min_frames=6, confidence=0.8)[0]
    assert later["detected_at"].tolist() == [7, 25]
    # a closer names the runs the namer never got sure of, at the same event
    reading.closing = [None, np.array([0.2, 0.8]), None]
    closed = named_early([stream], [reading], classes, runs, min_frames=3, confidence=0.8)[0]
    assert closed[["label", "detected_at"]].values.tolist() == [["b", 6], ["b", 25]]


def test_the_early_ceiling_counts_right_beginnings_until_wrong_ones_use_up_the_allowance(
    two_subjects,
):
    from gesturelab.studies.early_naming import early_ceiling

    data = two_subjects.subset(np.arange(4))
    # confidence order: right 0.9, wrong 0.8, right 0.7, right 0.6
    tops = [(0.9, True), (0.8, False), (0.7, True), (0.6, True)]

    class Fixed:  # a namer whose answers on the four beginnings are known
        def predict_distribution(self, sequences):
            out = np.zeros((len(sequences), len(data.classes)))
            for row, (top, right), label in zip(out, tops, data.labels):
                row[:] = (1 - top) / (len(row) - 1)
                row[label if right else (label + 1) % len(row)] = top
            return out

    loose = early_ceiling(Fixed(), data, delay=10, ji=0.6)  # one wrong allowed of four
    assert loose["accuracy"] == 0.75 and loose["right_at_most"] == 0.75
    strict = early_ceiling(Fixed(), data, delay=10, ji=0.85)  # 0.32 of a wrong one: none
    assert strict["right_at_most"] == 0.25 and strict["needed"] == 0.425
    assert strict["frames"] == 11  # a delay of 10 frames has read 11 (it counts from the start)
