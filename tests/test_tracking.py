"""train_with_mlflow against a real, temporary MLflow store."""

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.landmarks import landmark_frame
from gesturelab.datasets.static_data import prepare
from gesturelab.evaluation.full_report import prediction_artifacts
from gesturelab.models.predictor import load_static
from gesturelab.models.static_families import SKOPS_TRUSTED_TYPES, build_pipeline
from gesturelab.training.sweep_transfer import cross_val_oof


def test_default_store_is_anchored_at_the_repo(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.tracking_uri() == f"sqlite:///{config.REPO_ROOT / 'mlruns' / 'mlflow.db'}"
    assert tracking.artifact_root() == (config.REPO_ROOT / "mlruns" / "artifacts").as_uri()


@pytest.fixture(scope="module")
def prepared(sample_csv):
    return prepare(sample_csv, quarantine_dir=None, verbose=False)


def test_log_experiment_run_records_everything(mlflow_store, prepared, tmp_path, monkeypatch):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # nothing may land in the working directory
    X, y = prepared.Xy("train")
    folds = prepared.part("train")["fold"].to_numpy()
    pipeline = build_pipeline("svm", {"kernel": "linear", "C": 1.0})
    val_pred, _, _, _ = cross_val_oof(pipeline, X, y, folds)
    pipeline.fit(X, y)
    artifacts, _ = prediction_artifacts(y, val_pred, "val_", prepared.classes, "svm linear")
    with tracking.parent_run("test-exp", "svm") as parent:
        result = tracking.log_experiment_run(
            pipeline,
            family="svm",
            params={"kernel": "linear", "C": 1.0},
            metrics={**artifacts.metrics, "fit_time_s": 0.1},
            figures=artifacts.figures,
            dicts=artifacts.dicts,
            X_example=landmark_frame(X.iloc[:3]),
            trusted_types=SKOPS_TRUSTED_TYPES,
            run_name="svm linear",
            dataset=prepared.dataset,
            label_set=prepared.classes,
        )
    assert list(cwd.iterdir()) == []
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert result.label_set == tuple(sorted(prepared.classes))
    assert result.metrics["val_accuracy"] == run.data.metrics["val_accuracy"]
    assert run.data.tags["model_family"] == "svm"
    assert run.data.tags["git_commit"]
    assert run.data.params["kernel"] == "linear"
    for name in (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
    ):
        assert 0.8 < run.data.metrics[f"val_{name}"] <= 1.0
    assert "fit_time_s" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"val_confusion_matrix.png", "val_classification_report.json"} <= artifacts
    artifact_dir = Path(mlflow_store[len("sqlite:///") :]).parent / "artifacts"
    assert any(artifact_dir.rglob("val_confusion_matrix.png"))
    assert run.inputs.dataset_inputs[0].dataset.digest == prepared.loaded.fingerprint[:16]

    model_info = mlflow.models.get_model_info(result.model_uri)
    assert [c.name for c in model_info.signature.inputs][:3] == ["x1", "y1", "z1"]
    loaded = load_static(result.model_uri).model
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    pyfunc = mlflow.pyfunc.load_model(result.model_uri)
    assert list(pyfunc.predict(X[:5])) == list(pipeline.predict(X[:5]))

    tracking.register_model(
        result.model_uri, "test-model", label_set=pipeline.classes_, data_sha256=None
    )
    champion = load_static("models:/test-model@champion").model
    np.testing.assert_array_equal(champion.predict(X), pipeline.predict(X))
    info = tracking.model_version_info("models:/test-model@champion")
    assert str(info["version"]) == "1" and info["name"] == "test-model"

    board = tracking.leaderboard("test-exp")
    assert list(board["run_name"]) == ["svm linear"]
    assert json.loads(board["params"].iat[0])["kernel"] == "linear"


def test_experiments_get_absolute_artifact_locations(mlflow_store, tmp_path):
    experiment_id = tracking.get_or_create_experiment("abs-exp")
    assert tracking.get_or_create_experiment("abs-exp") == experiment_id
    location = mlflow.get_experiment(experiment_id).artifact_location
    assert location.startswith("file:///") and os.path.isabs(location[len("file://") :])


def test_relative_and_database_uris_keep_artifacts_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///store/mlflow.db")
    assert tracking.artifact_root() == (tmp_path / "store" / "artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://user@localhost/mlflow")
    assert tracking.artifact_root() == config.MLFLOW_ARTIFACTS_DIR.as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.artifact_root() is None


OPEN_STORE = """
import train_with_mlflow as tracking
tracking.get_or_create_experiment("e")
print(tracking.find_experiment_id("e") and "e")
"""


@pytest.mark.integration
def test_two_processes_can_open_a_brand_new_store_together(tmp_path):
    """Both used to create MLflow's tables; one died with "table ... already exists"."""
    import subprocess
    import sys

    for trial in range(3):
        uri = f"sqlite:///{tmp_path / f'trial{trial}' / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        # what every command does first, without the command line's imports (seconds each)
        command = [sys.executable, "-c", OPEN_STORE]
        both = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        for process in both:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err.decode()[-2000:]
            assert out.decode().strip() == "e", out


KILLED_SWEEP = """
import os, signal
import mlflow
import train_with_mlflow as tracking
with tracking.parent_run("k", "svm"):
    with mlflow.start_run(run_name="finished config", nested=True, tags={"run_kind": "config"}):
        mlflow.log_metric("val_f1_macro", 0.5)
    with mlflow.start_run(run_name="config in progress", nested=True, tags={"run_kind": "config"}):
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.integration
def test_runs_of_a_killed_sweep_are_failed_and_left_off_the_leaderboard(mlflow_store):
    import subprocess
    import sys

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    died = subprocess.run([sys.executable, "-c", KILLED_SWEEP], env=env, capture_output=True)
    assert died.returncode == -9
    tracking.setup()
    client = MlflowClient(mlflow_store)
    experiment_id = mlflow.get_experiment_by_name("k").experiment_id
    statuses = {
        r.data.tags["mlflow.runName"]: r.info.status for r in client.search_runs([experiment_id])
    }
    assert statuses == {
        "svm": "RUNNING",
        "finished config": "FINISHED",
        "config in progress": "RUNNING",
    }

    with tracking.parent_run("k", "svm"):  # the rerun
        with mlflow.start_run(run_name="rerun config", nested=True, tags={"run_kind": "config"}):
            mlflow.log_metric("val_f1_macro", 0.9)
    runs = {r.data.tags["mlflow.runName"]: r for r in client.search_runs([experiment_id])}
    assert runs["config in progress"].info.status == "FAILED"
    assert "ended without finishing" in runs["svm"].data.tags["failed_reason"]
    board = tracking.leaderboard("k")
    assert list(board["run_name"]) == ["rerun config"]
    assert board.attrs["left_out"] == {"FAILED": 1, "FINISHED inside an unfinished sweep": 1}


def _fake_sweep(sweep_id, f1, complete=True):
    with tracking.tagging(sweep_id=sweep_id):
        with tracking.parent_run("two-sweeps", "svm"):
            with mlflow.start_run(
                run_name=f"config of {sweep_id}",
                nested=True,
                tags={"run_kind": "config", **tracking.run_origin()},
            ):
                mlflow.log_metric("val_f1_macro", f1)
        if complete:
            with mlflow.start_run(
                run_name="champion", tags={"run_kind": "champion", **tracking.run_origin()}
            ):
                pass


def test_the_leaderboard_shows_the_newest_complete_sweep(mlflow_store):
    _fake_sweep("first", 0.9)
    _fake_sweep("killed", 0.95, complete=False)
    board = tracking.leaderboard("two-sweeps")
    assert list(board["run_name"]) == ["config of first"]
    assert board.attrs["left_out"] == {"of earlier or unfinished sweeps": 1}
    _fake_sweep("rerun", 0.8)
    assert list(tracking.leaderboard("two-sweeps")["run_name"]) == ["config of rerun"]
