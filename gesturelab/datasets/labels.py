"""Label sets: the classes a dataset may hold, from a label file or by name (``hagrid``)."""

from __future__ import annotations

import csv
from pathlib import Path

from gesturelab.datasets.landmarks import HAGRID_CLASSES
from gesturelab.errors import LandmarkDataError

NAMED_CLASS_SETS = {"hagrid": HAGRID_CLASSES}
HEADER_WORDS = ("label", "labels", "name", "names", "class", "classes", "class_name", "gesture")


def read_label_file(path) -> list[str]:
    """Class names, one per line, in file order (line k-1 names class index k-1).

    As keypoint-classifier projects write them: a UTF-8 byte-order mark on the first line and
    Windows line ends are tolerated; only the first field of a line is the name. A blank line
    before the last name would shift every index after it, so it is an error, as is a name
    given twice.
    """
    path = Path(path)
    if path.is_dir():
        raise LandmarkDataError(path, "is a folder, not a label file (one class name per line)")
    if not path.is_file():
        raise LandmarkDataError(path, "label file not found")
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for row in reader:
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise LandmarkDataError(path, f"label file is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:  # a "name" over the csv module's 131,072 characters
        raise LandmarkDataError(
            path, f"not a label file (one class name per line): {exc}", line=reader.line_num
        ) from None
    names = [row[0].strip() if row else "" for row in rows]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise LandmarkDataError(path, "label file has no names")
    if names[0].lower() in HEADER_WORDS:
        # Taken as a class it would shift every index by one without a word.
        raise LandmarkDataError(
            path,
            f"the first line {names[0]!r} looks like a column header; a label file is one "
            "class name per line (line k names class index k-1), no header",
            line=1,
        )
    for line, name in enumerate(names, start=1):
        if not name:
            raise LandmarkDataError(
                path, "blank line in a label file (it would shift every index after it)", line=line
            )
        if name in names[: line - 1]:
            raise LandmarkDataError(path, f"class name {name!r} given twice", line=line)
    return names


def class_list(spec) -> list[str] | None:
    """``--classes``: None (every label found), a named set (``hagrid``) or a label file."""
    if spec is None or spec == "":
        return None
    if not isinstance(spec, (str, Path)):
        return [str(c) for c in spec]
    if str(spec).lower() in NAMED_CLASS_SETS and not Path(spec).is_file():
        return list(NAMED_CLASS_SETS[str(spec).lower()])
    return read_label_file(spec)
