"""Larger HaGRID-like landmark files built from the shipped sample's real rows, for benchmarks.

    .venv/bin/python benchmarks/jittered_rows.py --rows 25000 --out build/bench_rows/h25k.csv

These are NOT new data: every row is a copy of one of the 708 real rows of
``data/hagrid/hagrid_landmarks_sample.csv`` with small noise (each coordinate moved by a
Gaussian of 1.5 % of that hand's wrist-to-middle-MCP length), then moved and scaled as a whole
(which the normaliser removes). Copies keep their source row's group as ``user_id``, so
every copy of a row sits in the same split and fold and the grouped splits stay leak-free.
They measure what a sweep costs at a size, not how well a model generalises.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN
from gesturelab.datasets.splits import assign_groups

NOISE = 0.015


def jittered(n_rows: int, seed: int = 0, source=config.HAGRID_SAMPLE_CSV) -> pd.DataFrame:
    sample = pd.read_csv(source)
    groups = assign_groups(sample)
    rng = np.random.default_rng(seed)
    picks = np.concatenate([np.arange(len(sample)), rng.integers(0, len(sample), n_rows)])
    picks = np.sort(picks[:n_rows])  # copies of one row stay next to each other, as in a file
    coords = [c for c in sample.columns if c != LABEL_COLUMN]
    points = sample[coords].to_numpy(float).reshape(len(sample), 21, 3)[picks]
    size = np.linalg.norm(points[:, 9, :2] - points[:, 0, :2], axis=1)[:, None, None]
    noise = rng.normal(0.0, NOISE, points.shape) * size
    noise[:, :, 2] *= np.abs(points[:, :, 2]).mean() / max(float(size.mean()), 1e-9)
    first = picks != np.concatenate([[-1], picks[:-1]])
    noise[first] = 0.0  # the first copy of each row is the real row
    points = points + noise
    scale = np.where(first, 1.0, rng.uniform(0.8, 1.25, len(picks)))[:, None]
    shift = np.where(first[:, None], 0.0, rng.normal(0.0, 20.0, (len(picks), 2)))
    points[:, :, :2] = points[:, :, :2] * scale[:, :, None] + shift[:, None, :]
    out = pd.DataFrame(points.reshape(len(picks), 63), columns=coords)
    out[LABEL_COLUMN] = sample[LABEL_COLUMN].to_numpy()[picks]
    out["user_id"] = [f"block{g}" for g in groups[picks]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    jittered(args.rows, args.seed).to_csv(args.out, index=False)
    print(f"{args.out}: {args.rows} rows from the 708 real sample rows (jittered copies)")


if __name__ == "__main__":
    main()
