"""What the MLflow UI shows: experiment kind, description, the saved leaderboard view, system
metrics; and (tier ``browser``) the pages themselves in headless Chromium."""

import importlib.util
import json

import pytest
from conftest import run_cli
from mlflow.tracking import MlflowClient

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.static_data import prepare
from gesturelab.tracking.browser import find_chromium


def _experiment(name):
    return MlflowClient().get_experiment_by_name(name)


def test_experiments_open_as_model_training_with_a_saved_leaderboard_view(mlflow_store):
    tracking.get_or_create_experiment("ui")
    assert _experiment("ui").tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    # an experiment of an older store gets the kind the next time it is used
    MlflowClient().delete_experiment_tag(_experiment("ui").experiment_id, "mlflow.experimentKind")
    tracking.get_or_create_experiment("ui")
    assert _experiment("ui").tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"

    link = tracking.save_runs_view(
        "ui", sort_by="val_f1_macro", metrics=["val_f1_macro", "val_accuracy"],
        params=["features"], where={"run_kind": "config"},
    )  # fmt: skip
    experiment_id = _experiment("ui").experiment_id
    assert link == (
        f"{tracking.UI_URL}/#/experiments/{experiment_id}/runs"
        "?workflowType=machine_learning&viewStateShareKey=leaderboard"
    )
    envelope = json.loads(_experiment("ui").tags["mlflow.sharedViewState.leaderboard"])
    assert envelope["name"] == "leaderboard" and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    assert state["orderByKey"] == "metrics.`val_f1_macro`" and state["orderByAsc"] is False
    assert state["selectedColumns"] == [
        "metrics.`val_f1_macro`", "metrics.`val_accuracy`", "params.`features`"
    ]  # fmt: skip
    assert state["searchFilter"] == "tags.run_kind = 'config'"

    tracking.describe_experiment("ui", "**ui**: a test")
    assert tracking.experiment_description("ui") == "**ui**: a test"
    assert tracking.ui_pages() == []  # no runs yet: nothing to open


def _screenshots_script():
    path = config.REPO_ROOT / "benchmarks" / "ui_screenshots.py"
    spec = importlib.util.spec_from_file_location("ui_screenshots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed")
def test_the_mlflow_ui_opens_on_the_leaderboard_in_a_real_browser(tmp_path):
    """`mlflow ui` on a store a quick sweep filled, seen in headless Chromium."""
    store = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    done = run_cli("sweep", "--quick", "--figures-dir", tmp_path / "figures", store=store,
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    seen = _screenshots_script().look(store, tmp_path / "shots")
    for page, checks in seen.items():
        missing = [check for check, ok in checks.items() if ok is False]
        assert not missing, (page, missing, checks["url"])
    assert (tmp_path / "shots" / "mlflow_leaderboard_view.png").stat().st_size > 50_000


def test_a_registered_sequence_champion_is_named_once_per_label_set_in_the_description(
    mlflow_store,
):
    from conftest import log_static_model

    from gesturelab.models.static_families import build_pipeline
    from gesturelab.training.seq_experiment import note_champion

    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    X, y = prepared.Xy("train")
    pipeline = build_pipeline("knn", {"n_neighbors": 3}).fit(X, y)
    tracking.describe_experiment("seq-ui", "**seq-ui**: models\n\n_Rewritten by the latest._")
    versions = []
    for _ in range(2):
        uri = log_static_model(pipeline, X, "seq-ui")
        versions.append(
            tracking.register_model(uri, "seq-ui-14", label_set=prepared.classes, data_sha256=None)
        )
        run_id = tracking.finished_runs("seq-ui")[0].run_id
        note_champion("seq-ui", 14, run_id, "seq-ui-14", versions[-1])
    text = tracking.experiment_description("seq-ui")
    (line,) = [x for x in text.split("\n\n") if x.startswith("- Champion, 14 classes:")]
    assert "seq-ui-14 version 2](#/models/seq-ui-14/versions/2)" in line
    assert text.startswith("**seq-ui**") and text.endswith("_Rewritten by the latest._")


@pytest.mark.integration
def test_ui_links_on_a_store_that_is_not_there_says_so_and_creates_nothing(tmp_path):
    store = tmp_path / "typo" / "mlflow.db"
    out = run_cli("ui-links", store=f"sqlite:///{store}", cwd=tmp_path)
    assert out.returncode == 0 and "no MLflow store there yet" in out.stdout
    assert not store.parent.exists()
