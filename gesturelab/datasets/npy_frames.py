"""The frame-per-file numpy layout of the widespread action-recognition tutorial.

``ROOT/<action>/<sequence>/<frame>.npy``: one folder per action (the label), one per recorded
sequence, one ``.npy`` file per frame (``0.npy``, ``1.npy``, ...). A frame is one of:

- 63 values: one hand, 21 landmarks × (x, y, z);
- 126 values: left hand then right hand (21 × 3 each);
- 258 values: pose (33 × 4) then left and right hand;
- 1662 values: MediaPipe Holistic, pose (33 × 4), face (468 × 3), left hand, right hand.

The tutorial writes zeros for a hand MediaPipe did not find, so an all-zero hand block is a
missing hand. When a file has both hands, ``hand`` chooses (``config.HAND_CHOICES``; by default
the one present in more of the sequence's frames, the right on a tie), one hand all through,
never a switch mid-gesture, and a left hand is mirrored into the right hand's frame. Any other
length is refused with the lengths understood. The tutorial records no subjects; an optional
``ROOT/subjects.csv`` (columns action, sequence, subject) names them, and then validation keeps
subjects apart.
"""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.landmarks import MAX_ABS_COORDINATE
from gesturelab.datasets.loading import READ_ERRORS, _open_text, file_fingerprint, read_error
from gesturelab.datasets.seq_common import SequenceCollector, choose_hand, hand_block, span_problem
from gesturelab.errors import LandmarkDataError

HAND = 63
POSE = 33 * 4
FACE = 468 * 3
# Vector length -> (offset of the left hand, offset of the right hand); None: not in the vector.
LAYOUTS = {
    HAND: (None, 0),
    2 * HAND: (0, HAND),
    POSE + 2 * HAND: (POSE, POSE + HAND),
    POSE + FACE + 2 * HAND: (POSE + FACE, POSE + FACE + HAND),
}
LAYOUT_NAMES = {
    63: "one hand (21 × 3)",
    126: "left + right hand",
    258: "pose + both hands",
    1662: "Holistic: pose, face, left hand, right hand",
}
SUBJECTS_FILE = "subjects.csv"


def _number(path: Path) -> int | None:
    """The frame (or sequence) number a name ends with: 7.npy, frame_7.npy, 007.npy -> 7."""
    found = re.search(r"(\d+)$", path.stem)
    return int(found.group(1)) if found else None


def _frame_key(path: Path):
    number = _number(path)
    return (0, number, path.stem) if number is not None else (1, 0, path.stem)


def sequence_folders(root: Path) -> dict[str, list[Path]]:
    actions = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {
        a.name: sorted(
            (s for s in a.iterdir() if s.is_dir() and not s.name.startswith(".")), key=_frame_key
        )
        for a in actions
    }


def sniff(path: Path) -> bool:
    if not path.is_dir():
        return False
    for folders in sequence_folders(path).values():
        for folder in folders[:1]:
            if any(folder.glob("*.npy")):
                return True
    return False


def _subjects(root: Path) -> dict[tuple[str, str], str]:
    file = root / SUBJECTS_FILE
    if not file.is_file():
        return {}
    subjects = {}
    try:
        with _open_text(file) as handle:
            reader = csv.DictReader(handle)
            missing = {"action", "sequence", "subject"} - set(reader.fieldnames or [])
            if missing:
                raise LandmarkDataError(
                    file,
                    f"needs the columns action, sequence, subject "
                    f"(missing {', '.join(sorted(missing))})",
                    line=1,
                )
            for row in reader:
                cells = [row.get(c) for c in ("action", "sequence", "subject")]
                if None in cells or None in row:  # DictReader's fill for a short or long row
                    raise LandmarkDataError(
                        file,
                        f"{len(row) - (None in row) - cells.count(None)} fields where the "
                        f"header has {len(reader.fieldnames)}",
                        line=reader.line_num,
                    )
                action, sequence, subject = (c.strip() for c in cells)
                subjects[(action, sequence)] = subject
    except READ_ERRORS as exc:
        raise read_error(file, exc) from None
    return subjects


def read(
    path,
    *,
    classes=None,
    quarantine_dir=None,
    verbose=True,
    frame_rate=None,
    hand: str = config.DEFAULT_HAND,
    **_,
):
    root = Path(path)
    subjects = _subjects(root)
    collector = SequenceCollector(root, "npy-frames", classes)
    lengths_seen: dict[int, int] = {}
    for action, folders in sequence_folders(root).items():
        if not folders:
            collector.problem(
                root / action, "an action folder with no sequence folders", kind="file"
            )
        for folder in folders:
            files = sorted(folder.glob("*.npy"), key=_frame_key)
            vectors = []
            numbers = [_number(f) for f in files]
            numbered = files and None not in numbers and len(set(numbers)) == len(numbers)
            problem = span_problem(numbers, len(files)) if numbered else None
            if problem is not None:  # before a frame array as long as the span is made
                collector.set_aside(folder, problem, f"{action}/{folder.name}")
                continue
            if numbered:
                # A frame number with no file is a gap in the recording: masked, and listed.
                present = set(numbers)
                for missing in sorted(set(range(min(numbers), max(numbers) + 1)) - present):
                    collector.problem(
                        folder,
                        f"no file for frame {missing} (frame masked)",
                        f"{action}/{folder.name}",
                        missing,
                    )
                by_number = dict(zip(numbers, files, strict=True))
                files = [by_number.get(n) for n in range(min(numbers), max(numbers) + 1)]
            for file in files:
                if file is None:
                    vectors.append(None)
                    continue
                try:
                    vector = np.load(file, allow_pickle=False)
                    if not isinstance(vector, np.ndarray):  # a zip's bytes: np.load opened it
                        vector.close()
                        raise ValueError("an .npz archive, not one frame")
                    vector = vector.reshape(-1)
                    if not np.issubdtype(vector.dtype, np.number):
                        kind = {"U": "text", "S": "bytes", "b": "booleans"}.get(vector.dtype.kind)
                        raise ValueError(f"it holds {kind or vector.dtype}, not numbers")
                except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                    reason = "empty file" if isinstance(exc, EOFError) else exc
                    collector.problem(
                        file,
                        f"cannot be read as a .npy array of numbers ({reason}); frame masked",
                        f"{action}/{folder.name}",
                        file.stem,
                    )
                    vectors.append(None)
                    continue
                if len(vector) not in LAYOUTS:
                    understood = "; ".join(f"{n} ({what})" for n, what in LAYOUT_NAMES.items())
                    raise LandmarkDataError(
                        file, f"a frame of {len(vector)} values; understood lengths: {understood}"
                    )
                first = next((len(v) for v in vectors if v is not None), len(vector))
                if len(vector) != first:
                    collector.problem(
                        file,
                        f"{len(vector)} values where this sequence's frames "
                        f"have {first} (frame masked)",
                        f"{action}/{folder.name}",
                        file.stem,
                    )
                    vectors.append(None)
                    continue
                # zeros mark "no hand" in this layout: NaN, inf or 1e308 is a damaged frame
                if not (np.abs(vector) <= MAX_ABS_COORDINATE).all():
                    collector.problem(
                        file,
                        "non-finite or out-of-range values in the frame (frame masked)",
                        f"{action}/{folder.name}",
                        file.stem,
                    )
                    vectors.append(None)
                    continue
                lengths_seen[len(vector)] = lengths_seen.get(len(vector), 0) + 1
                vectors.append(vector)
            sequence, side = _hand_sequence(vectors, hand)
            if sequence is None:
                collector.set_aside(
                    folder,
                    f"no {side} hand in any frame (--hand {hand})",
                    f"{action}/{folder.name}",
                )
                continue
            collector.add(
                sequence,
                action,
                source=folder,
                sequence_id=f"{action}/{folder.name}",
                subject=subjects.get((action, folder.name)) if subjects else None,
                hand=side,
            )
    notes = [
        "frames of "
        + ", ".join(f"{n} values ({LAYOUT_NAMES[n]}) ×{k}" for n, k in sorted(lengths_seen.items()))
    ]
    # the hand note comes with the collector's counts; only vectors of both hands have one
    both = any(h is not None for h in collector.hands)
    notes.append(
        f"subjects from {SUBJECTS_FILE}"
        if subjects
        else "no subjects.csv: each sequence folder is its own group"
    )
    return collector.finish(
        file_fingerprint_tree(root),
        frame_rate=frame_rate,
        notes=notes,
        quarantine_dir=quarantine_dir,
        verbose=verbose,
        hand=hand if both else None,
    )


def _hand_sequence(vectors, hand: str = config.DEFAULT_HAND):
    """(frames, 21, 3) of the hand ``hand`` chooses (``choose_hand``: a left hand mirrored; both
    hands as (frames, 42, 3)) and which it was; for one-hand vectors (63 values) the hand as
    recorded and None."""
    if not vectors:
        return np.zeros((0, 21, 3), np.float32), None
    length = next((len(v) for v in vectors if v is not None), HAND)
    left_at, right_at = LAYOUTS[length]
    nan = np.full((21, 3), np.nan, np.float32)

    def blocks(at):
        return np.stack(
            [
                nan if v is None or len(v) != length else hand_block(v[at : at + HAND])
                for v in vectors
            ]
        )

    if left_at is None:
        return blocks(right_at), None
    sequence, side = choose_hand(blocks(left_at), blocks(right_at), hand)
    return sequence, side


def file_fingerprint_tree(root: Path) -> str:
    """A folder's fingerprint (names and bytes of every file)."""
    return file_fingerprint(root)
