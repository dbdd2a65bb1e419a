"""Dynamic gestures in a stream of frames: a sliding window over landmarks, reported as segments.

``StreamingRecognizer.push(frame)`` takes an RGB video frame (MediaPipe Hands runs on it in
video mode) or one frame's landmarks ((21, 3), a 63-vector, or None for "no hand"; (42, 3) or
126 values, right hand then left, for a model of ``--hand both`` data) and returns
a ``Segment`` when a gesture is recognised, else None. Every ``stride`` frames the last
``window`` frames are resampled to the model's length and scored. A window is "no gesture" when
fewer than ``min_hand_fraction`` of its frames hold a hand or its top probability is below the
threshold (by default the model's ``stream_threshold``, chosen on validation subjects, see
``seq_experiment.stream_threshold``). ``confirm`` consecutive windows of one label open a
segment (the event); it grows while windows agree and closes at the first that does not.

The window defaults to how long the model's training gestures lasted (their median frames,
converted from their frame rate to the stream's), else the model's own frame count: a window
much shorter than a gesture sees only part of it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from gesturelab.datasets.landmarks import INPUT_SHAPE, N_COORDS, N_LANDMARKS
from gesturelab.datasets.sequences import frame_mask, resample
from gesturelab.models.predictor import SequencePredictor

NO_GESTURE = "no gesture"
DEFAULT_THRESHOLD = 0.5  # for models logged without a validation threshold
MIN_HAND_FRACTION = 0.5
CONFIRM_WINDOWS = 2


@dataclass
class Segment:
    """One recognised gesture: where it is in the stream, its label and confidence."""

    label: str
    start_s: float
    end_s: float
    confidence: float
    start_frame: int
    end_frame: int
    windows: int = 1


def default_window(predictor: SequencePredictor, fps: float) -> int:
    """Frames per window at ``fps``: the model's training gestures' median duration, else its
    input length."""
    meta = predictor.metadata
    if meta.get("median_frames") and meta.get("frame_rate"):
        seconds = float(meta["median_frames"]) / float(meta["frame_rate"])
        return max(4, round(seconds * fps))
    return int(predictor.frames)


def frames_from(value_frames, value_seconds, fps: float, default: int) -> int:
    """A length given in frames or in seconds (seconds win when both are given)."""
    if value_seconds:
        return max(1, round(float(value_seconds) * fps))
    return int(value_frames) if value_frames else default


class StreamingRecognizer:
    """Gesture segments from a stream of frames or landmarks (see the module docstring)."""

    def __init__(
        self,
        predictor: SequencePredictor,
        fps: float = 30.0,
        window: int | None = None,
        stride: int | None = None,
        threshold: float | None = None,
        min_hand_fraction: float = MIN_HAND_FRACTION,
        confirm: int = CONFIRM_WINDOWS,
        landmarker=None,
        on_window=None,
    ):
        """on_window(record, frames): called with every scored window's record and its frames
        (what the model saw, before resampling), e.g. to collect hard examples."""
        if not isinstance(predictor, SequencePredictor):
            raise TypeError(
                "streaming recognition needs a sequence model; a static model labels single "
                "hands frame by frame (gesturelab.serving.inference.predict_video)"
            )
        self.predictor, self.fps = predictor, float(fps)
        self.window = int(window or default_window(predictor, self.fps))
        self.stride = int(stride or max(1, self.window // 4))
        if self.window < 4 or self.stride < 1:
            raise ValueError(f"window must be ≥ 4 frames and stride ≥ 1 (got {window}, {stride})")
        meta_threshold = predictor.metadata.get("stream_threshold")
        default = DEFAULT_THRESHOLD if meta_threshold is None else float(meta_threshold)
        self.threshold = default if threshold is None else float(threshold)
        self.min_hand_fraction, self.confirm = float(min_hand_fraction), int(confirm)
        self._landmarker = landmarker
        self._own_landmarker = False
        self.on_window = on_window
        self._frames: deque = deque(maxlen=self.window)
        self.frame_index = -1
        self.windows: list[dict] = []
        self.segments: list[Segment] = []
        self._run: list[dict] = []  # consecutive windows of one label
        self._open: Segment | None = None

    # -- input -------------------------------------------------------------------------------
    def push(self, frame, handedness: str | None = None) -> Segment | None:
        """One frame (RGB image or landmarks, None = no hand); a new Segment or None.
        handedness: "Left"/"Right" of pushed landmarks, for a model that learnt hands by side
        (``SequencePredictor.takes_hand``); an image's hands are found and chosen here."""
        self.frame_index += 1
        is_image = frame is not None and np.asarray(frame).ndim == 3
        if handedness is not None and not is_image:
            landmarks = self._landmarks(frame, one_hand=True)
            landmarks = self.predictor.takes_hand(landmarks, handedness)
            if landmarks is None:  # the hand this model did not learn
                landmarks = self._nothing()
        else:
            landmarks = self._landmarks(frame)
        self._frames.append(landmarks)
        full = len(self._frames) == self.window
        if not full or (self.frame_index + 1 - self.window) % self.stride:
            return None
        return self._score()

    def flush(self) -> None:
        """End of stream: close the open segment."""
        self._close()

    def close(self) -> None:
        self.flush()
        if self._own_landmarker and self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _nothing(self) -> np.ndarray:
        """A frame with no hand, in the model's frame shape."""
        return np.full(self.predictor.frame_shape, np.nan)

    def _landmarks(self, frame, one_hand: bool = False) -> np.ndarray:
        if frame is None:
            return np.full(INPUT_SHAPE, np.nan) if one_hand else self._nothing()
        array = np.asarray(frame)
        if array.ndim == 3 and array.shape[-1] == 3:  # an image; a hand is 2-D
            return self._detect(array)
        array = np.asarray(array, dtype=np.float64)
        shape = INPUT_SHAPE if one_hand else self.predictor.frame_shape
        if array.size != shape[0] * N_COORDS:
            what = (
                "both hands' landmarks (42, 3: right then left) or a 126-vector, or one hand "
                "with its handedness"
                if shape[0] > N_LANDMARKS
                else "one hand's landmarks (21, 3) or a 63-vector"
            )
            raise ValueError(
                f"push takes an RGB frame (height, width, 3), {what}, or None; "
                f"got shape {array.shape}"
            )
        return array.reshape(shape)

    def _detect(self, rgb: np.ndarray) -> np.ndarray:
        if self._landmarker is None:
            from gesturelab.datasets.extraction import HandLandmarker

            # a model that learnt hands by side looks at both hands and takes the one it knows,
            # or both of them (--hand both)
            both = self.predictor.hand is not None
            self._landmarker = HandLandmarker(
                static_image_mode=False, max_num_hands=2 if both else 1
            )
            self._own_landmarker = True
        frame, self.last_hand = self.predictor.frame_from_hands(
            self._landmarker.detect(rgb), rgb.shape[1]
        )
        return frame

    # -- scoring -----------------------------------------------------------------------------
    def _score(self) -> Segment | None:
        frames = np.stack(self._frames)
        hands = frame_mask(frames)  # a frame with either hand of a two-hand model counts
        end = self.frame_index
        start = end - self.window + 1
        record = {
            "start_frame": start,
            "end_frame": end,
            "start_s": start / self.fps,
            "end_s": (end + 1) / self.fps,
            "hand_fraction": float(hands.mean()),
        }
        if hands.mean() < self.min_hand_fraction:
            record.update(label=NO_GESTURE, best=None, confidence=np.nan, top3="")
        else:
            probabilities = self.predictor.predict_fixed(
                resample(frames, self.predictor.frames)[None]
            )[0]
            order = np.argsort(-probabilities)[:3]
            best, confidence = self.predictor.classes[order[0]], float(probabilities[order[0]])
            second = float(probabilities[order[1]]) if len(order) > 1 else 0.0
            record.update(
                best=best,
                confidence=confidence,
                margin=confidence - second,
                label=best if confidence >= self.threshold else NO_GESTURE,
                top3=", ".join(
                    f"{self.predictor.classes[j]} {probabilities[j]:.2f}" for j in order
                ),
            )
        self.windows.append(record)
        if self.on_window is not None and record["best"] is not None:
            self.on_window(record, frames)
        return self._follow(record)

    def _follow(self, record: dict) -> Segment | None:
        label = record["label"]
        if self._run and self._run[-1]["label"] != label:
            self._close()
        if label == NO_GESTURE:
            return None
        self._run.append(record)
        if self._open is not None:
            self._open.end_s, self._open.end_frame = record["end_s"], record["end_frame"]
            self._open.windows = len(self._run)
            self._open.confidence = max(self._open.confidence, record["confidence"])
            return None
        if len(self._run) < self.confirm:
            return None
        first = self._run[0]
        self._open = Segment(
            label=label,
            start_s=first["start_s"],
            end_s=record["end_s"],
            confidence=max(r["confidence"] for r in self._run),
            start_frame=first["start_frame"],
            end_frame=record["end_frame"],
            windows=len(self._run),
        )
        self._open.event_s = record["end_s"]  # when the event fired
        self.segments.append(self._open)
        return self._open

    def _close(self) -> None:
        self._run, self._open = [], None

    # -- tables ------------------------------------------------------------------------------
    def windows_table(self) -> pd.DataFrame:
        columns = ["start_frame", "end_frame", "start_s", "end_s", "hand_fraction", "label",
                   "best", "confidence", "margin", "top3"]  # fmt: skip
        return pd.DataFrame(self.windows).reindex(columns=columns)

    def segments_table(self) -> pd.DataFrame:
        rows = [{**asdict(s), "event_s": getattr(s, "event_s", s.end_s)} for s in self.segments]
        columns = ["label", "start_s", "end_s", "event_s", "confidence", "start_frame",
                   "end_frame", "windows"]  # fmt: skip
        return pd.DataFrame(rows).reindex(columns=columns)


def recognise(predictor: SequencePredictor, frames, fps: float = 30.0, **options):
    """Run a recognizer over an iterable of frames/landmarks; (segments, windows) tables."""
    with StreamingRecognizer(predictor, fps, **options) as recognizer:
        for frame in frames:
            recognizer.push(frame)
    return recognizer.segments_table(), recognizer.windows_table()
