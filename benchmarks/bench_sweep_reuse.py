"""Benchmark: a sweep, then the same sweep again into the same store, as a user runs them.

    .venv/bin/python benchmarks/bench_sweep_reuse.py [--full] [--data CSV]

Runs ``python -m gesturelab sweep --quick`` (``--full``: the full grid) twice into a fresh
temporary MLflow store and prints each command's wall time (interpreter start and imports
included) and the second's share of the first. The second finds every configuration run, test
score, transfer estimate and the champion under their keys and fits nothing. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep(store: Path, args: list[str]) -> tuple[float, str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    command = [sys.executable, "-m", "gesturelab", "sweep", *args]
    command += ["--figures-dir", str(store / "figures")]
    start = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full grid (minutes)")
    parser.add_argument("--data", help="a landmark file (default: the shipped HaGRID sample)")
    options = parser.parse_args()
    args = [] if options.full else ["--quick"]
    args += ["--data", options.data] if options.data else []
    with tempfile.TemporaryDirectory() as folder:
        first, _ = sweep(Path(folder), args)
        second, out = sweep(Path(folder), args)
    reused = next((line for line in out.splitlines() if line.startswith("reused")), "")
    print(f"sweep {' '.join(args) or '(full)'}: first {first:.1f} s, second {second:.1f} s")
    print(f"second / first: {second / first:.3f}")
    print(reused.split(";")[0])


if __name__ == "__main__":
    main()
