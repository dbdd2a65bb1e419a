"""Every sequence dataset format behind one registry, as ``gesturelab.datasets`` is for hands.

``read_sequences(spec)`` takes a file, a folder or an imported dataset's name and returns
``LoadedSequences``. An imported sequence dataset is ``data/NAME/sequences.npz`` (a
``sequence-npz`` bundle: padded sequences, masks, lengths, labels, classes, subjects or the
source of each sequence) with its datasheet, so every command reads it back through the same
reader as any other bundle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets import (
    clip_folder,
    landmark_json,
    long_table,
    npy_frames,
    seq_csv,
    seq_npz,
)
from gesturelab.datasets.labels import class_list
from gesturelab.datasets.seq_common import QUARANTINE_COLUMNS, LoadedSequences
from gesturelab.datasets.sequences import frame_mask, point_mask
from gesturelab.errors import LandmarkDataError, lookup

IMPORTED_SEQUENCES = "sequences.npz"
DATASHEET = "datasheet.json"


@dataclass(frozen=True)
class SequenceFormat:
    name: str
    description: str
    sniff: Callable[[Path], bool]
    read: Callable[..., LoadedSequences]
    # The files name each hand (left/right), so --hand can choose: see seq_common.choose_hand.
    handed: bool = False


def _shrec_sniff(path: Path) -> bool:
    if path.is_dir():
        return any(path.glob("*_gestures.txt"))
    return path.suffix == ".npz" and "deltas" in seq_npz._keys(path)


def _shrec_read(path, *, classes=None, quarantine_dir=None, verbose=True, split="train", **_):
    from gesturelab.datasets import shrec
    from gesturelab.datasets.loading import file_fingerprint

    path = Path(path)
    data = shrec.load(path, split)
    wanted = class_list(classes)
    if wanted is not None and len(wanted) == 28 and set(wanted) == set(shrec.GESTURES_28):
        data = data.with_classes(28)
    data.meta["source"] = np.asarray([f"subject {s}" for s in data.subjects])
    listing = path / f"{split}_gestures.txt" if path.is_dir() else path
    # The SHREC reader checks every file itself (and raises on the first problem).
    return LoadedSequences(
        data=data,
        rejected=pd.DataFrame(columns=list(QUARANTINE_COLUMNS)),
        path=path,
        format="shrec",
        fingerprint=file_fingerprint(listing),
        group_by="subject",
        notes=[f"SHREC'17/DHG {split} split, {len(data.classes)} classes"],
        counts={
            "sequences_read": len(data),
            "sequences_kept": len(data),
            "sequences_rejected": 0,
            "frame_problems": 0,
            "file_problems": 0,
        },
    )


SEQUENCE_FORMATS: dict[str, SequenceFormat] = {
    f.name: f
    for f in (
        SequenceFormat(
            "shrec",
            "SHREC'17/DHG: <root>/<split>_gestures.txt + skeleton files, "
            "or the shipped compact .npz",
            _shrec_sniff,
            _shrec_read,
        ),
        SequenceFormat(
            "clip-folder",
            "ROOT/<label>/*.mp4|avi|mov, one clip per gesture, "
            "landmarks by MediaPipe in video mode",
            clip_folder.sniff,
            clip_folder.read,
            handed=True,
        ),
        SequenceFormat(
            "npy-frames",
            "ROOT/<action>/<sequence>/<frame>.npy, 63/126/258/1662 values a frame",
            npy_frames.sniff,
            npy_frames.read,
            handed=True,
        ),
        SequenceFormat(
            "sequence-npz",
            ".npz with sequences|X, labels|y, masks, lengths, subjects, classes",
            seq_npz.sniff,
            seq_npz.read,
        ),
        SequenceFormat(
            "long-table",
            "one row per landmark per frame (frame, type|hand, landmark_index, x, y[, z]) in "
            "parquet or CSV: a folder with train.csv (path, participant_id, sign), label "
            "folders, or one table with sequence and label columns",
            long_table.sniff,
            long_table.read,
            handed=True,
        ),
        SequenceFormat(
            "mediapipe-json",
            "MediaPipe results as JSON, a file per sequence: JS Holistic (leftHandLandmarks/"
            "rightHandLandmarks), Python hands (multi_hand_landmarks + multi_handedness) or "
            "the Tasks API (landmarks + handedness); ROOT/<label>/*.json or a manifest",
            landmark_json.sniff,
            landmark_json.read,
            handed=True,
        ),
        SequenceFormat(
            "sequence-csv",
            "one row per frame: a sequence id column, label, subject, x1..z21 (and a "
            "handedness column for --hand)",
            seq_csv.sniff,
            seq_csv.read,
            handed=True,
        ),
    )
}


def _handed_formats() -> list[str]:
    return [f.name for f in SEQUENCE_FORMATS.values() if f.handed]


def imported_folder(spec, data_dir=None) -> Path | None:
    """data/NAME/ when ``spec`` names an imported sequence dataset (or is its folder)."""
    path = Path(spec)
    candidates = [path] if path.exists() else []
    if len(path.parts) == 1:
        candidates.append(Path(data_dir or config.DATA_DIR) / str(spec))
    for folder in candidates:
        if folder.is_dir() and (folder / IMPORTED_SEQUENCES).is_file():
            return folder
    return None


def detect_sequences(path) -> SequenceFormat | None:
    """The sequence format of ``path``, or None when it is no sequence dataset we know."""
    path = Path(path)
    if not path.exists():
        return None
    return next((f for f in SEQUENCE_FORMATS.values() if f.sniff(path)), None)


def is_sequence_dataset(spec, data_dir=None) -> bool:
    return imported_folder(spec, data_dir) is not None or detect_sequences(spec) is not None


def get_sequence_format(name: str) -> SequenceFormat:
    return lookup(SEQUENCE_FORMATS, name, "sequence dataset format")


def read_sequences(
    spec,
    *,
    format: str | None = None,
    classes=None,
    quarantine_dir=config.QUARANTINE_DIR,
    verbose: bool = True,
    data_dir=None,
    hand: str | None = None,
    hand_strict: bool = True,
    **options,
) -> LoadedSequences:
    """The sequences of any supported dataset (see the module docstring).

    classes: None (every label found, sorted), a label file or a list: the label set and its
    order; sequences of other labels are quarantined.
    hand: which hand of files that hold both (``config.HAND_CHOICES``; None: the default,
    ``config.DEFAULT_HAND``); refused for formats that hold one hand as recorded, unless
    ``hand_strict`` is False (a model's own hand choice, applied where it can be).
    """
    folder = imported_folder(spec, data_dir)
    sheet = None
    if folder is not None:
        path, reader = folder / IMPORTED_SEQUENCES, SEQUENCE_FORMATS["sequence-npz"]
        sheet = (
            json.loads((folder / DATASHEET).read_text()) if (folder / DATASHEET).is_file() else None
        )
    else:
        path = Path(spec)
        if not path.exists():
            from gesturelab.datasets import imported_datasets

            known = ", ".join(imported_datasets(data_dir)) or "none yet"
            raise LandmarkDataError(
                path, f"no such file or folder, nor an imported dataset (imported: {known})"
            )
        reader = get_sequence_format(format) if format else detect_sequences(path)
        if reader is None:
            understood = "; ".join(f"{f.name}: {f.description}" for f in SEQUENCE_FORMATS.values())
            raise LandmarkDataError(path, f"not a sequence dataset we can read ({understood})")
    if hand is not None and hand not in config.HAND_CHOICES:
        raise LandmarkDataError(
            path, f"--hand {hand}: choose one of {', '.join(config.HAND_CHOICES)}"
        )
    if hand is not None and not reader.handed and not hand_strict:
        hand = None
    if hand is not None and not reader.handed:
        made = f" (made with --hand {sheet['hand']})" if sheet and sheet.get("hand") else ""
        raise LandmarkDataError(
            path,
            f"{reader.name} data holds one hand per sequence as recorded{made}; --hand chooses "
            f"in formats that name both hands ({', '.join(_handed_formats())})",
        )
    if reader.handed:
        options["hand"] = hand or config.DEFAULT_HAND
        # asked for by the user, not a model's own choice: a file with nothing to choose by
        # (a sequence CSV without handedness) refuses it rather than ignoring it
        options["hand_required"] = hand is not None and hand_strict
    loaded = reader.read(
        path, classes=class_list(classes), quarantine_dir=quarantine_dir, verbose=verbose, **options
    )
    if sheet is not None:
        loaded.name = sheet["name"]
        loaded.group_by = sheet.get("group_by", loaded.group_by)
        loaded.format = f"{sheet['format']} (imported)"
        loaded.notes.append(f"imported dataset {sheet['name']!r} ({sheet['format']})")
    return loaded


def describe_sequences(loaded: LoadedSequences) -> dict:
    """What ``data inspect`` prints and a sequence datasheet records."""
    data = loaded.data
    lengths = data.lengths
    coverage = np.asarray([frame_mask(s).mean() for s in data.sequences])
    labels = data.label_names
    groups = [str(g) for g in np.unique(data.subjects)]
    reasons = {}
    if len(loaded.rejected):
        text = loaded.rejected["reason"].astype(str).str.replace(r"\d+", "N", regex=True)
        reasons = {str(k): int(v) for k, v in text.value_counts().head(10).items()}
    return {
        "name": loaded.name,
        "kind": "sequences",
        "format": loaded.format,
        "path": str(loaded.path),
        "sha256": loaded.fingerprint,
        "classes": list(data.classes),
        "sequences_per_class": {c: int((labels == c).sum()) for c in data.classes},
        **loaded.counts,
        "group_by": loaded.group_by,
        "groups": len(groups),
        "sequences_per_group": (
            {str(g): int((data.subjects.astype(str) == g).sum()) for g in groups}
            if loaded.group_by == "subject"
            else {}
        ),
        "frames": {
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
        "frame_rate": data.frame_rate,
        "hand": data.hand,
        "hand_coverage": {
            "mean": round(float(coverage.mean()), 4),
            "min": round(float(coverage.min()), 4),
        },
        "problems": reasons,
        "read_as": list(loaded.notes),
        "quarantine": str(loaded.quarantine_path) if loaded.quarantine_path else None,
    }


def print_sequence_description(info: dict) -> None:
    print(f"{info['path']}: {info['format']}, sequences of 21 × 3 landmarks")
    for note in info["read_as"]:
        print(f"  read as: {note}")
    print(
        f"  sequences: {info['sequences_read']} read, {info['sequences_kept']} kept, "
        f"{info['sequences_rejected']} set aside; {info['frame_problems']} frame problems"
        + (
            f", {info['file_problems']} files or folders without a sequence"
            if info.get("file_problems")
            else ""
        )
    )
    frames = info["frames"]
    rate = f" at {info['frame_rate']:g} fps" if info["frame_rate"] else ""
    print(
        f"  frames per sequence: min {frames['min']}, median {frames['median']:g}, "
        f"max {frames['max']}{rate}; hand in {info['hand_coverage']['mean']:.1%} of frames "
        f"(lowest sequence {info['hand_coverage']['min']:.0%})"
    )
    print(
        f"  classes ({len(info['classes'])}): "
        + ", ".join(f"{c} {n}" for c, n in info["sequences_per_class"].items())
    )
    if info["group_by"] == "subject":
        print(
            f"  subjects ({info['groups']}): "
            + ", ".join(f"{s} {n}" for s, n in info["sequences_per_group"].items())
        )
    else:
        print(f"  no subjects: validation keeps each of the {info['groups']} source files whole")
    for reason, n in info["problems"].items():
        print(f"  problem ×{n}: {reason}")
    if info["quarantine"]:
        print(f"  set-aside sequences and frame problems in {info['quarantine']}")
    print(f"  sha256 {info['sha256']}")


def save_bundle(data, path, group_by: str = "subject") -> Path:
    """``data`` as a sequence-npz bundle (padded, masks, lengths): the imported form."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = data.lengths
    padded = np.zeros((len(data), int(lengths.max()), *data.sequences[0].shape[1:]), np.float32)
    masks = np.zeros(padded.shape[:2], bool)
    for i, sequence in enumerate(data.sequences):
        # a missing hand beside one that is there is zeros, the bundle's "no hand"
        padded[i, : len(sequence)] = np.where(point_mask(sequence), sequence, 0.0)
        masks[i, : len(sequence)] = frame_mask(sequence)
    arrays = {
        "sequences": padded,
        "masks": masks,
        "lengths": lengths.astype(np.int32),
        "labels": np.asarray(data.labels, np.int32),
        "classes": np.asarray(data.classes, dtype=str),
        "sources": np.asarray(data.meta.get("source", data.subjects), dtype=str),
    }
    if group_by == "subject":
        arrays["subjects"] = (
            np.asarray(data.subjects)
            if data.subjects.dtype.kind in "iu"
            else data.subjects.astype(str)
        )
    if data.frame_rate:
        arrays["frame_rate"] = np.float64(data.frame_rate)
    if data.hand:
        arrays["hand"] = np.asarray(data.hand)
        if "hand" in data.meta:  # which hand each sequence was (left ones mirrored)
            arrays["hands"] = np.asarray(data.meta["hand"], dtype=str)
    np.savez_compressed(path, **arrays)
    return path


def import_sequences(loaded: LoadedSequences, name: str, data_dir=None, command=None) -> Path:
    """Write ``data/NAME/`` (sequences.npz, datasheet.json/.md, rejected.csv, the license),
    whole or not at all (``importing.staged_import``)."""
    from gesturelab.datasets.importing import NAME, staged_import

    if not NAME.match(name):
        raise LandmarkDataError(
            name, "a dataset name is lower-case letters, digits, '-' and '_' (up to 64)"
        )
    folder = Path(data_dir or config.DATA_DIR) / name
    if folder.exists() and not (folder / DATASHEET).is_file():
        raise LandmarkDataError(
            folder, "exists and is not an imported dataset; choose another --name"
        )
    if folder.exists() and Path(loaded.path).resolve() == (folder / IMPORTED_SEQUENCES).resolve():
        raise LandmarkDataError(folder, "is the dataset being imported; choose another --name")
    with staged_import(folder) as staging:
        _write_sequences(loaded, name, staging, command)
    return folder


def _write_sequences(loaded: LoadedSequences, name: str, folder: Path, command) -> None:
    import shlex
    import shutil
    import sys
    from datetime import UTC, datetime

    from gesturelab.datasets.importing import _shown, find_license

    save_bundle(loaded.data, folder / IMPORTED_SEQUENCES, loaded.group_by)
    rejected = folder / "rejected.csv"
    if len(loaded.rejected):
        loaded.rejected.to_csv(rejected, index=False)
    else:
        rejected.unlink(missing_ok=True)
    license_file = find_license(Path(loaded.path))
    if license_file is not None:
        shutil.copyfile(license_file, folder / license_file.name)
    info = describe_sequences(loaded)
    sheet = {
        "name": name,
        "kind": "sequences",
        "source": _shown(Path(loaded.path)),
        "format": loaded.format,
        "source_sha256": loaded.fingerprint,
        "imported": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command or "python -m gesturelab " + shlex.join(sys.argv[1:]),
        **{
            k: info[k]
            for k in (
                "classes",
                "sequences_per_class",
                "group_by",
                "groups",
                "sequences_per_group",
                "frames",
                "frame_rate",
                "hand",
                "hand_coverage",
                "read_as",
                "problems",
            )
        },
        "counts": {
            k: info[k]
            for k in (
                "sequences_read",
                "sequences_kept",
                "sequences_rejected",
                "frame_problems",
                "file_problems",
                "clips",
                "frames",
                "frames_without_hand",
            )
            if k in info and not isinstance(info[k], dict)
        },
        "rejected_file": rejected.name if len(loaded.rejected) else None,
        "license_file": license_file.name if license_file else None,
        "license": license_file.read_text(errors="replace")[:400].strip() if license_file else None,
    }
    (folder / DATASHEET).write_text(json.dumps(sheet, indent=2) + "\n")
    (folder / "datasheet.md").write_text(_markdown(sheet))


def _markdown(sheet: dict) -> str:
    rows = "\n".join(f"| {c} | {n} |" for c, n in sheet["sequences_per_class"].items())
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sheet["counts"].items())
    problems = "\n".join(f"- {n} × {r}" for r, n in sheet["problems"].items()) or "- none"
    frames, coverage = sheet["frames"], sheet["hand_coverage"]
    groups = (
        f"{sheet['groups']} subjects"
        if sheet["group_by"] == "subject"
        else f"no subjects: {sheet['groups']} source files, each kept whole"
    )
    license_text = (
        f"`{sheet['license_file']}` (copied beside this datasheet)"
        if sheet["license_file"]
        else "no license file was found beside the source: ask its author before sharing it"
    )
    return f"""# Datasheet: {sheet["name"]} (sequences)

- Source: `{sheet["source"]}` ({sheet["format"]}), SHA-256 `{sheet["source_sha256"]}`
- Made by: `{sheet["command"]}` on {sheet["imported"]}
- Read as: {"; ".join(sheet["read_as"])}
- Sequences: {counts}
- Frames per sequence: min {frames["min"]}, median {frames["median"]:g}, max {frames["max"]}
- Hand coverage: {coverage["mean"]:.1%} of frames (lowest sequence {coverage["min"]:.0%})
- Groups for validation: {groups}
- Set aside: {sheet["rejected_file"] or "nothing"}

## Classes ({len(sheet["classes"])})

| class | sequences |
|---|---|
{rows}

## Problems found

{problems}

## License

{license_text}
"""
