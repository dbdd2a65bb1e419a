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


def write_sequence_csv(
    data: SequenceSet,
    path,
    with_subjects: bool = True,
    left_handed=(),
    other_hand_every: int = 0,
) -> Path:
    """One row per frame with a hand (a frame without one has no row, as ``extract`` writes).

    With ``left_handed`` (sequence indices) or ``other_hand_every``, the rows carry ``extract``'s
    ``hand_index`` and ``handedness`` columns: a left-handed sequence is written as the left
    hand (mirrored, so that a reader's mirroring gives it back), and every
    ``other_hand_every``-th frame has a second row, the other side's hand (the same hand
    mirrored), as a person using both hands would."""
    from gesturelab.datasets.landmarks import mirror_hand

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = data.label_names
    sided = bool(len(left_handed)) or other_hand_every > 0
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "sequence",
                "frame",
                "label",
                *(["subject"] if with_subjects else []),
                *(["hand_index", "handedness"] if sided else []),
                *LANDMARK_COLUMNS,
            ]
        )
        for i, sequence in enumerate(data.sequences):
            subject = [data.subjects[i]] if with_subjects else []
            left = i in set(left_handed)
            for frame in np.flatnonzero(frame_mask(sequence)):
                hand = sequence[frame]
                hands = [("Left", mirror_hand(hand)) if left else ("Right", hand)]
                if other_hand_every and frame % other_hand_every == 0:
                    hands.append(("Right", hand) if left else ("Left", mirror_hand(hand)))
                for index, (side, values) in enumerate(hands if sided else hands[:1]):
                    cells = [f"{v:.6g}" for v in values.reshape(-1)]
                    extra = [index, side] if sided else []
                    out.writerow([i, int(frame), names[i], *subject, *extra, *cells])
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


def write_long_table(
    data: SequenceSet, root, suffix: str = ".parquet", left_handed=(), pose: bool = False
) -> Path:
    """The Kaggle ISLR layout: ``ROOT/train.csv`` (path, participant_id, sequence_id, sign) and
    ``ROOT/train_landmark_files/<subject>/<i><suffix>``, one row per landmark per frame
    (``frame, row_id, type, landmark_index, x, y, z``) with both hands' rows in every frame, NaN
    for the hand that is not there. Sequences whose index is in ``left_handed`` are written as
    the left hand (mirrored, so that a reader's mirroring gives the sequence back); with
    ``pose``, 33 pose rows a frame of random numbers that no hand reader may use."""
    import pandas as pd

    from gesturelab.datasets.landmarks import mirror_hand

    root = Path(root)
    rng = np.random.default_rng(config.SEQUENCE_SEED)
    manifest = []
    for i, sequence in enumerate(data.sequences):
        hand = np.where(frame_mask(sequence)[:, None, None], sequence, np.nan)
        side = "left_hand" if i in set(left_handed) else "right_hand"
        blocks = {side: mirror_hand(hand) if side == "left_hand" else hand}
        blocks["right_hand" if side == "left_hand" else "left_hand"] = np.full_like(hand, np.nan)
        if pose:
            blocks["pose"] = rng.random((len(hand), 33, 3))
        rows = []
        for name in sorted(blocks):
            values = blocks[name]
            frames, points = np.meshgrid(
                np.arange(len(values)), np.arange(values.shape[1]), indexing="ij"
            )
            rows.append(
                pd.DataFrame(
                    {
                        "frame": frames.reshape(-1),
                        "type": name,
                        "landmark_index": points.reshape(-1),
                        "x": values[..., 0].reshape(-1),
                        "y": values[..., 1].reshape(-1),
                        "z": values[..., 2].reshape(-1),
                    }
                )
            )
        table = pd.concat(rows).sort_values(["frame", "type", "landmark_index"], kind="stable")
        table.insert(1, "row_id", [f"{f}-{t}-{k}" for f, t, k in zip(
            table["frame"], table["type"], table["landmark_index"], strict=True)])  # fmt: skip
        relative = Path("train_landmark_files") / str(data.subjects[i]) / f"{i}{suffix}"
        file = _mkdir((root / relative).parent) / relative.name
        if suffix == ".parquet":
            table.to_parquet(file, index=False)
        else:
            table.to_csv(file, index=False)
        manifest.append((relative.as_posix(), data.subjects[i], i, data.label_names[i]))
    with open(_mkdir(root) / "train.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["path", "participant_id", "sequence_id", "sign"])
        out.writerows(manifest)
    return root


JSON_LAYOUTS = ("holistic", "hands", "tasks")


def write_mediapipe_json(data: SequenceSet, root, layout: str = "holistic", left_handed=()) -> Path:
    """``ROOT/<label>/<subject>/<i>.json``, one MediaPipe dump per sequence in ``layout``: the
    JS Holistic API's frames, Python hands through ``MessageToDict``, or the Tasks API's
    result. Sequences whose index is in ``left_handed`` are the left hand (mirrored)."""
    import json

    from gesturelab.datasets.landmarks import mirror_hand

    if layout not in JSON_LAYOUTS:
        raise ValueError(f"layout must be one of {JSON_LAYOUTS}")
    root = Path(root)
    names = data.label_names
    for i, sequence in enumerate(data.sequences):
        side = "Left" if i in set(left_handed) else "Right"
        present = frame_mask(sequence)
        hand = mirror_hand(sequence) if side == "Left" else sequence
        frames = []
        for frame, ok in zip(hand, present, strict=True):
            points = [{"x": float(x), "y": float(y), "z": float(z)} for x, y, z in frame]
            if layout == "holistic":
                empty = {"leftHandLandmarks": None, "rightHandLandmarks": None}
                frames.append({**empty, f"{side.lower()}HandLandmarks": points} if ok else empty)
            elif layout == "hands":
                frames.append(
                    {
                        "multi_hand_landmarks": [{"landmark": points}],
                        "multi_handedness": [
                            {"classification": [{"index": 0, "score": 0.97, "label": side}]}
                        ],
                    }
                    if ok
                    else {}
                )
            else:
                frames.append(
                    {
                        "landmarks": [points] if ok else [],
                        "handedness": [[{"categoryName": side, "score": 0.97}]] if ok else [],
                    }
                )
        folder = _mkdir(root / names[i] / str(data.subjects[i]))
        (folder / f"{i}.json").write_text(json.dumps(frames))
    return root
