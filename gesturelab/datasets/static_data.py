"""The static-gesture dataset as experiments use it: validated rows with groups and a split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN
from gesturelab.datasets.loading import LandmarkDataError, LoadedLandmarks
from gesturelab.datasets.splits import (
    SPLITS,
    assign_groups,
    find_group_column,
    grouped_folds,
    split_train_test,
)
from gesturelab.errors import SweepDataError


@dataclass
class PreparedData:
    loaded: LoadedLandmarks
    data: pd.DataFrame  # landmarks, label, "group", "split" and "fold" (-1 on test rows)
    group_source: str  # which column the groups came from, or how they were inferred

    @property
    def classes(self) -> list[str]:
        """The label set as the data gave it (sorted, or in its label file's order)."""
        present = set(self.data[LABEL_COLUMN])
        return [c for c in self.loaded.classes if c in present] or sorted(present)

    @property
    def dims(self) -> int:
        return self.loaded.dims

    @property
    def columns(self) -> list[str]:
        """The coordinate columns a model of this data takes."""
        return self.loaded.columns

    def part(self, name: str) -> pd.DataFrame:
        return self.data[self.data["split"] == name]

    def Xy(self, name: str):
        rows = self.part(name)
        return rows[self.columns], rows[LABEL_COLUMN].to_numpy(dtype=object)

    @property
    def dataset(self) -> dict:
        """What train_with_mlflow logs as a run's input."""
        columns = [c for c in (*self.columns, LABEL_COLUMN) if c in self.data.columns]
        return {
            "data": self.data[columns],
            "path": self.loaded.path,
            "fingerprint": self.loaded.fingerprint,
            "targets": LABEL_COLUMN,
        }


def prepare(
    path=None,
    *,
    classes=None,
    block_size: int = config.BLOCK_SIZE,
    test_size: float = 0.2,
    n_folds: int = 5,
    seed: int = config.SEED,
    quarantine_dir=config.QUARANTINE_DIR,
    verbose: bool = True,
    read_options: dict | None = None,
) -> PreparedData:
    """Read any supported dataset (``gesturelab.datasets``) and split it without leakage.

    classes: None takes the label set from the data; a label file, ``"hagrid"`` or a list
        restricts and orders it (rows of other labels are quarantined).
    read_options: how to read the file (``format``, ``labels``, ``label_column``: see
        ``gesturelab.datasets.read``).
    A file that already has a ``split`` column (written by ``write_processed``) keeps it.
    """
    from gesturelab import datasets

    path = path if path is not None else config.HAGRID_SAMPLE_CSV
    loaded = datasets.read(
        path,
        classes=classes,
        quarantine_dir=quarantine_dir,
        verbose=verbose,
        **(read_options or {}),
    )
    path = loaded.path
    data = loaded.data.copy()
    group_column = find_group_column(data)
    data["group"] = assign_groups(data, block_size)
    if group_column is not None:
        group_source = f"column {group_column!r}"
    else:
        sizes = data.groupby("group").size()
        group_source = (
            f"contiguous blocks within label runs ({len(sizes)} blocks of "
            f"{sizes.min()}-{sizes.max()} rows, median {int(sizes.median())})"
        )
    if "split" in loaded.data.columns:
        data["split"] = data["split"].astype(str).str.strip()
        unknown = sorted(set(data["split"]) - set(SPLITS))
        if unknown:
            raise LandmarkDataError(path, f"unknown split value(s) {unknown}", column="split")
        leaking = data.groupby("group")["split"].nunique()
        if (leaking > 1).any():
            raise LandmarkDataError(
                path,
                f"{int((leaking > 1).sum())} group(s) have rows in both train and test "
                f"(groups from {group_source})",
                column="split",
            )
        group_source += " (split read from the file)"
    try:
        if "split" not in loaded.data.columns:
            data["split"] = split_train_test(data[LABEL_COLUMN], data["group"], test_size, seed)
        data["group"] = data["group"].astype(np.int64)
        train = (data["split"] == "train").to_numpy()
        data["fold"] = -1
        data.loc[train, "fold"] = grouped_folds(
            data.loc[train, LABEL_COLUMN], data.loc[train, "group"], n_folds, seed
        )
    except ValueError as exc:  # too few groups for a grouped split or for the folds
        raise SweepDataError(f"{path}: {exc} (groups from {group_source})") from None
    return PreparedData(loaded=loaded, data=data, group_source=group_source)


def write_processed(prepared: PreparedData, out_path) -> Path:
    """The split as a CSV in the HaGRID format plus group and split columns."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    columns = [*prepared.columns, LABEL_COLUMN, "group", "split"]
    prepared.data[columns].to_csv(out_path, index=False)
    return out_path
