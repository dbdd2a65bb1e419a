"""The live detector end to end on real data: trained on life-like streams of some SHREC'17
subjects, logged to a real MLflow store and reused, run causally frame by frame, and run by
``predict`` on a real video."""

import re

import numpy as np
import pytest

from gesturelab import config
from gesturelab.datasets import shrec
from tests.conftest import cli_here, using_store

# one worker builds the module's study (a detector and an early namer trained) for every test
pytestmark = [pytest.mark.train, pytest.mark.slow, pytest.mark.xdist_group("live_detector")]
TINY = {"epochs": 1, "copies": 1, "width": 16, "dilations": (1, 2, 4)}
TINY_NAMER = {"epochs": 1, "arch": "cnn"}  # the quickest architecture to build: the code path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('live') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def few_subjects():
    data = shrec.load_compact()
    keep = np.isin(data.subjects, np.unique(data.subjects)[:8])
    return data.subset(np.flatnonzero(keep)[::4])


@pytest.fixture(scope="module")
def study(store, few_subjects):
    from gesturelab.studies.early_naming import early_study
    from gesturelab.studies.live_eval import live_study

    with using_store(store):
        study = live_study(few_subjects, **TINY)
        study.early = early_study(study, **TINY_NAMER)
        return study


def test_the_study_keeps_subjects_apart_and_logs_a_detector_it_reuses(study, store, few_subjects):
    from gesturelab.studies.live_eval import live_study

    split = study.split
    sides = [set(np.unique(s.subjects)) for s in (split.fit, split.validation, split.test)]
    assert all(sides) and not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert not study.reused and study.run is not None
    assert study.rule_table["chosen"].sum() == 1
    test_subjects = {int(s) for t in study.streams["test"] for s in t.truth["subject"]}
    assert test_subjects == sides[2]
    assert set(study.scores) >= {"DR", "FP", "JI", "median_delay", "rest_alarms_per_min"}
    from gesturelab.studies.early_naming import early_study

    with using_store(store):
        again = live_study(few_subjects, **TINY)
        again.early = early_study(again, **TINY_NAMER)
    assert again.reused and again.run.run_id == study.run.run_id
    assert again.rules == study.rules
    assert again.scores == study.scores  # the same weights, so the same segments
    # the early namer too: logged once, then reused by its key with the same weights
    first, second = study.early, again.early
    assert not first["namer"].reused and second["namer"].reused
    assert second["namer"].run.run_id == first["namer"].run.run_id
    assert second["rule_table"].equals(first["rule_table"])


def test_the_early_namer_learns_on_training_subjects_and_is_scored_on_the_others(study):
    from gesturelab.studies.early_naming import EARLY_GRID

    early = study.early
    assert early["namer"].run.params["data_subjects_train"] == " ".join(
        map(str, np.unique(study.split.fit.subjects))
    )
    assert early["namer"].run.params["data_subjects_validation"] == " ".join(
        map(str, np.unique(study.split.validation.subjects))
    )
    assert len(early["rule_table"]) == len(EARLY_GRID)
    assert early["rule_table"]["chosen"].sum() == 1
    chosen = early["rules"]["chosen"]
    assert (chosen["min_frames"], chosen["confidence"]) in EARLY_GRID
    # an event while the run is under way comes at or after min_frames into it
    for table in chosen["segments"]:
        under_way = table[table["detected_at"] <= table["end_frame"]]
        into = under_way["detected_at"] - under_way["start_frame"] + 1
        assert (into >= chosen["min_frames"]).all()
    assert set(early["beginnings"]) >= {6, 10, "whole"}


def test_the_live_recognizer_frame_by_frame_gives_the_whole_streams_segments(study):
    from gesturelab.models.frame_predictor import FrameDetector
    from gesturelab.serving.frame_segments import LiveRecognizer, segment_stream

    stream = study.streams["test"][0]
    meta = {"classes": list(stream.classes), "segment_rules": study.rules.__dict__}
    detector = FrameDetector(study.result.model, meta)
    # 1 + 2 * (1 + 2 + 4), and the frame before the oldest, whose motion it reads
    assert detector.receptive_field == 16
    recognizer = LiveRecognizer(detector, hop=7)
    first = 1000  # frames: a minute of stream would take a model call every 7 of them
    for frame in stream.frames[:first]:
        recognizer.push(frame)
    recognizer.flush()
    whole = study.probabilities[0][:first]  # causal: the first rows of the whole stream's
    assert np.allclose(np.asarray(recognizer.rows), whole, atol=1e-5)
    columns = ["label", "start_frame", "end_frame", "detected_at"]
    live = recognizer.segments_table()[columns]
    assert len(live)
    assert live.equals(segment_stream(whole, stream.classes, study.rules)[columns])


def test_the_early_namer_live_gives_the_whole_streams_segments(study):
    from dataclasses import replace
    from types import SimpleNamespace

    from gesturelab.models.frame_predictor import FrameDetector
    from gesturelab.serving.frame_segments import EarlyNaming, EarlyRules, LiveRecognizer
    from gesturelab.studies.early_naming import early_readings, named_early

    stream = study.streams["test"][0]
    first = 400
    rows = study.probabilities[0][:first]
    # thresholds from this tiny detector's and namer's own outputs, so that there are several
    # runs, some named early and some once over, whatever one epoch of training gave
    runs = replace(study.rules, on=float(np.median(1 - rows[:, -1])), gap=3, min_length=8)
    piece = SimpleNamespace(frames=stream.frames[:first], classes=stream.classes)
    namer = study.early["namer"].predictor
    readings = early_readings([piece], [rows], namer, runs, 6)
    # midway between two readings, so that batch and one-at-a-time rounding cannot flip it
    tops = np.unique(np.concatenate([d.max(axis=1) for d in readings[0].distributions]))
    middle = len(tops) // 2
    sure = float((tops[middle - 1] + tops[middle]) / 2)
    early = EarlyRules(min_frames=6, confidence=sure)
    offline = named_early([piece], readings, stream.classes, runs, 6, sure)[0]
    meta = {"classes": list(stream.classes), "segment_rules": study.rules.__dict__}
    detector = FrameDetector(study.result.model, meta)
    recognizer = LiveRecognizer(detector, hop=5, early=EarlyNaming(namer, early, runs))
    for frame in piece.frames:
        recognizer.push(frame)
    recognizer.flush()
    columns = ["label", "start_frame", "end_frame", "detected_at"]
    live = recognizer.segments_table()[columns]
    assert (live["detected_at"] <= live["end_frame"]).any()  # fired while under way
    assert (live["detected_at"] > live["end_frame"]).any()  # named once over
    assert live.equals(offline[columns])


def test_predict_runs_the_logged_detector_and_its_early_namer_on_a_real_video(
    study, store, tmp_path
):
    video = config.DATA_DIR / "mediapipe_samples" / "gestures_video.mp4"
    uri, namer = study.run.model_uri, study.early["namer"].run.model_uri
    result = cli_here(
        "predict", "--model", uri, "--namer", namer, "--input", str(video), "--out",
        str(tmp_path), "--no-progress", store=store, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    chosen = study.early["rules"]["chosen"]
    # the rules were chosen on this detector's runs, and travel on the namer's run
    import train_with_mlflow as tracking
    from gesturelab.serving.frame_segments import EarlyNaming

    with using_store(store):
        tags = tracking.get_run(study.early["namer"].run.run_id).tags
    assert EarlyNaming.detector_of(tags) == study.run.run_id
    assert f"early namer (fires {chosen['min_frames']}+ frames" in result.stdout
    assert "live detector" in result.stdout and "195 frames at 25.0 fps" in result.stdout
    # each segment listed with its span, label and event, or that there was none
    listed = re.findall(r"segment +[\d.]+- *[\d.]+ s +\w+ +[\d.]+ +\(fired at", result.stdout)
    assert listed or "no gesture segment" in result.stdout
    frames = (tmp_path / "gestures_video_frames.csv").read_text().splitlines()
    assert len(frames) == 196  # a row per frame and the header
    assert (tmp_path / "gestures_video_segments.csv").is_file()
