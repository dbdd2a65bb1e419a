"""What every sequence reader shares: the checks a sequence passes, the quarantine, the result.

A reader hands each sequence it finds to a ``SequenceCollector`` as a (frames, 21, 3) array
with NaN rows for frames without a hand. The collector sets aside, with the reason, sequences
too short to be a gesture (fewer than ``MIN_FRAMES`` frames) or mostly without a hand (a hand
in less than ``MIN_HAND_FRACTION`` of the frames), and labels outside a requested class list;
per-frame problems (a bad cell, an all-zero hand block) are listed too, with their frame and
line, and the frame is masked. Nothing is dropped without a line in the quarantine file.

Groups for validation: the subjects when the data names them, else the source file each
sequence came from (a video, a CSV file, a sequence folder), so that no recording is split
between training and validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import (
    HAND_SLOTS,
    MAX_ABS_COORDINATE,
    N_COORDS,
    N_LANDMARKS,
    hands_in,
    mirror_hand,
)
from gesturelab.datasets.loading import quarantine_file
from gesturelab.datasets.sequences import (
    MIN_SEQUENCE_FRAMES,
    SHAPES,
    SequenceSet,
    frame_mask,
    hand_mask,
    point_mask,
)
from gesturelab.errors import path_text

MIN_FRAMES = MIN_SEQUENCE_FRAMES
MIN_HAND_FRACTION = 0.5
# A sequence whose frame numbers span more than this many times its frames is a unit mistake
# or a stray file (timestamps, a 2000000.npy beside frames 0..116), not a gesture with gaps.
MAX_SPAN_PER_FRAME = 10


def span_problem(numbers, n_frames: int) -> str | None:
    """Why frame numbers ``numbers`` of ``n_frames`` frames cannot be one recording, or None."""
    first, last = min(numbers), max(numbers)
    if last - first + 1 <= MAX_SPAN_PER_FRAME * n_frames + MIN_FRAMES:
        return None
    return (
        f"frame numbers {first}..{last} for {n_frames} frames: timestamps or another unit, or "
        "a stray file? Frame numbers count frames (0, 1, 2, ...)"
    )


QUARANTINE_COLUMNS = ("source", "sequence", "frame", "line", "kind", "reason")
# kind: "sequence" (set aside), "frame" (a frame or row masked or not used, the sequence kept),
# "file" (a file or folder that gave no sequence: an empty label folder, a clip not decoded).


@dataclass
class LoadedSequences:
    """The sequences of a dataset, what was set aside, and how the data was read."""

    data: SequenceSet
    rejected: pd.DataFrame
    path: Path
    format: str
    fingerprint: str
    group_by: str  # "subject" or "source file": what validation keeps apart
    notes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    quarantine_path: Path | None = None
    name: str = ""

    def __post_init__(self):
        self.name = self.name or Path(self.path).stem

    @property
    def classes(self) -> list[str]:
        return list(self.data.classes)

    def summary(self) -> str:
        return f"{self.path}: {self.data.summary()}, {self.counts['sequences_rejected']} set aside"


def subject_values(values) -> np.ndarray:
    """Subject ids as integers when every one is a whole number (so that ids written as text
    sort, and therefore split, as the same ids written as numbers), else as strings."""
    values = np.asarray([str(v).strip() for v in values], dtype=object)
    try:
        numbers = np.asarray([float(v) for v in values])
    except ValueError:
        return values.astype(str)
    if len(numbers) and np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64)
    return values.astype(str)


class SequenceCollector:
    """Sequences as a reader finds them, checked; ``finish`` makes the ``LoadedSequences``."""

    def __init__(self, path, format: str, classes=None):
        self.path, self.format = Path(path), format
        self.wanted = list(classes) if classes is not None else None
        self.sequences, self.labels, self.subjects, self.sources = [], [], [], []
        self.hands: list[str | None] = []
        self.problems: list[dict] = []
        self.seen = 0

    def problem(
        self, source, reason: str, sequence=None, frame=None, line=None, kind: str = "frame"
    ) -> None:
        self.problems.append(
            {
                "source": path_text(source),
                "sequence": path_text(sequence) if isinstance(sequence, str) else sequence,
                "frame": frame,
                "line": line,
                "kind": kind,
                "reason": reason,
            }
        )

    def set_aside(self, source, reason: str, sequence=None, line=None) -> None:
        """A sequence found but not kept (counted as read and rejected)."""
        self.seen += 1
        self.problem(source, reason, sequence, None, line, kind="sequence")

    def add(
        self, sequence, label, *, source, sequence_id=None, subject=None, line=None, hand=None
    ) -> bool:
        """Keep ``sequence`` ((frames, 21, 3), NaN where no hand; (frames, 42, 3) for two hands)
        unless a check sets it aside. hand: which hand it was ("left", mirrored by
        ``choose_hand``, "right", or "both"), if known."""
        self.seen += 1
        with np.errstate(over="ignore"):  # 1e308 becomes inf, and is listed below
            sequence = np.asarray(sequence, dtype=np.float32)
        label = path_text(str(label).strip())  # a folder name that is not UTF-8
        reason = None
        if sequence.ndim == 3 and sequence.shape[1:] in SHAPES:
            sequence = self.mask_corrupt_frames(sequence, source, sequence_id)
        if sequence.ndim != 3 or sequence.shape[1:] not in SHAPES:
            reason = f"frames of shape {sequence.shape[1:]}, not (21, 3) (or (42, 3), two hands)"
        elif self.sequences and sequence.shape[1:] != self.sequences[0].shape[1:]:
            reason = (
                f"frames of shape {sequence.shape[1:]} among sequences of "
                f"{self.sequences[0].shape[1:]}: one hand and two hands do not mix"
            )
        elif len(sequence) < MIN_FRAMES:
            reason = (
                f"{len(sequence)} frame(s): a gesture needs at least {MIN_FRAMES} "
                "(a sequence id given to too few rows?)"
            )
        elif self.wanted is not None and label not in self.wanted:
            reason = f"label {label!r} is not one of the {len(self.wanted)} requested classes"
        elif not label:
            reason = "no label"
        else:
            hands = frame_mask(sequence)
            if hands.mean() < MIN_HAND_FRACTION:
                reason = (
                    f"a hand in {int(hands.sum())} of {len(sequence)} frames (less than "
                    f"{MIN_HAND_FRACTION:.0%}): too little of the gesture to learn from"
                )
        if reason is not None:
            self.seen -= 1  # set_aside counts it
            self.set_aside(source, reason, sequence_id, line)
            return False
        sequence = np.where(point_mask(sequence), sequence, np.nan)
        self.sequences.append(sequence.astype(np.float32))
        self.labels.append(label)
        self.subjects.append(subject)
        self.sources.append(path_text(source))
        self.hands.append(hand)
        return True

    def mask_corrupt_frames(self, sequence, source, sequence_id, nan_too: bool = False):
        """Frames with an infinite, out-of-range (beyond ``MAX_ABS_COORDINATE``) or partly
        missing value, masked and each listed; with ``nan_too``, wholly NaN frames as well (a
        wholly NaN frame is "no hand" in our containers, a damaged frame in a file that marks
        no hand with zeros)."""
        if not len(sequence):
            return sequence  # no frames: ``add`` sets it aside for being too short
        hands = hands_in(sequence.shape[1])
        flat = sequence.reshape(len(sequence), hands, -1)  # each hand judged alone
        missing = np.isnan(flat)
        finite = np.where(np.isfinite(flat), flat, 0.0)
        bad = np.isinf(flat).any(axis=2) | (np.abs(finite) > MAX_ABS_COORDINATE).any(axis=2)
        bad |= missing.any(axis=2) if nan_too else missing.any(axis=2) & ~missing.all(axis=2)
        for frame, h in zip(*np.nonzero(bad), strict=True):
            which = f"{HAND_SLOTS[h]} hand " if hands > 1 else ""
            self.problem(
                source,
                f"non-finite, out-of-range or partly missing values ({which}frame masked)",
                sequence_id,
                int(frame),
            )
        if bad.any():
            sequence = sequence.copy()
            sequence[np.repeat(bad, N_LANDMARKS, axis=1)] = np.nan
        return sequence

    def finish(
        self,
        fingerprint: str,
        *,
        frame_rate: float | None = None,
        notes=(),
        quarantine_dir=config.QUARANTINE_DIR,
        verbose: bool = True,
        meta: dict | None = None,
        hand: str | None = None,
    ) -> LoadedSequences:
        """hand: the reader's hand choice (``config.HAND_CHOICES``) when the files had a
        handedness to choose by; None when they hold one hand as recorded."""
        from gesturelab.errors import LandmarkDataError

        rejected = pd.DataFrame(self.problems, columns=list(QUARANTINE_COLUMNS))
        quarantine_path = None
        if quarantine_dir is not None:
            # the static reader's naming (name plus a digest of the full path): a/x.npz and
            # b/x.npz keep their own rejects, and a clean read removes the last ones
            static = quarantine_file(self.path, quarantine_dir)
            target = static.with_name(
                static.name.replace(".rejected.csv", ".sequences.rejected.csv")
            )
            if len(rejected):
                quarantine_path = target
                quarantine_path.parent.mkdir(parents=True, exist_ok=True)
                rejected.to_csv(quarantine_path, index=False)
            else:
                target.unlink(missing_ok=True)
        if not self.sequences:
            where = f" (reasons in {quarantine_path})" if quarantine_path else ""
            first = f": {rejected['reason'].iat[0]}" if len(rejected) else ""
            raise LandmarkDataError(self.path, f"no usable sequence{first}{where}")
        found = sorted(set(self.labels), key=_label_order)
        classes = tuple(self.wanted) if self.wanted is not None else tuple(found)
        index = {c: i for i, c in enumerate(classes)}
        named = [s is not None and str(s).strip() != "" for s in self.subjects]
        notes = list(notes)
        if hand == "both":
            present = np.asarray([hand_mask(s).any(axis=0) for s in self.sequences])
            notes.append(
                "hand: both (right then left, each masked where it is missing); the right "
                f"hand in {int(present[:, 0].sum())} sequences, the left in "
                f"{int(present[:, 1].sum())}, both in {int(present.all(axis=1).sum())}"
            )
        elif hand:  # which hand the sequences kept use, counted once for every reader
            notes.append(
                f"hand: {hand}; the right hand in {self.hands.count('right')} sequences, the "
                f"left (mirrored) in {self.hands.count('left')}"
            )
        if all(named):
            groups, group_by = subject_values(self.subjects), "subject"
        else:
            groups, group_by = np.asarray(self.sources, dtype=str), "source file"
            if any(named):
                notes.append(
                    f"{named.count(False)} of {len(named)} sequences have no subject: "
                    "validation groups by source file instead of by subject"
                )
        data = SequenceSet(
            sequences=self.sequences,
            labels=np.asarray([index[label] for label in self.labels], dtype=np.int64),
            subjects=groups,
            classes=classes,
            meta={
                "source": np.asarray(self.sources, dtype=str),
                **(
                    {"hand": np.asarray(self.hands, dtype=str)}
                    if hand and all(h is not None for h in self.hands)
                    else {}
                ),
                **(meta or {}),
            },
            frame_rate=frame_rate,
            source=str(self.path),
            hand=hand,
        )
        kinds = rejected["kind"].value_counts() if len(rejected) else pd.Series(dtype=int)
        counts = {
            "sequences_read": self.seen,
            "sequences_kept": len(self.sequences),
            "sequences_rejected": self.seen - len(self.sequences),
            "frame_problems": int(kinds.get("frame", 0)),
            "file_problems": int(kinds.get("file", 0)),
        }
        loaded = LoadedSequences(
            data=data,
            rejected=rejected,
            path=self.path,
            format=self.format,
            fingerprint=fingerprint,
            group_by=group_by,
            notes=list(notes),
            counts=counts,
            quarantine_path=quarantine_path,
        )
        if verbose:
            print(loaded.summary() + (f"; reasons in {quarantine_path}" if quarantine_path else ""))
        return loaded


def _label_order(label: str):
    """Labels that are all whole numbers in numeric order (2 before 10), others as text."""
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


def hand_block(values: np.ndarray) -> np.ndarray:
    """(21, 3) from 63 values, NaN when the block is all zeros (the tutorials' missing hand)."""
    block = np.asarray(values, dtype=np.float32).reshape(N_LANDMARKS, N_COORDS)
    if not np.any(block):
        return np.full((N_LANDMARKS, N_COORDS), np.nan, dtype=np.float32)
    return block


def choose_hand(
    left, right, hand: str = config.DEFAULT_HAND, width: float = 1.0
) -> tuple[np.ndarray | None, str]:
    """One sequence's hand from its left and right hands ((frames, 21, 3) with NaN frames, or
    None where the file has no such hand), and which it was ("left"/"right"); None for the
    sequence when the chosen hand is in none of its frames.

    "both" gives the two hands as recorded, neither mirrored: (frames, 42, 3), the right hand's
    21 points then the left's (``HAND_SLOTS``), NaN where a hand is missing.

    "right"/"left" take that hand; "dominant" the one present in more frames (the right on a
    tie, so that a file with one hand gives that hand). A left hand comes back mirrored into
    the right hand's frame (``mirror_hand``; ``width`` 1 for image-normalised coordinates, the
    image width for pixels): left-handed people reach the model as right-handed people do,
    and the predictor mirrors a left hand the same way.
    """
    if hand not in config.HAND_CHOICES:
        raise ValueError(f"hand must be one of {', '.join(config.HAND_CHOICES)}, not {hand!r}")

    def present(frames) -> int:
        return 0 if frames is None else int(frame_mask(frames).sum())

    if hand == "both":
        if present(left) + present(right) == 0:
            return None, "right or left"
        frames = len(left if left is not None else right)
        nan = np.full((frames, N_LANDMARKS, N_COORDS), np.nan, np.float32)
        slots = {"right": right, "left": left}
        return np.concatenate(
            [nan if slots[side] is None else slots[side] for side in HAND_SLOTS], axis=1
        ), "both"
    if hand == "dominant":
        hand = "left" if present(left) > present(right) else "right"
    chosen = left if hand == "left" else right
    if present(chosen) == 0:  # not in the file, or never found (a file of NaN rows)
        return None, hand
    return (mirror_hand(chosen, width) if hand == "left" else chosen), hand
