"""The command line end to end, in a subprocess, against a temporary MLflow store."""

import json
import os
import re
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets import shrec
from gesturelab.datasets.static_data import prepare
from tests.conftest import cli_here


def gesturelab(*args, env, cwd):
    return subprocess.run(
        [sys.executable, "-m", "gesturelab", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def env(mlflow_store):
    return {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}


@pytest.mark.integration
def test_help_lists_every_command(env, tmp_path):
    from gesturelab.cli import build_parser

    out = gesturelab("--help", env=env, cwd=tmp_path)
    assert out.returncode == 0
    (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
    expected = {"reproduce", "sweep", "evaluate", "validate", "leaderboard", "train-seq",
                "evaluate-seq", "extract", "predict", "gesto-study", "data",
                "ui-links", "promote", "rollback", "calibrate", "export",
                "model", "record", "stream-eval", "prelabel"}  # fmt: skip
    assert set(commands.choices) == expected
    for command in expected:
        assert re.search(rf"^    {command}(\s|$)", out.stdout, re.MULTILINE), command


def test_sweep_families_come_from_the_registry():
    from gesturelab.cli import build_parser
    from gesturelab.models.static_families import FAMILIES

    parser = build_parser()
    assert parser.parse_args(["sweep"]).families == list(FAMILIES)
    assert parser.parse_args(["sweep", "--families", "knn", "svm"]).families == ["knn", "svm"]
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", "--families", "xgboost"])


@pytest.mark.integration
def test_validate_reports_bad_file_clearly(env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,y1,label\n1,2,fist\n")
    out = gesturelab("validate", "--data", str(bad), env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert "bad.csv, line 1, column 'x2': missing 40 column(s): x2, y2" in out.stderr


@pytest.mark.slow
@pytest.mark.sweep
def test_sweep_then_evaluate_the_champion(env, tmp_path):
    figures = tmp_path / "figures"
    out = gesturelab(
        "sweep",
        "--quick",
        "--families",
        "svm",
        "knn",
        "logreg",
        "--experiment",
        "cli-test",
        "--figures-dir",
        str(figures),
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "champion:" in out.stdout and "@champion" not in out.stdout  # quick: never registered
    champion_uri = out.stdout.split("champion: ")[1].split(" -> ")[1].split()[0]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    assert MlflowClient().search_registered_models() == []
    assert (figures / "leaderboard.png").exists()
    board = tracking.leaderboard("cli-test")
    required = [
        "val_accuracy",
        "val_precision_macro",
        "val_recall_macro",
        "val_f1_macro",
        "val_precision_weighted",
        "val_recall_weighted",
        "val_f1_weighted",
        "fit_time_s",
        "predict_ms_per_sample",
        "val_perturbed_f1_macro",
    ]
    assert len(board) == 8 and board[required].notna().all().all()  # 4 + 2 + 2 configurations
    client = MlflowClient()
    for run_id in board["run_id"]:
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert "val_confusion_matrix.png" in artifacts
        model_uri = client.get_run(run_id).data.tags["model_uri"]
        assert mlflow.models.get_model_info(model_uri).signature is not None
    assert {p.name for p in figures.glob("confusion_*.png")} >= {
        "confusion_svm.png",
        "confusion_knn.png",
    }

    held_out = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False).part("test")
    csv = tmp_path / "unseen.csv"
    held_out.drop(columns=["split", "fold"]).to_csv(csv, index=False)
    report_path = tmp_path / "report.json"
    out = gesturelab(
        "evaluate",
        "--model",
        champion_uri,
        "--data",
        str(csv),
        "--out",
        str(report_path),
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "accuracy" in out.stdout and "macro-F1" in out.stdout
    report = json.loads(report_path.read_text())
    assert report["data"]["rows_kept"] == len(held_out)
    assert report["metrics"]["f1_macro"] > 0.9
    assert set(report["per_class"]) >= set(held_out["label"])
    assert report["model"]["model_uri"] == champion_uri
    for name in ("cohen_kappa", "mcc", "f1_micro", "roc_auc_ovr_macro", "top3_accuracy"):
        assert 0.5 < report["metrics"][name] <= 1.0, name
    assert report["intervals"]["f1_macro"]["low"] <= report["metrics"]["f1_macro"]
    assert "ece" in report["calibration"] and report["slices"]["group"]
    logged = MlflowClient().get_run(report["run_id"])
    assert logged.data.metrics["accuracy"] == pytest.approx(report["metrics"]["accuracy"])
    assert "f1_macro_ci_low" in logged.data.metrics

    store = env["MLFLOW_TRACKING_URI"]
    out = cli_here("leaderboard", "--experiment", "cli-test", store=store, cwd=tmp_path)
    assert out.returncode == 0 and "svm" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 120, out.stdout
    out = cli_here("leaderboard", "--experiment", "cli-test", "--csv", store=store, cwd=tmp_path)
    import io

    import pandas as pd

    every = pd.read_csv(io.StringIO(out.stdout))
    assert list(every.columns) == list(board.columns)
    assert list(every["run_id"]) == list(board["run_id"].head(20))
    assert not any(p.name == "mlruns" for p in tmp_path.iterdir() if p != tmp_path / "mlruns")


@pytest.mark.slow
@pytest.mark.train
def test_train_seq_then_evaluate_seq_on_the_original_layout(env, tmp_path):
    """A short 28-class TCN on the shipped split, scored on sequences in the original layout."""
    fixture = config.REPO_ROOT / "tests" / "fixtures" / "shrec_tiny"
    out = gesturelab(
        "train-seq", "--arch", "tcn", "--classes", "28", "--epochs", "3", "--register",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "validation subjects [" in out.stdout
    assert "registered: models:/shrec17-28-gestures@champion" in out.stdout
    report_path = tmp_path / "report.json"
    out = gesturelab(
        "evaluate-seq", "--model", "models:/shrec17-28-gestures@champion",
        "--data-root", str(fixture), "--split", "train", "--out", str(report_path),
        "--bootstrap", "50",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "3 sequences of train" in out.stdout
    report = json.loads(report_path.read_text())
    assert set(report["slices"]) == {"subject", "finger"}
    assert len(report["labels"]) == 28 and "cohen_kappa" in report["metrics"]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=[config.SEQUENCE_EXPERIMENT])
    assert {"config", "final"} == set(runs["tags.run_kind"])
    validation = runs[runs["tags.run_kind"] == "config"].iloc[0]
    assert validation["params.data_subjects_validation"]
    history = MlflowClient().get_metric_history(validation["run_id"], "epoch_val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    artifacts = [a.path for a in MlflowClient().list_artifacts(validation["run_id"])]
    assert "tensorboard" in artifacts and "val_evaluation_report.json" in artifacts
    # open while Keras trained: MLflow's system metrics; and a link to its TensorBoard folder
    assert "metrics.system/cpu_utilization_percentage" in runs.columns
    assert runs["metrics.system/cpu_utilization_percentage"].notna().all()
    assert validation["tags.tensorboard_url"].startswith(f"{config.TENSORBOARD_URL}/?runFilter=")
    note = MlflowClient().get_experiment_by_name(config.SEQUENCE_EXPERIMENT).tags
    assert "- Champion, 28 classes: [tcn 28-class (all subjects)]" in note["mlflow.note.content"]


@pytest.mark.slow
@pytest.mark.train
def test_train_seq_ensemble_on_every_subject_loads_as_one_predictor(env, tmp_path):
    """--arch ensemble with --validation-fraction 0 trains each member once, then one model."""
    out = gesturelab(
        "train-seq", "--classes", "28", "--arch", "ensemble", "--epochs", "1",
        "--validation-fraction", "0", "--experiment", "ensemble-cli-test",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "architecture: ensemble\n" in out.stdout
    assert "trained on all 1960 sequences" in out.stdout
    model_uri = out.stdout.split("model: ")[1].split()[0]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["ensemble-cli-test"])
    assert list(runs["tags.run_kind"]) == ["final"]
    assert runs["params.arch"].iloc[0] == "ensemble"
    from gesturelab.models.predictor import SequencePredictor, load_predictor

    predictor = load_predictor(model_uri)  # the store of mlflow_store, set in os.environ
    assert isinstance(predictor, SequencePredictor)
    sequence = shrec.load_compact().sequences[0]
    assert len(predictor.predict_distribution([sequence])[0]) == 28
    assert "distances" in predictor.get_model_info()["features"]


@pytest.mark.integration
def test_evaluate_seq_names_a_missing_model(env, tmp_path):
    fixture = config.REPO_ROOT / "tests" / "fixtures" / "shrec_tiny"
    out = gesturelab(
        "evaluate-seq", "--model", "models:/none@champion", "--data-root", str(fixture),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2
    assert "error: models:/none@champion: Registered Model with name=none not found" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_defaults_come_from_the_one_home_of_run_settings():
    from gesturelab.cli import build_parser

    parse = build_parser().parse_args
    sweep = parse(["sweep"])
    assert (sweep.selection_tolerance, sweep.block_size, sweep.seed) == (
        config.SELECTION_TOLERANCE, config.BLOCK_SIZE, config.SEED)  # fmt: skip
    assert parse(["evaluate", "--model", "m", "--data", "d"]).bootstrap == config.N_BOOTSTRAP
    assert parse(["predict", "--model", "m", "--input", "i"]).window == config.SMOOTHING_WINDOW
    train = parse(["train-seq"])
    assert (train.validation_fraction, train.seed) == (
        config.VALIDATION_FRACTION, config.SEQUENCE_SEED)  # fmt: skip


def test_the_leaderboard_fits_a_terminal_and_shortens_only_the_configuration():
    import pandas as pd

    from gesturelab.cli import terminal_board

    params = {
        "kernel": "rbf",
        "C": 10.0,
        "gamma": "scale",
        "features": "xy+dist+angles",
        "seed": 42,
    }
    long = {**params, "class_weight": "balanced", "note": "x" * 150}
    board = pd.DataFrame(
        {
            "run_id": ["a" * 32, "b" * 32],
            "run_name": ["svm kernel=rbf C=10.0", "svm long"],
            "family": ["svm", "svm"],
            "params": [json.dumps(params), json.dumps(long)],
            "val_f1_macro": [0.98123, 0.97],
            "val_accuracy": [0.981, 0.97],
            "val_perturbed_f1_macro": [0.95, 0.94],
            "test_f1_macro": [0.97, float("nan")],
            "transfer_f1_macro": [0.96, 0.95],
            "fit_time_s": [0.5, 0.6],
            **{f"val_metric_{i}": [0.1, 0.2] for i in range(30)},
        }
    )
    text = terminal_board(board)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[0].split()[:3] == ["family", "configuration", "cv"]
    assert "kernel=rbf C=10.0 gamma=scale features=xy+dist+angles" in lines[1]
    assert "seed" not in text and "val_metric" not in text and "run_id" not in text
    assert lines[2].split()[-5:] == ["0.9700", "0.9700", "0.9400", "-", "0.9500"]
    assert "0.9812" in lines[1] and "…" in lines[2] and "…" not in lines[1]


def test_the_command_line_reference_page_is_the_parsers_own():
    from gesturelab.cli import reference as cli_reference

    page = cli_reference.PAGE.read_text(encoding="utf-8")
    assert "### `python -m gesturelab data import`" in page  # nested commands are on it too
    assert page == cli_reference.render(), (
        "docs/cli-reference.md is out of date: python -m gesturelab.cli.reference"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--quick", "--experiment", "../../x"],
        ["sweep", "--quick", "--model-name", "a/b"],
        ["train-seq", "--experiment", ".."],
        ["calibrate", "--user", "../../x"],
        ["data", "import", "some.csv", "--name", "../x"],
        ["promote", "--model-name", "/etc/x"],
    ],
)
def test_a_name_that_would_act_as_a_path_is_refused_before_anything_runs(args, capsys):
    """Experiment, model, dataset and user names become folder names: ``../../x`` wrote run
    artifacts and figures outside the store and the repository, and ``calibrate`` fine-tuned
    before failing with a traceback."""
    from gesturelab.cli import main

    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{args[-1]!r} is not a safe" in last and "name" in last


def test_the_tracking_door_makes_no_experiment_whose_folder_would_escape(mlflow_store, tmp_path):
    import train_with_mlflow as tracking
    from gesturelab.errors import UnsafeNameError

    with pytest.raises(UnsafeNameError, match="not a safe experiment name"):
        tracking.get_or_create_experiment("../../escaped")
    assert tracking.get_or_create_experiment("a fine name-1.2")


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--model", "m", "--input", "x.mp4", "--window-s", "-1"],
        ["predict", "--model", "m", "--input", "x.mp4", "--seq-window", "0"],
        ["predict", "--model", "m", "--input", "x.mp4", "--stride", "0"],
        ["predict", "--model", "m", "--input", "x.mp4", "--threshold", "nan"],
        ["export", "--model", "m", "--repeats", "0"],
        ["calibrate", "--model", "m", "--samples-per-class", "-3"],
        ["sweep", "--quick", "--workers", "0"],
        ["train-seq", "--epochs", "inf"],
    ],
)
def test_a_number_out_of_its_range_is_refused_before_anything_runs(args, capsys):
    """0, negatives, nan and inf once fell back silently to a default, or ran and failed later
    with a traceback."""
    from gesturelab.cli import main

    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {args[-2]}" in last and repr(args[-1]) in last
