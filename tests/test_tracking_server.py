"""MLflow as a shared server: a real ``mlflow server`` on loopback (SQLite backend, an artifact
root of its own), a sweep that registers its champion and an ``evaluate`` sent to it with
``--tracking-uri``; the runs, the artifacts and the registered champion are found there, and
nothing is written to a local store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from gesturelab import config
from gesturelab.static_data import prepare
from tests.conftest import run_cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            (tmp_path / "server-artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited: {process.stderr.read()[-2000:]}")
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("mlflow server did not answer /health within 120 s")
    yield url, tmp_path
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.slow
def test_sweep_and_evaluate_against_a_tracking_server(server, tmp_path):
    from mlflow import MlflowClient

    url, folder = server
    work = tmp_path / "work"
    work.mkdir()
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    held = work / "test_split.csv"
    prepared.part("test")[[*prepared.columns, "label"]].to_csv(held, index=False)
    local = f"sqlite:///{work / 'must-stay-empty.db'}"  # where the environment points
    sweep = run_cli(
        "--tracking-uri",
        url,
        "sweep",
        "--families",
        "logreg",
        "--register",
        "--figures-dir",
        work / "figures",
        store=local,
        cwd=work,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    evaluate = run_cli(
        "--tracking-uri",
        url,
        "evaluate",
        "--model",
        "models:/hagrid-static-gesture@champion",
        "--data",
        held,
        "--out",
        work / "report.json",
        store=local,
        cwd=work,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert "accuracy" in evaluate.stdout
    client = MlflowClient(url, url)
    champion = client.get_model_version_by_alias("hagrid-static-gesture", "champion")
    assert str(champion.version) == "1"
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert {config.STATIC_EXPERIMENT, "evaluations"} <= set(experiments)
    runs = client.search_runs([experiments[config.STATIC_EXPERIMENT]])
    assert {r.data.tags.get("run_kind") for r in runs} >= {"config", "family", "champion"}
    # The champion's files live in the server's artifact root, the model card beside them.
    artifacts = {a.path for a in client.list_artifacts(champion.run_id, "model_card")}
    assert any(p.endswith(".md") for p in artifacts), artifacts
    assert any((folder / "server-artifacts").rglob("model.skops"))
    assert not (work / "must-stay-empty.db").exists()
