"""`prelabel`: a registered static model proposes labels for a real video and an unlabelled
landmark table; the confident proposals become a landmark CSV that `data import` takes, the
rest a queue ranked by uncertainty with a picture of each hand."""

from __future__ import annotations

import json

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from conftest import cli_here

from gesturelab import config
from gesturelab.datasets.loading import load_landmarks_csv
from gesturelab.evaluation.metrics import uncertainty
from gesturelab.models.static_families import SKOPS_TRUSTED_TYPES, build_pipeline
from gesturelab.tracking.browser import find_chromium

VIDEO = config.DATA_DIR / "mediapipe_samples" / "hand_video.mp4"


def test_uncertainty_measures_of_known_probabilities():
    table = uncertainty(np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
    np.testing.assert_allclose(table["confidence"], [0.5, 1.0, 1 / 3])
    np.testing.assert_allclose(table["margin"], [0.2, 1.0, 0.0], atol=1e-12)
    entropy = -(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2)) / np.log(3)
    np.testing.assert_allclose(table["entropy"], [entropy, 0.0, 1.0])


def test_prelabel_a_real_video_and_a_table_then_import_the_accepted(mlflow_store, tmp_path):
    store = mlflow_store
    sample = load_landmarks_csv(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    # a model folder as the project writes one (skops, the registry's types): --model takes it
    model = build_pipeline("logreg", {"C": 1.0}).fit(sample.data, sample.y)
    mlflow.sklearn.save_model(
        model,
        tmp_path / "model",
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        pip_requirements=[],
    )
    # a table of hands as someone exports them without labels, one row damaged
    rows = pd.read_csv(config.HAGRID_SAMPLE_CSV).drop(columns="label").head(40)
    rows = rows.astype({"x3": object})
    rows.loc[7, "x3"] = "n/a"
    rows.to_csv(tmp_path / "unlabelled.csv", index=False)
    out = tmp_path / "proposals"
    run = cli_here(
        "prelabel",
        "--model",
        tmp_path / "model",
        "--input",
        VIDEO,
        tmp_path / "unlabelled.csv",
        "--out",
        out,
        "--no-progress",
        cwd=tmp_path,
        store=store,
    )
    assert run.returncode == 0, run.stderr
    proposals = pd.read_csv(out / "proposals.csv")
    summary = json.loads((out / "prelabel.json").read_text())
    counts = proposals["status"].value_counts()
    assert summary["accepted"] == counts["accepted"] and summary["queued"] == counts["queued"]
    assert set(proposals["media"]) == {"video", "table"}
    video = proposals[proposals["media"] == "video"]
    assert (video["frame"] % config.PRELABEL_EVERY == 0).all() and len(video) > 20
    # the damaged row is listed with its line, the 39 others proposed
    assert (proposals["media"] == "table").sum() == 39
    problems = pd.read_csv(out / "problems.csv")
    assert problems["problem"].str.startswith("line 9: ").sum() == 1
    # accepted: confident and kept by the model; queued: the rest, least margin first
    accepted = proposals[proposals["status"] == "accepted"]
    assert (accepted["confidence"] >= config.PRELABEL_THRESHOLD).all()
    queue = pd.read_csv(out / "queue.csv")
    # the uncertain ones, least margin first, then a sample of the accepted ones to check
    audit = int(np.ceil(config.PRELABEL_AUDIT * len(accepted)))
    assert queue["reason"].tolist() == ["uncertain"] * counts["queued"] + ["audit"] * audit
    assert audit == summary["audit"] > 0
    assert (np.diff(queue["margin"].iloc[: counts["queued"]]) >= 0).all()
    assert (queue.loc[queue["reason"] == "audit", "confidence"] >= 0.9).all()
    band = (queue["confidence"] >= 0.4) & (queue["confidence"] <= 0.6)
    assert (queue["in_hard_band"] == band).all()
    pictures = queue.loc[queue["media"] == "video", "picture"]
    assert len(pictures) and all((out / p).stat().st_size > 10_000 for p in pictures)
    assert queue.loc[queue["media"] == "table", "picture"].isna().all()
    # one person, one hand: MediaPipe's second copy of the same hand is not proposed twice
    assert video.groupby("frame").size().max() == 1
    # the accepted hands import as a dataset of their own, labelled by the proposals
    imported = cli_here(
        "data",
        "import",
        out / "accepted.csv",
        "--name",
        "prelabelled",
        "--data-dir",
        tmp_path / "data",
        cwd=tmp_path,
        store=store,
    )
    assert imported.returncode == 0, imported.stderr
    again = load_landmarks_csv(
        tmp_path / "data" / "prelabelled" / "landmarks.csv", quarantine_dir=None, verbose=False
    )
    assert len(again.data) == counts["accepted"]
    assert sorted(again.y) == sorted(accepted["proposed_label"])


def test_prelabel_windows_of_a_real_video_with_a_sequence_model(small_tcn, tmp_path):
    """The session's small TCN over a real video, in windows of 40 frames: each window with
    enough hand is proposed, the accepted ones read back as a sequence dataset."""
    from gesturelab.datasets.sequence_formats import read_sequences
    from gesturelab.models.predictor import SequencePredictor
    from gesturelab.serving.prelabel import prelabel_sequences, write_prelabels

    predictor = SequencePredictor(
        small_tcn.validated.model, {"frames": 24, "classes": list(small_tcn.data.classes)}
    )
    prelabels = prelabel_sequences(predictor, VIDEO, window=40, threshold=0.6, progress=False)
    out = write_prelabels(prelabels, tmp_path / "windows", model="small tcn")
    proposals = prelabels.proposals
    skipped = prelabels.problems["problem"].str.contains("not proposed").sum()
    assert len(proposals) + skipped == 202 // 40  # 5 windows: 0-39, ..., 160-199
    assert (
        proposals["start_frame"].tolist() == sorted(proposals["start_frame"])
        and (proposals["end_frame"] - proposals["start_frame"] == 39).all()
    )
    assert (proposals["hand_fraction"] >= 0.5).all()
    accepted = proposals[proposals["status"] == "accepted"]
    queue = pd.read_csv(out / "queue.csv")
    assert len(queue) == (proposals["status"] == "queued").sum() + proposals["audit"].sum()
    assert all((out / p).stat().st_size > 5_000 for p in queue["picture"])
    rows = pd.read_csv(out / "accepted.csv")
    assert set(rows["sequence"]) == set(accepted["sequence"])
    # a sequence CSV that the readers take, labelled by the proposals
    assert len(accepted) > 0 and (accepted["confidence"] >= 0.6).all()
    again = read_sequences(out / "accepted.csv", quarantine_dir=None, verbose=False)
    assert again.counts["sequences_kept"] == len(accepted)
    assert sorted(again.data.label_names) == sorted(accepted["proposed_label"])
    # the queued windows labelled by a person: a sequence CSV as well
    from gesturelab.serving.labelling import LabelSession

    session = LabelSession(out)
    window = session.current
    assert session.hand().shape[1:] == (21, 3)
    session.press("1")
    labelled = read_sequences(out / "labels.csv", quarantine_dir=None, verbose=False)
    assert labelled.data.label_names.tolist() == [session.classes[0]]
    assert 4 <= len(labelled.data.sequences[0]) <= window["end_frame"] - window["start_frame"] + 1


def _hand_queue(tmp_path):
    """A prelabel folder of eight real HaGRID hands, every proposal queued (threshold above 1,
    no audit), proposed by a logistic regression fitted on the sample."""
    from gesturelab.models.predictor import GesturePredictor
    from gesturelab.serving.prelabel import prelabel_static, write_prelabels

    sample = load_landmarks_csv(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    predictor = GesturePredictor(build_pipeline("logreg", {"C": 1.0}).fit(sample.data, sample.y))
    rows = pd.read_csv(config.HAGRID_SAMPLE_CSV).drop(columns="label").iloc[::100]
    rows.to_csv(tmp_path / "unlabelled.csv", index=False)
    prelabels = prelabel_static(predictor, tmp_path / "unlabelled.csv", threshold=1.01, audit=0)
    return write_prelabels(prelabels, tmp_path / "queue")


def test_a_labelling_session_takes_keys_goes_back_skips_and_resumes(tmp_path):
    """A queue of real HaGRID hands (every proposal queued: threshold above 1): keys label,
    skip, go back and relabel; a new session on the same folder continues where the first
    stopped; labels.csv is a landmark CSV the readers take."""
    from gesturelab.serving.labelling import LabelSession, class_keys

    folder = _hand_queue(tmp_path)
    session = LabelSession(folder)
    keys = {c: k for k, c in class_keys(session.classes).items()}
    classes = sorted(set(pd.read_csv(config.HAGRID_SAMPLE_CSV)["label"]))
    assert len(session.items) == 8 and session.classes == classes
    session.press(keys["like"])  # 1: like
    session.press("n")  # 2: skipped
    session.press(keys["palm"])  # 3: palm
    session.press("ArrowLeft")  # back to 3
    session.press(keys["fist"])  # 3: fist instead
    assert session.press("?").endswith("is no key here")
    assert session.progress() == "4 of 8; 2 labelled, 1 skipped"
    again = LabelSession(folder)  # a new kernel, the same folder
    assert again.position == 3 and again.decisions == session.decisions
    for _ in range(5):
        again.press(keys["peace"])
    assert again.done and again.press(keys["peace"]) == "every item has a decision"
    labels = load_landmarks_csv(folder / "labels.csv", quarantine_dir=None, verbose=False)
    assert labels.y.tolist() == ["like", "fist"] + ["peace"] * 5
    np.testing.assert_allclose(labels.X[0], session.items.iloc[0][labels.columns].to_numpy(
        np.float64).reshape(21, 3))  # fmt: skip


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed")
def test_the_labeller_in_jupyterlab_takes_real_key_presses(tmp_path):
    """The labeller in a notebook in headless JupyterLab: the mouse over it, keys pressed as a
    keyboard sends them; labels.csv on disk follows each decision."""
    import importlib.util
    import time

    import nbformat

    from gesturelab.serving.labelling import LabelSession, class_keys
    from gesturelab.tracking.browser import Browser, free_port

    folder = _hand_queue(tmp_path)
    keys = {c: k for k, c in class_keys(LabelSession(folder).classes).items()}
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from gesturelab.serving.labelling import Labeller\n"
            f"labeller = Labeller({str(folder)!r}).show()"
        )
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}  # fmt: skip
    nbformat.write(notebook, tmp_path / "label.ipynb")
    spec = importlib.util.spec_from_file_location(
        "ui_screenshots", config.REPO_ROOT / "benchmarks" / "ui_screenshots.py"
    )
    screens = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(screens)
    port, token = free_port(), "gesturelab-labeller"
    server = screens.start_lab(port, token, [tmp_path / "label.ipynb"])

    def labels_after(key, count, timeout=30.0):
        browser.hover(".gesturelab-labeller")  # the mouse stays on the labeller
        browser.press(key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = folder / "labelling.json"
            if state.is_file() and len(json.loads(state.read_text())["decisions"]) >= count:
                return pd.read_csv(folder / "labels.csv")
            time.sleep(0.3)
        raise AssertionError(f"{key!r}: no decision {count} in {timeout:.0f} s: {browser.text()}")

    try:
        with Browser() as browser:
            url = f"http://127.0.0.1:{port}/lab/tree/label.ipynb?token={token}"
            browser.open(url, wait_for="Python 3 (ipykernel)", timeout=120)
            browser.settle(3)
            browser.evaluate("void window.jupyterapp.commands.execute('notebook:run-all-cells')")
            browser.wait_for_text("proposed", timeout=120)
            assert browser.hover(".gesturelab-labeller")
            browser.settle(0.5)
            assert labels_after(keys["like"], 1)["label"].tolist() == ["like"]
            labels_after("n", 2)  # skipped
            assert labels_after(keys["palm"], 3)["label"].tolist() == ["like", "palm"]
            browser.hover(".gesturelab-labeller")
            browser.press("ArrowLeft")  # back to the third, and relabel it
            browser.settle(1)
            relabelled = labels_after(keys["fist"], 3)
            deadline = time.monotonic() + 20
            while relabelled["label"].tolist() != ["like", "fist"] and time.monotonic() < deadline:
                time.sleep(0.3)
                relabelled = pd.read_csv(folder / "labels.csv")
            assert relabelled["label"].tolist() == ["like", "fist"]
            browser.wait_for_text("4 of 8; 2 labelled, 1 skipped", timeout=20)
            browser.screenshot(tmp_path / "labeller.png")
    finally:
        server.terminate()
        server.wait(20)


def test_hard_windows_of_a_stream_become_a_queue_the_labeller_opens(small_tcn, tmp_path):
    """Three real SHREC'17 gestures played through the streaming recognizer: the windows of
    confidence 0.4-0.6 are kept with their frames; a queue of every window (a band of 0-1)
    opens in the labeller, and a labelled window reads back as the frames the model saw."""
    from gesturelab.datasets.sequence_formats import read_sequences
    from gesturelab.models.predictor import SequencePredictor
    from gesturelab.serving.hard_examples import HardExamples
    from gesturelab.serving.labelling import LabelSession
    from gesturelab.serving.streaming import StreamingRecognizer

    data = small_tcn.data
    predictor = SequencePredictor(
        small_tcn.validated.model, {"frames": 24, "classes": list(data.classes)}
    )
    stream = np.concatenate([data.sequences[i] for i in (0, 200, 400)])
    every = HardExamples(tmp_path / "all", predictor, "played.mp4", band=(0.0, 1.0))
    hard = HardExamples(tmp_path / "hard", predictor, "played.mp4")

    def both(record, frames):
        every(record, frames)
        hard(record, frames)

    recognizer = StreamingRecognizer(predictor, fps=30.0, window=24, stride=8, on_window=both)
    for frame in stream:
        recognizer.push(frame)
    scored = recognizer.windows_table().dropna(subset=["best"])
    assert len(every.items) == len(scored) > 5
    assert len(hard.items) == scored["confidence"].between(0.4, 0.6).sum()
    every.save()
    every.save()  # a second session's save: each window kept once
    # the queue of in-band windows opens in the labeller, also when none was hard
    assert len(LabelSession(hard.save()).ids) == len(hard.items)
    queue = pd.read_csv(tmp_path / "all" / "queue.csv")
    assert len(queue) == len(scored) and queue["reason"].eq("hard").all()
    session = LabelSession(tmp_path / "all")
    window = session.current
    session.press("2")
    labelled = read_sequences(tmp_path / "all" / "labels.csv", quarantine_dir=None, verbose=False)
    assert labelled.data.label_names.tolist() == [data.classes[1]]
    start, end = int(window["start_frame"]), int(window["end_frame"])
    np.testing.assert_allclose(labelled.data.sequences[0], stream[start : end + 1], atol=1e-5)
