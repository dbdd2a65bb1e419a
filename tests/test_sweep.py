"""The classical sweep: selection, and a whole (tiny) sweep against a real MLflow store."""

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.static_data import prepare
from gesturelab.errors import UnknownNameError
from gesturelab.models.static_families import FAMILIES, family, sweep_grid
from gesturelab.training.selection_rules import SELECTION_RULES, select_best, transfer_refusal
from gesturelab.training.sweep import run_sweep
from gesturelab.training.sweep_board import LEADERBOARD_METRICS


def test_selection_prefers_robust_among_ties_and_is_deterministic():
    records = [
        {"name": "best clean", "val_f1_macro": 0.980, "val_perturbed_f1_macro": 0.950},
        {"name": "robust", "val_f1_macro": 0.977, "val_perturbed_f1_macro": 0.960},
        {"name": "too far", "val_f1_macro": 0.970, "val_perturbed_f1_macro": 0.990},
        {"name": "robust twin", "val_f1_macro": 0.977, "val_perturbed_f1_macro": 0.960},
    ]
    assert select_best(records, 0.005)["name"] == "robust"
    assert select_best(records, 0.0)["name"] == "best clean"
    assert select_best(records[1:], 0.005, top=0.980)["name"] == "robust"


def test_each_selection_rule_names_its_champion_among_the_families_bests():
    bests = [
        {"family": "mlp", "val_f1_macro": 0.982, "val_perturbed_f1_macro": 0.958,
         "transfer_f1_macro": 0.973},
        {"family": "svm", "val_f1_macro": 0.979, "val_perturbed_f1_macro": 0.956,
         "transfer_f1_macro": 0.981},
        {"family": "knn", "val_f1_macro": 0.952, "val_perturbed_f1_macro": 0.890,
         "transfer_f1_macro": 0.990},
    ]  # fmt: skip
    picked = {
        name: rule.pick(bests, 0.005, None)["family"] for name, rule in SELECTION_RULES.items()
    }
    # without an ensemble (a quick sweep, one family) the ensemble rule is cv+perturbed
    assert picked == {
        "cv": "mlp",
        "cv+perturbed": "mlp",
        "transfer": "knn",
        "cv+transfer": "svm",
        "ensemble": "mlp",
    }
    ensemble = {"family": "ensemble", "val_f1_macro": 0.960, "val_perturbed_f1_macro": 0.9}
    assert SELECTION_RULES["ensemble"].pick([*bests, ensemble], 0.005, None) is ensemble
    assert SELECTION_RULES["cv+perturbed"].pick([*bests, ensemble], 0.005, None) is bests[0]
    # without an estimate (nan) a configuration never wins on transfer
    bests[2]["transfer_f1_macro"] = float("nan")
    assert SELECTION_RULES["transfer"].pick(bests, 0.005, None)["family"] == "svm"
    assert [r.name for r in SELECTION_RULES.values() if r.transfer] == ["transfer", "cv+transfer"]


def test_an_ensemble_of_one_family_is_refused_before_any_training(sample_csv):
    from gesturelab.errors import SweepDataError

    prepared = prepare(sample_csv, quarantine_dir=None, verbose=False)
    with pytest.raises(SweepDataError, match=r"two or more families; this sweep has 1 \(svm\)"):
        run_sweep(prepared, quick=True, families=("svm",), ensemble=True, progress=False)


def test_promotion_on_transfer_is_refused_only_beyond_the_challengers_interval():
    new = {"transfer_f1_macro": 0.973, "transfer_f1_low": 0.960, "transfer_f1_high": 0.979}
    assert transfer_refusal({"transfer_f1_macro": "0.981"}, new) == (
        "the challenger's transfer estimate 0.973 (95 % interval 0.960-0.979) is below the "
        "champion's 0.981 beyond its interval"
    )
    assert transfer_refusal({"transfer_f1_macro": "0.979"}, new) is None
    assert transfer_refusal({}, new) is None  # a champion registered without an estimate
    assert transfer_refusal({"transfer_f1_macro": "0.99"}, {"transfer_f1_macro": 0.9}) is None


def test_an_unknown_family_is_refused_with_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown model family 'xgboost'; known: svm, "):
        family("xgboost")
    with pytest.raises(UnknownNameError, match=", ".join(FAMILIES)):
        sweep_grid("xgboost")


@pytest.mark.slow
@pytest.mark.sweep
def test_a_tiny_sweep_logs_every_configuration_and_a_champion(mlflow_store, tmp_path, monkeypatch):
    """Two families and their ensemble, quick grids, no ablation: every step of run_sweep
    against a real store, and what the MLflow UI shows of it (description, leaderboard run and
    view, system metrics)."""
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.3")
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)

    def tiny(figures_dir):
        return run_sweep(
            prepared,
            quick=True,
            experiment="tiny-sweep",
            families=("logreg", "knn"),
            feature_ablation=False,
            figures_dir=figures_dir,
            progress=False,
            ensemble=True,
        )

    result = tiny(tmp_path)
    # every configuration of both grids, and the ensemble of the two families' bests
    n_configs = len(sweep_grid("logreg", True)) + len(sweep_grid("knn", True)) + 1
    assert len(result.runs) == n_configs
    assert set(result.best["family"]) == {"logreg", "knn", "ensemble"}
    bests = result.best.set_index("family")
    members = json.loads(bests.loc["ensemble", "params"]["members"])
    assert [(m[0], m[1]) for m in members] == [
        (f, bests.loc[f, "params"]) for f in ("logreg", "knn")
    ]
    # its transfer estimate, from its members' held-out distributions, costs no fits of its own
    seconds = result.transfer.set_index("family")["seconds"]
    assert seconds["ensemble"] == pytest.approx(seconds["logreg"] + seconds["knn"])
    assert result.best["test_f1_macro"].between(0.5, 1.0).all()
    assert set(result.transfer["name"]) == set(result.best["run_name"])
    # quick: groups held out five folds at a time, not one by one
    assert (result.transfer["folds"] == 5).all() and (result.transfer["held_out_groups"] > 5).all()
    champion = result.champion
    assert champion["family"] in {"logreg", "knn", "ensemble"} and "registered" not in champion
    # The champion is the family best config.SELECTION_RULE names, refit on every row; its run
    # keeps its transfer estimate with the interval.
    rule = SELECTION_RULES[config.SELECTION_RULE]
    top = result.runs["val_f1_macro"].max()
    expected = rule.pick(result.best.to_dict("records"), config.SELECTION_TOLERANCE, top)
    assert champion["run_name"] == expected["run_name"]
    logged = tracking.get_run(champion["run_id"])
    assert logged.kind == "champion" and logged.params["trained_on"] == "train+val+test"
    assert logged.params["selection_rule"] == config.SELECTION_RULE
    transfer = result.transfer.set_index("name")["transfer_f1_macro"]
    kept = [logged.metrics[f"selection_transfer_f1_{k}"] for k in ("low", "macro", "high")]
    assert kept[0] <= kept[1] <= kept[2] and kept[1] == transfer[champion["run_name"]]
    assert logged.label_set == tuple(sorted(prepared.classes))
    board = tracking.leaderboard("tiny-sweep")
    assert len(board) == n_configs and board["val_f1_macro"].is_monotonic_decreasing
    runs = tracking.finished_runs("tiny-sweep", "config", latest_sweep=True)
    assert {r.family for r in runs} == {"logreg", "knn", "ensemble"}
    best = next(r for r in runs if r.run_id == result.best["run_id"].iat[0])
    assert np.isclose(best.metrics["test_f1_macro"], result.best["test_f1_macro"].iat[0])
    artifacts = {a.path for a in MlflowClient().list_artifacts(best.run_id)}
    assert {"test_confusion_matrix.png", "test_evaluation_report.json"} <= artifacts
    assert {p.name for p in result.figures} >= {"leaderboard.png", "confusion_knn.png"}

    # The champion's reject rule was chosen on its configuration's cross-validation scores,
    # not on a second round of fold fits: fitting those folds again gives the same rule.
    from gesturelab.models.static_families import FEATURE_SETS, build_pipeline
    from gesturelab.training.sweep_champion import champion_reject_rule
    from gesturelab.training.sweep_state import SweepState

    sweep = SweepState(prepared, "tiny-sweep", config.SEED, config.SELECTION_TOLERANCE, True)
    selected = result.best.set_index("run_id").loc[logged.tags["selected_from_run"]]
    pipeline = build_pipeline(
        selected["family"], selected["params"], FEATURE_SETS[selected["features"]], config.SEED
    )
    refit = champion_reject_rule(sweep, pipeline)
    rule = tracking.run_json(champion["run_id"], "reject_rule.json")
    # (a fit in a worker process and one here agree to the last few bits of a float)
    assert rule["threshold"] == pytest.approx(refit.pop("threshold"), rel=1e-8)
    assert {k: rule[k] for k in refit} == refit

    # what the MLflow UI shows of the sweep
    description = tracking.experiment_description("tiny-sweep")
    champion = result.champion
    assert description.startswith("**tiny-sweep**: the quick classical sweep of")
    assert f"runs/{champion['run_id']})" in description  # a link to the champion's run
    for run_id in result.best["run_id"]:
        assert f"runs/{run_id})" in description  # each family's best, linked
    assert "viewStateShareKey=leaderboard" in description

    board = tracking.finished_runs("tiny-sweep", "leaderboard")
    assert len(board) == 1
    table = MlflowClient().load_table(
        MlflowClient().get_experiment_by_name("tiny-sweep").experiment_id,
        "leaderboard.json",
        [board[0].run_id],
    )
    assert len(table) == n_configs and table["val_f1_macro"].is_monotonic_decreasing
    assert set(LEADERBOARD_METRICS) <= set(table.columns)
    assert result.links["view"].endswith("viewStateShareKey=leaderboard")
    pages = tracking.ui_pages()
    assert [p["experiment"] for p in pages] == ["tiny-sweep"]
    assert pages[0]["leaderboard"] == result.links["view"]

    # the family runs, open while their configurations train, carry MLflow's system metrics
    families = tracking.finished_runs("tiny-sweep", "family")
    sampled = [r for r in families if "system/cpu_utilization_percentage" in r.metrics]
    assert sampled, [sorted(r.metrics) for r in families]
    assert "system/system_memory_usage_megabytes" in sampled[0].metrics
    configs = tracking.finished_runs("tiny-sweep", "config")
    assert not any(k.startswith("system/") for r in configs for k in r.metrics)

    # The same sweep again: everything a finished run computed is read, nothing is fitted,
    # scored or logged again but the new sweep's leaderboard run.
    def kinds():
        runs = MlflowClient().search_runs(
            [MlflowClient().get_experiment_by_name("tiny-sweep").experiment_id]
        )
        return sorted(r.data.tags.get("run_kind", "") for r in runs)

    before = kinds()
    again = tiny(tmp_path / "again")
    assert again.reused == n_configs
    assert again.champion == result.champion
    pd.testing.assert_frame_equal(again.best, result.best)
    pd.testing.assert_frame_equal(again.transfer, result.transfer)
    # the family runs that hold each family's adopted runs, and the leaderboard
    assert kinds() == sorted(before + ["family", "family", "family", "leaderboard"])
    assert {p.name for p in again.figures} == {p.name for p in result.figures}

    # A finished run whose model was deleted from the store is trained again, not trusted
    # (it stopped every later sweep of the experiment with "No such artifact")
    best_ids = set(result.best["run_id"])
    lost = next(r for r in configs if r.run_id not in best_ids)
    folder = MlflowClient().get_logged_model(lost.model_uri.split("/")[-1]).artifact_location
    shutil.rmtree(Path(urllib.request.url2pathname(urllib.parse.urlparse(folder).path)))
    assert not tracking.model_present(lost.model_uri)
    third = tiny(tmp_path / "third")
    assert third.reused == n_configs - 1
    assert third.champion == result.champion


@pytest.mark.slow
@pytest.mark.sweep
def test_a_sweep_selected_on_a_subsample_refits_each_best_on_every_training_row(mlflow_store):
    """Above --selection-rows the grid is scored on a subsample; the test split scores each
    family's best only after a refit on all training rows, logged as a run of its own."""
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    n_train = int((prepared.data["split"] == "train").sum())
    result = run_sweep(
        prepared,
        quick=True,
        experiment="subsampled",
        families=("logreg", "knn"),
        feature_ablation=False,
        transfer_check=False,
        selection_rule="cv+perturbed",
        progress=False,
        selection_rows=300,
    )
    selected, training = result.selected_on
    assert training == n_train and abs(selected - 300) <= 18
    refits = {r.tags["selected_from_run"]: r for r in tracking.finished_runs("subsampled", "refit")}
    assert set(refits) == set(result.best["run_id"])
    knn = result.best[result.best["family"] == "knn"].iloc[0]
    from gesturelab.models.predictor import open_model

    assert open_model(knn["model_uri"]).model.named_steps["clf"].n_samples_fit_ == n_train
    refit = refits[knn["run_id"]]
    assert refit.model_uri == knn["model_uri"]
    assert np.isclose(refit.metrics["test_f1_macro"], knn["test_f1_macro"])
    assert "test_f1_macro" not in tracking.get_run(knn["run_id"]).metrics
    family_run = next(
        r for r in tracking.finished_runs("subsampled", "family") if r.family == "knn"
    )
    assert int(family_run.params["rows_selection"]) == selected
    assert int(family_run.params["rows_train"]) == n_train
    assert "subsample of" in tracking.experiment_description("subsampled")


def test_the_transfer_estimate_holds_out_one_group_at_a_time():
    from gesturelab.datasets.splits import source_groups
    from gesturelab.evaluation.metrics import classification_metrics
    from gesturelab.models.static_families import FEATURE_SETS, build_pipeline
    from gesturelab.training.sweep_transfer import cross_val_oof, transfer_estimate

    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    knn = ("knn k=3", "knn", {"n_neighbors": 3}, "xy+dist")
    (row,) = transfer_estimate(prepared, [knn]).to_dict("records")
    assert row["folds"] == row["held_out_groups"] > 5
    assert 0.5 < row["transfer_f1_macro"] < 1.0
    (few,) = transfer_estimate(prepared, [knn], max_groups=5).to_dict("records")
    assert few["folds"] == 5 and few["held_out_groups"] == row["held_out_groups"]
    # The groups are held out a few per task: together, every group once, as one loop would.
    data = prepared.data
    groups = source_groups(data, 20)
    labels = data["label"].to_numpy(dtype=object)
    per_class = pd.Series(groups).groupby(labels).nunique()
    keep = np.isin(labels, per_class[per_class >= 2].index)
    pipeline = build_pipeline("knn", knn[2], FEATURE_SETS[knn[3]])
    X = data.loc[keep, prepared.columns]
    predicted = cross_val_oof(pipeline, X, labels[keep], groups[keep])[0]
    assert row["transfer_f1_macro"] == classification_metrics(labels[keep], predicted)["f1_macro"]
