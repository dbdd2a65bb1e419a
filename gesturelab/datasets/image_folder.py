"""Image folders in the MediaPipe Model Maker layout: ``ROOT/<label>/*.jpg|png``.

Every image goes through MediaPipe Hands (``extraction.HandLandmarker``); each hand found is a
row with the folder's name as its label (``none`` is a class like any other: the hands that
make no gesture). Results are cached by the image's content and the extraction settings, so a
second run extracts only new or changed images. Images without a hand, unreadable or partly
decoded ones are listed with the reason in the quarantine file, never dropped in silence.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gesturelab import config
from gesturelab.datasets.extraction import (
    IMAGE_SUFFIXES,
    ROW_COLUMNS,
    HandLandmarker,
    hands_in_image,
)
from gesturelab.datasets.landmarks import LABEL_COLUMN, LANDMARK_COLUMNS
from gesturelab.datasets.loading import LoadedLandmarks, validate_table
from gesturelab.errors import LandmarkDataError, path_text

# Part of every cache key with the installed MediaPipe version: a change of either re-extracts.
SETTINGS = {
    "static_image_mode": True,
    "max_num_hands": 2,
    "min_detection_confidence": 0.5,
    "model_complexity": 1,
    "mirrored_input": False,
    "second_pass": True,
}


def sniff(path: Path) -> bool:
    return path.is_dir() and any(class_images(path).values())


def class_images(root: Path) -> dict[str, list[Path]]:
    """Images per class folder (sorted), hidden folders and files left out."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {
        path_text(folder.name): sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        for folder in folders
    }


def _settings_key(landmarker=None) -> str:
    from importlib.metadata import version

    settings = {**SETTINGS, "mediapipe": version("mediapipe")}
    if landmarker is not None:  # a caller's own landmarker: its settings, its own entries
        settings.update(landmarker.settings)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _content_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ExtractionCache:
    """Hands found in an image, stored under the SHA-256 of its bytes."""

    def __init__(self, folder=config.EXTRACTION_CACHE_DIR, landmarker=None):
        self.folder = Path(folder) / _settings_key(landmarker)

    def _file(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str):
        file = self._file(key)
        if not file.is_file():
            return None
        try:
            entry = json.loads(file.read_text())
        except (OSError, ValueError):
            return None  # a damaged entry is extracted again
        return entry if _well_formed(entry) else None

    def put(self, key: str, entry: dict) -> None:
        file = self._file(key)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(file)


def _well_formed(entry) -> bool:
    if not (isinstance(entry, dict) and isinstance(entry.get("hands"), list)):
        return False
    if "problem" not in entry:
        return False
    return all(
        isinstance(h, dict)
        and np.asarray(h.get("landmarks"), dtype=object).size == 63
        and {"handedness", "score"} <= set(h)
        for h in entry["hands"]
    )


def _extract(path: Path, landmarker) -> dict:
    hands, problems = hands_in_image(path, landmarker)
    return {
        "hands": [
            {
                "landmarks": h["landmarks"].tolist(),
                "handedness": h["handedness"],
                "score": h["score"],
            }
            for h in hands
        ],
        "problem": problems[0] if problems else None,  # the read problem before "no hand"
    }


def read(
    root,
    *,
    classes=None,
    cache_dir=config.EXTRACTION_CACHE_DIR,
    quarantine_dir=config.QUARANTINE_DIR,
    verbose: bool = True,
    progress: bool = True,
    landmarker: HandLandmarker | None = None,
    **_,
) -> LoadedLandmarks:
    """Landmark rows of every hand in ``ROOT/<label>/`` images (see the module docstring).

    classes: restricts or orders the class folders; folders outside it are listed as
    quarantined images, not read. Rows keep ``source`` (the path under ROOT), handedness and
    score; line numbers in the quarantine file count rows in image order.
    """
    root = Path(root)
    if not root.is_dir():
        raise LandmarkDataError(root, "not a folder of class folders (ROOT/<label>/*.jpg)")
    per_class = class_images(root)
    loose = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not any(per_class.values()):
        raise LandmarkDataError(
            root,
            "no images in class folders: an image folder dataset is ROOT/<label>/*.jpg|png "
            f"({len(loose)} images directly in ROOT have no label)",
        )
    cache = ExtractionCache(cache_dir, landmarker)
    allowed = None if classes is None else [str(c) for c in classes]
    rows, problems = (
        [],
        [
            {
                "source": path_text(p.name),
                "reason": "image directly in the root folder: no class folder, no label",
            }
            for p in loose
        ],
    )
    todo = [(label, image) for label, images in per_class.items() for image in images]
    extracted = cached = 0
    own = None
    try:
        for label, image in tqdm(todo, desc="images", unit="img", disable=not progress):
            source = path_text(image.relative_to(root).as_posix())
            if allowed is not None and label not in allowed:
                problems.append(
                    {"source": source, "reason": f"class folder {label!r} not in --classes"}
                )
                continue
            key = _content_key(image)
            entry = cache.get(key)
            if entry is None:
                if landmarker is None:
                    landmarker = own = HandLandmarker(static_image_mode=True)
                entry = _extract(image, landmarker)
                cache.put(key, entry)
                extracted += 1
            else:
                cached += 1
            if entry["problem"] is not None:
                problems.append({"source": source, "reason": entry["problem"]})
            for index, hand in enumerate(entry["hands"]):
                row = dict(zip(LANDMARK_COLUMNS, np.asarray(hand["landmarks"]).reshape(-1)))
                row.update(
                    source=source,
                    frame=0,
                    hand_index=index,
                    handedness=hand["handedness"],
                    score=hand["score"],
                )
                row[LABEL_COLUMN] = label
                rows.append(row)
    finally:
        if own is not None:
            own.close()
    notes = [
        f"{len(todo)} images in {len(per_class)} class folders; {extracted} extracted by "
        f"MediaPipe Hands, {cached} from the cache ({cache.folder})",
    ]
    if allowed is not None and not set(allowed) & set(per_class):
        raise LandmarkDataError(
            root,
            f"none of the class folders ({', '.join(per_class)}) is in the given label set "
            f"({', '.join(allowed[:5])}{' ...' if len(allowed) > 5 else ''})",
        )
    if not rows:
        raise LandmarkDataError(root, f"MediaPipe found no hand in any of the {len(todo)} images")
    raw = pd.DataFrame(rows, columns=[*LANDMARK_COLUMNS, *ROW_COLUMNS, LABEL_COLUMN]).astype(object)
    # Images that gave no row are as much a result as the rows: one table of both.
    images = pd.DataFrame(problems, columns=["source", "reason"])
    loaded = validate_table(
        root,
        raw.astype(str),
        np.arange(1, len(raw) + 1),
        dims=3,
        classes=allowed,
        quarantine_dir=quarantine_dir,
        verbose=False,
        format="image-folder",
        notes=notes,
        set_aside=images,
    )
    for column in ("frame", "hand_index"):
        loaded.data[column] = loaded.data[column].astype(int)
    loaded.data["score"] = loaded.data["score"].astype(float)
    no_rows = set(images["source"]) - set(loaded.data["source"])
    loaded.counts.update(images=len(todo) + len(loose), images_without_rows=len(no_rows))
    if verbose:
        print(loaded.summary())
        print(f"  {notes[0]}; {len(no_rows)} images gave no row")
    return loaded
