"""The SHREC'22 online protocol: its matching rules on small cases, and the published values of
the track's participants from their own files (read from ../shared/eval, never copied here)."""

from __future__ import annotations

import re

import pytest

from gesturelab import config
from gesturelab.errors import LandmarkDataError
from gesturelab.evaluation.online_protocol import (
    PUBLISHED_SHREC22,
    SHREC22_CLASSES,
    Gesture,
    evaluate,
    evaluate_files,
    read_detections,
    read_truth,
    write_detections,
    write_truth,
)
from tests.conftest import cli_here

SHREC22 = config.REPO_ROOT.parent / "shared" / "eval" / "shrec22"
PUBLISHED = PUBLISHED_SHREC22  # the track paper's values, as the README there tabulates them


def test_the_matching_rules():
    truth = {"1": [Gesture("A", 100, 140), Gesture("B", 200, 220), Gesture("A", 300, 340)]}
    detections = {
        "1": [
            Gesture("A", 110, 150, 130),  # correct: same label, 30 of 40 frames covered
            Gesture("A", 112, 150, 140),  # the gesture is taken: a false positive
            Gesture("B", 150, 230, 225),  # 80 frames for a 20-frame gesture: too long, FP
            Gesture("A", 330, 400, 360),  # covers 10 of 40: FP (a partial overlap is no match)
            Gesture("C", 10, 20, 15),  # a label outside the classes: no class's FP
        ]
    }
    table = evaluate(truth, detections, classes=["A", "B"])
    assert table.loc["A", ["total", "correct", "missed", "fp"]].tolist() == [2, 1, 1, 2]
    assert table.loc["B", ["total", "correct", "missed", "fp"]].tolist() == [1, 0, 1, 1]
    assert table.loc["A", "delay"] == 20  # fired at 130, detected start 110
    assert table.loc["A", "jaccard"] == pytest.approx(1 / 4)
    assert table.loc["mean", "detection_rate"] == pytest.approx((1 / 2 + 0) / 2)
    assert table.loc["mean", "delay"] == pytest.approx(20 / 2)  # B's missing delay counts 0


def test_files_round_trip_and_bad_lines_say_where(tmp_path):
    truth = {"7": [Gesture("OK", 10, 40)], "8": []}
    detections = {"7": [Gesture("OK", 12, 41, 30)]}
    t = read_truth(write_truth(truth, tmp_path / "truth.txt"))
    d = read_detections(write_detections(detections, tmp_path / "found.txt"))
    assert t == truth and d == detections
    (tmp_path / "bad.txt").write_text("1;OK;10;40;20;\n2;OK;ten;40;20;\n")
    with pytest.raises(LandmarkDataError, match=r"bad\.txt, line 2: gesture 1: .* not frame"):
        read_detections(tmp_path / "bad.txt")
    (tmp_path / "short.txt").write_text("1;OK;10;40;\n")
    with pytest.raises(LandmarkDataError, match=r"short\.txt, line 1: 3 fields .* multiple of 4"):
        read_detections(tmp_path / "short.txt")


@pytest.mark.skipif(not SHREC22.is_dir(), reason="../shared/eval/shrec22 is not beside the repo")
def test_the_published_values_of_the_track_are_reproduced(tmp_path):
    truth = SHREC22 / "test_annotations_fixed.txt"
    for name, (dr, fp, ji, delay) in PUBLISHED.items():
        mean = evaluate_files(truth, SHREC22 / "participants_results" / f"{name}.txt",
                              SHREC22_CLASSES).loc["mean"]  # fmt: skip
        assert round(mean["detection_rate"], 2) == dr, name
        assert round(mean["false_positive_rate"], 2) == fp, name
        assert round(mean["jaccard"], 2) == ji, name
        assert round(mean["delay"], 1) == delay, name
    out = cli_here(
        "stream-eval",
        "--truth",
        truth,
        "--detections",
        SHREC22 / "participants_results" / "Causal TCN.txt",
        "--classes",
        "shrec22",
        store=f"sqlite:///{tmp_path / 'mlflow.db'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"Causal TCN +0\.800 +0\.292 +0\.676 +19\.000", out.stdout), out.stdout
