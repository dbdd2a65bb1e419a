"""The SHREC'17 loaders, the shipped compact copy, and the numpy sequence tools."""

from pathlib import Path

import numpy as np
import pytest

from gesturelab.datasets import shrec
from gesturelab.datasets.loading import LandmarkDataError
from gesturelab.datasets.sequences import (
    SequenceAugmenter,
    SequenceSet,
    frame_mask,
    pad_or_truncate,
    resample,
    subject_folds,
    subject_split,
)
from gesturelab.errors import GestureLabError

FIXTURE = Path(__file__).parent / "fixtures" / "shrec_tiny"


@pytest.fixture(scope="module")
def shipped():
    return shrec.load_compact()


def test_original_layout_fixture_loads_in_mediapipe_order():
    data = shrec.load_original(FIXTURE, "train")
    assert len(data) == 3
    assert list(data.lengths) == [77, 41, 88]
    assert list(data.labels) == [0, 13, 6]
    assert list(data.meta["label_28"]) == [0, 26, 13]
    raw = np.loadtxt(FIXTURE / "gesture_1/finger_1/subject_2/essai_1/skeletons_world.txt")
    joints = raw.reshape(len(raw), 22, 3)
    np.testing.assert_allclose(data.sequences[0][:, 0], joints[:, 0], atol=1e-6)  # wrist
    np.testing.assert_allclose(data.sequences[0][:, 1:], joints[:, 2:], atol=1e-6)  # no palm
    names = data.with_classes(28).label_names
    assert list(names) == ["grab_one_finger", "shake_one_finger", "swipe_right_whole_hand"]


def test_shipped_copy_equals_the_original_files(shipped):
    original = shrec.load_original(FIXTURE, "train")
    for i in range(len(original)):
        key = (original.meta["finger"][i], original.subjects[i], original.meta["essai"][i])
        match = np.flatnonzero(
            (shipped.labels == original.labels[i])
            & (shipped.meta["finger"] == key[0])
            & (shipped.subjects == key[1])
            & (shipped.meta["essai"] == key[2])
        )
        assert len(match) == 1
        np.testing.assert_allclose(shipped.sequences[match[0]], original.sequences[i], atol=1e-6)


def test_shipped_copy_is_the_whole_training_split(shipped):
    assert len(shipped) == 1960
    assert len(np.unique(shipped.subjects)) == 20
    counts_14 = np.bincount(shipped.labels)
    counts_28 = np.bincount(shipped.with_classes(28).labels)
    assert len(counts_14) == 14 and counts_14.min() == 127 and counts_14.max() == 149
    assert len(counts_28) == 28 and counts_28.sum() == 1960 and counts_28.min() == 62
    assert shipped.lengths.sum() == 115256


def test_compact_round_trip(tmp_path):
    original = shrec.load_original(FIXTURE, "train")
    again = shrec.load_compact(shrec.save_compact(original, tmp_path / "x.npz"))
    for a, b in zip(original.sequences, again.sequences):
        np.testing.assert_allclose(a, b, atol=1e-6)


def _copy_fixture(tmp_path) -> Path:
    import shutil

    root = tmp_path / "shrec"
    shutil.copytree(FIXTURE, root)
    return root


def test_list_file_errors_name_the_line(tmp_path):
    root = _copy_fixture(tmp_path)
    listing = root / "train_gestures.txt"
    listing.write_text(listing.read_text() + "3 1 4\n")
    with pytest.raises(LandmarkDataError, match=r"train_gestures.txt, line 4: expected 7 fields"):
        shrec.load_original(root)
    listing.write_text("1 1 2 1 1 2 77\n")
    with pytest.raises(LandmarkDataError, match="line 1: inconsistent"):
        shrec.load_original(root)
    with pytest.raises(LandmarkDataError, match="test_gestures.txt: list file not found"):
        shrec.load_original(root, split="test")


def test_skeleton_errors_name_file_line_and_joint(tmp_path):
    root = _copy_fixture(tmp_path)
    path = root / "gesture_1/finger_1/subject_2/essai_1/skeletons_world.txt"
    lines = path.read_text().splitlines()
    fields = lines[4].split()
    fields[7] = "abc"
    lines[4] = " ".join(fields)
    path.write_text("\n".join(lines))
    with pytest.raises(LandmarkDataError, match=r"line 5, column 'joint 2 y': not a number"):
        shrec.load_original(root)
    path.write_text("\n".join(lines[:4]))
    with pytest.raises(LandmarkDataError, match="4 frames but the list file says 77"):
        shrec.load_original(root)
    path.unlink()
    with pytest.raises(LandmarkDataError, match="essai_1/skeletons_world.txt: sequence file not"):
        shrec.load_original(root)


def test_load_refuses_a_test_split_of_the_shipped_copy():
    with pytest.raises(GestureLabError, match="training split only"):
        shrec.load(split="test")


def _ramp(frames: int) -> np.ndarray:
    return np.arange(frames, dtype=np.float32)[:, None, None] * np.ones((1, 21, 3)) + 1


def test_resample_is_linear_and_bridges_missing_frames():
    seq = _ramp(11)
    out = resample(seq, 21)
    np.testing.assert_allclose(out[:, 0, 0], np.linspace(1, 11, 21), atol=1e-5)
    seq[3:6] = np.nan
    np.testing.assert_allclose(resample(seq, 21)[:, 0, 0], np.linspace(1, 11, 21), atol=1e-5)
    assert not resample(np.full((5, 21, 3), np.nan), 8).any()


def test_pad_or_truncate_and_masks():
    seq = _ramp(5)
    seq[2] = np.nan
    out = pad_or_truncate(seq, 8)
    assert frame_mask(out).tolist() == [True, True, False, True, True, False, False, False]
    assert not out[2].any() and not out[5:].any()
    assert pad_or_truncate(_ramp(12), 8)[-1, 0, 0] == 8


def test_subject_folds_cover_every_subject_once(shipped):
    folds = subject_folds(shipped.subjects, 5, seed=3)
    everyone = np.concatenate(folds)
    assert sorted(everyone) == sorted(np.unique(shipped.subjects))
    sizes = [np.isin(shipped.subjects, f).sum() for f in folds]
    assert max(sizes) - min(sizes) <= 140
    train, val = subject_split(shipped.subjects, 0.25, seed=1)
    assert not set(shipped.subjects[train]) & set(shipped.subjects[val])
    assert 0.15 < val.mean() < 0.35


def test_augmenter_keeps_shape_padding_and_gesture_direction(shipped):
    rng = np.random.default_rng(0)
    seqs = shipped.sequences[:16]
    out = SequenceAugmenter()(seqs, 32, rng)
    assert out.shape == (16, 32, 21, 3) and np.isfinite(out).all()
    clean = np.stack([resample(s, 32) for s in seqs])
    # the hand moves in the same overall direction: augmentation never turns a swipe around
    move_clean = clean[:, -1, 0] - clean[:, 0, 0]
    move_aug = out[:, -1, 0] - out[:, 0, 0]
    big = np.linalg.norm(move_clean, axis=1) > 0.05
    cos = (move_clean * move_aug).sum(1) / (
        np.linalg.norm(move_clean, axis=1) * np.linalg.norm(move_aug, axis=1)
    )
    assert (cos[big] > 0.7).all()
    assert not np.allclose(out, clean, atol=1e-3)
    padded = np.stack([pad_or_truncate(s, 200) for s in seqs[:2]])
    spatial = SequenceAugmenter().spatial(padded, rng)
    assert not spatial[0, len(seqs[0]) :].any()


def test_sequence_set_checks_shapes():
    with pytest.raises(ValueError, match=r"sequence 0 has shape \(4, 63\)"):
        SequenceSet([np.zeros((4, 63))], np.zeros(1), np.zeros(1), ("a",))
