"""Read and validate landmark CSVs in the HaGRID convention (x1,y1,z1,...,x21,y21,z21,label).

A file that cannot be right (missing/unknown columns, no rows, mostly garbage) raises a
``LandmarkDataError`` naming the file, line and column. Bad rows in an otherwise good file are
set aside: each one is written with its reason to a quarantine CSV and counted, never dropped
silently. Line numbers are those of the file as an editor shows them (the header is line 1).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import (
    LABEL_COLUMN,
    LANDMARK_COLUMNS,
    LANDMARK_COLUMNS_2D,
    MAX_ABS_COORDINATE,
    METADATA_COLUMNS,
    N_LANDMARKS,
    columns_dims,
    landmark_columns,
    no_size,
)
from gesturelab.errors import LandmarkDataError


@dataclass
class LoadedLandmarks:
    """Validated rows, the rows set aside, and what identifies the file's content."""

    path: Path
    data: pd.DataFrame
    rejected: pd.DataFrame
    fingerprint: str
    lines: np.ndarray
    quarantine_path: Path | None = None
    counts: dict = field(default_factory=dict)
    dims: int = 3  # 3: x, y, z; 2: x, y only
    classes: list[str] = field(default_factory=list)  # sorted, or in the label file's order
    format: str = "landmark-csv"
    notes: list[str] = field(default_factory=list)  # how the reader read the file, in words
    name: str = ""  # the dataset's name: an imported dataset's, else the file's stem

    def __post_init__(self):
        self.name = self.name or Path(self.path).stem

    @property
    def columns(self) -> list[str]:
        """The coordinate columns of ``data``."""
        return list(landmark_columns(self.dims))

    @property
    def X(self) -> np.ndarray:
        """Landmarks as an (n, 21, 3) array, or (n, 21, 2) for 2-D data."""
        return self.data[self.columns].to_numpy(np.float64).reshape(-1, N_LANDMARKS, self.dims)

    @property
    def y(self) -> np.ndarray:
        return self.data[LABEL_COLUMN].to_numpy(dtype=object)

    def summary(self) -> str:
        c = self.counts
        text = (
            f"{self.path.name}: {c['rows_read']} rows read, {c['rows_kept']} kept, "
            f"{c['rows_rejected']} rejected (sha256 {self.fingerprint[:12]})"
        )
        if self.quarantine_path is not None:
            text += f"; rejected rows with reasons in {self.quarantine_path}"
        return text


def file_fingerprint(path) -> str:
    """SHA-256 of the file's bytes (of a folder: of its files' names and bytes, in order):
    the dataset identity recorded with every run and registered model."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            # the name's own bytes: UTF-8 for a UTF-8 name, and any other name as it is on disk
            digest.update(os.fsencode(file.relative_to(path).as_posix()) + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def replace_text(path, text: str) -> None:
    """``text`` into ``path`` through a hidden file renamed over it: a crash leaves the old
    file or the new one, never half of one."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text)
    os.replace(partial, path)


def load_landmarks_csv(
    path,
    *,
    classes: tuple[str, ...] | None = None,
    require_label: bool = True,
    quarantine_dir=config.QUARANTINE_DIR,
    strict: bool = False,
    max_rejected_fraction: float = 0.5,
    verbose: bool = True,
) -> LoadedLandmarks:
    """Load a landmark CSV with a header (x1,y1,z1,...,z21,label; 2-D files without z columns),
    validating every cell.

    classes: the allowed labels, in the order reports show them; others are quarantined.
        None accepts any non-empty label (the label set is then what the file holds).
    strict: raise on the first bad row instead of quarantining it.
    max_rejected_fraction: above this share of bad rows the file itself is taken as wrong.
    """
    path = check_file(path)
    header, rows, lines, delimiter = _read_rows(path)
    header = [c.strip() for c in header]
    dims = _check_columns(path, header, require_label)
    if not rows:
        raise LandmarkDataError(path, "no data rows after the header")
    raw = pd.DataFrame(rows, columns=header, dtype=object)
    return validate_table(
        path,
        raw,
        np.asarray(lines),
        dims=dims,
        classes=classes,
        decimal_comma=delimiter != ",",
        quarantine_dir=quarantine_dir,
        strict=strict,
        max_rejected_fraction=max_rejected_fraction,
        verbose=verbose,
    )


def check_file(path) -> Path:
    """The path of a readable, non-empty file, or an error saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise LandmarkDataError(path, "is a folder, not a landmark CSV file")
    if not path.is_file():
        raise LandmarkDataError(path, "file not found")
    if path.stat().st_size == 0:
        raise LandmarkDataError(path, "empty file (no header, no rows)")
    return path


def validate_table(
    path: Path,
    raw: pd.DataFrame,
    lines: np.ndarray,
    *,
    dims: int = 3,
    classes=None,
    decimal_comma: bool = False,
    reasons: list[list[str]] | None = None,
    quarantine_dir=config.QUARANTINE_DIR,
    strict: bool = False,
    max_rejected_fraction: float = 0.5,
    verbose: bool = True,
    format: str = "landmark-csv",
    notes=(),
    set_aside: pd.DataFrame | None = None,
) -> LoadedLandmarks:
    """Every reader's checks on a table of text cells: coordinates, labels, degenerate hands,
    duplicates; bad rows quarantined with their file line and reason.

    raw: the coordinate columns of ``landmark_columns(dims)``, optionally the label and
        metadata columns; lines: the file line of each row; reasons: problems a reader already
        found per row (a label index with no name); set_aside: what a reader rejected before
        there was a row (an image without a hand), listed with the rejected rows.
    """
    columns = landmark_columns(dims)
    if reasons is None:
        reasons = [[] for _ in range(len(raw))]
    known = np.array([bool(r) for r in reasons])  # rows a reader already set aside
    coords = np.empty((len(raw), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        text = raw[column].fillna("").astype(str).str.strip()
        if decimal_comma:  # files saved with a ';' or tab often write decimal commas too
            text = text.str.replace(",", ".", regex=False)
        values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
        coords[:, j] = values
        for i in np.flatnonzero(~np.isfinite(values) & ~known):
            reasons[i].append(_cell_problem(text.iat[i], column))
        with np.errstate(invalid="ignore"):
            huge = np.isfinite(values) & (np.abs(values) > MAX_ABS_COORDINATE)
        for i in np.flatnonzero(huge):
            reasons[i].append(
                f"implausible coordinate {text.iat[i][:30]} in column {column!r} "
                f"(beyond ±{MAX_ABS_COORDINATE:g})"
            )

    allowed = None if classes is None else [str(c) for c in classes]
    has_label = LABEL_COLUMN in raw.columns
    outside = np.zeros(len(raw), dtype=bool)  # rows of labels the caller left out on purpose
    if has_label:
        labels = raw[LABEL_COLUMN].fillna("").astype(str).str.strip()
        for i, label in enumerate(labels):
            if known[i] and not label:
                continue  # the reader already said why this row has no label
            if not label:
                reasons[i].append(f"empty label in column {LABEL_COLUMN!r}")
            elif allowed is not None and label not in allowed:
                outside[i] = not reasons[i]
                reasons[i].append(
                    f"unknown label {label!r} in column {LABEL_COLUMN!r} "
                    f"(expected one of {len(allowed)} classes)"
                )
    else:
        labels = None

    hands = coords.reshape(-1, N_LANDMARKS, dims)
    for i in np.flatnonzero(no_size(hands)):
        reasons[i].append("degenerate hand: wrist and middle-finger MCP coincide (no scale)")

    _mark_duplicates(coords, labels, reasons, lines)

    bad = np.array([bool(r) for r in reasons])
    if strict and bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LandmarkDataError(path, reasons[i][0], line=int(lines[i]))
    if bad.all() and outside.all():
        found = sorted(set(labels))
        raise LandmarkDataError(
            path,
            f"none of the file's labels ({_some(found)}) is in the given label set "
            f"({len(allowed)} classes: {_some(allowed, 5)})",
        )
    # A label set that leaves classes out is a choice, not a sign of a broken file.
    if bad.all() or (bad & ~outside).mean() > max_rejected_fraction:
        first = "; ".join(f"line {lines[i]}: {reasons[i][0]}" for i in np.flatnonzero(bad)[:3])
        raise LandmarkDataError(
            path,
            f"{bad.sum()} of {len(raw)} rows are invalid, so the file itself looks wrong. "
            f"First problems: {first}",
        )

    data = raw.loc[~bad].reset_index(drop=True)
    for column in data.columns:
        if column not in columns:
            data[column] = data[column].astype(object)
    data[list(columns)] = coords[~bad]
    found: list[str] = []
    if labels is not None:
        data[LABEL_COLUMN] = labels[~bad].astype(object).to_numpy()
        present = set(data[LABEL_COLUMN])
        found = [c for c in allowed if c in present] if allowed is not None else sorted(present)
    rejected = raw.loc[bad].copy()
    rejected.insert(0, "reason", ["; ".join(r) for r, b in zip(reasons, bad) if b])
    rejected.insert(0, "line", lines[bad])
    if set_aside is not None and len(set_aside):
        rejected = pd.concat([rejected, set_aside], ignore_index=True)

    quarantine_path = None
    if quarantine_dir is not None:
        target = quarantine_file(path, quarantine_dir)
        if len(rejected):
            quarantine_path = target
            quarantine_path.parent.mkdir(parents=True, exist_ok=True)
            rejected.to_csv(quarantine_path, index=False)
        else:
            target.unlink(missing_ok=True)  # a clean file must not keep its last rejects

    result = LoadedLandmarks(
        path=path,
        data=data,
        rejected=rejected.reset_index(drop=True),
        fingerprint=file_fingerprint(path),
        lines=lines[~bad],
        quarantine_path=quarantine_path,
        counts={
            "rows_read": len(raw),
            "rows_kept": int((~bad).sum()),
            "rows_rejected": int(bad.sum()),
        },
        dims=dims,
        classes=found,
        format=format,
        notes=list(notes),
    )
    if verbose:
        print(result.summary())
    return result


def quarantine_file(path, quarantine_dir) -> Path:
    """Where a file's rejected rows go: its name plus a digest of its full path, so that
    ``a/x.csv`` and ``b/x.csv`` never overwrite each other's rejects."""
    path = Path(path)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return Path(quarantine_dir) / f"{path.stem}.{digest}.rejected.csv"


GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
DELIMITERS = (",", ";", "\t")


def _open_text(path: Path):
    """The file as text: gzip-compressed CSVs are read as they are; archives are refused."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic.startswith(GZIP_MAGIC):
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    if magic == ZIP_MAGIC:
        raise LandmarkDataError(
            path, "a zip archive (or an .xlsx workbook); extract or export the CSV first"
        )
    return open(path, newline="", encoding="utf-8-sig")


def _delimiter(header_line: str) -> str:
    """Comma unless the header has none and uses ';' or a tab (spreadsheet exports do)."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    if counts[","] == 0 and max(counts.values()) > 0:
        return max(counts, key=counts.get)
    return ","


def _read_rows(path: Path):
    """Header, data rows, the file line each row starts on, and the delimiter.

    The csv module, not pandas, so that a row with too many or too few fields is an error
    naming its line instead of a silent shift of columns, and line numbers stay right after
    blank lines and quoted values that span lines. Blank lines are skipped.
    """
    try:
        with _open_text(path) as handle:
            delimiter = _delimiter(handle.readline())
            handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise LandmarkDataError(path, "empty file (no header, no rows)")
            rows, lines = [], []
            start = reader.line_num + 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    if len(row) != len(header):
                        raise LandmarkDataError(
                            path,
                            f"not a well-formed CSV: {len(row)} fields where the header has "
                            f"{len(header)}",
                            line=start,
                        )
                    rows.append(row)
                    lines.append(start)
                start = reader.line_num + 1
    except READ_ERRORS as exc:
        raise read_error(path, exc) from None
    return header, rows, lines, delimiter


# What reading a text file can raise beyond our own errors (zlib/EOF: a damaged gzip stream).
READ_ERRORS = (UnicodeDecodeError, csv.Error, OSError, EOFError, zlib.error)


def read_error(path, exc: Exception) -> LandmarkDataError:
    """One of ``READ_ERRORS`` as the error a user reads."""
    if isinstance(exc, UnicodeDecodeError):
        return LandmarkDataError(path, f"not a UTF-8 text file ({exc.reason})")
    if isinstance(exc, csv.Error):
        return LandmarkDataError(path, f"not a well-formed CSV: {exc}")
    return LandmarkDataError(path, f"cannot be read ({exc})")


def _check_columns(path: Path, columns: list[str], require_label: bool) -> int:
    """The file's landmark dimension (3, or 2 for a file with x, y and no z columns)."""
    if sum(_is_number(c) for c in columns) * 2 > len(columns):
        raise LandmarkDataError(
            path,
            f"{len(columns)} numbers where the column names belong: a landmark CSV "
            f"starts with the header x1,y1,z1,...,z21,{LABEL_COLUMN}; a headerless file of "
            "42 values and a label (keypoint.csv) is read by the keypoint-csv format",
            line=1,
        )
    seen = set()
    for c in columns:
        if c in seen:
            raise LandmarkDataError(path, "column appears twice", line=1, column=c)
        seen.add(c)
    dims = columns_dims(columns) or 3
    z_given = [c for c in LANDMARK_COLUMNS[2::3] if c in columns]
    if dims == 3 and set(LANDMARK_COLUMNS_2D) <= set(columns) and len(z_given) < 8:
        # Every x and y and a few z: a 2-D file with a stray column, not a 3-D file short of z.
        raise LandmarkDataError(
            path,
            f"z column(s) {', '.join(z_given)} in a file with every x and y but "
            f"{21 - len(z_given)} z columns missing: give all 21 z columns (3-D) or none (2-D)",
            line=1,
            column=z_given[0],
        )
    expected = set(landmark_columns(dims))
    missing = [c for c in landmark_columns(dims) if c not in columns]
    if not any(c in columns for c in LANDMARK_COLUMNS[2::3]):  # no z at all: a 2-D file
        missing = [c for c in LANDMARK_COLUMNS_2D if c not in columns] or missing
    if require_label and LABEL_COLUMN not in columns:
        missing.append(LABEL_COLUMN)
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        hint = ""
        if len(columns) == 1:
            hint = (
                f"; the header is one column ({columns[0][:40]!r}): separate the columns "
                "with ',', ';' or a tab"
            )
        raise LandmarkDataError(
            path, f"missing {len(missing)} column(s): {shown}{hint}", line=1, column=missing[0]
        )
    allowed = expected | {LABEL_COLUMN, *METADATA_COLUMNS}
    extra = [c for c in columns if c not in allowed]
    if extra:
        raise LandmarkDataError(
            path,
            f"unexpected column(s) {', '.join(map(repr, extra))}; a landmark CSV has "
            f"x1..z21 (or x1..y21 in 2-D), {LABEL_COLUMN!r} and optionally "
            f"{', '.join(METADATA_COLUMNS)}",
            line=1,
            column=extra[0],
        )
    return dims


def _some(names, n: int = 8) -> str:
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _cell_problem(text: str, column: str) -> str:
    if text == "":
        return f"empty value in column {column!r}"
    try:
        if "_" in text:  # float() accepts 1_000, pandas does not
            raise ValueError(text)
        value = float(text)
    except ValueError:
        return f"non-numeric value {text[:30]!r} in column {column!r}"
    if math.isnan(value):
        return f"NaN in column {column!r}"
    return f"infinite value {text!r} in column {column!r}"


def _mark_duplicates(coords, labels, reasons, lines) -> None:
    """Reject repeats of an earlier row; the first occurrence is kept."""
    clean = [i for i, r in enumerate(reasons) if not r]
    frame = pd.DataFrame(coords[clean])
    key_first = {}
    for position, key in enumerate(pd.util.hash_pandas_object(frame, index=False).to_numpy()):
        i = clean[position]
        if key not in key_first:
            key_first[key] = i
            continue
        first = key_first[key]
        if labels is None or labels.iat[first] == labels.iat[i]:
            reasons[i].append(f"duplicate of line {lines[first]}")
        else:
            reasons[i].append(
                f"same landmarks as line {lines[first]} but label {labels.iat[i]!r} "
                f"instead of {labels.iat[first]!r}"
            )
