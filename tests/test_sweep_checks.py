"""A file that cannot be swept is refused in one line before any run; two classes work."""

import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.datasets.static_data import prepare
from gesturelab.errors import SweepDataError
from gesturelab.models.predictor import GesturePredictor
from gesturelab.models.static_families import FAMILIES, build_pipeline
from gesturelab.training.sweep import run_sweep


def _subset(sample_frame, tmp_path, rows_per_class, labels):
    frame = pd.concat(
        [sample_frame[sample_frame["label"] == c].head(rows_per_class) for c in labels]
    )
    path = tmp_path / f"{len(labels)}x{rows_per_class}.csv"
    frame.to_csv(path, index=False)
    return prepare(path, quarantine_dir=None, verbose=False)


@pytest.mark.parametrize(
    ("rows", "labels", "message"),
    [
        (40, ["palm"], "all 40 rows are labelled 'palm'; a classifier needs at least two"),
        (2, ["palm", "fist"], "fewer than 2 groups of rows in the training split"),
        (3, ["palm", "fist"], "KNN grid goes up to 5 neighbours, but the smallest"),
    ],
)
def test_unsweepable_files_are_refused_before_the_first_run(
    sample_frame, tmp_path, mlflow_store, rows, labels, message
):
    prepared = _subset(sample_frame, tmp_path, rows, labels)
    with pytest.raises(SweepDataError, match=message) as error:
        run_sweep(prepared, quick=True, experiment="never", progress=False)
    assert "\n" not in str(error.value)
    mlflow.set_tracking_uri(mlflow_store)
    assert mlflow.get_experiment_by_name("never") is None


@pytest.mark.integration
def test_cli_says_it_in_one_line(sample_frame, tmp_path, mlflow_store):
    path = tmp_path / "palm.csv"
    sample_frame[sample_frame["label"] == "palm"].to_csv(path, index=False)
    out = subprocess.run(
        [sys.executable, "-m", "gesturelab", "sweep", "--quick", "--data", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_store},
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("family", ["svm", "logreg", "knn", "random_forest", "mlp"])
def test_two_class_models_give_two_scores_per_hand(sample_frame, family):
    rows = sample_frame[sample_frame["label"].isin(["palm", "fist"])]
    X, y = rows[list(LANDMARK_COLUMNS)], rows["label"]
    params = {"svm": {"kernel": "linear", "C": 1.0}, "knn": {"n_neighbors": 3}}.get(family, {})
    predictor = GesturePredictor(build_pipeline(family, params).fit(X, y))
    scores = predictor.predict_distribution(X)
    assert scores.shape == (len(rows), 2)
    assert (np.asarray(predictor.classes)[scores.argmax(1)] == y.to_numpy()).mean() > 0.9


@pytest.mark.slow
@pytest.mark.sweep
def test_a_sweep_of_three_classes_in_single_blocks_completes(sample_frame, tmp_path, mlflow_store):
    prepared = _subset(sample_frame, tmp_path, 12, ["palm", "fist", "like"])
    result = run_sweep(prepared, quick=True, experiment="small", progress=False)
    assert len(result.best) == len(FAMILIES) and result.best["transfer_f1_macro"].isna().all()


def test_a_negative_selection_size_is_refused(mlflow_store):
    from gesturelab.datasets.static_data import prepare
    from gesturelab.training.sweep import run_sweep

    prepared = prepare(quarantine_dir=None, verbose=False)
    with pytest.raises(SweepDataError, match="--selection-rows is a number of training rows"):
        run_sweep(prepared, quick=True, progress=False, selection_rows=-5)
