"""How much a split leaks on webcam recordings: grouped 5-fold macro-F1 by block size.

    .venv/bin/python benchmarks/split_leakage.py [--data data/kazuhito00_keypoints/keypoint.csv]

A file without user or session ids that is one recording per class (the keypoint file: ~1,500
consecutive frames per class) is split in contiguous blocks within label runs. Rows at a
block's edge are near-copies of the neighbouring block's, so short blocks leak: the score
falls as the blocks grow and stops falling once the leak is gone. The project cuts a run into
at most ``config.MAX_BLOCKS_PER_RUN`` blocks. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse

import numpy as np

from gesturelab import config, datasets
from gesturelab.datasets.splits import contiguous_blocks, grouped_folds
from gesturelab.evaluation.metrics import classification_metrics
from gesturelab.models.static_families import build_pipeline
from gesturelab.training.sweep_transfer import cross_val_oof

CONFIGS = {
    "svm rbf C=10": ("svm", {"kernel": "rbf", "C": 10.0, "gamma": "scale"}),
    "knn k=3": ("knn", {"n_neighbors": 3}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(config.KEYPOINT_CSV))
    args = parser.parse_args()
    loaded = datasets.read(args.data, quarantine_dir=None, verbose=False)
    X, y = loaded.data[loaded.columns], loaded.y
    splits = {"random rows (no groups)": np.arange(len(y))}
    for blocks in (10**6, 36, config.MAX_BLOCKS_PER_RUN, 5):
        groups = contiguous_blocks(y, config.BLOCK_SIZE, max_blocks=blocks)
        size = int(np.median(np.bincount(groups)))
        splits[f"blocks of ~{size} rows"] = groups
    print(f"{loaded.path.name}: {len(y)} rows, {len(loaded.classes)} classes")
    print(f"{'split':28s} " + " ".join(f"{name:>14s}" for name in CONFIGS))
    for name, groups in splits.items():
        folds = grouped_folds(y, groups, 5, config.SEED)
        scores = []
        for family, params in CONFIGS.values():
            predicted, _, _, _ = cross_val_oof(build_pipeline(family, params), X, y, folds)
            scores.append(classification_metrics(y, predicted)["f1_macro"])
        print(f"{name:28s} " + " ".join(f"{s:14.3f}" for s in scores))


if __name__ == "__main__":
    main()
