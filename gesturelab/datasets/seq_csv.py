"""Per-frame landmark CSVs of sequences: one row per frame, a sequence id column, a label.

What ``extract`` writes for a video (x1,y1,z1,...,z21, source, frame, hand_index, ...) with a
sequence column added, and what people log from a webcam loop::

    sequence,frame,label,subject,x1,y1,z1,...,x21,y21,z21

The sequence column is any of ``SEQUENCE_COLUMNS``; ``frame`` (optional) orders the rows of a
sequence, and a frame number missing between its first and last is a frame without a hand
(extract writes no row for one). A second hand in a frame (``hand_index`` > 0, or the same
frame twice) is not used, and listed. A bad cell (text, empty, infinite) masks its frame and is
listed with its line and column. 2-D files (x, y only) get z = 0, said in the notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gesturelab.datasets.seq_common import SequenceCollector
from gesturelab.errors import LandmarkDataError
from gesturelab.landmarks import MAX_ABS_COORDINATE, N_LANDMARKS, columns_dims, landmark_columns
from gesturelab.loading import _read_rows, file_fingerprint

SEQUENCE_COLUMNS = ("sequence", "sequence_id", "seq", "seq_id", "clip", "clip_id", "sample_id")
LABEL_COLUMNS = ("label", "gesture", "class")
SUBJECT_COLUMNS = ("subject", "user_id", "user", "participant", "signer", "person")
SUFFIXES = (".csv", ".tsv", ".txt", ".gz")


def _find(header: list[str], names) -> int | None:
    lowered = [h.strip().lower() for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def sniff(path: Path) -> bool:
    from gesturelab.datasets.keypoint_csv import first_row

    if not (path.is_file() and path.suffix.lower() in SUFFIXES):
        return False
    first = first_row(path)
    if first is None:
        return False
    header = [c.strip() for c in first[0]]
    return columns_dims(header) is not None and _find(header, SEQUENCE_COLUMNS) is not None


def read(path, *, classes=None, quarantine_dir=None, verbose=True, frame_rate=None, **_):
    path = Path(path)
    header, rows, lines, _ = _read_rows(path)
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
    subject_at = _find(header, SUBJECT_COLUMNS)
    frame_at = _find(header, ("frame", "frame_index", "frame_id", "timestamp"))
    hand_at = _find(header, ("hand_index",))
    source_at = _find(header, ("source",))
    names = list(landmark_columns(dims))
    coord_at = [header.index(c) for c in names]
    collector = SequenceCollector(path, "sequence-csv", classes)

    values = np.full((len(rows), len(names)), np.nan, dtype=np.float64)
    for r, row in enumerate(rows):
        for c, at in enumerate(coord_at):
            text = row[at].strip()
            try:
                values[r, c] = float(text)
            except ValueError:
                values[r, c] = np.nan
    bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_COORDINATE)
    empty_row = np.array([all(not row[at].strip() for at in coord_at) for row in rows], bool)

    # Rows grouped by sequence id in the order the ids first appear.
    order: dict[str, list[int]] = {}
    for r, row in enumerate(rows):
        order.setdefault(row[seq_at].strip(), []).append(r)
    for seq_id, members in order.items():
        _collect(
            collector,
            path,
            seq_id,
            members,
            rows,
            lines,
            values,
            bad,
            empty_row,
            names,
            label_at,
            subject_at,
            frame_at,
            hand_at,
            source_at,
            header,
        )
    notes = [
        f"one row per frame, sequences by column {header[seq_at]!r}, labels by "
        f"{header[label_at]!r}"
        + (f", subjects by {header[subject_at]!r}" if subject_at is not None else "")
        + (f", frames ordered by {header[frame_at]!r}" if frame_at is not None else "")
    ]
    if dims == 2:
        notes.append("2-D landmarks (x, y): z set to 0")
    return collector.finish(
        file_fingerprint(path),
        frame_rate=frame_rate,
        notes=notes,
        quarantine_dir=quarantine_dir,
        verbose=verbose,
    )


def _collect(
    collector,
    path,
    seq_id,
    members,
    rows,
    lines,
    values,
    bad,
    empty_row,
    names,
    label_at,
    subject_at,
    frame_at,
    hand_at,
    source_at,
    header,
):
    labels = {rows[r][label_at].strip() for r in members}
    first_line = lines[members[0]]
    if len(labels) > 1:
        collector.problem(
            path, f"one sequence with several labels: {sorted(labels)}", seq_id, None, first_line
        )
        collector.seen += 1
        return
    subject = rows[members[0]][subject_at].strip() if subject_at is not None else None
    if subject_at is not None and len({rows[r][subject_at].strip() for r in members}) > 1:
        collector.problem(path, "one sequence with several subjects", seq_id, None, first_line)
        collector.seen += 1
        return
    kept: dict[int, int] = {}
    for position, r in enumerate(members):
        if hand_at is not None and rows[r][hand_at].strip() not in ("", "0"):
            collector.problem(
                path,
                "a second hand in this frame (the first hand is used)",
                seq_id,
                rows[r][frame_at] if frame_at is not None else position,
                lines[r],
            )
            continue
        if frame_at is None:
            frame = position
        else:
            text = rows[r][frame_at].strip()
            try:
                frame = int(float(text))
            except ValueError:
                collector.problem(
                    path, f"frame {text!r} is not a number (row not used)", seq_id, None, lines[r]
                )
                continue
        if frame in kept:
            collector.problem(
                path, "the same frame twice (the first row is used)", seq_id, frame, lines[r]
            )
            continue
        kept[frame] = r
    if not kept:
        collector.add(
            np.zeros((0, N_LANDMARKS, 3)),
            labels.pop(),
            source=path,
            sequence_id=seq_id,
            subject=subject,
            line=first_line,
        )
        return
    frames = sorted(kept)
    start = frames[0]
    dims = len(names) // N_LANDMARKS
    sequence = np.full((frames[-1] - start + 1, N_LANDMARKS, 3), np.nan, dtype=np.float32)
    for frame in frames:
        r = kept[frame]
        if empty_row[r]:
            continue  # a row written for a frame without a hand
        if bad[r].any():
            column = names[int(np.flatnonzero(bad[r])[0])]
            cell = rows[r][header.index(column)].strip()
            collector.problem(
                path,
                f"column {column!r}: {cell!r} is not a coordinate (frame masked)",
                seq_id,
                frame,
                lines[r],
            )
            continue
        point = values[r].reshape(N_LANDMARKS, dims)
        sequence[frame - start, :, :dims] = point
        if dims == 2:
            sequence[frame - start, :, 2] = 0.0
    source = rows[kept[start]][source_at].strip() if source_at is not None else ""
    collector.add(
        sequence,
        labels.pop(),
        source=source or f"{path.name}#{seq_id}",
        sequence_id=seq_id,
        subject=subject,
        line=first_line,
    )
