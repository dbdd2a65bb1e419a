"""Benchmark: the same sequence leaderboard serially, on joblib's processes and on Dask.

    .venv/bin/python benchmarks/bench_seq_engine.py [--archs cnn tcn ddnet gru] [--classes 14]
                                                    [--epochs 20] [--workers 2]

Each backend builds the leaderboard of notebook 03 (``architecture_leaderboard``, no
ensemble) on the shipped SHREC'17 training split into a fresh temporary MLflow store, so
nothing is reused. Prints each backend's wall time (Dask's includes starting its LocalCluster),
the speed-up over serial, and whether every row's validation accuracy, macro-F1 and best epoch
equal the serial board's. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SCORES = ["val_accuracy", "val_f1_macro", "best_epoch"]


def board_once(data, engine, archs, classes, epochs):
    from gesturelab.training.seq_board import architecture_leaderboard

    with tempfile.TemporaryDirectory() as store:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(store) / 'mlflow.db'}"
        start = time.perf_counter()
        board, _ = architecture_leaderboard(
            data,
            archs=archs,
            class_counts=classes,
            epochs=epochs,
            experiment="bench-seq-engine",
            ensemble=(),
            engine=engine,
        )
        seconds = time.perf_counter() - start
    return seconds, board.set_index(["classes", "arch"])[SCORES].sort_index()


def main() -> None:
    from gesturelab.datasets import shrec
    from gesturelab.training.engine import Engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["cnn", "tcn", "ddnet", "gru"])
    parser.add_argument("--classes", nargs="+", type=int, default=[14])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    data = shrec.load_compact()
    engines = [Engine("serial"), Engine("joblib", args.workers), Engine("dask", args.workers)]
    rows = []
    for engine in engines:
        seconds, scores = board_once(data, engine, args.archs, args.classes, args.epochs)
        rows.append((engine, seconds, scores))
        print(f"{engine.describe():<40} {seconds:7.1f} s", flush=True)
    serial_seconds, serial_scores = rows[0][1], rows[0][2]
    print(
        f"\nSHREC'17 training split, {', '.join(args.archs)} on {args.classes} classes, "
        f"{args.epochs} epochs at most, {len(serial_scores)} trainings:"
    )
    for engine, seconds, scores in rows:
        same = (scores == serial_scores).all(axis=1)
        print(
            f"  {engine.describe():<40} {seconds:7.1f} s  speed-up {serial_seconds / seconds:4.2f}x"
            f"  rows equal to serial: {int(same.sum())}/{len(same)}"
        )


if __name__ == "__main__":
    main()
