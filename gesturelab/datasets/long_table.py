"""Long landmark tables: one row per landmark per frame, in parquet or CSV.

The layout of the Kaggle "Isolated Sign Language Recognition" corpus and the projects that copy
it::

    frame,row_id,type,landmark_index,x,y,z
    12,12-right_hand-0,right_hand,0,0.51,0.62,-0.03

``type`` names the part (``left_hand``, ``right_hand``, ``face``, ``pose``; or a ``hand``
column with Left/Right), a hand MediaPipe did not find is 21 rows of NaN, and a file is one
sequence. Column names are matched case-insensitively in any order (``LONG_COLUMNS``); ``z`` is
optional (2-D files get z = 0, said in the notes). Without a part column every row is one hand.

A dataset is any of:

- a folder with a manifest (``train.csv`` or any CSV with a path column and a label column,
  optionally a participant column): the Kaggle layout. Files the manifest names but the folder
  lacks are counted and listed (a partial download is normal), not fatal;
- a folder of label folders, ``ROOT/<label>/*.parquet|csv`` (``ROOT/<label>/<subject>/...``
  names the subject);
- one table that holds many sequences, with a sequence id column and a label column.

Participants (or subjects) become the validation groups. The hand a sequence uses follows
``hand`` (``config.HAND_CHOICES``; a left hand is mirrored into the right hand's frame); the
other parts are not needed for training and stay readable with ``read_parts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import HAND_SIDES, LANDMARK_NAMES, N_LANDMARKS
from gesturelab.datasets.loading import READ_ERRORS, _delimiter, _open_text, file_fingerprint
from gesturelab.datasets.seq_common import SequenceCollector, choose_hand, span_problem
from gesturelab.errors import LandmarkDataError

PARQUET = (".parquet", ".pq")
TEXT = (".csv", ".tsv", ".txt", ".gz")
# role -> the names a column of that role goes by (lower case, first match wins)
LONG_COLUMNS = {
    "frame": ("frame", "frame_index", "frame_idx", "frame_id", "frame_number", "frame_no"),
    # without a frame column, frames are the distinct times in order
    "time": ("timestamp", "timestamp_ms", "time", "time_ms", "ts", "t"),
    "part": ("type", "hand", "part", "handedness", "landmark_type", "body_part"),
    "index": (
        "landmark_index",
        "landmark",
        "landmark_id",
        "landmark_idx",
        "keypoint",
        "point",
        "joint",
        "index",
    ),
    "x": ("x",),
    "y": ("y",),
    "z": ("z",),
    "sequence": ("sequence_id", "sequence", "seq_id", "seq", "clip", "clip_id", "sample_id"),
    "label": ("sign", "label", "gesture", "class"),
    "subject": ("participant_id", "participant", "subject", "signer", "user_id", "user"),
}
MANIFEST_PATH = ("path", "file", "filename", "file_name", "file_path")


def _roles(columns) -> dict[str, str]:
    lowered = {str(c).strip().lower(): c for c in columns}
    found = {}
    for role, names in LONG_COLUMNS.items():
        hit = next((lowered[n] for n in names if n in lowered), None)
        if hit is not None:
            found[role] = hit
    return found


def _header(path: Path) -> list[str] | None:
    """The column names of a table file, or None when it is not a table we read."""
    try:
        if path.suffix.lower() in PARQUET:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if path.suffix.lower() in TEXT:
            with _open_text(path) as handle:
                line = handle.readline()
            return [c.strip() for c in line.rstrip("\r\n").split(_delimiter(line))]
    except (LandmarkDataError, *READ_ERRORS, ValueError):
        return None
    return None


def is_long_table(path: Path) -> bool:
    """A table with frame, landmark-index, x and y columns (wide files have x1..z21 instead)."""
    header = _header(path) if path.is_file() else None
    roles = set(_roles(header)) if header is not None else set()
    return {"index", "x", "y"} <= roles and bool(roles & {"frame", "time"})


def _manifest(root: Path) -> Path | None:
    """The root's manifest: train.csv, else the one CSV with a path and a label column."""
    candidates = sorted(root.glob("*.csv"), key=lambda p: (p.name != "train.csv", p.name))
    for file in candidates:
        header = [h.strip().lower() for h in (_header(file) or [])]
        if any(n in header for n in MANIFEST_PATH) and set(LONG_COLUMNS["label"]) & set(header):
            return file
    return None


def _tables_in(folder: Path):
    """The long-table files under ``folder``, lazily (sniffing stops at the first)."""
    for p in sorted(folder.rglob("*")):
        if (
            p.suffix.lower() in PARQUET + TEXT
            and not p.name.startswith(".")
            and p.is_file()
            and is_long_table(p)
        ):
            yield p


def sniff(path: Path) -> bool:
    if path.is_file():
        return is_long_table(path)
    if not path.is_dir():
        return False
    manifest = _manifest(path)
    if manifest is not None:  # a manifest of tables (one naming .json files is JSON's)
        rows = read_manifest(manifest)
        return bool(rows) and Path(rows[0].path).suffix.lower() in PARQUET + TEXT
    folders = (p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith("."))
    return any(next(_tables_in(f), None) is not None for f in folders)


def read_table(path) -> pd.DataFrame:
    """A long table as a DataFrame with a ``_line`` column (the file line of each row; for
    parquet the row number plus one), numbers where numbers belong; one-line errors."""
    path = Path(path)
    try:
        delimiter = ","
        if path.suffix.lower() in PARQUET:
            try:
                table = pd.read_parquet(path)
            except Exception as exc:  # pyarrow's errors have no common public base
                raise LandmarkDataError(path, f"not a readable parquet file ({exc})") from None
            table.insert(0, "_line", np.arange(2, len(table) + 2))
        else:
            with _open_text(path) as handle:
                line = handle.readline()
                handle.seek(0)
                delimiter = _delimiter(line)
                table = pd.read_csv(handle, sep=delimiter, skip_blank_lines=False, dtype=str)
            table.insert(0, "_line", np.arange(2, len(table) + 2))
            table = table[table.drop(columns="_line").notna().any(axis=1)]  # blank lines
    except READ_ERRORS as exc:
        from gesturelab.datasets.loading import read_error

        raise read_error(path, exc) from None
    except pd.errors.ParserError as exc:
        raise LandmarkDataError(path, f"not a well-formed CSV: {exc}") from None
    roles = _roles(table.columns)
    parts = [c for c in table.columns if str(c).strip().lower() in LONG_COLUMNS["part"]]
    if len(parts) > 1:  # e.g. type = "hand" beside hand = Left/Right: the one naming sides
        sided = [c for c in parts if _sides(table[c]).notna().any()]
        roles["part"] = (sided or parts)[0]
    notes = []
    if path.suffix.lower() not in PARQUET and delimiter != ",":
        # a spreadsheet export with ';' or tabs writes decimal commas (0,51): as sequence CSVs
        for role in ("x", "y", "z", "time"):
            if role in roles:
                table[roles[role]] = table[roles[role]].str.replace(",", ".", regex=False)
        notes.append(f"delimiter {delimiter!r}, decimal commas read as points")
    if "frame" not in roles and "time" in roles:
        times = pd.to_numeric(table[roles["time"]], errors="coerce")
        if "sequence" in roles:  # each recording's own clock
            times = times.groupby(table[roles["sequence"]].astype(str)).rank(method="dense")
        else:
            times = times.rank(method="dense")
        table[roles["time"]] = times - 1
        roles["frame"] = roles.pop("time")
        notes.append(
            f"no frame column: frames are the distinct values of {roles['frame']!r} in order"
        )
    roles.pop("time", None)
    missing = [r for r in ("frame", "index", "x", "y") if r not in roles]
    if missing:
        wanted = "; ".join(f"{r}: {' or '.join(LONG_COLUMNS[r][:4])}" for r in missing)
        hint = "; no column name is one we know: a file without a header?" if not roles else ""
        raise LandmarkDataError(
            path,
            "not a long landmark table (one row per landmark per frame): no column for "
            f"{wanted} (columns: {', '.join(map(str, table.columns[1:12]))}){hint}",
        )

    # only the columns a role names (another column could carry a role's name)
    table = table[["_line", *roles.values()]].rename(columns={v: k for k, v in roles.items()})
    table["index"] = _landmark_numbers(table["index"])
    table.attrs["notes"] = notes
    return table


NAMES = {name.replace("_", ""): i for i, name in enumerate(LANDMARK_NAMES)}


def _landmark_numbers(column: pd.Series) -> pd.Series:
    """Landmark indices; MediaPipe's names (``WRIST``, ``thumb_cmc``,
    ``HandLandmark.INDEX_FINGER_TIP``) become their numbers, for the files that write names."""
    if pd.api.types.is_numeric_dtype(column):
        return column
    text = column.astype(str).str.strip()
    if pd.to_numeric(text, errors="coerce").notna().mean() > 0.5:
        return column
    key = text.str.lower().str.rsplit(".", n=1).str[-1].str.replace(r"[\s_-]", "", regex=True)
    named = key.map(NAMES)
    return named.astype(object).where(named.notna(), column)


class _TableHands:
    """The hands of one long table (or one sequence of it): pivoted to frames."""

    def __init__(self, table: pd.DataFrame, path: Path, collector, sequence_id):
        self.path, self.collector, self.sequence_id = path, collector, sequence_id
        self.table = table
        self.dims = 3

    def _numbers(self, column: str) -> pd.Series:
        raw = self.table[column]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna() & (raw.astype(str).str.strip().str.lower() != "nan")
        if column in ("frame", "index"):
            bad |= values.notna() & (values != values.round())
            bad |= values.isna()
        for line in self.table.loc[bad, "_line"].head(50):
            value = raw[self.table["_line"] == line].iloc[0]
            self.collector.problem(
                self.path,
                f"column {column!r}: {value!r} is not a "
                + ("whole number" if column in ("frame", "index") else "number")
                + " (row not used)",
                self.sequence_id,
                line=int(line),
            )
        if bad.sum() > 50:
            self.collector.problem(
                self.path,
                f"column {column!r}: {int(bad.sum()) - 50} more such cells (rows not used)",
                self.sequence_id,
            )
        return values.where(~bad)

    def hands(self) -> tuple[np.ndarray | None, np.ndarray | None, int]:
        """(left, right, first frame): (frames, 21, 3) NaN where there was no hand."""
        table = self.table
        frame, index = self._numbers("frame"), self._numbers("index")
        x, y = self._numbers("x"), self._numbers("y")
        has_z = "z" in table.columns
        z = self._numbers("z") if has_z else pd.Series(0.0, index=table.index)
        if "part" in table.columns:
            side = _sides(table["part"])
            if side.isna().all():
                parts = table["part"].astype(str).str.strip().str.lower()
                seen = ", ".join(sorted(parts.unique())[:6])
                raise LandmarkDataError(
                    self.path,
                    f"column 'part' names no hand (values: {seen}); hands are "
                    "left_hand/right_hand or Left/Right",
                )
        else:
            side = pd.Series("right", index=table.index, dtype=object)
        usable = frame.notna() & index.notna() & side.notna()
        frames_all = frame[frame.notna()].astype(np.int64)
        if frames_all.empty:
            return None, None, 0
        numbers = sorted(set(frames_all))
        problem = span_problem(numbers, len(numbers))
        if problem is not None:
            raise LandmarkDataError(self.path, problem)
        hand_rows = usable & side.isin(("left", "right"))
        coords = pd.concat([x, y, z], axis=1)
        present = coords.notna()
        if has_z:
            mixed = hand_rows & present.iloc[:, :2].all(axis=1) & ~present.iloc[:, 2]
            if mixed.any() and present.iloc[:, 2][hand_rows].any():
                first = int(table.loc[mixed, "_line"].iloc[0])
                raise LandmarkDataError(
                    self.path,
                    f"mixed 2-D and 3-D rows: {int(mixed.sum())} hand rows have x and y but no z "
                    "while others have z; write all rows with z or none",
                    line=first,
                )
            if not present.iloc[:, 2][hand_rows].any():
                self.dims = 2
                z = pd.Series(0.0, index=table.index)
        else:
            self.dims = 2
        index_values = index[hand_rows].astype(np.int64)
        offset = 0
        if len(index_values) and index_values.min() == 1 and index_values.max() == N_LANDMARKS:
            offset = 1  # landmarks numbered 1..21
        outside = hand_rows & ((index - offset < 0) | (index - offset >= N_LANDMARKS))
        if outside.any():
            first = table.loc[outside].iloc[0]
            raise LandmarkDataError(
                self.path,
                f"landmark index {first['index']} outside 0..20 on a hand row "
                "(a hand has 21 landmarks)",
                line=int(first["_line"]),
            )
        first_frame, n_frames = numbers[0], numbers[-1] - numbers[0] + 1
        result = {}
        for name in ("left", "right"):
            rows = hand_rows & (side == name)
            if not rows.any():
                result[name] = None
                continue
            keys = pd.DataFrame(
                {
                    "f": frame[rows].astype(np.int64) - first_frame,
                    "i": index[rows].astype(np.int64) - offset,
                }
            )
            twice = keys.duplicated(keep="first")
            for f in sorted(set(keys.loc[twice, "f"]))[:50]:
                self.collector.problem(
                    self.path,
                    f"{name} hand: a landmark given twice in frame {f + first_frame} "
                    "(the first kept)",
                    self.sequence_id,
                    int(f + first_frame),
                )
            keys = keys[~twice]
            values = np.full((n_frames, N_LANDMARKS, 3), np.nan, np.float32)
            block = np.column_stack([x[rows], y[rows], z[rows]])[~twice.to_numpy()]
            with np.errstate(over="ignore"):  # 1e308 becomes inf: the collector lists it
                values[keys["f"].to_numpy(), keys["i"].to_numpy()] = block
            result[name] = values
        return result["left"], result["right"], first_frame


def _sides(column: pd.Series) -> pd.Series:
    """'left'/'right' for the rows of a hand, None for other parts (face, pose, ...)."""
    parts = column.astype(str).str.strip().str.lower().str.replace(r"[ -]", "_", regex=True)
    side = pd.Series(None, index=column.index, dtype=object)
    for name, values in HAND_SIDES.items():
        side[parts.isin(values)] = name
    return side


def read_parts(path) -> dict[str, np.ndarray]:
    """Every part of a long table file as (frames, points, 3) arrays, NaN where missing:
    ``{"face": ..., "left_hand": ..., "pose": ..., "right_hand": ...}`` for a Kaggle file."""
    table = read_table(path)
    frame = pd.to_numeric(table["frame"], errors="coerce")
    index = pd.to_numeric(table["index"], errors="coerce")
    parts = table["part"].astype(str) if "part" in table.columns else pd.Series("hand", table.index)
    ok = frame.notna() & index.notna()
    first, n_frames = int(frame[ok].min()), int(frame[ok].max() - frame[ok].min() + 1)
    coords = np.column_stack(
        [
            pd.to_numeric(table[c], errors="coerce") if c in table else np.zeros(len(table))
            for c in ("x", "y", "z")
        ]
    )
    out = {}
    for name in sorted(parts[ok].unique()):
        rows = (ok & (parts == name)).to_numpy()
        points = int(index[rows].max()) + 1
        values = np.full((n_frames, points, 3), np.nan, np.float32)
        values[frame[rows].astype(int) - first, index[rows].astype(int)] = coords[rows]
        out[name] = values
    return out


def file_units(root: Path, collector, files_in=None) -> tuple[list[dict], list[str]]:
    """What to read, for any format of a file per sequence: [{file, label, subject, sequence}]
    from ``root`` itself (one file), its manifest, or its label folders (``files_in(folder)``
    lists a folder's files of the format; default: long tables); and notes on where the labels
    came from. Files a manifest names but the folder lacks are listed, not fatal."""
    files_in = files_in or _tables_in
    if root.is_file():
        return [{"file": root, "label": None, "subject": None, "sequence": None}], []
    manifest = _manifest(root)
    if manifest is not None:
        table = read_manifest(manifest)
        units, missing = [], 0
        for row in table:
            file = root / str(row.path).strip()
            if not file.is_file():
                missing += 1
                collector.problem(
                    file,
                    f"named in {manifest.name} (line {row.line}) but not found",
                    str(row.sequence) if row.sequence is not None else None,
                    line=row.line,
                    kind="file",
                )
                continue
            units.append(
                {"file": file, "label": row.label, "subject": row.subject, "sequence": row.sequence}
            )
        if not units:
            first = f" (the first: {table[0].path})" if table else ""
            raise LandmarkDataError(
                root, f"none of the {len(table)} files named in {manifest.name} is here{first}"
            )
        notes = [f"labels and participants from {manifest.name} ({len(table)} files named)"]
        if missing:
            notes.append(
                f"{missing} files named in {manifest.name} are not in the folder (listed with "
                "the set-aside sequences): a partial download?"
            )
        return units, notes
    units = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for label, files in ((f.name, list(files_in(f))) for f in folders):
        for file in files:
            inner = file.relative_to(root / label).parts
            subject = inner[0] if len(inner) > 1 else None
            units.append({"file": file, "label": label, "subject": subject, "sequence": None})
    return units, ["labels from folder names"]


@dataclass(frozen=True)
class ManifestRow:
    path: str
    label: str
    subject: str | None
    sequence: str | None
    line: int


def read_manifest(file: Path) -> list[ManifestRow]:
    """The manifest's rows (path, label, subject, sequence id, line); refuses rows without a
    path or a label with their line."""
    import csv

    from gesturelab.datasets.loading import read_error

    rows = []
    try:
        with _open_text(file) as handle:
            line = handle.readline()
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=_delimiter(line))
            lowered = {(h or "").strip().lower(): h for h in reader.fieldnames or []}

            def column(names):
                return next((lowered[n] for n in names if n in lowered), None)

            path_col, label_col = column(MANIFEST_PATH), column(LONG_COLUMNS["label"])
            subject_col = column(LONG_COLUMNS["subject"])
            sequence_col = column(LONG_COLUMNS["sequence"])
            for row in reader:
                if None in row or None in row.values():
                    raise LandmarkDataError(
                        file,
                        f"{len(row) - (None in row)} fields where the header has "
                        f"{len(reader.fieldnames)}",
                        line=reader.line_num,
                    )
                path, label = row[path_col].strip(), row[label_col].strip()
                if not path:
                    raise LandmarkDataError(file, "no file path", line=reader.line_num)
                rows.append(
                    ManifestRow(
                        path,
                        label,
                        row[subject_col].strip() if subject_col else None,
                        row[sequence_col].strip() if sequence_col else None,
                        reader.line_num,
                    )
                )
    except READ_ERRORS as exc:
        raise read_error(file, exc) from None
    return rows


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
    collector = SequenceCollector(root, "long-table", classes)
    units, notes = file_units(root, collector)
    dims_seen: dict[int, Path] = {}
    for unit in units:
        try:
            found = list(_unit_sequences(unit, collector, notes, single=len(units) == 1))
        except LandmarkDataError as exc:
            if len(units) == 1:
                raise
            # one damaged file of many: its sequence is set aside with the reason, not the dataset
            collector.set_aside(
                unit["file"], str(exc).removeprefix(f"{exc.path}: "), unit["sequence"], exc.line
            )
            continue
        for name, label, subject, left, right, dims in found:
            dims_seen.setdefault(dims, unit["file"])
            if len(dims_seen) > 1:
                two, three = dims_seen.get(2), dims_seen.get(3)
                raise LandmarkDataError(
                    unit["file"],
                    f"2-D and 3-D files in one dataset ({two} has no z, {three} has z): "
                    "a model needs one kind",
                )
            sequence, side = choose_hand(left, right, hand)
            if sequence is None:
                collector.set_aside(
                    unit["file"], f"no {side} hand in the file (--hand {hand})", name
                )
                continue
            collector.add(
                sequence,
                label or "",
                source=unit["file"],
                sequence_id=name,
                subject=subject,
                hand=side,
            )
    if not units:
        raise LandmarkDataError(root, "no long landmark table files found")
    if 2 in dims_seen:
        notes.append("2-D landmarks (no z): z = 0")
    return collector.finish(
        file_fingerprint(root),
        frame_rate=frame_rate,
        notes=notes,
        quarantine_dir=quarantine_dir,
        verbose=verbose,
        hand=hand,
    )


def _unit_sequences(unit: dict, collector, notes: list, single: bool):
    """(sequence id, label, subject, left, right, dims) of each sequence of one file."""
    table = read_table(unit["file"])
    for note in table.attrs.get("notes", []):
        if note not in notes:
            notes.append(note)
    if "sequence" in table.columns and unit["sequence"] is None:
        groups = table.groupby(table["sequence"].astype(str), sort=False)
    else:
        groups = [(unit["sequence"] or unit["file"].stem, table)]
    for sequence_id, rows in groups:
        label, subject = unit["label"], unit["subject"]
        if label is None and "label" in rows.columns:
            label = _single(rows, "label", unit["file"])
        if subject is None and "subject" in rows.columns:
            subject = _single(rows, "subject", unit["file"])
        name = f"{unit['file'].name}:{sequence_id}" if single else str(sequence_id)
        reader = _TableHands(rows, unit["file"], collector, name)
        left, right, _first = reader.hands()
        yield name, label, subject, left, right, reader.dims


def _single(rows: pd.DataFrame, column: str, file: Path):
    values = rows[column].dropna().astype(str).str.strip().unique()
    if len(values) > 1:
        raise LandmarkDataError(
            file,
            f"one sequence with {len(values)} {column}s ({', '.join(values[:3])}): "
            "give each sequence its own id",
            line=int(rows["_line"].iloc[0]),
        )
    return values[0] if len(values) else None
