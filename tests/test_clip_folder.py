"""A clip-folder dataset made from the shipped videos: MediaPipe in video mode, masks, the
cache, a clip that cannot be decoded and a label folder without clips; then a model trains on
it end to end (a smoke test: four clips are no benchmark)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gesturelab import config
from gesturelab.datasets.sequence_formats import read_sequences
from gesturelab.datasets.sequences import frame_mask
from tests.conftest import run_cli

VIDEOS = config.DATA_DIR / "mediapipe_samples"


def _cut(video, out_dir, label: str, parts: int = 2):
    """The video cut into ``parts`` clips of consecutive frames (mp4, half size)."""
    import cv2

    from gesturelab.datasets.extraction import iter_video_frames, video_properties

    fps, _, (width, height) = video_properties(video)
    frames = [frame for _, frame in iter_video_frames(video)]
    folder = out_dir / label
    folder.mkdir(parents=True, exist_ok=True)
    size = (width // 2, height // 2)
    for k, chunk in enumerate(np.array_split(np.arange(len(frames)), parts)):
        writer = cv2.VideoWriter(
            str(folder / f"{label}_{k}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, size
        )
        for i in chunk:
            writer.write(cv2.resize(frames[i], size))
        writer.release()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips") / "my_gestures"
    _cut(VIDEOS / "gestures_video.mp4", root, "thumb_up")
    _cut(VIDEOS / "hand_video.mp4", root, "reach")
    (root / "reach" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300))
    (root / "wave").mkdir()  # a label folder with no clips
    return root


@pytest.fixture(scope="module")
def loaded(clips, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    quarantine = tmp_path_factory.mktemp("q")
    first = read_sequences(
        clips, cache_dir=cache, quarantine_dir=quarantine, verbose=False, progress=False
    )
    second = read_sequences(
        clips, cache_dir=cache, quarantine_dir=quarantine, verbose=False, progress=False
    )
    return first, second


def test_clips_become_masked_sequences_with_problems_listed(loaded):
    first, _ = loaded
    assert first.format == "clip-folder" and first.classes == ["reach", "thumb_up"]
    assert len(first.data) == 4 and first.group_by == "source file"
    assert first.counts["clips"] == 5 and first.counts["sequences_rejected"] == 1
    # The person raises the hand during the first 24 frames of gestures_video.mp4.
    masks = {
        s.split("/")[-1]: frame_mask(q)
        for s, q in zip(first.data.meta["source"], first.data.sequences)
    }
    assert 15 <= (~masks["thumb_up_0.mp4"]).sum() <= 35
    assert masks["reach_0.mp4"].all() and masks["reach_1.mp4"].all()
    assert first.counts["frames_without_hand"] == sum((~m).sum() for m in masks.values())
    assert first.data.frame_rate == pytest.approx(25.0)
    rejected = pd.read_csv(first.quarantine_path)
    assert any("cannot open video" in r or "no frame" in r for r in rejected["reason"])
    assert any(s.endswith("broken.mp4") for s in rejected["source"])
    assert any(
        "no clips" in r and s.endswith("wave")
        for s, r in zip(rejected["source"], rejected["reason"])
    )


def test_a_second_read_comes_from_the_cache(loaded):
    first, second = loaded
    assert any("4 from the cache" in note for note in second.notes)
    for a, b in zip(first.data.sequences, second.data.sequences, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.train
def test_import_and_train_seq_on_a_clip_folder(clips, tmp_path, mlflow_store):
    data_dir = tmp_path / "data"
    out = run_cli(
        "data",
        "import",
        clips,
        "--name",
        "my-clips",
        "--data-dir",
        data_dir,
        "--quarantine-dir",
        tmp_path / "q",
        store=mlflow_store,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "frames per sequence" in out.stdout and "no clips" in out.stdout
    sheet = json.loads((data_dir / "my-clips" / "datasheet.json").read_text())
    assert sheet["counts"]["sequences_kept"] == 4 and sheet["rejected_file"] == "rejected.csv"
    out = run_cli(
        "train-seq",
        "--data",
        data_dir / "my-clips",
        "--arch",
        "cnn",
        "--epochs",
        "2",
        "--register",
        store=mlflow_store,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "registered: models:/my-clips-2-sequence-gestures@champion" in out.stdout
    assert "experiment: my-clips-sequence-models" in out.stdout
    assert "validation groups: source file (4)" in out.stdout
    assert "validation source files" in out.stdout


def test_a_left_hand_clip_is_mirrored_onto_the_right_hand(loaded, clips, tmp_path):
    """reach_1.mp4 flipped left to right shows a left hand: read with --hand dominant it is
    mirrored back, close to the right hand of the clip itself (MediaPipe on a mirrored image
    is close to, not exactly, the mirror of its landmarks); --hand right sets it aside."""
    import cv2

    from gesturelab.datasets.extraction import iter_video_frames, video_properties

    first, _ = loaded
    assert set(first.data.meta["hand"]) == {"right"}  # both videos show a right hand
    source = clips / "reach" / "reach_1.mp4"
    fps, _, size = video_properties(source)
    flipped = tmp_path / "flipped" / "reach" / "reach_1_left.mp4"
    flipped.parent.mkdir(parents=True)
    writer = cv2.VideoWriter(str(flipped), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _, frame in iter_video_frames(source):
        writer.write(cv2.flip(frame, 1))
    writer.release()
    left = read_sequences(flipped.parent.parent, cache_dir=tmp_path / "c", verbose=False,
                          progress=False, quarantine_dir=None)  # fmt: skip
    assert left.data.meta["hand"].tolist() == ["left"]
    right = first.data.sequences[
        [s.endswith("reach_1.mp4") for s in first.data.meta["source"]].index(True)
    ]
    mirrored = left.data.sequences[0]
    both = frame_mask(right) & frame_mask(mirrored)
    assert both.mean() > 0.9
    gap = np.abs(mirrored[both, :, :2] - right[both, :, :2]).mean()
    assert gap < 0.02 * size[0], gap  # pixels; without the mirroring it is the hand's width
    with pytest.raises(Exception, match="no right hand in the clip"):
        read_sequences(flipped.parent.parent, cache_dir=tmp_path / "c", hand="right",
                       verbose=False, progress=False, quarantine_dir=None)  # fmt: skip
