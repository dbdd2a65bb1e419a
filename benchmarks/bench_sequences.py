"""Benchmark: training seconds per epoch and inference latency of each sequence architecture.

    .venv/bin/python benchmarks/bench_sequences.py [--epochs 3] [--classes 14] [--model URI]

Per architecture (default configuration, 32 frames): seconds per epoch of augmented training
on the whole shipped SHREC'17 split (the first epoch, which builds the graph, is reported
apart), then the latency of ``SequencePredictor.predict_single`` on one real sequence of any
length (resampling included) and of a batch of 256 sequences: median and p95. With ``--model``
the latency of a logged model (e.g. the registered champion) is measured too. Prints numbers;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timings(fn, repeats: int) -> dict:
    for _ in range(min(10, repeats)):
        fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    ms = 1000 * np.asarray(seconds)
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}


def latency(predictor, data) -> dict:
    one = data.sequences[0]
    batch = data.sequences[:256]
    return {
        "single": timings(lambda: predictor.predict_single(one), 200),
        "batch_256": timings(lambda: predictor.predict_distribution(batch), 10),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--classes", type=int, default=14, choices=(14, 28))
    from gesturelab.models.seq_models import SINGLE_ARCHITECTURES

    parser.add_argument("--archs", nargs="+", default=list(SINGLE_ARCHITECTURES))
    parser.add_argument("--model", help="also time a logged model, e.g. models:/...@champion")
    args = parser.parse_args()

    import keras

    from gesturelab.datasets import shrec
    from gesturelab.models.predictor import GesturePredictor, SequencePredictor
    from gesturelab.training.seq_training import config_for, fit

    data = shrec.load(n_classes=args.classes)
    print(f"cores: {os.cpu_count()}, data: {data.summary()}")
    results = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    for arch in args.archs:
        config = config_for(arch, args.classes, epochs=args.epochs)
        timer = EpochTimer()
        timer.seconds = []
        result = fit(data, config, None, callbacks=[timer])
        predictor = SequencePredictor(
            result.model, {"classes": list(data.classes), "frames": config.frames}
        )
        row = {
            "arch": arch,
            "parameters": result.model.count_params(),
            "first_epoch_s": timer.seconds[0],
            "seconds_per_epoch": float(np.mean(timer.seconds[1:] or timer.seconds)),
            "default_epochs": config_for(arch).epochs,
            **{f"{k}_{m}": v for k, t in latency(predictor, data).items() for m, v in t.items()},
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.model:
        predictor = GesturePredictor.load(args.model)
        row = {"model": args.model, **latency(predictor, data)}
        print(json.dumps(row), flush=True)

    print("\narch   params  s/epoch  first  epochs  single median/p95 ms  batch-256 median ms")
    for r in results:
        print(
            f"{r['arch']:5s} {r['parameters']:7d} {r['seconds_per_epoch']:8.2f} "
            f"{r['first_epoch_s']:6.1f} {r['default_epochs']:7d} "
            f"{r['single_median_ms']:10.2f} / {r['single_p95_ms']:.2f} "
            f"{r['batch_256_median_ms']:14.1f}"
        )


if __name__ == "__main__":
    main()
