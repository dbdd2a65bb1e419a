"""MLflow as a shared server, set up as docs/getting-started.md says: a real ``mlflow server``
on loopback with basic authentication and allowed hosts (SQLite backend, an artifact root of its
own). A researcher whose credentials come from the environment sweeps, registers the champion
and evaluates it there, and nothing is written to a local store; an anonymous client, another
host name and a user without permission on the model are refused, each in one line."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gesturelab import config
from gesturelab.datasets.static_data import prepare
from tests.conftest import cli_here, run_cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MODEL = "server-smoke-gestures"  # a quick sweep's champion, never under the served name
ADMIN = ("admin", "admin-password-for-this-test")
RESEARCHER = ("researcher", "researcher-password")
VISITOR = ("visitor", "visitor-password")
AUTH_INI = """[mlflow]
default_permission = READ
database_uri = sqlite:///{users}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
"""


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "basic_auth.ini").write_text(AUTH_INI.format(users=tmp_path / "users.db"))
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-key-shared-by-the-servers-processes",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            (tmp_path / "server-artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--allowed-hosts",
            f"mlflow-host,mlflow-host:{port},127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        env=env,
        cwd=tmp_path,
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


def _as(monkeypatch, user):
    if user is None:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])


def _status(url: str, host: str | None = None, user=None) -> int:
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=1")
    if host:
        request.add_header("Host", host)
    if user:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


@pytest.mark.slow
def test_sweep_and_evaluate_against_a_tracking_server(server, tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    import train_with_mlflow as tracking

    url, folder = server
    work = tmp_path / "work"
    work.mkdir()
    # The admin makes a user per person (docs/getting-started.md).
    _as(monkeypatch, ADMIN)
    users = get_app_client("basic-auth", tracking_uri=url)
    users.create_user(*RESEARCHER)
    users.create_user(*VISITOR)
    _as(monkeypatch, RESEARCHER)
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    held = work / "test_split.csv"
    prepared.part("test")[[*prepared.columns, "label"]].to_csv(held, index=False)
    local = f"sqlite:///{work / 'must-stay-empty.db'}"  # where the environment points
    sweep = run_cli(
        "--tracking-uri",
        url,
        "sweep",
        "--quick",  # each run is logged over HTTP (about 3 s): a full grid would be a minute
        "--families",
        "logreg",
        "--register",
        "--model-name",
        MODEL,
        "--figures-dir",
        work / "figures",
        store=local,
        cwd=work,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert f"{url}/#/experiments/" in sweep.stdout  # the server is the UI it links to
    evaluate = run_cli(
        "--tracking-uri",
        url,
        "evaluate",
        "--model",
        f"models:/{MODEL}@champion",
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
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1"
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert {config.STATIC_EXPERIMENT, "evaluations"} <= set(experiments)
    runs = client.search_runs([experiments[config.STATIC_EXPERIMENT]])
    assert {r.data.tags.get("run_kind") for r in runs} >= {"config", "family", "champion"}
    # The champion's files live in the server's artifact root, the model card beside them.
    artifacts = {a.path for a in client.list_artifacts(champion.run_id, "model_card")}
    assert any(p.endswith(".md") for p in artifacts), artifacts
    # the card lists the scores the champion (refit on every row) was selected on
    card = next(p for p in artifacts if p.endswith(".md"))
    text = Path(client.download_artifacts(champion.run_id, card, str(work))).read_text()
    assert "| selection_test_f1_macro |" in text and "| selection_transfer_f1_macro |" in text
    assert any((folder / "server-artifacts").rglob("model.skops"))
    assert not (work / "must-stay-empty.db").exists()

    # Whom it lets in: the host names it was told, credentials, and permissions.
    port = url.rsplit(":", 1)[1]
    assert _status(url, host=f"mlflow-host:{port}", user=RESEARCHER) == 200
    assert _status(url, host=f"elsewhere:{port}", user=RESEARCHER) == 403
    out = cli_here("leaderboard", store=f"http://localhost:{port}", cwd=work)
    assert out.returncode == 2 and "--allowed-hosts must list localhost" in out.stderr, out.stderr
    _as(monkeypatch, None)
    assert _status(url) == 401
    out = cli_here("leaderboard", store=url, cwd=work)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("error: the tracking server") and "MLFLOW_TRACKING_USERNAME" in (
        out.stderr
    )
    assert len(out.stderr.strip().splitlines()) == 1
    # Another user reads the champion but cannot move it: serving follows trusted versions.
    _as(monkeypatch, VISITOR)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    visitor = MlflowClient(url, url)
    assert visitor.get_model_version_by_alias(MODEL, "champion").version == "1"
    with pytest.raises(tracking.TrackingError) as refused:
        visitor.set_registered_model_alias(MODEL, "champion", "1")
    message = tracking.access_refusal(refused.value)
    assert message.startswith(f"the tracking server {url} refused user 'visitor'"), message


@pytest.mark.parametrize("command", [("leaderboard",), ("model", "info", "models:/any@champion")])
def test_a_tracking_server_that_does_not_answer_is_one_line_at_once(tmp_path, command):
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    out = cli_here(*command, store=url, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        f"error: the tracking server {url} does not answer ([Errno 111] Connection refused): "
        "start it, or point --tracking-uri / MLFLOW_TRACKING_URI at a store that runs\n"
    )
