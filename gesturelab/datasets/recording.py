"""Record your own gestures from a camera (or a video file standing in for one) into the
frame-per-file layout the readers take.

For each gesture and repetition: a prompt, a countdown, then ``seconds`` of frames, each through
MediaPipe Hands in video mode (two hands, each named by handedness). Every frame is written,
``OUT/<gesture>/<subject>_<take>/<frame>.npy``, 126 values (left hand, right hand; zeros for a
hand not found, the layout's mark for "missing"), so a frame without a hand stays in the
sequence as a missing frame and ``--hand`` chooses later. ``OUT/subjects.csv`` names each take's
subject; ``OUT/recording.json`` holds the plan and every finished take (the datasheet's source),
``OUT/datasheet.md`` says what was recorded, when and how.

A take is written to a hidden folder and renamed when it is complete, so a recording that is
killed loses at most the take in progress: ``resume=True`` removes that take, skips the finished
ones and goes on (a video source continues where it stopped, as a camera does). With a display,
a preview window shows the camera with the landmarks drawn ("q" stops; resume later).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.extraction import (
    HandLandmarker,
    camera_frames,
    draw_hand,
    iter_video_frames,
    video_properties,
)
from gesturelab.datasets.loading import replace_text
from gesturelab.datasets.npy_frames import HAND, SUBJECTS_FILE
from gesturelab.errors import GestureLabError, check_name

SESSION = "recording.json"
DATASHEET = "datasheet.md"


@dataclass
class Plan:
    gestures: list[str]
    repetitions: int = 5
    seconds: float = 2.0
    countdown: float = 3.0
    subject: str = "me"
    source: str = "camera 0"
    takes: list[dict] = field(default_factory=list)
    source_frames_used: int = 0  # a video source resumes after these frames

    def same_plan(self, other: Plan) -> bool:
        keys = ("gestures", "repetitions", "seconds", "countdown", "subject", "source")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def done(self, gesture: str, take: int) -> bool:
        return any(t["gesture"] == gesture and t["take"] == take for t in self.takes)


def take_folder(out: Path, gesture: str, subject: str, take: int) -> Path:
    return out / gesture / f"{subject}_{take:03d}"


class _Source:
    """Frames (RGB) from a camera index or a video file, with its frame rate; a video skips
    the frames an earlier session used."""

    def __init__(self, source, skip: int = 0):
        self.camera = isinstance(source, int)
        if self.camera:
            self.fps, frames = camera_frames(source)
        else:
            self.fps, _, _ = video_properties(source)
            frames = iter_video_frames(source)
        self._frames = frames
        self.used = 0
        for _ in range(skip if not self.camera else 0):
            if next(self._frames, None) is None:
                break
            self.used += 1

    def next(self):
        """The next BGR frame, or None at the end of the video / when the camera stops."""
        item = next(self._frames, None)
        if item is None:
            return None
        self.used += 1
        return item[1]


def _display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def record(
    out,
    gestures,
    *,
    repetitions: int = 5,
    seconds: float = 2.0,
    countdown: float = 3.0,
    subject: str = "me",
    source=0,
    resume: bool = False,
    preview: bool | None = None,
    say: Callable[[str], None] = print,
) -> Plan:
    """Record ``repetitions`` takes of each gesture into ``out`` (see the module docstring);
    the plan with every finished take. ``source``: a camera index or a video file."""
    out = Path(out)
    gestures = [check_name(str(g).strip(), "gesture") for g in gestures if str(g).strip()]
    if not gestures:
        raise GestureLabError("record needs at least one gesture name (--gestures a,b,c)")
    subject = check_name(str(subject), "subject")
    source_name = f"camera {source}" if isinstance(source, int) else str(source)
    plan = Plan(gestures, int(repetitions), float(seconds), float(countdown), subject, source_name)
    session = out / SESSION
    if session.is_file():
        if not resume:
            raise GestureLabError(
                f"{out} holds a recording ({SESSION}); --resume continues it, or choose "
                "another --out"
            )
        saved = Plan(**json.loads(session.read_text()))
        if not saved.same_plan(plan):
            raise GestureLabError(
                f"{out}: the recording there has another plan ({', '.join(saved.gestures)} × "
                f"{saved.repetitions}, {saved.seconds:g} s, subject {saved.subject}, "
                f"{saved.source}); --resume continues the same plan"
            )
        plan = saved
    elif resume:
        raise GestureLabError(f"{out}: nothing to resume (no {SESSION})")
    for partial in out.glob("*/.*.partial"):  # a take that was being written when it stopped
        shutil.rmtree(partial)
        say(f"removed an unfinished take: {partial.parent.name}/{partial.name[1:-8]}")
    todo = [
        (g, r) for r in range(1, plan.repetitions + 1) for g in plan.gestures if not plan.done(g, r)
    ]
    if not todo:
        say(f"{out}: every take is recorded ({len(plan.takes)})")
        return plan
    frames_source = _Source(source, skip=plan.source_frames_used)  # before OUT is made
    out.mkdir(parents=True, exist_ok=True)
    fps = frames_source.fps or 30.0
    show = _display() if preview is None else bool(preview)
    done_before = len(plan.takes)
    say(
        f"recording {len(todo)} takes into {out} ({done_before} done before): "
        f"{plan.seconds:g} s each at {fps:g} fps, after a {plan.countdown:g} s countdown"
    )
    with HandLandmarker(static_image_mode=False, max_num_hands=2) as landmarker:
        try:
            for number, (gesture, take) in enumerate(todo, start=done_before + 1):
                total = len(plan.gestures) * plan.repetitions
                say(f"[{number}/{total}] {gesture}, take {take}: get ready")
                if not _countdown(frames_source, landmarker, plan, gesture, take, fps, show):
                    break
                result = _take(frames_source, landmarker, out, plan, gesture, take, fps, show)
                if result is None:
                    break
                plan.takes.append(result)
                plan.source_frames_used = frames_source.used
                _save(out, plan, fps)
                say(
                    f"    {result['frames']} frames, a hand in {result['hand_frames']}"
                    + ("" if result["hand_frames"] else "  (no hand seen: check the camera)")
                )
        finally:
            if show:
                _cv2().destroyAllWindows()
    left = len(plan.gestures) * plan.repetitions - len(plan.takes)
    say(
        f"{len(plan.takes)} takes in {out}"
        + (f"; {left} to go: run again with --resume" if left else "")
        + f"; read them with: python -m gesturelab data inspect {out}"
    )
    return plan


def _cv2():
    import cv2

    return cv2


def _shown(frame, hands, text: str, show: bool) -> bool:
    """The preview (when there is a display); False when the person pressed q."""
    if not show:
        return True
    cv2 = _cv2()
    hand = hands[0]["landmarks"] if hands else None
    cv2.imshow("gesturelab record", draw_hand(frame, hand, text))
    return (cv2.waitKey(1) & 0xFF) != ord("q")


def _countdown(frames, landmarker, plan, gesture, take, fps, show) -> bool:
    """``plan.countdown`` seconds of frames shown but not kept (a camera keeps running, and a
    video standing in for one plays on)."""
    for i in range(round(plan.countdown * fps)):
        frame = frames.next()
        if frame is None:
            return False
        if show:
            left = plan.countdown - i / fps
            hands = landmarker.detect(frame[:, :, ::-1].copy())
            if not _shown(frame, hands, f"{gesture} (take {take}) in {left:.0f}", show):
                return False
    return True


def _take(frames, landmarker, out, plan, gesture, take, fps, show) -> dict | None:
    """One take, written to a hidden folder and renamed when complete; None if the source
    ended or the person stopped (the hidden folder is removed on resume)."""
    final = take_folder(out, gesture, plan.subject, take)
    partial = final.parent / f".{final.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    n_frames = max(round(plan.seconds * fps), 1)
    first = frames.used
    hand_frames = 0
    for i in range(n_frames):
        frame = frames.next()
        if frame is None:
            return None
        hands = landmarker.detect(frame[:, :, ::-1].copy())
        vector = np.zeros(2 * HAND)
        for hand in sorted(hands, key=lambda h: -h["score"]):
            at = 0 if hand["handedness"] == "Left" else HAND
            if not vector[at : at + HAND].any():
                vector[at : at + HAND] = _normalised(hand["landmarks"], frame.shape)
        hand_frames += bool(hands)
        np.save(partial / f"{i}.npy", vector)
        if not _shown(frame, hands, f"{gesture} (take {take}) recording", show):
            return None
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return {
        "gesture": gesture,
        "take": take,
        "folder": final.relative_to(out).as_posix(),
        "frames": n_frames,
        "hand_frames": hand_frames,
        "source_frames": [first, frames.used],
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _normalised(pixels: np.ndarray, shape) -> np.ndarray:
    """MediaPipe's image-normalised coordinates (x / width, y / height, z), as the tutorial's
    layout and the Kaggle files hold them."""
    height, width = shape[:2]
    return (np.asarray(pixels, dtype=np.float64) / [width, height, 1.0]).reshape(-1)


def _save(out: Path, plan: Plan, fps: float) -> None:
    """recording.json, subjects.csv and the datasheet, each replaced whole."""
    replace_text(out / SESSION, json.dumps(asdict(plan), indent=2) + "\n")
    rows = [["action", "sequence", "subject"]] + [
        [t["gesture"], Path(t["folder"]).name, plan.subject] for t in plan.takes
    ]
    with open(out / f".{SUBJECTS_FILE}.tmp", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    os.replace(out / f".{SUBJECTS_FILE}.tmp", out / SUBJECTS_FILE)
    replace_text(out / DATASHEET, _datasheet(plan, fps))


def _datasheet(plan: Plan, fps: float) -> str:
    per = {g: [t for t in plan.takes if t["gesture"] == g] for g in plan.gestures}
    rows = "\n".join(
        f"| {g} | {len(ts)} of {plan.repetitions} | {sum(t['frames'] for t in ts)} | "
        f"{sum(t['hand_frames'] for t in ts)} |"
        for g, ts in per.items()
    )
    first = plan.takes[0]["recorded"] if plan.takes else "-"
    last = plan.takes[-1]["recorded"] if plan.takes else "-"
    return f"""# Datasheet: gestures recorded with `python -m gesturelab record`

- Subject: `{plan.subject}`; source: {plan.source} at {fps:g} fps
- Takes: {plan.seconds:g} s each after a {plan.countdown:g} s countdown; recorded {first} to {last}
- Layout: `<gesture>/<subject>_<take>/<frame>.npy`, 126 values a frame (left hand, right hand,
  21 × (x, y, z) each in MediaPipe's image-normalised coordinates; zeros where a hand was not
  found), `subjects.csv` (action, sequence, subject); `recording.json` holds every take.
- Landmarks: MediaPipe Hands {_mediapipe_version()} in video mode, two hands, named by handedness.
- Read it: `python -m gesturelab data inspect .` (here); train: `train-seq --data <this folder>`.

| gesture | takes | frames | frames with a hand |
|---|---|---|---|
{rows}
"""


def _mediapipe_version() -> str:
    from importlib.metadata import version

    return version("mediapipe")


def default_out() -> Path:
    return config.DATA_DIR / "recorded"
