"""Benchmark: the same sweep serially, on joblib's local processes and on a Dask LocalCluster.

    .venv/bin/python benchmarks/bench_engine.py [--data CSV] [--workers 2] [--full]

Each backend sweeps the same file (default: the shipped HaGRID sample; the quick grid of every
family with the feature ablation and transfer estimates, or the full grid with ``--full``)
into a fresh temporary MLflow store, so nothing is reused. Prints each backend's wall time
(Dask's includes starting its LocalCluster), the speed-up over serial, and whether every
configuration's validation macro-F1 matches the serial sweep's (the MLP's may differ in the
third decimal: TensorFlow's threaded sums). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def sweep_once(data, engine, quick: bool):
    from gesturelab.datasets.static_data import prepare
    from gesturelab.training.sweep import run_sweep

    with tempfile.TemporaryDirectory() as store:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(store) / 'mlflow.db'}"
        prepared = prepare(data, quarantine_dir=None, verbose=False)
        start = time.perf_counter()
        result = run_sweep(prepared, quick=quick, engine=engine, progress=False)
        seconds = time.perf_counter() - start
    return seconds, result.runs.set_index("run_name")["val_f1_macro"]


def main() -> None:
    from gesturelab import config
    from gesturelab.training.engine import Engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(config.HAGRID_SAMPLE_CSV))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="the full grid, not the quick one")
    args = parser.parse_args()
    engines = [
        Engine("serial"),
        Engine("joblib", args.workers),
        Engine("dask", args.workers),
    ]
    rows = []
    for engine in engines:
        seconds, scores = sweep_once(args.data, engine, not args.full)
        rows.append((engine, seconds, scores))
        print(f"{engine.describe():<40} {seconds:7.1f} s", flush=True)
    serial_seconds, serial_scores = rows[0][1], rows[0][2]
    print(f"\n{Path(args.data).name}, {'full' if args.full else 'quick'} grid, {len(serial_scores)}"
          " configurations:")  # fmt: skip
    for engine, seconds, scores in rows:
        same = (scores == serial_scores).reindex(serial_scores.index)
        differ = sorted(serial_scores.index[~same.to_numpy(bool)])
        print(
            f"  {engine.describe():<40} {seconds:7.1f} s  speed-up {serial_seconds / seconds:4.2f}x"
            f"  val macro-F1 equal to serial: {int(same.sum())}/{len(same)}"
            + (f" (differ: {', '.join(differ)})" if differ else "")
        )


if __name__ == "__main__":
    main()
