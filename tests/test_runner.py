"""What decides that reproduce may reuse a notebook instead of running it again."""

import time

from mlflow.tracking import MlflowClient

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.studies.runner import _file_state, _why_not_reused, notebook_key

NOTEBOOK = "01_data_preprocessing.ipynb"


def test_a_notebook_key_follows_parameters_earlier_notebooks_inputs_and_store():
    key = notebook_key(NOTEBOOK, {"quick": True}, "", "inputs", "sqlite:///a.db")
    assert key == notebook_key(NOTEBOOK, {"quick": True}, "", "inputs", "sqlite:///a.db")
    others = [
        notebook_key(NOTEBOOK, {"quick": False}, "", "inputs", "sqlite:///a.db"),
        notebook_key(NOTEBOOK, {"quick": True}, "before", "inputs", "sqlite:///a.db"),
        notebook_key(NOTEBOOK, {"quick": True}, "", "other code", "sqlite:///a.db"),
        notebook_key(NOTEBOOK, {"quick": True}, "", "inputs", "sqlite:///b.db"),
        notebook_key("02_classical_sweep.ipynb", {"quick": True}, "", "inputs", "sqlite:///a.db"),
    ]
    assert key not in others and len(set(others)) == len(others)


def test_reuse_needs_the_same_key_and_every_file_and_run_intact(mlflow_store, tmp_path):
    written = tmp_path / "figure.png"
    written.write_bytes(b"png")
    with tracking.start_run("tests", "an earlier notebook's run", kind="config") as earlier:
        pass
    started = int(time.time() * 1000) + 1
    time.sleep(0.01)
    with tracking.start_run("tests", "a notebook's run", kind="config") as run:
        run.log_metrics({"accuracy": 1.0})
    assert tracking.runs_used_since(started) == [run.run_id]
    tracking.adopt_run(earlier.run_id)  # a reused run is one the notebook depends on too
    assert sorted(tracking.runs_used_since(started)) == sorted([run.run_id, earlier.run_id])
    record = {"key": "k", "files": _file_state([str(written)]), "runs": [run.run_id]}
    assert _why_not_reused(record, "k") is None
    assert _why_not_reused(record, "other") == "its inputs changed"
    assert _why_not_reused(None, "k") == "it has not run yet"
    written.write_bytes(b"another png")
    assert _why_not_reused(record, "k") == "a file it wrote changed or is gone"
    record["files"] = _file_state([str(written)])
    MlflowClient().delete_run(run.run_id)
    assert _why_not_reused(record, "k") == "a run it logged is no longer in the store"
    assert tracking.missing_runs([run.run_id, "0" * 32]) == [run.run_id, "0" * 32]


def test_the_data_key_covers_shipped_files_not_what_notebooks_import_into_data():
    from gesturelab import config
    from gesturelab.studies.runner import shipped_data

    files = shipped_data()
    assert config.HAGRID_SAMPLE_CSV in files and config.KEYPOINT_CSV in files
    imported = config.DATA_DIR / "keypoint-classifier"  # notebook 06 writes it
    assert not any(imported in f.parents or config.PROCESSED_DIR in f.parents for f in files)


def test_the_end_state_takes_rewrites_but_never_forgets_a_file_that_is_gone(tmp_path):
    from gesturelab.studies.runner import end_state

    kept, gone = tmp_path / "figure.png", tmp_path / "split.csv"
    kept.write_text("first")
    gone.write_text("rows")
    recorded = _file_state([str(kept), str(gone)])
    kept.write_text("rewritten by a later notebook")
    gone.unlink()
    final = end_state(recorded)
    assert final[str(kept)] == _file_state([str(kept)])[str(kept)] != recorded[str(kept)]
    assert final[str(gone)] == recorded[str(gone)] is not None
    record = {"key": "k", "files": final, "runs": []}
    assert _why_not_reused(record, "k") == "a file it wrote changed or is gone"


def test_only_the_store_own_files_are_left_out_of_a_notebook_files(mlflow_store, tmp_path):
    """A store in a folder notebooks also write to must not hide their files."""
    store = tmp_path / "mlruns"
    assert tracking.is_store_file(store / "mlflow.db")
    assert tracking.is_store_file(store / "mlflow.db.lock")
    assert tracking.is_store_file(store / "artifacts" / "1" / "run" / "model.skops")
    assert not tracking.is_store_file(store / "figure.png")
    assert not tracking.is_store_file(tmp_path / "processed" / "hagrid_split.csv")


def test_a_dry_run_says_what_would_run_and_runs_nothing(mlflow_store, tmp_path, capsys):
    from gesturelab.cli import main

    assert main(["reproduce", "--quick", "--work-dir", str(tmp_path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    notebooks = len(list(config.NOTEBOOKS_DIR.glob("*.ipynb")))
    assert len(lines) == notebooks and lines[0].startswith("01_data_preprocessing.ipynb: ")
    assert all(x.endswith(".ipynb: would run: it has not run yet") for x in lines), lines
    assert [p.name for p in (tmp_path / "executed").iterdir()] == []  # nothing ran, no record
    assert main(["reproduce", "--work-dir", str(tmp_path), "--only", "02", "--dry-run"]) == 0
    assert capsys.readouterr().out == "02_classical_sweep.ipynb: would run: it has not run yet\n"
