"""Champion and challenger on a real MLflow registry: a worse challenger is refused, a better
one promoted, ``--force`` promotes and says so, and ``rollback`` restores the champion."""

from __future__ import annotations

import json

import pytest

from gesturelab import config
from gesturelab.datasets.static_data import prepare
from gesturelab.models.static_families import build_pipeline
from tests.conftest import log_static_model, run_cli, using_store

NAME = "promotion-test-gestures"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A store with version 1 (a good SVM) as champion, version 2 (the same family fitted on 30
    rows) as challenger, and the test split as a CSV both are scored on."""
    import train_with_mlflow as tracking

    folder = tmp_path_factory.mktemp("promotion")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    X, y = prepared.Xy("train")
    held = folder / "test_split.csv"
    prepared.part("test")[[*prepared.columns, "label"]].to_csv(held, index=False)
    good = build_pipeline("svm", {"kernel": "linear", "C": 1.0}).fit(X, y)
    few = X.groupby(y).head(2).index  # two hands per class
    worse = build_pipeline("svm", {"kernel": "linear", "C": 1.0}).fit(
        X.loc[few], y[X.index.get_indexer(few)]
    )
    with using_store(store):
        for model, alias in ((good, "champion"), (worse, "challenger")):
            uri = log_static_model(model, X)
            tracking.register_model(uri, NAME, alias, label_set=prepared.classes, data_sha256=None)
    return {"store": store, "data": held, "folder": folder}


def _versions(store):
    from mlflow import MlflowClient

    client = MlflowClient(store, store)
    aliases = {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}
    versions = client.search_model_versions(f"name='{NAME}'")
    return aliases, {str(v.version): v.tags for v in versions}


@pytest.mark.integration
def test_a_worse_challenger_is_refused_then_forced_then_rolled_back(registry):
    store, data, cwd = registry["store"], registry["data"], registry["folder"]
    out = run_cli("promote", "--model-name", NAME, "--data", data, store=store, cwd=cwd)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "refused: the challenger is less accurate on these rows" in out.stderr
    assert "challenger version 2 against champion version 1" in out.stdout
    aliases, tags = _versions(store)
    assert aliases == {"champion": "1", "challenger": "2"}
    refused = json.loads(tags["2"]["refused_comparison"])
    assert refused["accuracy_a"] < refused["accuracy_b"] and refused["rows"] > 100

    out = run_cli(
        "promote",
        "--model-name",
        NAME,
        "--data",
        data,
        "--force",
        "--reason",
        "test of --force",
        store=store,
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(forced: the challenger is less accurate on these rows)" in out.stdout
    aliases, tags = _versions(store)
    assert aliases == {"champion": "2"}
    assert tags["2"]["previous_champion"] == "1" and tags["2"]["forced"] == "True"
    assert tags["2"]["promoted_reason"] == "test of --force" and tags["2"]["promoted_by"]

    out = run_cli("rollback", "--model-name", NAME, "--reason", "worse", store=store, cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "champion is version 1 again" in out.stdout
    aliases, tags = _versions(store)
    assert aliases == {"champion": "1"}
    assert tags["1"]["restored_from"] == "2" and tags["2"]["rolled_back_reason"] == "worse"
    # Version 1 was never promoted over another: nothing further to roll back to.
    out = run_cli("rollback", "--model-name", NAME, store=store, cwd=cwd)
    assert out.returncode == 2 and "nothing to roll back to" in out.stderr


def test_a_challenger_that_is_not_worse_is_promoted_unless_it_transfers_worse(
    registry, monkeypatch
):
    import train_with_mlflow as tracking
    from gesturelab.serving.promotion import promote

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry["store"])
    champion = tracking.alias_version(NAME, "champion")
    tracking.tag_version(NAME, champion, {"transfer_f1_macro": 0.981})
    # The champion's own model registered again as the challenger: the same accuracy, but a
    # transfer estimate whose whole interval lies below the champion's.
    source = tracking.model_version_info(f"models:/{NAME}/{champion}")
    estimate = {"transfer_f1_macro": 0.962, "transfer_f1_low": 0.948, "transfer_f1_high": 0.975}
    version = tracking.register_model(
        f"runs:/{source['run_id']}/model",
        NAME,
        "challenger",
        tags=estimate,
        label_set=_classes(),
        data_sha256=None,
    )
    decision = promote(NAME, registry["data"], reason="transfers worse")
    assert not decision["promoted"] and decision["difference"] == 0.0
    assert decision["refusal"] == (
        "the challenger's transfer estimate 0.962 (95 % interval 0.948-0.975) is below the "
        "champion's 0.981 beyond its interval"
    )
    assert tracking.alias_version(NAME, "champion") == champion
    # Inside its interval (the champion's 0.981 <= the challenger's high end): promoted.
    tracking.tag_version(NAME, version.version, {"transfer_f1_high": 0.985})
    decision = promote(NAME, registry["data"], reason="same model")
    assert decision["promoted"] and not decision["forced"] and decision["refusal"] == ""
    assert tracking.alias_version(NAME, "champion") == str(version.version)
    assert tracking.alias_version(NAME, "challenger") is None


def _classes():
    return prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False).classes
