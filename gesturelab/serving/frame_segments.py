"""Gesture segments from a per-frame detector, decided causally (no look-ahead).

A per-frame detector (``models.frame_models``) says for every frame how likely each gesture is
to be under way, and how likely none is. ``FrameSegmenter.step`` turns those rows into segments
as they arrive, the way a live recognizer must:

- a **run** starts at the first frame whose "no gesture" probability falls below ``1 - on``
  and lasts while frames stay so; ``gap`` frames in a row back above it end the run (a brief
  dip inside a gesture does not), its end being its last gesture frame;
- the run's label is the class with the most probability summed over the run so far; the
  segment **fires** (the event: ``detected_at``) at the first frame, at least ``min_frames``
  into the run, where that class holds ``fire`` of the summed gesture probability; a run that
  never gets that sure fires when it ends, if it lasted ``min_length`` frames;
- a segment runs from the run's first frame to its last, with the label it fired with.

The delay the SHREC'22 protocol reports is ``detected_at - start``: how many frames into what
it calls a gesture the recognizer named it.

``EarlyNamingSegmenter`` keeps the same runs but lets a sequence model trained on gestures'
beginnings name them (``studies.early_naming.early_namer``): it reads the run so far at every frame
the detector calls a gesture and fires once it is sure (``EarlyRules``); a run it never gets sure
of is named once it is over.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from gesturelab.datasets.sequences import MIN_SEQUENCE_FRAMES, frame_mask


@dataclass(frozen=True)
class SegmentRules:
    on: float = 0.5
    min_frames: int = 6
    fire: float = 0.6
    gap: int = 4
    min_length: int = 10
    recent: int = 0  # 0: the whole run's evidence; n: the last n frames' only


@dataclass
class FrameSegment:
    label: str
    start_frame: int
    end_frame: int
    detected_at: int
    confidence: float


def segment_table(segments) -> pd.DataFrame:
    """``FrameSegment``s as a table, one row each."""
    columns = ["label", "start_frame", "end_frame", "detected_at", "confidence"]
    return pd.DataFrame([asdict(s) for s in segments]).reindex(columns=columns)


class FrameSegmenter:
    """Segments from per-frame probability rows (classes, then "no gesture"), one at a time."""

    def __init__(self, classes, rules: SegmentRules | None = None):
        self.classes = tuple(classes)
        self.rules = rules or SegmentRules()
        self.segments: list[FrameSegment] = []
        self.frame = -1
        self._reset()

    def _reset(self) -> None:
        self._start = None
        self._sums = np.zeros(len(self.classes))
        self._rows: list[np.ndarray] = []
        self._last = self._quiet = 0
        self._open: FrameSegment | None = None

    def step(self, row, frame=None) -> FrameSegment | None:
        """The next frame's probabilities; the segment that fired at it, else None. (``frame``,
        its landmarks, is what an ``EarlyNamingSegmenter`` reads; this one needs only ``row``.)"""
        self.frame += 1
        row = np.asarray(row, dtype=np.float64)
        rules = self.rules
        active = 1.0 - row[-1] >= rules.on
        if self._start is None:
            if not active:
                return None
            self._start = self.frame
        if active:
            self._sums += row[:-1]
            if self.rules.recent:
                keep = self.rules.recent - 1
                self._rows = [*(self._rows[-keep:] if keep else []), row[:-1]]
            self._last, self._quiet = self.frame, 0
        else:
            self._quiet += 1
            if self._quiet >= rules.gap:
                return self._end()
            return None
        if self._open is not None:
            self._open.end_frame = self.frame
            return None
        if self.frame - self._start + 1 >= rules.min_frames:
            best, share = self._best()
            if share >= rules.fire:
                return self._fire(best, share)
        return None

    def _best(self, recent: bool = True) -> tuple[int, float]:
        sums = np.sum(self._rows, axis=0) if recent and self._rows else self._sums
        total = sums.sum()
        best = int(np.argmax(sums))
        return best, float(sums[best] / total) if total > 0 else 0.0

    def _fire(self, best: int, share: float) -> FrameSegment:
        self._open = FrameSegment(
            self.classes[best], self._start, self._last, self.frame, round(share, 4)
        )
        self.segments.append(self._open)
        return self._open

    def _end(self) -> FrameSegment | None:
        fired = None
        if self._open is None and self._last - self._start + 1 >= self.rules.min_length:
            best, share = self._best(recent=False)
            fired = self._fire(best, share)
        if self._open is not None:
            self._open.end_frame = self._last
        self._reset()
        return fired

    def flush(self) -> FrameSegment | None:
        """End of the stream: the open run ends."""
        return self._end() if self._start is not None else None

    def table(self) -> pd.DataFrame:
        return segment_table(self.segments)


@dataclass(frozen=True)
class EarlyRules:
    """When an early namer fires: at a frame the detector calls a gesture, ``min_frames`` or
    more into the run, once one class has ``confidence``."""

    min_frames: int = 8
    confidence: float = 0.9


def every_run(rules: SegmentRules) -> SegmentRules:
    """``rules`` for finding runs only: the segmenter never fires on its own share, and every
    run, however short, comes out when it ends."""
    return replace(rules, fire=2.0, min_length=1)


@dataclass(frozen=True)
class EarlyNaming:
    """What an ``EarlyNamingSegmenter`` needs besides the detector: the namer, when it fires,
    the rules for runs (None: the detector's own) and the closer (None: the namer)."""

    namer: object
    rules: EarlyRules
    runs: SegmentRules | None = None
    closer: object = None

    @classmethod
    def from_tags(cls, namer, tags: dict, closer=None) -> EarlyNaming:
        """From the ``EARLY_RULES_TAG`` a study left on the namer's run (``detector_of`` says
        for which detector's runs)."""
        kept = json.loads(tags[EARLY_RULES_TAG])
        return cls(namer, EarlyRules(**kept["early"]), SegmentRules(**kept["runs"]), closer)

    @staticmethod
    def detector_of(tags: dict) -> str | None:
        """The run id of the detector whose runs the tagged rules were chosen on."""
        return json.loads(tags[EARLY_RULES_TAG]).get("detector_run")

    def tag(self, detector_run: str | None = None) -> dict:
        kept = {"early": asdict(self.rules), "runs": asdict(self.runs)}
        return {EARLY_RULES_TAG: json.dumps({**kept, "detector_run": detector_run})}


EARLY_RULES_TAG = "early_rules"  # on an early namer's run: its rules and its runs' rules


class EarlyNamingSegmenter:
    """Segments whose labels come from an early namer (module docstring), a frame at a time.

    runs: the segment rules that say where runs start and end (their ``min_length`` is the
    shortest run named once over); namer and closer: ``SequencePredictor``s, the closer naming
    the runs the namer never got sure of (default: the namer)."""

    def __init__(self, classes, runs: SegmentRules, early: EarlyRules, namer, closer=None):
        self.classes = tuple(classes)
        self.rules, self.early = runs, early
        self.namer, self.closer = namer, closer or namer
        self.runs = FrameSegmenter(classes, every_run(runs))
        self.segments: list[FrameSegment] = []
        self.frame = -1
        self._frames: list[np.ndarray] = []
        self._open: FrameSegment | None = None

    def step(self, row, frame) -> FrameSegment | None:
        """The next frame's detector row and landmarks (zeros or NaN: no hand); the segment
        that fired at it, else None."""
        self.frame += 1
        runs = self.runs
        new_run = runs._start is None
        ended = runs.step(row)
        if ended is not None:
            return self._close(ended)
        if runs._start is None:
            return None
        if new_run:
            self._frames = []
        self._frames.append(np.asarray(frame, dtype=np.float64))
        if self._open is not None:
            self._open.end_frame = runs._last
            return None
        into = self.frame - runs._start + 1
        if runs._last == self.frame and into >= self.early.min_frames:
            distribution = self._read(self.namer, len(self._frames))
            if distribution is not None and distribution.max() >= self.early.confidence:
                return self._fire(distribution, self.namer, runs._start, runs._last)
        return None

    def flush(self) -> FrameSegment | None:
        """End of the stream: the open run ends."""
        ended = self.runs.flush()
        return self._close(ended) if ended is not None else None

    def _read(self, model, frames: int) -> np.ndarray | None:
        piece = np.stack(self._frames[:frames])
        if frame_mask(piece).sum() < MIN_SEQUENCE_FRAMES:
            return None
        return model.predict_distribution([piece])[0]

    def _fire(self, distribution, model, start: int, end: int) -> FrameSegment:
        best = int(np.argmax(distribution))
        label = str(model.classes[best])
        self._open = FrameSegment(
            label, start, end, self.frame, round(float(distribution[best]), 4)
        )
        self.segments.append(self._open)
        return self._open

    def _close(self, ended: FrameSegment) -> FrameSegment | None:
        fired = None
        if self._open is not None:
            self._open.end_frame = ended.end_frame
        elif ended.end_frame - ended.start_frame + 1 >= self.rules.min_length:
            distribution = self._read(self.closer, ended.end_frame - ended.start_frame + 1)
            if distribution is not None:
                fired = self._fire(distribution, self.closer, ended.start_frame, ended.end_frame)
        self._open, self._frames = None, []
        return fired

    def table(self) -> pd.DataFrame:
        return segment_table(self.segments)


def segment_stream(probabilities: np.ndarray, classes, rules: SegmentRules | None = None):
    """Every segment of a whole stream's probability rows, as a table."""
    segmenter = FrameSegmenter(classes, rules)
    for row in probabilities:
        segmenter.step(row)
    segmenter.flush()
    return segmenter.table()


class LiveRecognizer:
    """A per-frame detector live: frames in (RGB images, or landmarks y-up as the detector
    learnt them, or None for no hand), segments out as they fire.

    Every ``hop`` frames (default: every frame, so an event comes out at the frame it names; a
    model call costs a few milliseconds) the detector reads the last ``receptive_field - 1 +
    hop`` frames and the segmenter takes the rows of the new ones: the detector is causal, so a
    row is the one it gives over the whole stream. An image's hands are found by MediaPipe in
    video mode; the most confident one is read (``frame_predictor.from_pixels``).

    early: an ``EarlyNaming``: its namer names the detector's runs (``EarlyNamingSegmenter``)."""

    def __init__(
        self, detector, fps: float = 30.0, hop: int = 1, rules=None, landmarker=None, early=None
    ):
        from collections import deque

        self.detector, self.fps, self.hop = detector, float(fps), max(1, int(hop))
        chosen = rules if rules is not None else SegmentRules(**detector.rules)
        if early is None:
            self.segmenter = FrameSegmenter(detector.classes, chosen)
        else:
            self.segmenter = EarlyNamingSegmenter(
                detector.classes, early.runs or chosen, early.rules, early.namer, early.closer
            )
        length = detector.receptive_field - 1 + self.hop
        # no hand before the stream began: the window has its full length from the first frame
        self._frames: deque = deque([np.zeros((21, 3))] * length, maxlen=length)
        self._pending = 0
        self._landmarker, self._own_landmarker = landmarker, False
        self.last_hand = None
        self.rows: list[np.ndarray] = []
        self.frame_index = -1

    def push(self, frame) -> list[FrameSegment]:
        """One frame; the segments that fired with it (mostly none)."""
        self.frame_index += 1
        self._frames.append(self._landmarks(frame))
        self._pending += 1
        return self._run() if self._pending >= self.hop else []

    def flush(self) -> list[FrameSegment]:
        """End of the stream: the frames not yet read, and the open run ends."""
        fired = self._run() if self._pending else []
        last = self.segmenter.flush()
        return [*fired, last] if last is not None else fired

    def close(self) -> None:
        if self._own_landmarker and self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self) -> list[FrameSegment]:
        rows = self.detector.window_rows(np.stack(self._frames))[-self._pending :]
        frames = list(self._frames)[-self._pending :]
        self._pending = 0
        fired = []
        for row, frame in zip(rows, frames, strict=True):
            self.rows.append(row)
            segment = self.segmenter.step(row, frame)
            if segment is not None:
                fired.append(segment)
        return fired

    def _landmarks(self, frame) -> np.ndarray:
        if frame is None:
            return np.zeros((21, 3))
        array = np.asarray(frame)
        if array.ndim == 3 and array.shape[-1] == 3 and array.shape[0] != 21:
            return self._detect(array)
        if array.size != 63:
            raise ValueError(
                "push takes an RGB frame (height, width, 3), one hand's landmarks (21, 3) or a "
                f"63-vector, or None; got shape {array.shape}"
            )
        return np.nan_to_num(np.asarray(array, dtype=np.float64).reshape(21, 3), nan=0.0)

    def _detect(self, rgb: np.ndarray) -> np.ndarray:
        from gesturelab.models.frame_predictor import from_pixels

        if self._landmarker is None:
            from gesturelab.datasets.extraction import HandLandmarker

            self._landmarker = HandLandmarker(static_image_mode=False, max_num_hands=1)
            self._own_landmarker = True
        hands = sorted(self._landmarker.detect(rgb), key=lambda h: -h["score"])
        self.last_hand = hands[0] if hands else None
        if not hands:
            return np.zeros((21, 3))
        return from_pixels(hands[0]["landmarks"], rgb.shape[1], hands[0]["handedness"])

    def open_segment(self) -> FrameSegment | None:
        return self.segmenter._open

    def frames_table(self) -> pd.DataFrame:
        """Per frame: time, the detector's best class and its probability, P(no gesture)."""
        rows = np.asarray(self.rows)
        if not len(rows):
            return pd.DataFrame(columns=["frame", "time_s", "best", "probability", "no_gesture"])
        best = rows[:, :-1].argmax(axis=1)
        return pd.DataFrame(
            {
                "frame": np.arange(len(rows)),
                "time_s": np.arange(len(rows)) / self.fps,
                "best": np.asarray(self.detector.classes)[best],
                "probability": rows[np.arange(len(rows)), best].round(4),
                "no_gesture": rows[:, -1].round(4),
            }
        )

    def segments_table(self) -> pd.DataFrame:
        table = self.segmenter.table()
        for column in ("start", "end", "detected"):
            frames = table[f"{column}_at" if column == "detected" else f"{column}_frame"]
            table[f"{column}_s"] = (frames + (column == "end")) / self.fps
        return table
