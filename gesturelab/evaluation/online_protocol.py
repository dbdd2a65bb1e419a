"""The SHREC'22 online gesture-detection protocol, as its organisers' scoring script applies it.

Files (the track's text format, one line per continuous sequence)::

    ground truth:  id;LABEL;start;end;LABEL;start;end;...
    detections:    id;LABEL;start;end;detected_at;LABEL;start;end;detected_at;...

Frames are numbers in the sequence; ``detected_at`` is the frame at which the detector fired.

A detection is **correct** when a ground-truth gesture of the sequence has its label, the
detection is at most ``max_length_ratio`` (2) times as long as it (lengths are end - start), and
it covers at least ``min_overlap`` (half) of it; each ground-truth gesture is matched once (the
first detection that qualifies takes it). A detection that is not correct is a **false positive**
of its own class. (The organisers' MATLAB script blanks the label of a detection that covers a
gesture of its label by less than half, which would count it as neither; the values the track
paper publishes are those of counting it as a false positive, checked to two decimals on four
participants' files, so that is what this does.) Ground-truth gestures left unmatched are
**missed**. Per class: detection rate = correct / total, false-positive rate =
FP / total, Jaccard index = correct / (correct + missed + FP), delay = mean of (detected_at -
detected start) over the correct detections; the reported figure of each is the mean over the
classes (a class without a correct detection adds 0 to the delay's sum, as the script's
``nansum / 16`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab.errors import LandmarkDataError

MAX_LENGTH_RATIO = 2.0
MIN_OVERLAP = 0.5
# The track's 16 classes in the order of its tables.
SHREC22_CLASSES = (
    "ONE", "TWO", "THREE", "FOUR", "OK", "MENU", "LEFT", "RIGHT",
    "CIRCLE", "V", "CROSS", "GRAB", "PINCH", "DENY", "WAVE", "KNOB",
)  # fmt: skip
# The track paper's values (detection rate, false-positive rate, Jaccard index, delay in frames)
# of four participants, as tabulated with their result files (Emporio et al., "SHREC 2022 track
# on online detection of heterogeneous gestures", Computers & Graphics 107, 2022). Their data
# (HoloLens 2 joints, 16 classes) is not ours: a reference for scale, not a comparison.
PUBLISHED_SHREC22 = {
    "2ST-GCN 5F": (0.74, 0.23, 0.61, 13.3),
    "Causal TCN": (0.80, 0.29, 0.68, 19.0),
    "Stronger": (0.72, 0.34, 0.59, 14.8),
    "TN-FSM+JD": (0.77, 0.23, 0.63, 10.0),
}


@dataclass(frozen=True)
class Gesture:
    label: str
    start: float
    end: float
    detected_at: float | None = None


def _read(path, fields: int) -> dict[str, list[Gesture]]:
    path = Path(path)
    out: dict[str, list[Gesture]] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LandmarkDataError(path, f"cannot be read ({exc})") from None
    for number, line in enumerate(lines, start=1):
        cells = [c.strip() for c in line.strip().split(";")]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells:
            continue
        sequence, rest = cells[0], cells[1:]
        if len(rest) % fields:
            raise LandmarkDataError(
                path,
                f"{len(rest)} fields after the sequence id, not a multiple of {fields} "
                f"({'label;start;end' + (';detected_at' if fields == 4 else '')} per gesture)",
                line=number,
            )
        if sequence in out:
            raise LandmarkDataError(path, f"sequence {sequence!r} a second time", line=number)
        gestures = []
        for at in range(0, len(rest), fields):
            label, *numbers = rest[at : at + fields]
            try:
                values = [float(n) for n in numbers]
            except ValueError:
                raise LandmarkDataError(
                    path,
                    f"gesture {at // fields + 1}: {numbers} are not frame numbers",
                    line=number,
                ) from None
            gestures.append(Gesture(label, *values))
        out[sequence] = gestures
    return out


def read_truth(path) -> dict[str, list[Gesture]]:
    """Ground truth: ``id;LABEL;start;end;...`` per line."""
    return _read(path, 3)


def read_detections(path) -> dict[str, list[Gesture]]:
    """Detections: ``id;LABEL;start;end;detected_at;...`` per line."""
    return _read(path, 4)


def write_truth(truth: dict[str, list[Gesture]], path) -> Path:
    return _write(truth, path, with_detection=False)


def write_detections(detections: dict[str, list[Gesture]], path) -> Path:
    return _write(detections, path, with_detection=True)


def _write(rows: dict[str, list[Gesture]], path, with_detection: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def number(value) -> str:
        return f"{int(value)}" if float(value).is_integer() else f"{value:g}"

    lines = []
    for sequence, gestures in rows.items():
        cells = [str(sequence)]
        for g in gestures:
            cells += [g.label, number(g.start), number(g.end)]
            if with_detection:
                cells.append(number(g.detected_at if g.detected_at is not None else g.end))
        lines.append(";".join(cells) + ";")
    path.write_text("\n".join(lines) + "\n")
    return path


def detected_at(d: Gesture) -> float:
    return d.detected_at if d.detected_at is not None else d.end


def match(
    gestures: list[Gesture],
    detections: list[Gesture],
    max_length_ratio: float = MAX_LENGTH_RATIO,
    min_overlap: float = MIN_OVERLAP,
) -> list[tuple[Gesture, Gesture | None]]:
    """Each detection of one sequence, in the order given, with the ground-truth gesture it
    matches (the first that qualifies and is not matched yet), or None: a false positive."""
    open_truth = list(gestures)
    out = []
    for d in detections:
        hit = None
        for i, g in enumerate(open_truth):
            if g is None or g.label != d.label:
                continue
            length = g.end - g.start
            if d.end - d.start > length * max_length_ratio:
                continue
            if (min(g.end, d.end) - max(g.start, d.start)) / length >= min_overlap:
                open_truth[i], hit = None, g  # a gesture is matched once
                break
        out.append((d, hit))
    return out


def evaluate(
    truth: dict[str, list[Gesture]],
    detections: dict[str, list[Gesture]],
    classes=None,
    max_length_ratio: float = MAX_LENGTH_RATIO,
    min_overlap: float = MIN_OVERLAP,
) -> pd.DataFrame:
    """Per-class counts and rates, and a final ``mean`` row (see the module docstring).

    classes: the label set the means run over (default: the labels of the ground truth, in
    order of first appearance; the track's own is ``SHREC22_CLASSES``). Detections of labels
    outside it are false positives of no class, as in the script.
    """
    if classes is None:
        classes = list(dict.fromkeys(g.label for gs in truth.values() for g in gs))
    counts = {c: dict(total=0, correct=0, missed=0, fp=0, delay=0.0) for c in classes}
    unknown = sorted(set(detections) - set(truth))
    if unknown:
        raise LandmarkDataError(
            "detections", f"sequences not in the ground truth: {', '.join(unknown[:5])}"
        )
    for sequence, gestures in truth.items():
        for g in gestures:
            if g.label in counts:
                counts[g.label]["total"] += 1
        found = match(gestures, detections.get(sequence, []), max_length_ratio, min_overlap)
        for d, g in found:
            if g is None:
                if d.label in counts:
                    counts[d.label]["fp"] += 1
                continue
            counts[g.label]["correct"] += 1
            counts[g.label]["delay"] += detected_at(d) - d.start
        matched = {id(g) for _, g in found if g is not None}
        for g in gestures:
            if id(g) not in matched and g.label in counts:
                counts[g.label]["missed"] += 1
    table = pd.DataFrame.from_dict(counts, orient="index")
    total = table["total"].replace(0, np.nan)
    table["detection_rate"] = table["correct"] / total
    table["false_positive_rate"] = table["fp"] / total
    table["jaccard"] = table["correct"] / (table["correct"] + table["missed"] + table["fp"])
    table["delay"] = table["delay"] / table["correct"].replace(0, np.nan)
    mean = {
        "total": table["total"].sum(),
        "correct": table["correct"].sum(),
        "missed": table["missed"].sum(),
        "fp": table["fp"].sum(),
        "detection_rate": table["detection_rate"].mean(),
        "false_positive_rate": table["false_positive_rate"].mean(),
        "jaccard": table["jaccard"].mean(),
        # the script's nansum / 16: a class with no correct detection counts as delay 0
        "delay": table["delay"].fillna(0.0).sum() / len(table),
    }
    table.loc["mean"] = pd.Series(mean)
    return table


def evaluate_files(truth_file, detection_file, classes=None) -> pd.DataFrame:
    return evaluate(read_truth(truth_file), read_detections(detection_file), classes)
