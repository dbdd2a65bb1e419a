"""2-D keypoint CSVs: a label and 42 values (21 landmarks × x, y) per row.

The layout of the widely forked MediaPipe keypoint-classifier project (``keypoint.csv``: no
header, ``class_index, x0, y0, ..., x20, y20``, values relative to the wrist and divided by the
row's largest absolute value) and its many variants: with or without a header, the label first
or last, labels as names or as class indices named by a label file (``*label*.csv`` beside the
data, one name per line). Keypoint k-1 becomes columns x{k}, y{k} (MediaPipe's landmark order).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.labels import read_label_file
from gesturelab.datasets.landmarks import LABEL_COLUMN, LANDMARK_COLUMNS_2D, N_LANDMARKS
from gesturelab.datasets.loading import (
    READ_ERRORS,
    LoadedLandmarks,
    check_file,
    read_error,
    validate_table,
)
from gesturelab.datasets.loading import _open_text as open_text
from gesturelab.errors import LandmarkDataError

N_VALUES = N_LANDMARKS * 2
LABEL_NAMES = ("label", "class", "class_id", "class_index", "gesture", "target", "y")
INTEGER = re.compile(r"^[+-]?\d+$")


def sniff(path: Path) -> bool:
    """A file whose first row has 43 fields: 42 values and a label."""
    first = first_row(path)
    return first is not None and len(first[0]) == N_VALUES + 1


def first_row(path: Path):
    """(fields, delimiter) of the first non-blank row, or None if the file is not text."""
    try:
        with open_text(path) as handle:
            for line in handle:
                if line.strip():
                    return _split(line)
    except (*READ_ERRORS, LandmarkDataError):
        return None
    return None


def _split(line: str):
    """The fields of a row and its delimiter: whichever of , ; tab gives 43 fields (a file
    saved with ';' writes decimal commas, so ';' and tab are tried before ',')."""
    for delimiter in (";", "\t", ","):
        fields = next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter))
        if len(fields) == N_VALUES + 1:
            return fields, delimiter
    return next(csv.reader([line.rstrip("\r\n")])), ","


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def _is_header(row) -> bool:
    """Column names, not a hand: most cells are words, or one of them names the label, or the
    cells count columns (pandas writes 0,1,...,42 over an unnamed table). A data row with a
    bad cell or two stays a row, and is judged (and quarantined) as one."""
    cells = [c.strip() for c in row]
    if any(c.lower() in LABEL_NAMES for c in cells[:1] + cells[-1:]):
        return True
    if cells in ([str(i) for i in range(len(cells))], [str(i + 1) for i in range(len(cells))]):
        return True
    return sum(not _is_number(c) for c in cells) > len(cells) // 2


def _looks_like_labels(cells) -> bool:
    """Integers (class indices) or words: not the decimals coordinates are written as."""
    return all(INTEGER.match(c.strip()) or not _is_number(c.strip()) for c in cells)


def find_label_file(path: Path) -> Path | None:
    """The label file beside a keypoint CSV: the one ``*label*.csv|txt`` there, preferring a
    name that starts with the data file's stem (keypoint.csv -> keypoint_classifier_label.csv)."""
    chosen = label_file_candidates(path)
    return chosen[0] if len(chosen) == 1 else None


def label_file_candidates(path: Path) -> list[Path]:
    candidates = sorted(
        p
        for p in path.parent.iterdir()
        if p.is_file()
        and p != path
        and "label" in p.name.lower()
        and p.suffix.lower() in (".csv", ".txt")
    )
    preferred = [p for p in candidates if p.name.lower().startswith(path.stem.lower())]
    return preferred or candidates


def read(
    path,
    *,
    classes=None,
    labels=None,
    label_column: str | None = None,
    quarantine_dir=config.QUARANTINE_DIR,
    strict: bool = False,
    verbose: bool = True,
    **_,
) -> LoadedLandmarks:
    """Read and validate a keypoint CSV (see the module docstring).

    labels: a label file naming class indices (default: the one found beside the file).
    label_column: "first" or "last" (default: detected from the values).
    Rows with another number of values, or a label index the label file does not name, are
    quarantined with their line; other checks are the landmark CSV's.
    """
    path = check_file(path)
    records, lines, delimiter = _read_records(path)
    if not records:
        raise LandmarkDataError(path, "no rows")
    notes = []
    header = None
    if _is_header(records[0]):
        header, records, lines = records[0], records[1:], lines[1:]
        if not records:
            raise LandmarkDataError(path, "no data rows after the header")
    position = _label_position(path, header, records, label_column)
    notes.append(
        f"label in the {position} column, {N_VALUES} values (21 landmarks × x, y), "
        + ("a header line" if header else "no header")
    )

    reasons: list[list[str]] = [[] for _ in records]
    values, label_cells = [], []
    for i, row in enumerate(records):
        if len(row) != N_VALUES + 1:
            reasons[i].append(
                f"{len(row)} fields where a label and {N_VALUES} values belong "
                f"({N_LANDMARKS} landmarks × x, y)"
            )
            row = (list(row) + [""] * (N_VALUES + 1))[: N_VALUES + 1]  # kept for the file
        label_cells.append(row[0] if position == "first" else row[-1])
        values.append(row[1:] if position == "first" else row[:-1])
    raw = pd.DataFrame(values, columns=list(LANDMARK_COLUMNS_2D), dtype=object)
    label_cells = [c.strip() for c in label_cells]

    names = None
    index_labels = all(INTEGER.match(c) for c in label_cells if c)
    if labels is None and index_labels:
        labels = find_label_file(path)
    if labels is not None:
        names = read_label_file(labels)
        notes.append(f"class indices named by {Path(labels).name} ({len(names)} names)")
        label_cells = [
            _name(c, names, Path(labels).name, reasons[i]) for i, c in enumerate(label_cells)
        ]
    elif index_labels:
        found = label_file_candidates(path)
        notes.append(
            "labels are class indices and no label file was found: classes are named by their index"
            if not found
            else f"labels are class indices; {len(found)} label files beside the data "
            f"({', '.join(p.name for p in found)}): choose one with --labels"
        )
    raw[LABEL_COLUMN] = label_cells
    return validate_table(
        path,
        raw,
        np.asarray(lines),
        dims=2,
        classes=classes if classes is not None else names,
        decimal_comma=delimiter != ",",
        reasons=reasons,
        quarantine_dir=quarantine_dir,
        strict=strict,
        verbose=verbose,
        format="keypoint-csv",
        notes=notes,
    )


def _name(cell: str, names: list[str], file_name: str, reasons: list[str]) -> str:
    if INTEGER.match(cell):
        index = int(cell)
        if 0 <= index < len(names):
            return names[index]
        reasons.append(
            f"label index {index} has no name in {file_name} "
            f"({len(names)} names: indices 0-{len(names) - 1})"
        )
        return ""
    if cell in names or not cell:
        return cell
    reasons.append(f"label {cell[:30]!r} is neither a class index nor a name of {file_name}")
    return ""


def _label_position(path, header, records, label_column) -> str:
    if label_column is not None:
        if label_column not in ("first", "last"):
            raise LandmarkDataError(
                path, f"label column must be 'first' or 'last', not {label_column!r}"
            )
        return label_column
    if header is not None and len(header) == N_VALUES + 1:
        first, last = header[0].strip().lower(), header[-1].strip().lower()
        if first in LABEL_NAMES and last not in LABEL_NAMES:
            return "first"
        if last in LABEL_NAMES and first not in LABEL_NAMES:
            return "last"
    rows = [r for r in records if len(r) == N_VALUES + 1][:500]
    if not rows:
        raise LandmarkDataError(
            path,
            f"no row has a label and {N_VALUES} values ({len(records[0])} fields in the first)",
            line=1,
        )
    first = _looks_like_labels(r[0] for r in rows)
    last = _looks_like_labels(r[-1] for r in rows)
    if first != last:
        return "first" if first else "last"
    raise LandmarkDataError(
        path,
        "cannot tell whether the label is the first or the last column (both look like "
        + ("labels" if first else "coordinates")
        + "); say which with --label-column first|last",
    )


def _read_records(path: Path):
    """Every non-blank row, the file line it starts on, and the delimiter."""
    try:
        with open_text(path) as handle:
            first = None
            for line in handle:
                if line.strip():
                    first = line
                    break
            delimiter = _split(first)[1] if first else ","
            handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter)
            records, lines = [], []
            start = 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    records.append(row)
                    lines.append(start)
                start = reader.line_num + 1
    except READ_ERRORS as exc:
        raise read_error(path, exc) from None
    return records, lines, delimiter
