"""The notebooks, run headless through papermill with quick parameters."""

import json
import re

import nbformat
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from gesturelab import config
from gesturelab.models.static_families import FAMILIES
from gesturelab.studies.runner import ReproduceError, notebook_plan, pending, reproduce
from gesturelab.training.seq_rules import SEQUENCE_RULES

NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_source_is_clean(path):
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert not any(c.get("outputs") for c in code), "committed notebooks carry no outputs"
    assert not any("pip install" in c.source for c in code)


def test_every_notebook_is_in_the_plan():
    assert [name for name, _ in notebook_plan(True, None, None)] == [p.name for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.notebook
def test_reproduce_quick(mlflow_store, tmp_path, capfd):
    board = reproduce(quick=True, work_dir=tmp_path)
    # The terminal: a line per notebook and section and the tables, no library noise; the
    # kernels' output is in the logs.
    out, err = capfd.readouterr()
    console = out + err
    assert len(console.splitlines()) < 150, console
    for noise in ("retracing", "A worker stopped", "WARNING", "I0000", "W0000"):
        assert noise not in console, (noise, console)
    assert re.search(r"^ +\d+\.\d s  \S", console, re.M), "a line per section"
    for path in NOTEBOOKS:
        log = tmp_path / "logs" / f"{path.stem}.log"
        assert log.exists(), log
    assert set(board["family"]) == set(FAMILIES)
    assert board["test_f1_macro"].max() > 0.9
    widgets = 0
    for path in NOTEBOOKS:
        executed = nbformat.read(tmp_path / "executed" / path.name, as_version=4)
        assert executed.cells[-1].outputs, f"{path.name} ends with a results cell"
        outputs = [o for c in executed.cells for o in c.get("outputs", [])]
        # progress bars are ipywidgets in JupyterLab, not tqdm's text fallback
        assert not any("IProgress" in json.dumps(o) for o in outputs), path.name
        widgets += sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                       for o in outputs)  # fmt: skip
    assert widgets, "no progress bar was drawn as a widget"
    assert (tmp_path / "processed" / "hagrid_split.csv").exists()
    times = pd.read_csv(tmp_path / "reports" / "reproduce_times.csv")
    whole = times[times["section"] == "(whole notebook)"]
    assert sorted(whole["notebook"]) == sorted(p.name for p in NOTEBOOKS)
    assert (whole["seconds"] > 0).all() and len(times) > 2 * len(whole)
    assert (tmp_path / "inference" / "gestures_video_annotated.mp4").exists()
    for name in (
        "leaderboard.png",
        "class_balance.png",
        "skeletons_per_class.png",
        "raw_vs_normalised.png",
        "feature_ablation.png",
        "selection_rules.png",
        "inference_photos.png",
        "inference_gestures_video.png",
        "gesto_ladder.png",
        "sequence_scaling.png",
        "sequence_leaderboard.png",
        "sequence_confusion_14.png",
        "stream_timeline.png",
        "live_timeline.png",
        "personalisation.png",
        "active_learning_hagrid.png",
        "label_check_hagrid.png",
    ):
        assert (tmp_path / "figures" / name).exists(), name
    # Notebook 02: each selection rule's champions scored on held-out sources.
    rules = pd.read_csv(tmp_path / "reports" / "selection_rules.csv")
    assert {
        "cv",
        "cv+perturbed",
        "transfer",
        "cv+transfer",
        "ensemble",
    } <= set(rules["rule"])
    assert (rules["low"] <= rules["high"]).all() and rules["held_out_f1_macro"].min() > 0.9
    # quick: the recipe's four steps the text reads and the last (every option of the others)
    gesto = pd.read_csv(tmp_path / "reports" / "gesto_study.csv")
    assert [c.split(" ", 1)[0] for c in gesto["condition"]] == ["0a", "0b", "1", "1b", "6"]
    scaling = pd.read_csv(tmp_path / "reports" / "scaling_study.csv")
    assert scaling[["arch", "per_class"]].values.tolist() == [["lstm", 5], ["lstm", 20]]
    # quick: the 14-gesture board of the ensemble's members, the LSTM and the ensemble
    sequence_board = pd.read_csv(tmp_path / "reports" / "sequence_leaderboard.csv")
    assert sorted(zip(sequence_board["classes"], sequence_board["arch"])) == [
        (14, "cnn"),
        (14, "ddnet"),
        (14, "ensemble"),
        (14, "lstm"),
    ]
    # ...and the test of its rule: two folds of held-out subjects, every rule's champions
    seq_rules = pd.read_csv(tmp_path / "reports" / "sequence_rules.csv")
    assert set(seq_rules["rule"]) == set(SEQUENCE_RULES) and (seq_rules["classes"] == 14).all()
    assert (seq_rules["accuracy_low"] <= seq_rules["accuracy_high"]).all()
    assert (seq_rules["picks"] == "cnn, cnn").all()  # a champion per fold, of the one model
    champions = json.loads((tmp_path / "reports" / "sequence_champions.json").read_text())
    assert champions["14"]["rule"] == config.SEQUENCE_SELECTION_RULE
    assert champions["14"]["model_uri"].startswith("models:/m-")  # quick: logged, not registered
    assert MlflowClient(mlflow_store).search_registered_models() == []
    # Notebook 06: the keypoint file imported, swept into its own experiment, not registered.
    sheet = json.loads(
        (tmp_path / "datasets" / "keypoint-classifier" / "datasheet.json").read_text()
    )
    assert sheet["classes"] == ["Open", "Close", "Pointer"] and sheet["format"] == "keypoint-csv"
    assert (tmp_path / "figures" / "keypoint-classifier" / "reject_trade_off.png").exists()
    experiments = {e.name for e in MlflowClient(mlflow_store).search_experiments()}
    assert "keypoint-classifier-classical-sweep" in experiments
    # Notebook 07: streams scored, the live video's segments written beside its annotated copy.
    assert (tmp_path / "inference" / "live" / "gestures_video_segments.csv").exists()
    live = nbformat.read(tmp_path / "executed" / "07_live_gestures.ipynb", as_version=4)
    assert "'streams': [{'pause': 'no hand'" in json.dumps(live.cells[-1].outputs)
    # ...and its live detector trained on life-like streams, logged, scored beside the rest.
    assert "'live': {'sliding window (before)'" in json.dumps(live.cells[-1].outputs)
    assert config.LIVE_EXPERIMENT in experiments
    assert (tmp_path / "inference" / "live" / "gestures_video_frames.csv").exists()
    # Notebook 08: each held-out subject calibrated per strategy, scored on their other sequences.
    runs = pd.read_csv(tmp_path / "reports" / "personalisation_runs.csv")
    assert set(runs["strategy"]) == {"head_only", "last_block"} and runs["remaining"].min() > 0
    fell_back = runs[runs["kept"] == "original"]
    assert (fell_back["used"] == fell_back["original"]).all()  # the original itself, unchanged
    # Notebook 09: wrong labels injected and found, the learning curves of both strategies.
    injected = pd.read_csv(tmp_path / "reports" / "label_check_injected.csv")
    assert injected["recall"].min() > 0.5 and injected["precision"].min() > 0.5
    curves = pd.read_csv(tmp_path / "reports" / "active_learning_hagrid.csv")
    assert {"random", "margin"} <= set(curves["strategy"]) and curves["budget"].max() == 108
    report = nbformat.read(tmp_path / "executed" / "05_evaluation_report.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in report.cells for o in c.get("outputs", []))
    (line,) = [x for x in printed.splitlines() if x.startswith("champions: {")]
    assert "HaGRID static" in line and "SHREC'17 dynamic, 14" in line, line

    # Nothing changed: a second reproduce reuses every notebook and prints the same board.
    pd.testing.assert_frame_equal(reproduce(quick=True, work_dir=tmp_path), board)
    reused = pd.read_csv(tmp_path / "reports" / "reproduce_times.csv")
    assert reused["reused"].all() and reused["seconds"].sum() < 60
    # Each run's table is kept: the first (informative) one beside the second's.
    kept = sorted((tmp_path / "reports" / "reproduce_times").glob("*.csv"))
    assert len(kept) == 2
    pd.testing.assert_frame_equal(pd.read_csv(kept[0]), times)
    pd.testing.assert_frame_equal(pd.read_csv(kept[1]), reused)
    # A figure the last notebook drew is gone: that notebook would run again, and no other;
    # one of notebook 07's: 07 would run, and 08 and 09 after it. (reproduce decides with
    # pending.)
    gone, away = "a file it wrote changed or is gone", tmp_path / "moved-away.png"
    figure = tmp_path / "figures" / "label_check_hagrid.png"
    figure.rename(away)
    would = dict(pending(quick=True, work_dir=tmp_path))
    assert would.pop("09_labelling.ipynb") == gone
    assert set(would.values()) == {None}, would
    away.rename(figure)  # back as it was (a rename keeps the time it was written)
    assert {why for _, why in pending(quick=True, work_dir=tmp_path)} == {None}
    (tmp_path / "figures" / "stream_timeline.png").unlink()
    would = pending(quick=True, work_dir=tmp_path)
    after = "a notebook before it runs"
    assert [why for _, why in would[-3:]] == [gone, after, after]
    assert {why for _, why in would[:-3]} == {None}


@pytest.mark.slow
@pytest.mark.notebook
def test_failing_notebook_is_named(mlflow_store, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("x1,y1\n1,2\n")
    with pytest.raises(ReproduceError) as error:
        reproduce(quick=True, data=broken, work_dir=tmp_path)
    message = str(error.value)
    assert "01_data_preprocessing.ipynb failed in cell" in message
    assert "LandmarkDataError" in message and "broken.csv" in message
    assert (tmp_path / "executed" / "01_data_preprocessing.ipynb").exists()
    json.loads((tmp_path / "executed" / "01_data_preprocessing.ipynb").read_text())


@pytest.mark.parametrize("quick", [True, False])
def test_every_parameter_the_runner_passes_exists_in_the_notebook(quick, tmp_path):
    """papermill only warns about a parameter the notebook does not declare."""
    import ast

    for name, parameters in notebook_plan(quick, "data.csv", tmp_path):
        notebook = nbformat.read(config.NOTEBOOKS_DIR / name, as_version=4)
        (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        declared = {
            target.id
            for node in ast.parse(cell.source).body
            if isinstance(node, ast.Assign)
            for target in node.targets
        }
        assert set(parameters) <= declared, (name, set(parameters) - declared)
