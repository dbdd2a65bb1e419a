"""MediaPipe results dumped as JSON, one file per sequence, in the layouts people write:

- the JavaScript Holistic API, a list of frames ``{"leftHandLandmarks": [{"x", "y", "z"}, ...],
  "rightHandLandmarks": [...], "poseLandmarks": ..., "faceLandmarks": ...}`` (null or absent
  where no hand was found);
- Python ``solutions.hands`` through ``MessageToDict``, a list of frames
  ``{"multi_hand_landmarks": [{"landmark": [...]}], "multi_handedness": [{"classification":
  [{"label": "Right", "score": ...}]}]}`` (camelCase keys too);
- the Tasks API's ``HandLandmarkerResult``: ``{"landmarks": [[...21 points]], "handedness":
  [[{"categoryName": "Right", ...}]]}`` per frame.

The frames are the document itself or its ``frames`` list; a document's ``label``/``sign``/
``gesture`` and ``subject``/``participant``/``signer`` name the sequence's label and person,
else the dataset's layout does: a folder of label folders (``ROOT/<label>/[<subject>/]*.json``)
or a manifest CSV with path and label columns, as for long tables. Points are ``{"x", "y",
"z"}`` objects or ``[x, y, z]`` lists (2-D points get z = 0). The hand a sequence uses follows
``hand`` (``config.HAND_CHOICES``, a left hand mirrored). MediaPipe's Python handedness assumes
a mirrored (selfie) image: a dump of an unmirrored video names each hand by the other's name,
which ``--hand dominant`` (the default) does not mind when one hand signs.

JSON that holds no landmarks (a detection-box annotation file, a config) is refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.landmarks import N_LANDMARKS
from gesturelab.datasets.loading import file_fingerprint
from gesturelab.datasets.long_table import _manifest, file_units, read_manifest
from gesturelab.datasets.seq_common import SequenceCollector, choose_hand
from gesturelab.errors import LandmarkDataError

SUFFIXES = (".json", ".jsonl")
LABEL_KEYS = ("label", "sign", "gesture", "class")
SUBJECT_KEYS = ("subject", "participant", "participant_id", "signer", "user", "user_id")
LAYOUTS = (
    "JS Holistic (leftHandLandmarks/rightHandLandmarks per frame)",
    "Python hands via MessageToDict (multi_hand_landmarks + multi_handedness)",
    "Tasks API HandLandmarkerResult (landmarks + handedness)",
)


def _key(name) -> str:
    return str(name).lower().replace("_", "")


def _get(obj: dict, *names):
    keys = {_key(k): k for k in obj}
    for name in names:
        if _key(name) in keys:
            return obj[keys[_key(name)]]
    return None


def _points(value, where: str) -> np.ndarray | None:
    """21 points as (21, 3), None for no hand; a ValueError saying what is wrong otherwise."""
    if isinstance(value, dict):  # MessageToDict of one hand: {"landmark": [...]}
        value = _get(value, "landmark", "landmarks")
    if not value:
        return None
    if not isinstance(value, list) or len(value) != N_LANDMARKS:
        size = len(value) if isinstance(value, list) else type(value).__name__
        raise ValueError(f"{where}: {size} points where a hand has {N_LANDMARKS}")
    rows = []
    for point in value:
        if isinstance(point, dict):
            rows.append([_get(point, "x"), _get(point, "y"), _get(point, "z") or 0.0])
        elif isinstance(point, list) and len(point) in (2, 3):
            rows.append([*point, 0.0][:3])
        else:
            raise ValueError(f"{where}: a point is {point!r}, not {{x, y, z}} or [x, y, z]")
    try:
        return np.asarray(rows, dtype=np.float64).astype(np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: a coordinate that is not a number") from None


def _side(classification) -> str | None:
    """'left'/'right' from a handedness entry of either API, None when it names neither."""
    while isinstance(classification, list) and classification:
        classification = classification[0]
    if isinstance(classification, dict) and "classification" in classification:
        return _side(classification["classification"])
    if not isinstance(classification, dict):
        return None
    label = _get(classification, "label", "categoryName", "category_name", "displayName")
    label = str(label or "").strip().lower()
    return label if label in ("left", "right") else None


def is_landmark_frame(frame) -> bool:
    return isinstance(frame, dict) and (
        _get(frame, "leftHandLandmarks", "rightHandLandmarks", "multiHandLandmarks") is not None
        or (_get(frame, "landmarks") is not None and _get(frame, "handedness", "handednesses"))
        or any(
            _key(k) in ("lefthandlandmarks", "righthandlandmarks", "multihandlandmarks")
            for k in frame
        )  # fmt: skip
    )


def frame_hands(frame: dict, where: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(left, right) hands of one frame in any of the layouts; None where there is none."""
    keys = {_key(k) for k in frame}
    if keys & {"lefthandlandmarks", "righthandlandmarks"}:
        return (
            _points(_get(frame, "leftHandLandmarks"), f"{where}, leftHandLandmarks"),
            _points(_get(frame, "rightHandLandmarks"), f"{where}, rightHandLandmarks"),
        )
    hands = _get(frame, "multiHandLandmarks", "landmarks") or []
    sides = _get(frame, "multiHandedness", "handedness", "handednesses") or []
    found = {"left": None, "right": None}
    for i, hand in enumerate(hands):
        side = _side(sides[i]) if i < len(sides) else None
        side = side or "right"  # no handedness: one hand as recorded
        if found[side] is None:
            found[side] = _points(hand, f"{where}, hand {i}")
    return found["left"], found["right"]


def _document(path: Path):
    """The file's JSON; JSON Lines (a frame per line, as a capture loop appends them) as the
    list of its lines."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            lines = [line for line in text.splitlines() if line.strip()]
            if len(lines) < 2:
                raise
            frames = []
            for number, line in enumerate(lines, start=1):
                try:
                    frames.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LandmarkDataError(
                        path, f"not valid JSON nor JSON Lines ({exc.msg})", line=number
                    ) from None
            return frames
    except UnicodeDecodeError as exc:
        raise LandmarkDataError(path, f"not a UTF-8 text file ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise LandmarkDataError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    except OSError as exc:
        raise LandmarkDataError(path, f"cannot be read ({exc})") from None


def _frames(doc, path: Path) -> tuple[list, str | None, str | None]:
    """The frames, label and subject of one JSON document; a one-line refusal when it holds
    no MediaPipe landmarks."""
    label = subject = None
    frames = doc
    if isinstance(doc, dict):
        label, subject = _get(doc, *LABEL_KEYS), _get(doc, *SUBJECT_KEYS)
        inner = _get(doc, "frames")
        if inner is None:  # one frame, or frames keyed by number: {"0": frame, ...}
            frames = [doc] if is_landmark_frame(doc) else _numbered(doc)
        else:
            frames = _numbered(inner) if isinstance(inner, dict) else inner
    if isinstance(frames, list) and any(is_landmark_frame(f) for f in frames[:50]):
        return frames, label, subject
    keys = sorted(doc)[:6] if isinstance(doc, dict) else []
    seen = f"keys {', '.join(map(str, keys))}" if keys else f"a JSON {type(doc).__name__}"
    raise LandmarkDataError(
        path,
        f"holds no hand landmarks ({seen}); JSON read here: {'; '.join(LAYOUTS)}",
    )


def _numbered(frames: dict) -> list:
    """Frames keyed by their numbers, in order, a missing number a frame without a hand; [] when
    the keys are not frame numbers."""
    try:
        numbered = {int(k): v for k, v in frames.items()}
    except (TypeError, ValueError):
        return []
    if not numbered or min(numbered) < 0 or max(numbered) > 10 * len(numbered) + 10:
        return []
    return [numbered.get(i, {}) for i in range(min(numbered), max(numbered) + 1)]


def _json_files(folder: Path):
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def sniff(path: Path) -> bool:
    """A .json file, or a folder of label folders or a manifest naming .json files: the reader
    says what is wrong with one that holds no landmarks."""
    if path.is_file():
        return path.suffix.lower() in SUFFIXES
    if not path.is_dir():
        return False
    manifest = _manifest(path)
    if manifest is not None:
        rows = read_manifest(manifest)
        return bool(rows) and rows[0].path.lower().endswith(SUFFIXES)
    folders = (p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    return any(_json_files(f) for f in folders)


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
    collector = SequenceCollector(root, "mediapipe-json", classes)
    units, notes = file_units(root, collector, _json_files)
    for unit in units:
        file, label, subject = unit["file"], unit["label"], unit["subject"]
        sequence_id = unit["sequence"] or (f"{label}/{file.stem}" if label else file.stem)
        try:
            frames, doc_label, doc_subject = _frames(_document(file), file)
        except LandmarkDataError as exc:
            if len(units) == 1:
                raise
            # one damaged file of many: its sequence is set aside with the reason
            collector.set_aside(file, str(exc).removeprefix(f"{exc.path}: "), sequence_id, exc.line)
            continue
        lefts, rights = [], []
        for number, frame in enumerate(frames):
            try:
                if frame and not isinstance(frame, dict):
                    raise ValueError(f"frame {number}: {type(frame).__name__}, not an object")
                left, right = frame_hands(frame, f"frame {number}") if frame else (None, None)
            except ValueError as exc:
                collector.problem(file, f"{exc} (frame masked)", sequence_id, number)
                left = right = None
            lefts.append(left)
            rights.append(right)
        sequence, side = choose_hand(_stack(lefts), _stack(rights), hand)
        if sequence is None:
            collector.set_aside(file, f"no {side} hand in the file (--hand {hand})", sequence_id)
            continue
        collector.add(
            sequence,
            label if label is not None else (doc_label or ""),
            source=file,
            sequence_id=sequence_id,
            subject=subject if subject is not None else doc_subject,
            hand=side,
        )
    if not units:
        raise LandmarkDataError(root, "no .json files found")
    return collector.finish(
        file_fingerprint(root),
        frame_rate=frame_rate,
        notes=notes,
        quarantine_dir=quarantine_dir,
        verbose=verbose,
        hand=hand,
    )


def _stack(hands: list) -> np.ndarray | None:
    if all(h is None for h in hands):
        return None
    nan = np.full((N_LANDMARKS, 3), np.nan, np.float32)
    return np.stack([nan if h is None else h for h in hands])
