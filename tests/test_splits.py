"""Splits never put one group on two sides."""

import numpy as np
import pandas as pd

from gesturelab.datasets.splits import (
    assign_groups,
    contiguous_blocks,
    grouped_folds,
    split_train_test,
)
from gesturelab.datasets.static_data import prepare


def test_contiguous_blocks_respect_label_runs():
    labels = ["a"] * 20 + ["b"] * 40 + ["a"] * 5
    groups = contiguous_blocks(labels, block_size=10)
    frame = pd.DataFrame({"label": labels, "group": groups})
    assert (frame.groupby("group")["label"].nunique() == 1).all()
    assert frame.groupby("label")["group"].nunique().to_dict() == {"a": 6, "b": 4}


def test_sample_split_is_grouped_and_covers_every_class(sample_csv, tmp_path):
    prepared = prepare(sample_csv, quarantine_dir=tmp_path, verbose=False)
    data = prepared.data
    assert data.groupby("group")["split"].nunique().max() == 1
    train = data[data["split"] == "train"]
    assert train.groupby("group")["fold"].nunique().max() == 1
    assert set(data.loc[data["split"] == "test", "label"]) == set(data["label"])
    for fold in range(5):
        held = train[train["fold"] == fold]
        assert not set(held["group"]) & set(train.loc[train["fold"] != fold, "group"])
    assert 0.15 < (data["split"] == "test").mean() < 0.35


def test_user_ids_drive_groups_when_present():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "label": rng.choice(list("abc"), 300),
            "user_id": rng.choice([f"u{i}" for i in range(30)], 300),
        }
    )
    groups = assign_groups(frame)
    split = split_train_test(frame["label"], groups, 0.2, seed=3)
    by_user = pd.DataFrame({"user": frame["user_id"], "split": split})
    assert by_user.groupby("user")["split"].nunique().max() == 1
    folds = grouped_folds(frame["label"], groups, 5, seed=3)
    assert pd.DataFrame({"u": frame["user_id"], "f": folds}).groupby("u")["f"].nunique().max() == 1


def test_split_is_reproducible(sample_csv):
    a = prepare(sample_csv, quarantine_dir=None, verbose=False).data
    b = prepare(sample_csv, quarantine_dir=None, verbose=False).data
    pd.testing.assert_frame_equal(a, b)
    c = prepare(sample_csv, quarantine_dir=None, verbose=False, seed=7).data
    assert not a["split"].equals(c["split"])


def test_a_split_column_that_leaks_is_refused(sample_csv, tmp_path):
    import pytest

    from gesturelab.datasets.loading import LandmarkDataError
    from gesturelab.datasets.static_data import write_processed

    prepared = prepare(sample_csv, quarantine_dir=None, verbose=False)
    path = write_processed(prepared, tmp_path / "split.csv")
    again = prepare(path, quarantine_dir=None, verbose=False).data
    assert again["split"].tolist() == prepared.data["split"].tolist()
    frame = pd.read_csv(path)
    first_group = frame["group"] == frame["group"].iat[0]
    frame.loc[first_group[first_group].index[0], "split"] = "test"
    frame.loc[first_group[first_group].index[1], "split"] = "train"
    frame.to_csv(path, index=False)
    with pytest.raises(LandmarkDataError, match="group.*in both train and test"):
        prepare(path, quarantine_dir=None, verbose=False)


def test_selection_rows_take_the_same_share_of_every_split_and_label(sample_csv):
    from gesturelab.datasets.splits import selection_rows

    data = prepare(sample_csv, quarantine_dir=None, verbose=False).data
    train = data["split"] == "train"
    assert selection_rows(data, 0).all() and selection_rows(data, int(train.sum())).all()
    keep = selection_rows(data, 270, seed=1)
    assert abs(int((keep & train).sum()) - 270) <= 18  # rounding, one per (split, label)
    share = pd.Series(keep).groupby([data["split"].to_numpy(), data["label"].to_numpy()]).mean()
    assert share.between(0.3, 0.7).all(), share  # about half of every class on both sides
    assert (selection_rows(data, 270, seed=1) == keep).all()  # the same rows every time
    assert not (selection_rows(data, 270, seed=2) == keep).all()
