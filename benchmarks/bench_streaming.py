"""Benchmark: the streaming path per frame on one core, and the model alone per window.

    .venv/bin/python benchmarks/bench_streaming.py [--model models:/shrec17-14-gestures@champion]
        [--detector runs:/<id>/model] [--video data/mediapipe_samples/gestures_video.mp4]
        [--cores 1]

The process is pinned to ``--cores`` CPU cores (default one) and TensorFlow to as many threads,
so the numbers are what one core of this machine gives. On each shipped video, decoded once
into memory (decoding is the camera's job, not ours): MediaPipe Hands in video mode alone, per
frame; then the whole path, ``StreamingRecognizer.push(rgb frame)`` (MediaPipe, the window, the
model every stride frames), as frames per second; then the model alone on one window
(resampling included), median and p95 over 300 calls. Without a logged model (a fresh clone
has none until ``train-seq --register``) an untrained DD-Net of the champion's shape is timed:
speed does not depend on the weights. Then the live detector (a per-frame model with a learned
"no gesture", notebook 07): ``LiveRecognizer.push`` on the decoded frames (MediaPipe, the
detector every hop frames), and its model call alone on one live window, median and p95; an
untrained detector of the default shape without ``--detector``. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def pin(cores: int) -> None:
    os.sched_setaffinity(0, set(range(cores)))
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(cores)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def percentiles(seconds) -> str:
    ms = 1000 * np.asarray(seconds)
    return f"median {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/shrec17-14-gestures@champion")
    parser.add_argument("--video", nargs="*", help="default: the two shipped videos")
    parser.add_argument("--detector", help="a logged live detector (notebook 07 prints its run)")
    parser.add_argument("--cores", type=int, default=1)
    args = parser.parse_args()
    pin(args.cores)

    import cv2

    from gesturelab import config
    from gesturelab.datasets.extraction import HandLandmarker, iter_video_frames, video_properties
    from gesturelab.datasets.sequences import resample
    from gesturelab.errors import GestureLabError
    from gesturelab.models.predictor import SequencePredictor, load_predictor
    from gesturelab.serving.streaming import StreamingRecognizer

    try:
        predictor = load_predictor(args.model)
        what = args.model
    except (GestureLabError, Exception) as exc:  # no store, no such model: time the shape
        from gesturelab.datasets import shrec
        from gesturelab.models.seq_models import build_model
        from gesturelab.training.seq_training import config_for

        cfg = config_for("ddnet", 14)
        model = build_model("ddnet", cfg.frames, 14, cfg.features, cfg.width, cfg.dropout)
        predictor = SequencePredictor(
            model,
            {
                "frames": cfg.frames,
                "classes": list(shrec.GESTURES_14),
                "median_frames": 57,
                "frame_rate": 30.0,
            },
        )
        what = f"an untrained DD-Net ({type(exc).__name__}: {str(exc)[:80]})"
    print(f"cores pinned: {sorted(os.sched_getaffinity(0))}; model: {what}")
    videos = args.video or [
        config.DATA_DIR / "mediapipe_samples" / n for n in ("gestures_video.mp4", "hand_video.mp4")
    ]
    for video in videos:
        fps, _, size = video_properties(video)
        rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for _, f in iter_video_frames(video)]
        with HandLandmarker(static_image_mode=False, max_num_hands=1) as marker:
            marker.detect(rgb[0])
            seconds = []
            for frame in rgb:
                start = time.perf_counter()
                marker.detect(frame)
                seconds.append(time.perf_counter() - start)
        print(
            f"{video.name if hasattr(video, 'name') else video} ({size[0]}x{size[1]}, "
            f"{len(rgb)} frames): MediaPipe Hands {percentiles(seconds)} per frame"
        )
        recognizer = StreamingRecognizer(predictor, fps)
        recognizer.push(rgb[0])
        start = time.perf_counter()
        for frame in rgb[1:]:
            recognizer.push(frame)
        total = time.perf_counter() - start
        recognizer.close()
        print(
            f"  whole path (window {recognizer.window}, stride {recognizer.stride}): "
            f"{(len(rgb) - 1) / total:.1f} frames/s, {1000 * total / (len(rgb) - 1):.2f} ms "
            f"per frame, {len(recognizer.windows)} windows scored"
        )
    window = np.random.default_rng(0).normal(size=(57, 21, 3))
    predictor.predict_fixed(resample(window, predictor.frames)[None])
    seconds = []
    for _ in range(300):
        start = time.perf_counter()
        predictor.predict_fixed(resample(window, predictor.frames)[None])
        seconds.append(time.perf_counter() - start)
    print(f"model alone, one window of 57 frames -> {predictor.frames}: {percentiles(seconds)}")
    live_detector(args, videos)


def live_detector(args, videos) -> None:
    import cv2

    from gesturelab.datasets import shrec
    from gesturelab.datasets.extraction import iter_video_frames, video_properties
    from gesturelab.models.frame_models import frame_architecture
    from gesturelab.models.frame_predictor import FrameDetector
    from gesturelab.models.predictor import load_predictor
    from gesturelab.serving.frame_segments import LiveRecognizer

    if args.detector:
        detector, what = load_predictor(args.detector), args.detector
    else:
        spec = frame_architecture("causal_tcn")
        d = spec.defaults
        model = spec.build(15, d["width"], d["dilations"], d["dropout"])
        detector = FrameDetector(model, {"classes": list(shrec.GESTURES_14)})
        what = "an untrained live detector of the default shape"
    print(f"live detector: {what}; receptive field {detector.receptive_field} frames")
    for video in videos:
        fps, _, _ = video_properties(video)
        rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for _, f in iter_video_frames(video)]
        with LiveRecognizer(detector, fps) as recognizer:
            recognizer.push(rgb[0])
            start = time.perf_counter()
            for frame in rgb[1:]:
                recognizer.push(frame)
            total = time.perf_counter() - start
        print(
            f"  {getattr(video, 'name', video)}: whole path (hop {recognizer.hop}): "
            f"{(len(rgb) - 1) / total:.1f} frames/s, {1000 * total / (len(rgb) - 1):.2f} ms "
            "per frame"
        )
    window = np.zeros((detector.receptive_field - 1 + 4, 63), np.float32)
    detector.window_rows(window)
    seconds = []
    for _ in range(300):
        start = time.perf_counter()
        detector.window_rows(window)
        seconds.append(time.perf_counter() - start)
    print(f"  detector alone, one live window of {len(window)} frames: {percentiles(seconds)}")


if __name__ == "__main__":
    main()
