"""Every dataset format a researcher brings, behind one registry: a new format is one module.

``read(spec)`` takes a file, a folder or the name of an imported dataset (``data/NAME/``),
detects its format and returns ``LoadedLandmarks``: validated rows, the quarantined ones, the
classes found (sorted, or in a label file's order) and whether the landmarks are 2-D or 3-D.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gesturelab import config
from gesturelab.datasets import image_folder, keypoint_csv, landmark_csv
from gesturelab.datasets.labels import class_list, read_label_file
from gesturelab.datasets.loading import LoadedLandmarks
from gesturelab.errors import LandmarkDataError, lookup

DATASHEET = "datasheet.json"
IMPORTED_FILE = "landmarks.csv"


@dataclass(frozen=True)
class Format:
    """name: what --format takes; sniff(path) -> bool; read(path, **options) -> LoadedLandmarks."""

    name: str
    description: str
    sniff: Callable[[Path], bool]
    read: Callable[..., LoadedLandmarks]


# Tried in this order (named columns before counted ones); a file no format claims is read
# as a landmark CSV, whose errors (missing columns, ...) explain the most.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "image-folder",
            "ROOT/<label>/*.jpg|png, landmarks by MediaPipe Hands",
            image_folder.sniff,
            image_folder.read,
        ),
        Format(
            "landmark-csv",
            "HaGRID-style CSV: x1,y1,z1,...,z21 (or x1..y21), label",
            landmark_csv.sniff,
            landmark_csv.read,
        ),
        Format(
            "keypoint-csv",
            "a label and 42 values (21 × x, y) per row, header optional",
            keypoint_csv.sniff,
            keypoint_csv.read,
        ),
    )
}


def imported_datasets(data_dir=None) -> list[str]:
    data_dir = Path(data_dir or config.DATA_DIR)
    return sorted(p.parent.name for p in data_dir.glob(f"*/{DATASHEET}"))


def resolve(spec, data_dir=None) -> tuple[Path, dict | None]:
    """A path as given, or an imported dataset's file and datasheet (``data/NAME/``)."""
    path = Path(spec)
    sheet = path / DATASHEET if path.is_dir() else path.parent / DATASHEET
    if not path.exists() and len(path.parts) == 1:
        folder = Path(data_dir or config.DATA_DIR) / str(spec)
        if (folder / DATASHEET).is_file():
            path, sheet = folder / IMPORTED_FILE, folder / DATASHEET
        else:
            known = ", ".join(imported_datasets(data_dir)) or "none yet"
            raise LandmarkDataError(
                path, f"no such file or folder, nor an imported dataset (imported: {known})"
            )
    if path.is_dir() and sheet.is_file():
        path = path / IMPORTED_FILE
    datasheet = None
    if sheet.is_file() and path.name == IMPORTED_FILE:
        datasheet = json.loads(sheet.read_text())
    return path, datasheet


def detect(path) -> Format:
    path = Path(path)
    if not path.exists():
        raise LandmarkDataError(path, "no such file or folder")
    for candidate in FORMATS.values():
        if candidate.sniff(path):
            return candidate
    if path.is_dir():
        raise LandmarkDataError(
            path, "a folder without class folders of images (ROOT/<label>/*.jpg|png)"
        )
    return FORMATS["landmark-csv"]


def get_format(name: str) -> Format:
    return lookup(FORMATS, name, "dataset format")


def read(
    spec,
    *,
    format: str | None = None,
    classes=None,
    quarantine_dir=config.QUARANTINE_DIR,
    verbose: bool = True,
    data_dir=None,
    **options,
) -> LoadedLandmarks:
    """Rows of any supported dataset (see the module docstring).

    classes: None (every label found), ``"hagrid"``, a label file, or a list: restricts the
    label set and orders it; rows of other labels are quarantined. options go to the format's
    reader (``labels``, ``label_column`` for keypoint CSVs; ``cache_dir``, ``progress`` for
    image folders).
    """
    _refuse_sequences(spec, format, data_dir)
    path, datasheet = resolve(spec, data_dir)
    reader = get_format(format) if format else detect(path)
    wanted = class_list(classes)
    if wanted is None and datasheet is not None:
        wanted = datasheet.get("classes")  # keep the order the source's label file gave
    loaded = reader.read(
        path, classes=wanted, quarantine_dir=quarantine_dir, verbose=verbose, **options
    )
    if datasheet is not None:
        loaded.name = datasheet["name"]
        loaded.notes.append(f"imported dataset {datasheet['name']!r} ({datasheet['format']})")
    return loaded


def _refuse_sequences(spec, format, data_dir) -> None:
    """A sequence dataset given where single hands are read: said, with where it goes."""
    from gesturelab.datasets import sequence_formats as seq

    if format is not None and format not in seq.SEQUENCE_FORMATS:
        return
    folder = seq.imported_folder(spec, data_dir)
    found = seq.SEQUENCE_FORMATS[format] if format else None
    if folder is None and found is None:
        found = seq.detect_sequences(spec)
    if folder is None and found is None:
        return
    what = "an imported sequence dataset" if folder is not None else f"{found.name} sequences"
    raise LandmarkDataError(
        folder or spec,
        f"holds gesture sequences ({what}), not single hands: train and score sequence "
        "models on it with `train-seq --data` and `evaluate-seq --data` (a CSV of single "
        "hands that has a sequence column: pass --format landmark-csv)",
    )


__all__ = [
    "FORMATS",
    "Format",
    "class_list",
    "detect",
    "get_format",
    "imported_datasets",
    "read",
    "read_label_file",
    "resolve",
]
