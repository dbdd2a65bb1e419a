"""SHREC'17 / DHG hand-skeleton sequences: the original layout and the compact copy we ship.

The original layout (De Smedt et al., 2017) is a list file, one sequence per line::

    id_gesture id_finger id_subject id_essai label_14 label_28 n_frames

and for each line ``gesture_<g>/finger_<f>/subject_<s>/essai_<e>/skeletons_world.txt`` with one
frame per line: 22 joints x (x, y, z) in metres. Joint 1 is the palm centre, which MediaPipe does
not have; dropping it leaves MediaPipe's 21-landmark order (wrist, then each finger base to tip),
so sequences extracted from video by MediaPipe go through the same code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.landmarks import N_COORDS, N_LANDMARKS
from gesturelab.datasets.sequences import SequenceSet
from gesturelab.errors import GestureLabError, LandmarkDataError

SHREC_JOINTS = 22
PALM_JOINT = 1
TO_MEDIAPIPE = tuple(j for j in range(SHREC_JOINTS) if j != PALM_JOINT)

GESTURES_14 = (
    "grab",
    "tap",
    "expand",
    "pinch",
    "rotation_cw",
    "rotation_ccw",
    "swipe_right",
    "swipe_left",
    "swipe_up",
    "swipe_down",
    "swipe_x",
    "swipe_v",
    "swipe_plus",
    "shake",
)
# label_28 = 2 * (gesture - 1) + finger: one finger (1) or the whole hand (2).
GESTURES_28 = tuple(f"{g}_{hand}" for g in GESTURES_14 for hand in ("one_finger", "whole_hand"))
LIST_COLUMNS = ("gesture", "finger", "subject", "essai", "label_14", "label_28", "n_frames")
FRAME_RATE = 30.0


def classes_for(n_classes: int) -> tuple[str, ...]:
    if n_classes == 14:
        return GESTURES_14
    if n_classes == 28:
        return GESTURES_28
    raise ValueError(f"SHREC'17 has 14 or 28 classes, not {n_classes}")


def read_list(path) -> np.ndarray:
    """The list file as an (n, 7) int array, checked line by line."""
    path = Path(path)
    if not path.is_file():
        raise LandmarkDataError(path, "list file not found")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != len(LIST_COLUMNS):
            raise LandmarkDataError(
                path, f"expected {len(LIST_COLUMNS)} fields, got {len(fields)}", number
            )
        try:
            values = [int(f) for f in fields]
        except ValueError:
            bad = next(c for c, f in zip(LIST_COLUMNS, fields) if not f.lstrip("-").isdigit())
            raise LandmarkDataError(path, "not an integer", number, bad) from None
        g, f, _, _, l14, l28, n = values
        if not (1 <= g <= 14 and f in (1, 2) and l14 == g and l28 == 2 * (g - 1) + f and n > 0):
            raise LandmarkDataError(
                path, f"inconsistent gesture/finger/labels/frames {fields}", number
            )
        rows.append(values)
    if not rows:
        raise LandmarkDataError(path, "no sequences listed")
    return np.asarray(rows, dtype=np.int32)


def sequence_path(root, gesture: int, finger: int, subject: int, essai: int) -> Path:
    return (
        Path(root)
        / f"gesture_{gesture}"
        / f"finger_{finger}"
        / f"subject_{subject}"
        / f"essai_{essai}"
        / "skeletons_world.txt"
    )


def read_skeletons(path, expected_frames: int | None = None) -> np.ndarray:
    """One ``skeletons_world.txt`` as (frames, 21, 3) float32 in MediaPipe order."""
    path = Path(path)
    if not path.is_file():
        raise LandmarkDataError(path, "sequence file not found")
    text = path.read_text().split("\n")
    frames = []
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != SHREC_JOINTS * N_COORDS:
            raise LandmarkDataError(
                path, f"expected {SHREC_JOINTS * N_COORDS} values, got {len(fields)}", number
            )
        try:
            values = np.asarray(fields, dtype=np.float64)
        except ValueError:
            column = next(i for i, f in enumerate(fields) if not _is_float(f))
            raise LandmarkDataError(
                path, f"not a number: {fields[column]!r}", number, _joint_column(column)
            ) from None
        if not np.isfinite(values).all():
            column = int(np.flatnonzero(~np.isfinite(values))[0])
            raise LandmarkDataError(path, "NaN or infinite value", number, _joint_column(column))
        frames.append(values)
    if not frames:
        raise LandmarkDataError(path, "no frames")
    if expected_frames is not None and len(frames) != expected_frames:
        raise LandmarkDataError(
            path, f"{len(frames)} frames but the list file says {expected_frames}"
        )
    joints = np.asarray(frames).reshape(len(frames), SHREC_JOINTS, N_COORDS)
    return joints[:, TO_MEDIAPIPE, :].astype(np.float32)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _joint_column(index: int) -> str:
    return f"joint {index // N_COORDS} {'xyz'[index % N_COORDS]}"


def load_original(root, split: str = "train", progress: bool = False) -> SequenceSet:
    """All sequences of ``<root>/<split>_gestures.txt`` in the original layout."""
    root = Path(root)
    listing = read_list(root / f"{split}_gestures.txt")
    iterator = listing
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(listing, desc=f"SHREC'17 {split}", unit="seq")
    sequences = [
        read_skeletons(sequence_path(root, g, f, s, e), expected_frames=n)
        for g, f, s, e, _, _, n in iterator
    ]
    return SequenceSet(
        sequences=sequences,
        labels=listing[:, 4] - 1,
        subjects=listing[:, 2],
        meta={
            "finger": listing[:, 1],
            "essai": listing[:, 3],
            "label_28": listing[:, 5] - 1,
        },
        classes=GESTURES_14,
        class_variants={14: GESTURES_14, 28: GESTURES_28},
        frame_rate=FRAME_RATE,
        source=f"{root} ({split})",
    )


# The compact copy: positions rounded to whole micrometres (the files give x, y to 1e-8 m and
# z to 1e-6 m; the sensor's own noise is millimetres) and stored as frame-to-frame differences,
# which compress about 4x better than absolute floats.
_MICRONS = 1e6


def save_compact(data: SequenceSet, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.asarray([len(s) for s in data.sequences], dtype=np.int32)
    stacked = np.concatenate(data.sequences).astype(np.float64)
    microns = np.rint(stacked * _MICRONS).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    deltas = np.diff(microns, axis=0, prepend=0)
    deltas[starts] = microns[starts]
    if np.abs(deltas).max() >= 2**31:
        raise ValueError("positions out of range for the compact format")
    np.savez_compressed(
        path,
        deltas=deltas.astype(np.int32),
        lengths=lengths,
        labels_14=np.asarray(data.labels, dtype=np.int16),
        labels_28=np.asarray(data.meta["label_28"], dtype=np.int16),
        subjects=np.asarray(data.subjects, dtype=np.int16),
        finger=np.asarray(data.meta["finger"], dtype=np.int16),
        essai=np.asarray(data.meta["essai"], dtype=np.int16),
    )
    return path


def load_compact(path=None) -> SequenceSet:
    path = Path(path or config.SHREC_TRAIN_NPZ)
    if not path.is_file():
        raise LandmarkDataError(path, "compact SHREC'17 file not found")
    with np.load(path) as archive:
        # whole micrometres as float64: exact below 2**53, and numpy's running sums along the
        # first axis are several times faster in floating point than in integers
        deltas = archive["deltas"].astype(np.float64)
        lengths = archive["lengths"]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # Each sequence restarts from absolute values. Taking the previous sequence's last
        # position off each sequence's first value makes one running sum give every sequence's
        # own positions.
        ends = np.add.reduceat(deltas, starts, axis=0)
        deltas[starts[1:]] -= ends[:-1]
        positions = (np.cumsum(deltas, axis=0) / _MICRONS).astype(np.float32)
        positions = positions.reshape(-1, N_LANDMARKS, N_COORDS)
        sequences = np.split(positions, np.cumsum(lengths)[:-1])
        return SequenceSet(
            sequences=list(sequences),
            labels=archive["labels_14"].astype(np.int64),
            subjects=archive["subjects"].astype(np.int64),
            meta={
                "finger": archive["finger"].astype(np.int64),
                "essai": archive["essai"].astype(np.int64),
                "label_28": archive["labels_28"].astype(np.int64),
            },
            classes=GESTURES_14,
            class_variants={14: GESTURES_14, 28: GESTURES_28},
            frame_rate=FRAME_RATE,
            source=str(path),
        )


def load(
    data_root=None, split: str = "train", n_classes: int = 14, progress: bool = False
) -> SequenceSet:
    """The shipped compact training split, or a dataset in the original layout."""
    if data_root is None or Path(data_root).suffix == ".npz":
        if split != "train":
            raise GestureLabError(
                f"the shipped SHREC'17 copy holds the training split only, not {split!r}: "
                "pass --data-root with a folder in the original layout"
            )
        data = load_compact(data_root)
    else:
        data = load_original(data_root, split, progress=progress)
    return data.with_classes(n_classes)
