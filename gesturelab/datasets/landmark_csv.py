"""The HaGRID-style landmark CSV (``gesturelab.datasets.loading``): x1,y1,z1,...,x21,y21,z21 and a
label, or x1,y1,...,x21,y21 for 2-D landmarks, with optional metadata columns (source, handedness,
user_id/subject/group, split). Also the canonical form ``data import`` writes."""

from __future__ import annotations

from pathlib import Path

from gesturelab.datasets.loading import load_landmarks_csv


def sniff(path: Path) -> bool:
    """A file whose first line names the x and y columns."""
    from gesturelab.datasets.keypoint_csv import first_row

    first = first_row(path) if path.is_file() else None
    if first is None:
        return False
    names = {c.strip() for c in first[0]}
    return {"x1", "y1", "x21", "y21"} <= names


def read(path, *, classes=None, quarantine_dir=None, verbose=True, strict=False, **_):
    return load_landmarks_csv(
        path, classes=classes, quarantine_dir=quarantine_dir, verbose=verbose, strict=strict
    )
