"""`record` with a real video standing in for the camera: killed in the middle of a take, resumed,
and read back by the sequence readers as the dataset train-seq takes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from gesturelab import config
from gesturelab.datasets.recording import SESSION, record
from gesturelab.datasets.sequence_formats import read_sequences
from gesturelab.errors import GestureLabError

VIDEO = config.DATA_DIR / "mediapipe_samples" / "hand_video.mp4"  # 640 × 360: quick
PLAN = ["--gestures", "like,palm", "--repetitions", "2", "--seconds", "0.6", "--countdown", "0"]


def test_a_killed_recording_resumes_and_gives_a_dataset_the_readers_take(tmp_path):
    out = tmp_path / "recorded"
    command = [sys.executable, "-m", "gesturelab", "record", "--video", str(VIDEO), *PLAN]
    process = subprocess.Popen(
        [*command, "--out", str(out), "--subject", "ana", "--no-preview"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        # killed once the first take is finished and the second has frames on disk
        while time.monotonic() < deadline and process.poll() is None:
            partial = list(out.glob("*/.*.partial/*.npy"))
            if (out / SESSION).is_file() and partial:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the recording ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    saved = json.loads((out / SESSION).read_text())
    assert len(saved["takes"]) == 1
    with pytest.raises(GestureLabError, match="holds a recording.*--resume"):
        record(out, ["like", "palm"], repetitions=2, seconds=0.6, countdown=0, subject="ana",
               source=str(VIDEO))  # fmt: skip
    with pytest.raises(GestureLabError, match="another plan"):
        record(out, ["fist"], repetitions=2, seconds=0.6, countdown=0, subject="ana",
               source=str(VIDEO), resume=True)  # fmt: skip
    said = []
    plan = record(
        out,
        ["like", "palm"],
        repetitions=2,
        seconds=0.6,
        countdown=0,
        subject="ana",
        source=str(VIDEO),
        resume=True,
        preview=False,
        say=said.append,
    )
    assert any("removed an unfinished take" in line for line in said)
    assert not list(out.glob("*/.*.partial"))
    assert [(t["gesture"], t["take"]) for t in plan.takes] == [
        ("like", 1),
        ("palm", 1),
        ("like", 2),
        ("palm", 2),
    ]
    # the video goes on where the finished takes stopped, as a camera would
    spans = [t["source_frames"] for t in plan.takes]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert all(t["frames"] == 15 for t in plan.takes)
    subjects = pd.read_csv(out / "subjects.csv")
    assert len(subjects) == 4 and set(subjects["subject"]) == {"ana"}
    assert "| like | 2 of 2 |" in (out / "datasheet.md").read_text()
    loaded = read_sequences(out, quarantine_dir=None, verbose=False)
    assert loaded.format == "npy-frames" and loaded.group_by == "subject"
    assert loaded.counts["sequences_read"] == 4
    assert loaded.data.hand == config.DEFAULT_HAND  # both hands recorded, one chosen
    assert set(loaded.data.label_names) <= {"like", "palm"}


def test_a_camera_that_is_not_there_is_one_line_and_no_folder(tmp_path):
    from tests.conftest import run_cli

    out = run_cli("record", "--gestures", "a", "--camera", "7", "--out", tmp_path / "mine",
                  store=f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: camera 7: cannot open the camera (none there, or in use)"
    ], out.stderr  # OpenCV's own backend lines stay off the terminal
    assert not (tmp_path / "mine").exists()
