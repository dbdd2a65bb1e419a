"""``data inspect`` and ``data import``: what a dataset holds, and its canonical copy.

An imported dataset is ``data/NAME/``: ``landmarks.csv`` (the HaGRID-style columns, x1..y21
without z for 2-D data, the label, and whatever metadata the source had), ``datasheet.json``
and ``datasheet.md`` (source, format, SHA-256, classes and counts, groups, license, the command
that made it), ``rejected.csv`` when rows or images were set aside, and the source's license
file. ``sweep --data NAME`` and every other command take the name. An import is written whole
or not at all (a staging folder replaces ``data/NAME/`` at the end), one at a time per name.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN, METADATA_COLUMNS
from gesturelab.datasets.loading import LoadedLandmarks
from gesturelab.datasets.splits import assign_groups, find_group_column
from gesturelab.errors import LandmarkDataError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LICENSE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING", "license.txt")


def describe(loaded: LoadedLandmarks, block_size: int = config.BLOCK_SIZE) -> dict:
    """What ``data inspect`` prints and a datasheet records."""
    data = loaded.data
    counts = data[LABEL_COLUMN].value_counts() if LABEL_COLUMN in data else pd.Series(dtype=int)
    group_column = find_group_column(data)
    groups = assign_groups(data, block_size) if LABEL_COLUMN in data else []
    reasons = pd.Series(dtype=int)
    if len(loaded.rejected):
        reasons = (
            loaded.rejected["reason"].astype(str).str.replace(r"line \d+", "line N", regex=True)
        ).value_counts()
    return {
        "name": loaded.name,
        "format": loaded.format,
        "path": str(loaded.path),
        "sha256": loaded.fingerprint,
        "landmarks": "2-D (x, y)" if loaded.dims == 2 else "3-D (x, y, z)",
        "dims": loaded.dims,
        "classes": list(loaded.classes),
        "rows_per_class": {c: int(counts.get(c, 0)) for c in loaded.classes},
        **loaded.counts,
        "metadata_columns": [c for c in METADATA_COLUMNS if c in data.columns],
        "groups": (
            f"column {group_column!r} ({data[group_column].nunique()} values)"
            if group_column
            else f"none in the file: {len(set(groups))} contiguous blocks within label runs"
        ),
        "problems": {str(k): int(v) for k, v in reasons.head(10).items()},
        "read_as": list(loaded.notes),
        "quarantine": str(loaded.quarantine_path) if loaded.quarantine_path else None,
    }


def print_description(info: dict) -> None:
    print(f"{info['path']}: {info['format']}, {info['landmarks']} landmarks")
    for note in info["read_as"]:
        print(f"  read as: {note}")
    print(
        f"  rows: {info['rows_read']} read, {info['rows_kept']} kept, "
        f"{info['rows_rejected']} rejected"
        + (
            f"; images: {info['images']}, {info['images_without_rows']} gave no row"
            if "images" in info
            else ""
        )
    )
    print(
        f"  classes ({len(info['classes'])}): "
        + ", ".join(f"{c} {n}" for c, n in info["rows_per_class"].items())
    )
    print(f"  groups: {info['groups']}")
    if info["metadata_columns"]:
        print(f"  metadata columns: {', '.join(info['metadata_columns'])}")
    for reason, n in info["problems"].items():
        print(f"  problem ×{n}: {reason}")
    if info["quarantine"]:
        print(f"  rejected rows with reasons in {info['quarantine']}")
    print(f"  sha256 {info['sha256']}")


def find_license(source: Path) -> Path | None:
    folder = source if source.is_dir() else source.parent
    return next((folder / n for n in LICENSE_NAMES if (folder / n).is_file()), None)


@contextmanager
def staged_import(folder: Path):
    """A fresh staging folder beside ``folder`` that replaces it whole once the import is
    written: an import killed half-way leaves ``folder`` as it was (a first one: no folder, so
    the name stays free), and a second import of the same name waits for no one: it is refused
    while the first holds the name's lock."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LandmarkDataError(
                folder, "another import of this name is running; let it finish first"
            ) from None
        for stale in folder.parent.glob(f".{folder.name}.staging-*"):  # a killed import's
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
        try:
            yield staging
            if folder.exists():
                old = folder.parent / f".{folder.name}.replaced-{os.getpid()}"
                folder.rename(old)
                staging.rename(folder)
                shutil.rmtree(old)
            else:
                staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def import_dataset(
    loaded: LoadedLandmarks, name: str, data_dir=None, command: str | None = None
) -> Path:
    """Write ``data/NAME/`` (see the module docstring); returns the folder."""
    if not NAME.match(name):
        raise LandmarkDataError(
            name, "a dataset name is lower-case letters, digits, '-' and '_' (up to 64)"
        )
    data_dir = Path(data_dir or config.DATA_DIR)
    folder = data_dir / name
    if folder.exists() and not (folder / "datasheet.json").is_file():
        raise LandmarkDataError(
            folder, "exists and is not an imported dataset; choose another --name"
        )
    if folder.resolve() == Path(loaded.path).resolve().parent:
        raise LandmarkDataError(folder, "is the dataset being imported; choose another --name")
    with staged_import(folder) as staging:
        _write_landmarks(loaded, name, staging, command)
    return folder


def _write_landmarks(loaded: LoadedLandmarks, name: str, folder: Path, command) -> None:
    columns = [
        *loaded.columns,
        LABEL_COLUMN,
        *[c for c in METADATA_COLUMNS if c in loaded.data.columns and c != "split"],
    ]
    loaded.data[columns].to_csv(folder / "landmarks.csv", index=False)
    rejected = folder / "rejected.csv"
    if len(loaded.rejected):
        loaded.rejected.to_csv(rejected, index=False)
    else:
        rejected.unlink(missing_ok=True)
    license_file = find_license(Path(loaded.path))
    if license_file is not None:
        shutil.copyfile(license_file, folder / license_file.name)
    info = describe(loaded)
    sheet = {
        "name": name,
        "source": _shown(Path(loaded.path)),
        "format": loaded.format,
        "source_sha256": loaded.fingerprint,
        "imported": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command or "python -m gesturelab " + shlex.join(sys.argv[1:]),
        "landmarks": info["landmarks"],
        "classes": info["classes"],
        "rows_per_class": info["rows_per_class"],
        "counts": {k: info[k] for k in ("rows_read", "rows_kept", "rows_rejected") if k in info}
        | {k: info[k] for k in ("images", "images_without_rows") if k in info},
        "groups": info["groups"],
        "read_as": info["read_as"],
        "problems": info["problems"],
        "rejected_file": rejected.name if len(loaded.rejected) else None,
        "license_file": license_file.name if license_file else None,
        "license": license_file.read_text(errors="replace")[:400].strip() if license_file else None,
    }
    (folder / "datasheet.json").write_text(json.dumps(sheet, indent=2) + "\n")
    (folder / "datasheet.md").write_text(_markdown(sheet))


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it (datasheets travel with it)."""
    try:
        return path.resolve().relative_to(config.REPO_ROOT).as_posix()
    except ValueError:
        return str(path.resolve())


def _markdown(sheet: dict) -> str:
    rows = "\n".join(f"| {c} | {n} |" for c, n in sheet["rows_per_class"].items())
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sheet["counts"].items())
    problems = "\n".join(f"- {n} × {r}" for r, n in sheet["problems"].items()) or "- none"
    license_text = (
        f"`{sheet['license_file']}` (copied beside this datasheet):\n\n> "
        + "\n> ".join(sheet["license"].splitlines()[:6])
        if sheet["license_file"]
        else "no license file was found beside the source: ask its author before sharing it"
    )
    return f"""# Datasheet: {sheet["name"]}

- Source: `{sheet["source"]}` ({sheet["format"]}), SHA-256 `{sheet["source_sha256"]}`
- Made by: `{sheet["command"]}` on {sheet["imported"]}
- Landmarks: {sheet["landmarks"]}; read as: {"; ".join(sheet["read_as"])}
- Rows: {counts}
- Groups for splitting: {sheet["groups"]}
- Rejected: {sheet["rejected_file"] or "nothing"}

## Classes ({len(sheet["classes"])})

| class | rows |
|---|---|
{rows}

## Problems found

{problems}

## License

{license_text}
"""
