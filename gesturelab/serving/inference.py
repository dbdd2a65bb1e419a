"""From pixels to predictions: photos and videos through MediaPipe and a GesturePredictor."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gesturelab import config
from gesturelab.datasets.extraction import (
    VIDEO_SUFFIXES,
    HandLandmarker,
    camera_frames,
    draw_hand,
    extract_images,
    hand_rows,
    iter_video_frames,
    partial_video,
    video_properties,
)
from gesturelab.errors import MediaError, path_text
from gesturelab.models.predictor import GesturePredictor


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def format_top_k(top) -> str:
    return ", ".join(f"{label} {p:.2f}" for label, p in top)


def predict_images(predictor: GesturePredictor, paths, progress=True):
    """One row per hand found (label, confidence, top-3), and the images that gave none."""
    extraction = extract_images(paths, progress=progress)
    rows = extraction.rows
    if len(rows):
        probabilities, scores = predictor.predict_with_scores(rows)  # keeps handedness
        top = np.argsort(-probabilities, axis=1)[:, :3]
        classes = predictor.classes
        rows = rows.assign(
            label=predictor.gesture_labels(probabilities, scores),
            confidence=probabilities.max(axis=1),
            top3=[
                format_top_k([(classes[j], p[j]) for j in t]) for p, t in zip(probabilities, top)
            ],
        )
    else:
        rows = rows.assign(label=[], confidence=[], top3=[])
    return rows, extraction.problems


class LabelSmoother:
    """Mean of the class probabilities over the last ``window`` frames that showed a hand.

    Causal, as it would run live; a gap longer than the window starts afresh, so a label
    never outlives the hand by more than ``window`` frames.
    """

    def __init__(self, window: int = config.SMOOTHING_WINDOW):
        self.window = window
        self.recent: deque = deque(maxlen=window)
        self.gap = 0

    def update(self, probabilities: np.ndarray | None) -> np.ndarray | None:
        if probabilities is None:
            self.gap += 1
            if self.gap > self.window:
                self.recent.clear()
            return np.mean(self.recent, axis=0) if self.recent else None
        self.gap = 0
        self.recent.append(probabilities)
        return np.mean(self.recent, axis=0)


def label_segments(table: pd.DataFrame) -> list[tuple[int, int, str]]:
    """(first frame, last frame, label) for each run of one smoothed label in a frame table."""
    shown = table.dropna(subset=["smoothed_label"])
    runs = (shown["smoothed_label"] != shown["smoothed_label"].shift()).cumsum()
    return [
        (int(run["frame"].iat[0]), int(run["frame"].iat[-1]), run["smoothed_label"].iat[0])
        for _, run in shown.groupby(runs)
    ]


def predict_video(
    predictor: GesturePredictor,
    path,
    out_dir=None,
    window: int = config.SMOOTHING_WINDOW,
    progress=True,
) -> pd.DataFrame:
    """Per-frame labels of a video; with ``out_dir``, an annotated copy and a per-frame CSV."""
    import cv2

    path = Path(path)
    fps, count, size = video_properties(path)
    writer = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(
            str(out_dir / f"{path.stem}_annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, size
        )
    smoother = LabelSmoother(window)
    records = []
    classes = predictor.classes
    with HandLandmarker(static_image_mode=False, max_num_hands=1) as landmarker:
        frames = iter_video_frames(path)
        for index, frame in tqdm(frames, total=count, desc=path.name, disable=not progress):
            hands = landmarker.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            record = {"frame": index, "time_s": index / fps, "hand": bool(hands)}
            probabilities = None
            if hands:
                row = pd.DataFrame(hand_rows(hands[:1], path_text(path), index))
                probabilities, class_scores = predictor.predict_with_class_scores(row)
                probabilities, class_scores = probabilities[0], class_scores[0]
                top = np.argsort(-probabilities)[:3]
                score = class_scores[top[:1]]
                record.update(
                    handedness=hands[0]["handedness"],
                    label=predictor.gesture_labels(probabilities, score)[0],
                    confidence=float(probabilities[top[0]]),
                    top3=format_top_k([(classes[j], float(probabilities[j])) for j in top]),
                )
            # The per-class reject scores are smoothed with the probabilities, and the
            # smoothed winner's score decides: a window that flips between two confident
            # labels is no confident label.
            smoothed = smoother.update(
                None if probabilities is None else np.concatenate([probabilities, class_scores])
            )
            if smoothed is not None:
                smoothed, smoothed_scores = np.split(smoothed, 2)
                best = int(np.argmax(smoothed))
                smoothed_score = smoothed_scores[best : best + 1]
                record.update(
                    smoothed_label=predictor.gesture_labels(smoothed, smoothed_score)[0],
                    smoothed_confidence=float(smoothed[best]),
                )
            records.append(record)
            if writer is not None:
                text = (
                    f"{record['smoothed_label']} {record['smoothed_confidence']:.2f}"
                    if smoothed is not None
                    else "no hand"
                )
                hand = hands[0]["landmarks"] if hands else None
                writer.write(draw_hand(frame, hand, f"{index:4d}  {text}"))
    if writer is not None:
        writer.release()
    if not records:
        raise MediaError(path, "no frame could be decoded")
    columns = [
        "frame",
        "time_s",
        "hand",
        "handedness",
        "label",
        "confidence",
        "top3",
        "smoothed_label",
        "smoothed_confidence",
    ]
    table = pd.DataFrame(records).reindex(columns=columns)
    if partial_video(len(records), count):
        table.attrs["problem"] = partial_video(len(records), count)
    if out_dir is not None:
        table.to_csv(out_dir / f"{path.stem}_frames.csv", index=False)
    return table


def _open_source(source, max_seconds=None):
    """(fps, iterator of (index, BGR frame), name, frame count or None, size or None) of a
    video file or a camera (``source`` an int)."""
    if isinstance(source, int):
        fps, frames = camera_frames(source, max_seconds)
        return fps, frames, f"camera{source}", None, None
    path = Path(source)
    fps, count, size = video_properties(path)
    return fps, iter_video_frames(path), path.stem, count, size


def _annotated_writer(out_dir, name: str, fps: float, size, frame):
    """The writer of ``<name>_annotated.mp4`` in ``out_dir``, at the first frame's size when
    the source did not say."""
    import cv2

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    height, width = frame.shape[:2]
    return cv2.VideoWriter(
        str(Path(out_dir) / f"{name}_annotated.mp4"),
        cv2.VideoWriter_fourcc(*"mp4v"),
        fps,
        size or (width, height),
    )


def stream_video(
    predictor,
    source,
    out_dir=None,
    *,
    window=None,
    stride=None,
    window_s=None,
    stride_s=None,
    threshold=None,
    max_seconds=None,
    progress=True,
    echo=None,
    on_window=None,
):
    """A sequence model over a video file or a camera (``source`` an int): MediaPipe in video
    mode, a sliding window, gesture segments (``gesturelab.serving.streaming``); ``on_window``
    sees every scored window (``StreamingRecognizer``), e.g. ``hard_examples.HardExamples``.

    Returns (segments, windows) tables; with ``out_dir``, an annotated copy of the video and
    ``<name>_windows.csv`` / ``<name>_segments.csv``. ``echo(segment)`` is called on each event.
    """
    import cv2

    from gesturelab.serving.streaming import (
        NO_GESTURE,
        StreamingRecognizer,
        default_window,
        frames_from,
    )

    camera = isinstance(source, int)
    fps, frames, name, count, size = _open_source(source, max_seconds)
    window = frames_from(window, window_s, fps, default_window(predictor, fps))
    stride = frames_from(stride, stride_s, fps, max(1, window // 4))
    writer, decoded = None, 0
    recognizer = StreamingRecognizer(
        predictor, fps, window=window, stride=stride, threshold=threshold, on_window=on_window
    )
    with recognizer:
        for index, frame in tqdm(frames, total=count, desc=name, disable=not progress):
            decoded += 1
            event = recognizer.push(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if event is not None and echo is not None:
                echo(event)
            if out_dir is None:
                continue
            if writer is None:
                writer = _annotated_writer(out_dir, name, fps, size, frame)
            current = recognizer._open
            text = f"{current.label} {current.confidence:.2f}" if current else NO_GESTURE
            hand = getattr(recognizer, "last_hand", None)
            hand = hand["landmarks"] if hand else None
            writer.write(draw_hand(frame, hand, f"{index / fps:6.2f}s  {text}"))
    if writer is not None:
        writer.release()
    if decoded == 0:
        raise MediaError(source, "no frame could be decoded")
    segments, windows = recognizer.segments_table(), recognizer.windows_table()
    segments.attrs.update(window=window, stride=stride, fps=fps, frames=decoded,
                          threshold=recognizer.threshold)  # fmt: skip
    if not camera and partial_video(decoded, count):
        segments.attrs["problem"] = partial_video(decoded, count)
    if out_dir is not None:
        windows.to_csv(Path(out_dir) / f"{name}_windows.csv", index=False)
        segments.to_csv(Path(out_dir) / f"{name}_segments.csv", index=False)
    return segments, windows


def detect_video(
    detector, source, out_dir=None, *, max_seconds=None, progress=True, echo=None, early=None
):
    """A per-frame detector (``models.frame_predictor.FrameDetector``) over a video file or a
    camera (``source`` an int): MediaPipe in video mode, the detector causally, segments fired
    as they are decided (``serving.frame_segments.LiveRecognizer``). (segments, frames) tables;
    with ``out_dir``, an annotated copy and ``<name>_frames.csv`` / ``<name>_segments.csv``;
    ``echo(segment)`` is called on each event; ``early``: an ``EarlyNaming`` that names the
    detector's runs (``serving.frame_segments.EarlyNamingSegmenter``)."""
    import cv2

    from gesturelab.serving.frame_segments import LiveRecognizer

    camera = isinstance(source, int)
    fps, frames, name, count, size = _open_source(source, max_seconds)
    writer, decoded = None, 0
    with LiveRecognizer(detector, fps, early=early) as recognizer:
        for index, frame in tqdm(frames, total=count, desc=name, disable=not progress):
            decoded += 1
            for segment in recognizer.push(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)):
                if echo is not None:
                    echo(segment, fps)
            if out_dir is None:
                continue
            if writer is None:
                writer = _annotated_writer(out_dir, name, fps, size, frame)
            current = recognizer.open_segment()
            text = f"{current.label} {current.confidence:.2f}" if current else "no gesture"
            hand = recognizer.last_hand["landmarks"] if recognizer.last_hand else None
            writer.write(draw_hand(frame, hand, f"{index / fps:6.2f}s  {text}"))
        for segment in recognizer.flush():
            if echo is not None:
                echo(segment, fps)
    if writer is not None:
        writer.release()
    if decoded == 0:
        raise MediaError(source, "no frame could be decoded")
    segments, per_frame = recognizer.segments_table(), recognizer.frames_table()
    segments.attrs.update(fps=fps, frames=decoded, rules=dict(recognizer.segmenter.rules.__dict__))
    if not camera and partial_video(decoded, count):
        segments.attrs["problem"] = partial_video(decoded, count)
    if out_dir is not None:
        per_frame.to_csv(Path(out_dir) / f"{name}_frames.csv", index=False)
        segments.to_csv(Path(out_dir) / f"{name}_segments.csv", index=False)
    return segments, per_frame
