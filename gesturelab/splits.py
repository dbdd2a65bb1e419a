"""Leakage-free train/validation/test splits.

Rows that share a group (a user, a subject, a recording place) never sit on both sides of a
split. The full HaGRID file has user ids; where a file has no group column, contiguous runs of
rows with the same label are cut into blocks of ``block_size`` rows, because rows next to each
other in such a file were taken from one place of the source (the shipped sample is 36 blocks of
about 20 rows) and may be near-copies of each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from gesturelab.landmarks import GROUP_COLUMNS, LABEL_COLUMN

SPLITS = ("train", "val", "test")


def find_group_column(data: pd.DataFrame) -> str | None:
    return next((c for c in GROUP_COLUMNS if c in data.columns), None)


def contiguous_blocks(labels, block_size: int = 10, min_blocks: int = 3) -> np.ndarray:
    """Group ids for runs of equal labels cut into blocks of about ``block_size`` rows.

    Every run gets at least ``min_blocks`` blocks so that each class can reach train,
    validation and test; a short run therefore gets smaller blocks.
    """
    labels = pd.Series(np.asarray(labels, dtype=object))
    runs = (labels != labels.shift()).cumsum().to_numpy()
    groups = np.empty(len(labels), dtype=np.int64)
    next_id = 0
    for run in np.unique(runs):
        rows = np.flatnonzero(runs == run)
        n_blocks = min(len(rows), max(min_blocks, round(len(rows) / block_size)))
        groups[rows] = next_id + np.arange(len(rows)) * n_blocks // len(rows)
        next_id += n_blocks
    return groups


def assign_groups(data: pd.DataFrame, block_size: int = 10) -> np.ndarray:
    column = find_group_column(data)
    if column is not None:
        return pd.factorize(data[column].astype(str))[0]
    return contiguous_blocks(data[LABEL_COLUMN], block_size)


def split_train_val_test(
    labels, groups, test_size: float = 0.2, val_size: float = 0.2, seed: int = 42
) -> np.ndarray:
    """One of "train", "val", "test" per row, stratified by label and grouped.

    test_size is the share of all rows, val_size the share of what remains after the test set.
    """
    labels = np.asarray(labels, dtype=object)
    groups = np.asarray(groups)
    split = np.full(len(labels), "train", dtype=object)
    test_rows = _one_fold(labels, groups, np.arange(len(labels)), test_size, seed)
    split[test_rows] = "test"
    rest = np.flatnonzero(split == "train")
    val_rows = _one_fold(labels[rest], groups[rest], rest, val_size, seed + 1)
    split[val_rows] = "val"
    return split


def _one_fold(labels, groups, rows, share, seed) -> np.ndarray:
    """Rows of a held-out share of the groups, stratified by label.

    When every group holds one label (blocks of a label-sorted file), each class gives up its
    own share of groups, so every class with two or more groups reaches the held-out part.
    Groups that mix labels (users who show every gesture) go through StratifiedGroupKFold.
    """
    if share <= 0:
        return np.array([], dtype=np.int64)
    frame = pd.DataFrame({"label": labels, "group": groups})
    if (frame.groupby("group")["label"].nunique() == 1).all():
        rng = np.random.default_rng(seed)
        held_out_groups = []
        for _, class_groups in frame.groupby("label")["group"]:
            unique = rng.permutation(np.unique(class_groups.to_numpy()))
            if len(unique) >= 2:
                n_held = min(len(unique) - 1, max(1, round(share * len(unique))))
                held_out_groups += list(unique[:n_held])
        return rows[np.isin(groups, held_out_groups)]
    n_splits = max(2, round(1 / share))
    n_groups = frame["group"].nunique()
    if n_groups < n_splits:
        raise ValueError(
            f"cannot hold out {share:.0%} by group: only {n_groups} groups for {n_splits} folds"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held_out = next(folds.split(np.zeros(len(labels)), labels, groups))
    return rows[held_out]


def describe_split(labels, split) -> pd.DataFrame:
    """Rows per class and split, for the data report."""
    table = pd.crosstab(
        pd.Series(np.asarray(labels, dtype=object), name="label"),
        pd.Series(np.asarray(split, dtype=object), name="split"),
    )
    return table.reindex(columns=[s for s in SPLITS if s in table.columns])
