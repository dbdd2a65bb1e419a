"""Image folders in the Model Maker layout (ROOT/<label>/*.jpg), through real MediaPipe Hands:
rows with source and folder label, a content cache, images without hands listed, and a sweep
end to end. Built from the shipped photos and frames of the shipped videos."""

import shutil

import numpy as np
import pytest

from gesturelab import config, datasets
from gesturelab.datasets.static_data import prepare
from gesturelab.errors import SweepDataError

SAMPLES = config.DATA_DIR / "mediapipe_samples"
PHOTOS = ("thumb_up.jpg", "thumbs_up_large.png", "two_thumbs_up.jpg")

# One worker for the module: its tests share the module's images and cache (built once).
pytestmark = pytest.mark.xdist_group("image_folder")


def write_frames(video, folder, frames):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in frames:
            cv2.imwrite(str(folder / f"{video.stem}_{index:03d}.jpg"), frame)
        index += 1
    capture.release()


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    """like/: the three photos and the thumb-up end of gestures_video; open/: hand_video;
    fist/: the fist at the start of gestures_video; plus a damaged file and a handless one."""
    import cv2

    root = tmp_path_factory.mktemp("images") / "my_gestures"
    for photo in PHOTOS:
        (root / "like").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLES / photo, root / "like" / photo)
    write_frames(SAMPLES / "gestures_video.mp4", root / "like", range(150, 195, 5))
    write_frames(SAMPLES / "gestures_video.mp4", root / "fist", range(40, 100, 5))
    write_frames(SAMPLES / "hand_video.mp4", root / "open", range(20, 200, 15))
    (root / "fist" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cv2.imwrite(str(root / "open" / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    (root / "notes.txt").write_text("not an image: ignored")
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
def test_an_image_folder_becomes_labelled_rows_and_a_cache(image_root, cache_dir, tmp_path):
    loaded = datasets.read(
        image_root, cache_dir=cache_dir, quarantine_dir=tmp_path, verbose=False, progress=False
    )
    assert loaded.format == "image-folder" and loaded.dims == 3
    assert loaded.classes == ["fist", "like", "open"]
    assert set(loaded.data["source"].str.split("/").str[0]) == {"fist", "like", "open"}
    assert (loaded.data["source"].str.split("/").str[0] == loaded.data["label"]).all()
    reasons = dict(zip(loaded.rejected["source"], loaded.rejected["reason"], strict=False))
    assert reasons["open/wall.png"] == "no hand found"
    assert reasons["fist/broken.jpg"] == "unreadable or corrupt image"
    assert loaded.quarantine_path is not None and loaded.quarantine_path.is_file()
    n_images = sum(1 for p in image_root.rglob("*") if p.suffix in (".jpg", ".png"))
    assert loaded.counts["images"] == n_images
    assert f"{n_images} extracted by MediaPipe Hands, 0 from the cache" in loaded.notes[0]
    # Both hands of the two-thumbs photo are rows of their own.
    assert (loaded.data["source"] == "like/two_thumbs_up.jpg").sum() == 2

    again = datasets.read(image_root, cache_dir=cache_dir, quarantine_dir=None, verbose=False,
                          progress=False)  # fmt: skip
    assert f"0 extracted by MediaPipe Hands, {n_images} from the cache" in again.notes[0]
    np.testing.assert_array_equal(again.X, loaded.X)
    # A damaged cache entry, even one that is valid JSON, is extracted again.
    entry = next(cache_dir.rglob("*.json"))
    entry.write_text("{}")
    third = datasets.read(image_root, cache_dir=cache_dir, quarantine_dir=None, verbose=False,
                          progress=False)  # fmt: skip
    assert f"1 extracted by MediaPipe Hands, {n_images - 1} from the cache" in third.notes[0]
    np.testing.assert_array_equal(third.X, loaded.X)


@pytest.mark.slow
@pytest.mark.sweep
def test_an_image_folder_sweeps_end_to_end(image_root, cache_dir, mlflow_store, tmp_path):
    from gesturelab.models.predictor import GesturePredictor
    from gesturelab.training.sweep import default_model_name, run_sweep

    prepared = prepare(image_root, quarantine_dir=None, verbose=False)
    name = default_model_name(prepared.classes, prepared.loaded.name)
    assert name == "my-gestures-3-gestures"
    result = run_sweep(
        prepared, quick=True, experiment="images", families=("logreg", "knn"),
        feature_ablation=False, progress=False,
    )  # fmt: skip
    assert set(result.best["family"]) == {"logreg", "knn"}
    predictor = GesturePredictor.load(result.champion["model_uri"])
    assert predictor.classes == ["fist", "like", "open"]
    assert predictor.reject["method"] == "threshold"


@pytest.mark.slow
def test_a_changed_image_is_extracted_again_and_one_class_is_refused(
    image_root, cache_dir, tmp_path
):
    from gesturelab.training.sweep_state import check_sweepable

    root = tmp_path / "one_class"
    shutil.copytree(image_root / "open", root / "open")
    for _ in range(2):  # the first read fills the cache unless the module's first test did
        loaded = datasets.read(root, cache_dir=cache_dir, quarantine_dir=None, verbose=False,
                               progress=False)  # fmt: skip
    assert "0 extracted" in loaded.notes[0]
    write_frames(SAMPLES / "hand_video.mp4", root / "open", [21])  # a new image
    loaded = datasets.read(root, cache_dir=cache_dir, quarantine_dir=None, verbose=False,
                           progress=False)  # fmt: skip
    assert "1 extracted" in loaded.notes[0]
    prepared = prepare(root, quarantine_dir=None, verbose=False)
    with pytest.raises(SweepDataError, match="at least two classes"):
        check_sweepable(prepared, {})
