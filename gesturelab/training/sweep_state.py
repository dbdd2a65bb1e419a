"""What one classical sweep shares from step to step (data in its parts, settings, progress), its
result, and how a best configuration is chosen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN
from gesturelab.datasets.splits import selection_rows
from gesturelab.datasets.static_data import PreparedData
from gesturelab.errors import SweepDataError
from gesturelab.features.augment import perturb_viewpoint
from gesturelab.models.static_families import (
    REFERENCE_CONFIGS,
)


@dataclass
class SweepResult:
    runs: pd.DataFrame  # one row per configuration
    best: pd.DataFrame  # one row per family: its best configuration with test scores
    ablation: pd.DataFrame  # reference configurations x feature sets
    transfer: pd.DataFrame  # leave-one-source-block-out scores of the best and reference configs
    champion: dict = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    links: dict = field(default_factory=dict)  # the leaderboard in the MLflow UI
    reused: int = 0  # configuration runs reused from an earlier sweep (same run key)
    configurations: int = 0
    selected_on: tuple = ()  # (training rows configurations were selected on, training rows)


def check_sweepable(prepared: PreparedData, grids: dict) -> None:
    """What the sweep needs of the data, checked before the first run; one line if it fails.

    Two classes at least; every class in at least two cross-validation groups of the training
    split (else its fold is predicted by a model that never saw it) and in the test split;
    and as many training rows in each fold as the largest KNN neighbourhood of the grid.
    """
    path = prepared.loaded.path
    labels = prepared.data[LABEL_COLUMN]
    classes = sorted(labels.unique())
    if len(classes) < 2:
        raise SweepDataError(
            f"{path}: all {len(labels)} rows are labelled {classes[0]!r}; a classifier needs "
            "at least two classes"
        )
    train, test = prepared.part("train"), prepared.part("test")
    groups = train.groupby(LABEL_COLUMN)["group"].nunique().reindex(classes, fill_value=0)
    short = groups[groups < 2]
    if len(short):
        names = ", ".join(f"{c!r} ({n})" for c, n in short.items())
        raise SweepDataError(
            f"{path}: {len(short)} class(es) have fewer than 2 groups of rows in the training "
            f"split: {names}; every class needs 2 for cross-validation and 1 for the test "
            f"split (groups from {prepared.group_source})"
        )
    missing = sorted(set(classes) - set(test[LABEL_COLUMN]))
    if missing:
        raise SweepDataError(
            f"{path}: class(es) {', '.join(map(repr, missing))} have no row in the test split; "
            "each class needs at least 3 groups of rows"
        )
    k = max(
        [c.get("n_neighbors", 0) for c in grids.get("knn", [])]
        + [REFERENCE_CONFIGS["knn"]["n_neighbors"]]
    )
    folds = train["fold"].to_numpy()
    smallest = min(int((folds != f).sum()) for f in np.unique(folds))
    if smallest < k:
        raise SweepDataError(
            f"{path}: the KNN grid goes up to {k} neighbours, but the smallest cross-validation "
            f"fold trains on {smallest} rows; the sweep needs at least {k} per fold"
        )


@dataclass
class SweepState:
    """What every step of one sweep shares: the data in its parts, settings, the progress bar."""

    prepared: PreparedData
    experiment: str
    seed: int
    tolerance: float
    quick: bool
    X_train: pd.DataFrame = None
    y_train: np.ndarray = None
    X_test: pd.DataFrame = None
    y_test: np.ndarray = None
    X_perturbed: pd.DataFrame = None
    folds: np.ndarray = None
    bar: tqdm = None
    fresh: bool = False  # train every configuration again, reusing no finished run
    reused: int = 0
    trained: object = None  # the engine's results, in the order of the planned trainings
    selection_rows: int = config.SELECTION_ROWS
    selection: np.ndarray = None  # the rows configurations are selected on (all, or a subsample)
    X_train_all: pd.DataFrame = None
    y_train_all: np.ndarray = None
    test_digest: str = ""

    def shared(self) -> dict:
        """What every training task needs, sent to the workers once."""
        return {
            "X": self.X_train,
            "y": self.y_train,
            "folds": self.folds,
            "X_perturbed": self.X_perturbed,
            "seed": self.seed,
        }

    def __post_init__(self):
        data = self.prepared.data
        self.selection = selection_rows(data, self.selection_rows, self.seed)
        self.X_train_all, self.y_train_all = self.prepared.Xy("train")
        chosen = self.selection[(data["split"] == "train").to_numpy()]
        self.X_train, self.y_train = self.X_train_all[chosen], self.y_train_all[chosen]
        self.X_test, self.y_test = self.prepared.Xy("test")
        self.X_perturbed = perturb_viewpoint(self.X_train, self.seed)
        self.folds = self.prepared.part("train")["fold"].to_numpy()[chosen]
        test = pd.concat([self.X_test, pd.Series(self.y_test, index=self.X_test.index)], axis=1)
        self.test_digest = hashlib.sha256(test.to_csv().encode()).hexdigest()

    @property
    def subsampled(self) -> bool:
        """Whether configurations are selected on a subsample of the training rows."""
        return len(self.y_train) < len(self.y_train_all)

    @property
    def labels(self) -> list:
        return self.prepared.classes

    def data_params(self) -> dict:
        """What every family run records about the data it was swept on."""
        loaded = self.prepared.loaded
        return {
            "data_file": loaded.path.name,
            "data_sha256": loaded.fingerprint[:16],
            "rows_train": len(self.y_train_all),
            "rows_selection": len(self.y_train),
            "rows_test": len(self.y_test),
            "cv_folds": len(np.unique(self.folds)),
            "selection_tolerance": self.tolerance,
            "groups": self.prepared.group_source,
            **loaded.counts,
        }


def model_of(record: dict):
    """A record's fitted pipeline, loaded from its run when the record was adopted."""
    if record.get("model") is None:
        from gesturelab.models.predictor import open_model

        record["model"] = open_model(record["model_uri"]).model
    return record["model"]
