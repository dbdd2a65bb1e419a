"""Per-frame landmark CSVs of sequences: one row per frame, a sequence id column, a label.

What ``extract`` writes for a video (x1,y1,z1,...,z21, source, frame, hand_index, ...) with a
sequence column added, and what people log from a webcam loop::

    sequence,frame,label,subject,x1,y1,z1,...,x21,y21,z21

The sequence column is any of ``SEQUENCE_COLUMNS``. A sequence is the rows of one id with one
label and one subject, so ids that restart for each class or person (0, 1, 2 per gesture) are
fine. ``frame`` (optional, whole numbers) orders a sequence's rows, and a frame number missing
between its first and last is a frame without a hand (extract writes no row for one); without a
frame column the rows are the frames in file order, and an id that comes back after other ids
starts a new recording. A second hand in a frame (``hand_index`` > 0, or the same frame twice)
is not used, and listed, unless the file names each hand's side: with a ``handedness`` column
(Left/Right, as ``extract`` writes) each row is placed by its side and ``hand`` chooses
(``seq_common.choose_hand``: dominant, right, left mirrored, or both), a frame being the rows of
one frame number (two hands a frame need the frame column). A bad cell (text, empty, infinite)
masks its frame and is listed with its line and column. Comma, semicolon or tab delimited,
decimal commas with ``;`` or tab, gzip, a byte-order mark. 2-D files (x, y only) get z = 0,
said in the notes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.landmarks import (
    MAX_ABS_COORDINATE,
    N_LANDMARKS,
    columns_dims,
    landmark_columns,
    side_of,
)
from gesturelab.datasets.loading import (
    READ_ERRORS,
    _delimiter,
    _open_text,
    _read_rows,
    file_fingerprint,
)
from gesturelab.datasets.seq_common import MIN_FRAMES, SequenceCollector, choose_hand, span_problem
from gesturelab.errors import LandmarkDataError

SEQUENCE_COLUMNS = ("sequence", "sequence_id", "seq", "seq_id", "clip", "clip_id", "sample_id")
LABEL_COLUMNS = ("label", "gesture", "class")
SUBJECT_COLUMNS = ("subject", "user_id", "user", "participant", "signer", "person")
FRAME_COLUMNS = ("frame", "frame_index", "frame_id", "frame_number")
SUFFIXES = (".csv", ".tsv", ".txt", ".gz")
SIDE_COLUMNS = ("handedness", "hand_side", "side", "hand_label")
SNIFF_ROWS = 2000


def _find(header: list[str], names) -> int | None:
    lowered = [h.strip().lower() for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def sniff(path: Path) -> bool:
    """A CSV with the landmark columns and a sequence id column whose ids repeat (rows per id
    in the first rows at least ``MIN_FRAMES`` at the median): a per-row id is a static file."""
    import csv

    if not (path.is_file() and path.suffix.lower() in SUFFIXES):
        return False
    try:
        with _open_text(path) as handle:
            first = handle.readline()
            reader = csv.reader([first], delimiter=_delimiter(first))
            header = [c.strip() for c in next(reader)]
            at = _find(header, SEQUENCE_COLUMNS)
            if columns_dims(header) is None or at is None:
                return False
            counts: dict[str, int] = {}
            for n, row in enumerate(csv.reader(handle, delimiter=_delimiter(first))):
                if n >= SNIFF_ROWS:
                    break
                if len(row) > at:
                    counts[row[at]] = counts.get(row[at], 0) + 1
    except (*READ_ERRORS, LandmarkDataError, StopIteration):
        return False
    return bool(counts) and float(np.median(list(counts.values()))) >= MIN_FRAMES


def _number(text: str, decimal_comma: bool) -> float:
    text = text.strip()
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return math.nan


def read(
    path,
    *,
    classes=None,
    quarantine_dir=None,
    verbose=True,
    frame_rate=None,
    hand: str = config.DEFAULT_HAND,
    hand_required: bool = False,
    **_,
):
    """hand_required: ``--hand`` was given, so a file without a handedness column is refused
    rather than read as one hand as recorded."""
    path = Path(path)
    header, rows, lines, delimiter = _read_rows(path)
    header = [h.strip() for h in header]
    dims = columns_dims(header)
    if dims is None:
        raise LandmarkDataError(
            path, "needs the landmark columns x1,y1,z1,...,x21,y21,z21 (or x1..y21 for 2-D)"
        )
    seq_at = _find(header, SEQUENCE_COLUMNS)
    if seq_at is None:
        raise LandmarkDataError(
            path,
            "no sequence id column: one row per frame needs a column naming its sequence "
            f"({', '.join(SEQUENCE_COLUMNS)}); a file of single hands is a static dataset",
        )
    label_at = _find(header, LABEL_COLUMNS)
    if label_at is None:
        raise LandmarkDataError(path, f"no label column ({', '.join(LABEL_COLUMNS)})")
    columns = {
        "sequence": seq_at,
        "label": label_at,
        "subject": _find(header, SUBJECT_COLUMNS),
        "frame": _find(header, FRAME_COLUMNS),
        "hand": _find(header, ("hand_index",)),
        "side": _find(header, SIDE_COLUMNS),
        "source": _find(header, ("source",)),
    }
    if columns["side"] is None and hand_required:
        raise LandmarkDataError(
            path,
            f"--hand {hand}: no handedness column ({', '.join(SIDE_COLUMNS)}) to choose by; "
            "without --hand each sequence is its first hand as recorded",
        )
    names = list(landmark_columns(dims))
    coord_at = [header.index(c) for c in names]
    decimal_comma = delimiter != ","
    values = np.array(
        [[_number(row[at], decimal_comma) for at in coord_at] for row in rows], dtype=np.float64
    ).reshape(len(rows), len(names))
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_COORDINATE)
    empty = np.array([all(not row[at].strip() for at in coord_at) for row in rows], bool)
    collector = SequenceCollector(path, "sequence-csv", classes)
    for key, members in _sequences(rows, columns).items():
        _collect(
            collector,
            path,
            key,
            members,
            rows,
            lines,
            values,
            bad,
            empty,
            names,
            header,
            columns,
            hand,
        )
    subject_at, frame_at = columns["subject"], columns["frame"]
    notes = [
        f"one row per frame, sequences by column {header[seq_at]!r} (with the label"
        + (f" and {header[subject_at]!r}" if subject_at is not None else "")
        + f"), labels by {header[label_at]!r}"
        + (
            f", frames ordered by {header[frame_at]!r}"
            if frame_at is not None
            else ", frames in file order"
        )
    ]
    if delimiter != ",":
        notes.append(f"delimiter {delimiter!r}, decimal commas read as points")
    if dims == 2:
        notes.append("2-D landmarks (x, y): z set to 0")
    if columns["side"] is not None:
        notes.append(f"hands placed by column {header[columns['side']]!r}")
    return collector.finish(
        file_fingerprint(path),
        frame_rate=frame_rate,
        notes=notes,
        quarantine_dir=quarantine_dir,
        verbose=verbose,
        hand=hand if columns["side"] is not None else None,
    )


def _sequences(rows, columns) -> dict[tuple, list[int]]:
    """Row indices of each sequence: one id, label and subject; without a frame column a
    contiguous run of rows (an id that comes back later is another recording)."""

    def key_of(row):
        subject = row[columns["subject"]].strip() if columns["subject"] is not None else ""
        return (row[columns["sequence"]].strip(), row[columns["label"]].strip(), subject)

    groups: dict[tuple, list[int]] = {}
    if columns["frame"] is not None:
        for r, row in enumerate(rows):
            groups.setdefault(key_of(row), []).append(r)
        return groups
    runs: dict[tuple, int] = {}
    previous = None
    for r, row in enumerate(rows):
        key = key_of(row)
        if key != previous:
            runs[key] = runs.get(key, -1) + 1
            previous = key
        groups.setdefault((*key, runs[key]), []).append(r)
    return groups


def _collect(
    collector, path, key, members, rows, lines, values, bad, empty, names, header, columns, hand
):
    seq_id, label, subject = key[:3]
    shown = seq_id if len(key) == 3 or key[3] == 0 else f"{seq_id} (again, recording {key[3] + 1})"
    first_line = lines[members[0]]
    frame_at, hand_at, side_at = columns["frame"], columns["hand"], columns["side"]
    kept: dict[tuple, int] = {}  # (frame, side) -> row; side None without a handedness column
    position = 0
    for r in members:
        side = None
        if side_at is not None:
            text = rows[r][side_at].strip()
            side = side_of(text)
            if side is None:
                collector.problem(
                    path,
                    f"column {header[side_at]!r}: {text!r} is not Left or Right (row not used)",
                    shown,
                    None,
                    lines[r],
                )
                continue
        elif hand_at is not None and rows[r][hand_at].strip() not in ("", "0"):
            collector.problem(
                path,
                "a second hand in this frame (the first hand is used)",
                shown,
                rows[r][frame_at] if frame_at is not None else position,
                lines[r],
            )
            continue
        if frame_at is None:
            frame = position
        else:
            text = rows[r][frame_at].strip()
            number = _number(text, False)
            if not math.isfinite(number) or number != int(number):
                collector.problem(
                    path,
                    f"column {header[frame_at]!r}: {text!r} is not a whole "
                    "frame number (row not used)",
                    shown,
                    None,
                    lines[r],
                )
                continue
            frame = int(number)
        if (frame, side) in kept:
            twice = "the same frame twice" if side is None else f"the {side} hand twice in a frame"
            collector.problem(path, f"{twice} (the first row is used)", shown, frame, lines[r])
            continue
        kept[(frame, side)] = r
        position += 1
    if not kept:
        collector.set_aside(path, "no row with a usable frame", shown, first_line)
        return
    frames = sorted({frame for frame, _ in kept})
    start, span = frames[0], frames[-1] - frames[0] + 1
    problem = span_problem(frames, len(frames))
    if problem is not None:
        collector.set_aside(path, problem, shown, first_line)
        return
    dims = len(names) // N_LANDMARKS
    hands: dict = {}  # side -> (span, 21, 3)
    for (frame, side), r in sorted(kept.items(), key=lambda item: item[0][0]):
        sequence = hands.setdefault(side, np.full((span, N_LANDMARKS, 3), np.nan, np.float32))
        if empty[r]:
            continue  # a row written for a frame without a hand
        if bad[r].any():
            column = names[int(np.flatnonzero(bad[r])[0])]
            cell = rows[r][header.index(column)].strip()
            collector.problem(
                path,
                f"column {column!r}: {cell!r} is not a coordinate (frame masked)",
                shown,
                frame,
                lines[r],
            )
            continue
        sequence[frame - start, :, :dims] = values[r].reshape(N_LANDMARKS, dims)
        if dims == 2:
            sequence[frame - start, :, 2] = 0.0
    side = None
    if side_at is None:
        sequence = hands[None]
    else:
        sequence, side = choose_hand(hands.get("left"), hands.get("right"), hand)
        if sequence is None:
            collector.set_aside(
                path, f"no {side} hand in its rows (--hand {hand})", shown, first_line
            )
            return
    source_at = columns["source"]
    first_row = min(kept.items(), key=lambda item: item[0][0])[1]
    source = rows[first_row][source_at].strip() if source_at is not None else ""
    collector.add(
        sequence,
        label,
        source=source or f"{path.name}#{label}/{shown}",
        sequence_id=shown,
        subject=subject if columns["subject"] is not None else None,
        line=first_line,
        hand=side,
    )
