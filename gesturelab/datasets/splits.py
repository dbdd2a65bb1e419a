"""Leakage-free splits: a grouped test set, and grouped cross-validation folds inside train.

With a few hundred rows a single validation split is too small to choose between models, so
validation is grouped k-fold cross-validation over the training rows: every training row is
predicted once by a model that never saw its group.

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

from gesturelab import config
from gesturelab.datasets.landmarks import GROUP_COLUMNS, LABEL_COLUMN

SPLITS = ("train", "test")


def find_group_column(data: pd.DataFrame) -> str | None:
    return next((c for c in GROUP_COLUMNS if c in data.columns), None)


def contiguous_blocks(
    labels,
    block_size: int = config.BLOCK_SIZE,
    min_blocks: int = 3,
    max_blocks: int = config.MAX_BLOCKS_PER_RUN,
) -> np.ndarray:
    """Group ids for runs of equal labels cut into blocks of about ``block_size`` rows.

    Every run gets at least ``min_blocks`` blocks so that each class can reach train,
    validation and test; a short run therefore gets smaller blocks. A long run gets at most
    ``max_blocks``: a webcam recording is a run of near-identical frames, and rows at a block's
    edge are near-copies of the next block's, so only long blocks keep the leak small.
    """
    labels = pd.Series(np.asarray(labels, dtype=object))
    runs = (labels != labels.shift()).cumsum().to_numpy()
    groups = np.empty(len(labels), dtype=np.int64)
    next_id = 0
    for run in np.unique(runs):
        rows = np.flatnonzero(runs == run)
        n_blocks = min(len(rows), max(min_blocks, min(max_blocks, round(len(rows) / block_size))))
        groups[rows] = next_id + np.arange(len(rows)) * n_blocks // len(rows)
        next_id += n_blocks
    return groups


def source_groups(data: pd.DataFrame, block_size: int = 20) -> np.ndarray:
    """The coarsest honest groups: recorded users/subjects, else whole source blocks.

    Unlike ``assign_groups`` a short run of labels stays one block, so a class shown in a single
    place of the file has a single group.
    """
    column = next((c for c in ("user_id", "subject") if c in data.columns), None)
    if column is not None:
        return pd.factorize(data[column].astype(str))[0]
    return contiguous_blocks(data[LABEL_COLUMN], block_size, min_blocks=1)


def assign_groups(data: pd.DataFrame, block_size: int = config.BLOCK_SIZE) -> np.ndarray:
    column = find_group_column(data)
    if column is not None:
        return pd.factorize(data[column].astype(str))[0]
    return contiguous_blocks(data[LABEL_COLUMN], block_size)


def split_train_test(labels, groups, test_size: float = 0.2, seed: int = config.SEED) -> np.ndarray:
    """ "train" or "test" per row, stratified by label and grouped."""
    labels = np.asarray(labels, dtype=object)
    groups = np.asarray(groups)
    split = np.full(len(labels), "train", dtype=object)
    split[_held_out_rows(labels, groups, test_size, seed)] = "test"
    return split


def grouped_folds(labels, groups, n_folds: int = 5, seed: int = config.SEED) -> np.ndarray:
    """A cross-validation fold per row, stratified by label, never splitting a group.

    With label-pure groups each class deals its own groups round the folds, so every class
    with two or more groups is on both sides of every fold it appears in.
    """
    labels = np.asarray(labels, dtype=object)
    groups = np.asarray(groups)
    frame = pd.DataFrame({"label": labels, "group": groups})
    folds = np.full(len(labels), -1, dtype=np.int64)
    if _label_pure(frame):
        rng = np.random.default_rng(seed)
        offset = 0
        for _, class_groups in frame.groupby("label")["group"]:
            for k, group in enumerate(rng.permutation(np.unique(class_groups.to_numpy()))):
                folds[groups == group] = (offset + k) % n_folds
            offset += len(np.unique(class_groups))
        return folds
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[held] = k
    return folds


def _label_pure(frame: pd.DataFrame) -> bool:
    return bool((frame.groupby("group")["label"].nunique() == 1).all())


def _held_out_rows(labels, groups, share, seed) -> np.ndarray:
    """Rows of a held-out share of the groups, stratified by label.

    When every group holds one label (blocks of a label-sorted file), each class gives up its
    own share of groups, so every class with two or more groups reaches the held-out part.
    Groups that mix labels (users who show every gesture) go through StratifiedGroupKFold.
    """
    rows = np.arange(len(labels))
    if share <= 0:
        return rows[:0]
    frame = pd.DataFrame({"label": labels, "group": groups})
    if _label_pure(frame):
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


def selection_rows(data: pd.DataFrame, max_train_rows: int, seed: int = config.SEED) -> np.ndarray:
    """Rows a sweep selects its configurations on: all of them, or, when the training split has
    more than ``max_train_rows``, the same share of every (split, label) drawn at random.

    Folds and groups are kept, so the subsample's cross-validation stays grouped; the test split
    is thinned by the same share only for estimates that use every split (transfer).
    """
    train = (data["split"] == "train").to_numpy()
    keep = np.ones(len(data), dtype=bool)
    if not max_train_rows or train.sum() <= max_train_rows:
        return keep
    share = max_train_rows / train.sum()
    rng = np.random.default_rng(seed)
    keep[:] = False
    for _, rows in data.groupby(["split", LABEL_COLUMN], sort=True).indices.items():
        take = min(len(rows), max(3, round(share * len(rows))))
        keep[rng.choice(rows, take, replace=False)] = True
    return keep
