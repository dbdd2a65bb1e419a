"""Benchmark: seconds per training epoch of the sequence architectures with TensorFlow on one
thread or two, one fit alone and two fits side by side.

    .venv/bin/python benchmarks/bench_tf_threads.py [--archs ddnet cnn gru] [--epochs 8]
                                                    [--threads 1 2]

Each fit is its own Python process (TensorFlow's thread pools are fixed when it starts), trains
the 14-class SHREC'17 configuration of notebook 03 on 15 subjects for ``--epochs`` epochs
without early stopping, and reports the median seconds of its epochs after the second (the
first ones trace and compile). "side by side" starts two identical fits at once, as the
engine's two workers do. Prints one row per (architecture, threads, mode) and the validation
accuracy each fit reached, so a change of numerics shows. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

FIT = r"""
import sys, time
import numpy as np, keras
from gesturelab.datasets import shrec
from gesturelab.training.seq_training import config_for, fit
arch, epochs = sys.argv[1], int(sys.argv[2])
data = shrec.load_compact().with_classes(14)
held_out = np.isin(data.subjects, sorted(set(data.subjects.tolist()))[:5])
times = []
class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.start)
config = config_for(arch, 14, epochs=epochs, early_stopping=False)
result = fit(data.subset(~held_out), config, data.subset(held_out), callbacks=[Clock()])
print(float(np.median(times[2:])), result.history["val_accuracy"][-1])
"""


def run(arch: str, epochs: int, threads: int, copies: int) -> list[tuple[float, float]]:
    env = dict(
        os.environ,
        TF_NUM_INTRAOP_THREADS=str(threads),
        TF_NUM_INTEROP_THREADS=str(threads),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIT, arch, str(epochs)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(copies)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        seconds, accuracy = out.split()[-2:]
        results.append((float(seconds), float(accuracy)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["ddnet", "cnn", "gru"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    print(f"{'arch':<8}{'threads':>8}  {'mode':<14}{'s/epoch':>18}  val accuracy")
    for arch in args.archs:
        for threads in args.threads:
            for mode, copies in (("alone", 1), ("side by side", 2)):
                results = run(arch, args.epochs, threads, copies)
                seconds = " ".join(f"{s:.3f}" for s, _ in results)
                accuracy = " ".join(f"{a:.4f}" for _, a in results)
                print(f"{arch:<8}{threads:>8}  {mode:<14}{seconds:>18}  {accuracy}")


if __name__ == "__main__":
    main()
