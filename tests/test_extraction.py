"""MediaPipe extraction on the shipped real photos and videos (models ship in the wheel)."""

import shutil

import numpy as np
import pytest

from gesturelab import config
from gesturelab.datasets.extraction import collect_inputs, extract_images, extract_video
from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.datasets.loading import load_landmarks_csv

SAMPLES = config.DATA_DIR / "mediapipe_samples"


@pytest.fixture(scope="module")
def photos():
    return extract_images(collect_inputs(SAMPLES / "*.[jp][pn]g"), progress=False)


def test_every_hand_in_the_photos(photos):
    counts = photos.rows.groupby(photos.rows["source"].str.rsplit("/", n=1).str[-1]).size()
    assert counts.to_dict() == {"thumb_up.jpg": 1, "thumbs_up_large.png": 1, "two_thumbs_up.jpg": 2}
    assert photos.problems.empty


def test_rows_are_in_hagrid_pixel_convention(photos, tmp_path):
    row = photos.rows[photos.rows["source"].str.endswith("thumbs_up_large.png")].iloc[0]
    xs = row[[c for c in LANDMARK_COLUMNS if c.startswith("x")]].astype(float)
    assert xs.max() > 100, "x in pixels of the 1920-wide image, not normalised to [0, 1]"
    assert xs.max() <= 1920
    path = tmp_path / "extracted.csv"
    photos.rows.to_csv(path, index=False)
    loaded = load_landmarks_csv(path, require_label=False, quarantine_dir=None, verbose=False)
    assert len(loaded.data) == 4 and set(loaded.data["handedness"]) <= {"Left", "Right"}


def test_folder_with_corrupt_and_handless_images_completes(tmp_path):
    import cv2

    folder = tmp_path / "like"
    folder.mkdir()
    shutil.copy(SAMPLES / "thumb_up.jpg", folder)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    cv2.imwrite(str(folder / "wall.png"), np.full((240, 320, 3), 127, np.uint8))
    result = extract_images(collect_inputs(tmp_path), label_from_folder=True, progress=False)
    assert list(result.rows["label"]) == ["like"]
    problems = dict(
        zip(
            result.problems["source"].str.rsplit("/", n=1).str[-1],
            result.problems["problem"],
            strict=True,
        )
    )
    assert problems == {"corrupt.jpg": "unreadable or corrupt image", "wall.png": "no hand found"}
    assert "1 images without a hand; 1 files unreadable" in result.summary()


def test_video_gives_frames_sequence_and_mask():
    video = extract_video(SAMPLES / "gestures_video.mp4", progress=False)
    assert video.sequence.shape == (195, 21, 3) and video.mask.shape == (195,)
    assert 0 < video.mask.sum() < 195, "the clip starts before the hand is raised"
    assert (video.sequence[~video.mask] == 0).all()
    assert len(video.rows) == video.mask.sum()
    assert video.fps == pytest.approx(25.0)


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        collect_inputs(tmp_path / "nothing_here" / "*.jpg")


def _truncated(source, target, keep):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    return target


def test_truncated_photo_is_reported_not_passed_off_as_whole(tmp_path):
    photo = _truncated(SAMPLES / "thumb_up.jpg", tmp_path / "thumb_up.jpg", 20_000)
    result = extract_images([photo], progress=False)
    (problem,) = result.problems["problem"]
    assert problem.startswith("partly decoded: the file is truncated")
    assert "0 files unreadable; 1 partly decoded" in result.summary()


def test_truncated_video_says_how_many_frames_it_gave(tmp_path):
    clip = _truncated(SAMPLES / "hand_video.mp4", tmp_path / "cut.mp4", 0.4)
    video = extract_video(clip, progress=False)
    assert 0 < len(video.mask) < video.frames_expected == 202
    assert video.problem == (
        f"partly decoded: {len(video.mask)} of the 202 frames its header announces "
        "(truncated or damaged file)"
    )
    assert extract_video(SAMPLES / "hand_video.mp4", progress=False).problem is None


def test_unopenable_video_is_a_media_error(tmp_path):
    from gesturelab.errors import MediaError

    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="zero.mp4: cannot open video"):
        extract_video(tmp_path / "zero.mp4", progress=False)
    with pytest.raises(MediaError, match="no images or videos"):
        collect_inputs(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else None)


def test_names_that_are_not_utf8_are_read_and_written_as_text(photos, tmp_path):
    """A file name that is not valid UTF-8 (a camera's or an old system's Latin-1 name) once
    crashed the process in OpenCV (segmentation fault, nothing written): it is read like any
    other, and named in the output with its odd byte escaped, as ``ls -b`` shows it."""
    import os
    import subprocess
    import sys

    from gesturelab.datasets.extraction import iter_video_frames

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(SAMPLES / "two_thumbs_up.jpg", folder / "two_thumbs_up.jpg")
    shutil.copy(SAMPLES / "thumb_up.jpg", os.fsdecode(bytes(folder) + b"/caf\xe9.jpg"))
    out = tmp_path / "hands.csv"
    # a subprocess: a crash must fail this test, not the test worker
    done = subprocess.run(
        [sys.executable, "-m", "gesturelab", "extract", "--input", str(folder), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = load_landmarks_csv(out, require_label=False, quarantine_dir=None, verbose=False).data
    by_name = rows.groupby(rows["source"].str.rsplit("/", n=1).str[-1])
    assert by_name.size().to_dict() == {"caf\\xe9.jpg": 1, "two_thumbs_up.jpg": 2}
    original = photos.rows[photos.rows["source"].str.endswith("/thumb_up.jpg")]
    np.testing.assert_allclose(
        by_name.get_group("caf\\xe9.jpg")[list(LANDMARK_COLUMNS)].to_numpy(float),
        original[list(LANDMARK_COLUMNS)].to_numpy(float),
    )
    video = os.fsdecode(bytes(tmp_path) + b"/vid\xe9o.mp4")
    shutil.copy(SAMPLES / "hand_video.mp4", video)
    assert sum(1 for _ in iter_video_frames(video)) == 202
