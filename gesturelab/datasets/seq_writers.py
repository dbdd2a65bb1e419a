"""Sequences written in the layouts the readers take: to convert a dataset, and to check that
every reader gives back what another wrote (``benchmarks/sequence_formats.py``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.datasets.npy_frames import FACE, HAND, POSE, SUBJECTS_FILE
from gesturelab.datasets.sequence_formats import save_bundle
from gesturelab.datasets.sequences import SequenceSet, frame_mask


def write_sequence_csv(data: SequenceSet, path, with_subjects: bool = True) -> Path:
    """One row per frame with a hand (a frame without one has no row, as ``extract`` writes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = data.label_names
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "sequence",
                "frame",
                "label",
                *(["subject"] if with_subjects else []),
                *LANDMARK_COLUMNS,
            ]
        )
        for i, sequence in enumerate(data.sequences):
            subject = [data.subjects[i]] if with_subjects else []
            for frame in np.flatnonzero(frame_mask(sequence)):
                values = [f"{v:.6g}" for v in sequence[frame].reshape(-1)]
                out.writerow([i, int(frame), names[i], *subject, *values])
    return path


def write_npy_frames(
    data: SequenceSet, root, holistic: bool = False, seed: int = config.SEQUENCE_SEED
) -> Path:
    """``ROOT/<label>/<sequence>/<frame>.npy`` and ``ROOT/subjects.csv``.

    holistic: 1662-value MediaPipe Holistic frames built around the hand block: the hand in the
    right-hand block, the left-hand block zeros (not found), pose and face random numbers that
    no reader may use.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = data.label_names
    with open(_mkdir(root) / SUBJECTS_FILE, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["action", "sequence", "subject"])
        for i, sequence in enumerate(data.sequences):
            folder = _mkdir(root / names[i] / str(i))
            out.writerow([names[i], i, data.subjects[i]])
            hands = np.where(frame_mask(sequence)[:, None, None], sequence, 0.0)
            for frame, hand in enumerate(hands.reshape(len(hands), HAND)):
                if holistic:
                    pose, face = rng.random(POSE), rng.random(FACE)
                    vector = np.concatenate([pose, face, np.zeros(HAND), hand])
                else:
                    vector = hand
                np.save(folder / f"{frame}.npy", vector.astype(np.float64))
    return root


def write_npz(data: SequenceSet, path) -> Path:
    return save_bundle(data, path, group_by="subject")


def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
