"""``.npz`` bundles of sequences, as dataset builders write them (the ASL backend's schema).

Keys: ``sequences`` (or ``X``): (n, T, 21, 3) or (n, T, 63) landmarks, padded; ``labels`` (or
``y``): class indices or names. Optional: ``masks`` (n, T) True where a frame has a hand,
``lengths`` (n,) real frames of each padded sequence, ``subjects`` (n,), ``classes`` (names of
the indices), ``sources`` (n,) the recording each sequence came from, ``frame_rate``. Without
masks, an all-zero frame is a frame without a hand. Arrays of Python objects (pickles) are
refused: loading one runs code from the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.landmarks import N_COORDS, N_LANDMARKS
from gesturelab.datasets.loading import file_fingerprint
from gesturelab.datasets.seq_common import SequenceCollector
from gesturelab.datasets.sequences import frame_mask
from gesturelab.errors import LandmarkDataError

SEQUENCE_KEYS = ("sequences", "X")
LABEL_KEYS = ("labels", "y")


def _keys(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return [n.removesuffix(".npy") for n in archive.namelist()]
    except (zipfile.BadZipFile, OSError):
        return []


def sniff(path: Path) -> bool:
    keys = _keys(path) if path.is_file() and path.suffix.lower() == ".npz" else []
    return any(k in keys for k in SEQUENCE_KEYS)


def _text(value) -> str:
    """A label, class name or subject as text (bytes strings decoded, not shown as b'...')."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _labels(path, key: str, labels: np.ndarray, n: int) -> np.ndarray:
    """One label per sequence: indices, names, one-hot rows (their argmax) or an (n, 1) column."""
    if labels.ndim == 2 and labels.shape == (n, 1):
        labels = labels[:, 0]
    elif labels.ndim == 2 and labels.shape[0] == n and labels.dtype.kind in "fiub":
        if not np.allclose(labels.sum(axis=1), 1) or labels.min() < 0:
            raise LandmarkDataError(path, f"{key!r} of shape {labels.shape} is not one-hot rows")
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise LandmarkDataError(
            path,
            f"{key!r} has shape {labels.shape}; expected one label "
            f"per sequence ({n},), or one-hot rows ({n}, classes)",
        )
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise LandmarkDataError(path, f"{key!r} holds fractions, not class indices")
        labels = labels.astype(np.int64)
    return labels


def _frame_rate(path, stored) -> float | None:
    """The stored frames per second (0 or negative: not known), or an error naming the value."""
    values = np.asarray(stored).reshape(-1)
    try:
        rate = float(values[0]) if len(values) == 1 else None
    except (TypeError, ValueError):
        rate = None
    if rate is None or not np.isfinite(rate):
        raise LandmarkDataError(
            path, f"'frame_rate' is {_text(stored)!r}, not one number of frames per second"
        )
    return rate if rate > 0 else None


def _lengths(path, lengths, frames: int) -> np.ndarray:
    """Each sequence's frame count: whole numbers from 0 to the padded length."""
    values = np.asarray(lengths)
    if values.ndim != 1 or values.dtype.kind not in "fiu":
        raise LandmarkDataError(
            path, f"'lengths' holds {values.dtype} of shape {values.shape}, not frame counts"
        )
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values > frames)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LandmarkDataError(
            path,
            f"'lengths' of sequence {i} is {values[i]!r}: frame counts are whole numbers from "
            f"0 to {frames} ({int(bad.sum())} such sequences)",
        )
    return values.astype(np.int64)


def _get(archive, path, names, required=True):
    name = next((n for n in names if n in archive.files), None)
    if name is None:
        if required:
            raise LandmarkDataError(
                path, f"no {' or '.join(names)} array (it has: {', '.join(archive.files)})"
            )
        return None, None
    try:
        return name, archive[name]
    except ValueError:
        raise LandmarkDataError(
            path,
            f"{name!r} is an array of Python objects (a pickle), which is not loaded: "
            "loading it would run code from the file; save numbers and strings instead",
        ) from None


def read(path, *, classes=None, quarantine_dir=None, verbose=True, frame_rate=None, **_):
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise LandmarkDataError(path, f"not a readable .npz archive ({exc})") from None
    with archive:
        seq_key, sequences = _get(archive, path, SEQUENCE_KEYS)
        label_key, labels = _get(archive, path, LABEL_KEYS)
        _, masks = _get(archive, path, ("masks", "mask"), required=False)
        _, lengths = _get(archive, path, ("lengths",), required=False)
        _, subjects = _get(archive, path, ("subjects", "subject", "signers"), required=False)
        _, names = _get(archive, path, ("classes", "class_names"), required=False)
        _, sources = _get(archive, path, ("sources",), required=False)
        _, frame_rate_stored = _get(archive, path, ("frame_rate",), required=False)
        _, hand_stored = _get(archive, path, ("hand",), required=False)
        _, hands = _get(archive, path, ("hands",), required=False)
        unused = sorted(
            set(archive.files)
            - {
                seq_key,
                label_key,
                "masks",
                "mask",
                "lengths",
                "subjects",
                "subject",
                "signers",
                "classes",
                "class_names",
                "sources",
                "frame_rate",
                "hand",
                "hands",
            }
        )
    if frame_rate is None and frame_rate_stored is not None:
        frame_rate = _frame_rate(path, frame_rate_stored)
    if sequences.dtype.kind not in "fiub":
        raise LandmarkDataError(path, f"{seq_key!r} holds {sequences.dtype}, not coordinates")
    with np.errstate(over="ignore"):  # 1e308 becomes inf: listed and masked per frame below
        sequences = np.asarray(sequences, dtype=np.float32)
    two = _text(hand_stored) == "both" if hand_stored is not None else False
    points = N_LANDMARKS * (2 if two else 1)  # 42 only in a bundle written with --hand both
    if sequences.ndim == 3 and sequences.shape[2] == points * N_COORDS:
        sequences = sequences.reshape(*sequences.shape[:2], points, N_COORDS)
    if sequences.ndim != 4 or sequences.shape[2:] != (points, N_COORDS):
        raise LandmarkDataError(
            path,
            f"{seq_key!r} has shape {sequences.shape}; expected "
            + (
                "(sequences, frames, 42, 3) or (sequences, frames, 126) ('hand' is both)"
                if two
                else "(sequences, frames, 21, 3) or (sequences, frames, 63)"
            ),
        )
    n = len(sequences)
    if n == 0 or sequences.shape[1] == 0:
        raise LandmarkDataError(
            path, f"{seq_key!r} has shape {sequences.shape}: no sequences, or no frames"
        )
    for key, array in (
        ("labels", labels),
        ("masks", masks),
        ("lengths", lengths),
        ("subjects", subjects),
        ("sources", sources),
    ):
        if array is not None and np.ndim(array) == 0:
            raise LandmarkDataError(path, f"{key!r} is one value, not one per sequence ({n})")
        if array is not None and len(array) != n:
            raise LandmarkDataError(path, f"{key!r} has {len(array)} entries for {n} sequences")
    if masks is not None and np.shape(masks)[:2] != sequences.shape[:2]:
        raise LandmarkDataError(
            path, f"'masks' has shape {np.shape(masks)}, the sequences {sequences.shape[:2]}"
        )
    if lengths is not None:
        lengths = _lengths(path, lengths, sequences.shape[1])
    labels = _labels(path, label_key, np.asarray(labels), n)
    if labels.dtype.kind in "iu":
        if names is None:
            names_list = [str(i) for i in range(int(labels.max()) + 1)]
        else:
            names_list = [_text(c) for c in np.asarray(names).reshape(-1)]
            twice = sorted({c for c in names_list if names_list.count(c) > 1})
            if twice:  # two label indices under one name would merge two classes
                raise LandmarkDataError(
                    path, f"'classes' names {', '.join(map(repr, twice))} more than once"
                )
        if labels.min() < 0 or labels.max() >= len(names_list):
            raise LandmarkDataError(
                path,
                f"label indices {labels.min()}..{labels.max()} but {len(names_list)} class names",
            )
        label_names = [names_list[i] for i in labels]
        if classes is None and names is not None:
            classes = names_list
    else:
        label_names = [_text(v) for v in labels]
    collector = SequenceCollector(path, "sequence-npz", classes)
    for i in range(n):
        sequence = sequences[i].copy()
        if lengths is not None:
            sequence = sequence[: int(lengths[i])]
        # zeros or masks mark "no hand" here: a NaN in a frame is damage, and is listed
        sequence = collector.mask_corrupt_frames(sequence, f"{path.name}#{i}", i, nan_too=True)
        if masks is not None:
            mask = np.asarray(masks[i], bool)[: len(sequence)]
            sequence[~mask] = np.nan
        if lengths is None:
            # Padded to the longest without lengths: the sequence ends at its last frame with
            # a hand (masked in, or not all zeros); the padding after it is no recording.
            present = np.flatnonzero(frame_mask(sequence))
            sequence = sequence[: present[-1] + 1] if len(present) else sequence[:0]
        source = str(sources[i]) if sources is not None else f"{path.name}#{i}"
        collector.add(
            sequence,
            label_names[i],
            source=source,
            sequence_id=i,
            subject=None if subjects is None else _text(subjects[i]),
            hand=_text(hands[i]) if hands is not None and i < len(hands) else None,
        )
    notes = [
        f"{n} sequences of up to {sequences.shape[1]} frames ({seq_key!r}, {label_key!r}"
        + (", masks" if masks is not None else ", all-zero frames = no hand")
        + (", lengths" if lengths is not None else "")
        + ")"
    ]
    if unused:
        notes.append(f"arrays not used: {', '.join(unused)}")
    # the hand choice of the reader that made this bundle (left hands already mirrored)
    hand = _text(hand_stored) if hand_stored is not None else None
    if hand is not None and hand not in config.HAND_CHOICES:
        raise LandmarkDataError(
            path, f"'hand' is {hand!r}, not one of {', '.join(config.HAND_CHOICES)}"
        )
    return collector.finish(
        file_fingerprint(path),
        frame_rate=frame_rate,
        notes=notes,
        quarantine_dir=quarantine_dir,
        verbose=verbose,
        hand=hand,
    )
