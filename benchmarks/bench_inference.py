"""Benchmark: MediaPipe extraction speed and predictor latency. Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/bench_inference.py [--model models:/hagrid-static-gesture@champion]

Extraction runs in a fresh process per core count (CPU affinity 1 core, then 2), on the
shipped videos. Latency: median and p95 of `predict_single` on one hand and `predict_batch` on
256 hands of the shipped HaGRID sample, then the same for a sequence model on one raw SHREC'17
sequence (resampling included) and on 256 of them (default: the registered 14-class champion
that notebook 03 writes; `benchmarks/bench_sequences.py` times every architecture).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench_sequences import latency as sequence_timings
from bench_sequences import timings

from gesturelab import config

VIDEOS = ["hand_video.mp4", "gestures_video.mp4"]


def extraction_fps(video: str) -> dict:
    import cv2

    from gesturelab.datasets.extraction import HandLandmarker, iter_video_frames

    frames = [f for _, f in iter_video_frames(config.DATA_DIR / "mediapipe_samples" / video)]
    with HandLandmarker(static_image_mode=False, max_num_hands=1) as landmarker:
        landmarker.detect(cv2.cvtColor(frames[0], cv2.COLOR_BGR2RGB))  # warm-up
        start = time.perf_counter()
        for frame in frames:
            landmarker.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        seconds = time.perf_counter() - start
    return {"video": video, "frames": len(frames), "fps": len(frames) / seconds}


def latency(model_uri: str | None) -> dict:
    from gesturelab.datasets.loading import load_landmarks_csv
    from gesturelab.models.predictor import GesturePredictor

    sample = load_landmarks_csv(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    if model_uri:
        predictor = GesturePredictor.load(model_uri)
    else:
        from gesturelab.models.static_families import build_pipeline

        predictor = GesturePredictor(
            build_pipeline("logreg", {"C": 1.0}).fit(sample.data, sample.y)
        )
        model_uri = "logreg C=1 trained here on the sample"
    hand, batch = sample.X[0], sample.X[:256]
    return {
        "model": model_uri,
        "classifier": predictor.get_model_info()["classifier"],
        "single": timings(lambda: predictor.predict_single(hand), 500),
        "batch_256": timings(lambda: predictor.predict_batch(batch), 50),
    }


def sequence_latency(model_uri: str) -> dict:
    from gesturelab.datasets import shrec
    from gesturelab.models.predictor import GesturePredictor

    predictor = GesturePredictor.load(model_uri)
    return {"model": model_uri, **sequence_timings(predictor, shrec.load_compact())}


def print_latency(title: str, result: dict, unit: str) -> None:
    single, batch = result["single"], result["batch_256"]
    print(title)
    print(f"  single {unit}: median {single['median_ms']:.3f} ms, p95 {single['p95_ms']:.3f} ms")
    print(f"  batch of 256: median {batch['median_ms']:.2f} ms, p95 {batch['p95_ms']:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model URI; default: train the sample champion here")
    parser.add_argument(
        "--sequence-model",
        default="models:/shrec17-14-gestures@champion",
        help="sequence model URI (default: the registered 14-class champion)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one extraction measurement, pinned to the given cores
        cores = int(args.child)
        os.sched_setaffinity(0, set(range(cores)))
        print(json.dumps([extraction_fps(v) | {"cores": cores} for v in VIDEOS]))
        return 0
    print("MediaPipe Hands extraction (video mode, 1 hand, frames already decoded):")
    for cores in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(cores), "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(cores)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        for row in json.loads(out.stdout.strip().splitlines()[-1]):
            print(
                f"  {row['video']:20s} {row['cores']} core(s): {row['fps']:6.1f} frames/s "
                f"({row['frames']} frames)"
            )
    result = latency(args.model)
    print_latency(f"Predictor latency ({result['model']}, {result['classifier']}):", result, "hand")
    try:
        result = sequence_latency(args.sequence_model)
    except Exception as error:  # noqa: BLE001  a store without sequence champions is normal
        print(f"Sequence model {args.sequence_model}: not available ({error}); run notebook 03")
    else:
        print_latency(f"Sequence predictor latency ({result['model']}):", result, "sequence")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
