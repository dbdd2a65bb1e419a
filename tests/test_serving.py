"""A registered sequence model is served by MLflow's own tools in a Python that has not imported
gesturelab: ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` answer real held-out
sequences with the classes gesturelab's own predictor gives them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tests.conftest import using_store

NAME = "serving-test-gestures"

pytestmark = [pytest.mark.slow, pytest.mark.train]


@pytest.fixture(scope="module")
def served(small_tcn, tmp_path_factory):
    """The session's small TCN (real sequences), registered in its store; the held-out
    sequences at the model's length and the classes gesturelab predicts for them."""
    import train_with_mlflow as tracking
    from gesturelab.models.predictor import load_predictor

    folder = tmp_path_factory.mktemp("serving")
    uri, data, out = small_tcn.store, small_tcn.data, small_tcn.validated
    with using_store(uri):  # and back: the registry URI MLflow set must not outlive this
        tracking.register_model(out.run.model_uri, NAME, label_set=data.classes, data_sha256=None)
        predictor = load_predictor(f"models:/{NAME}@champion")
        held = data.subset(np.isin(data.subjects, out.validation_subjects))
        x = held.to_fixed(predictor.frames).reshape(len(held), predictor.frames, 63)
        expected = np.asarray(predictor.classes)[
            predictor.predict_fixed(held.to_fixed(24)).argmax(1)
        ]
    np.save(folder / "x.npy", x[:40])
    return {"store": uri, "folder": folder, "expected": expected[:40], "classes": predictor.classes}


def _fresh_env(served) -> dict:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": served["store"],
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
    }


def test_pyfunc_loads_the_model_without_gesturelab_installed_code(served):
    script = f"""
import sys, json, numpy as np, mlflow.pyfunc
model = mlflow.pyfunc.load_model("models:/{NAME}@champion")
scores = np.asarray(model.predict(np.load({str(served["folder"] / "x.npy")!r})))
print(json.dumps({{"argmax": scores.argmax(1).tolist(),
                  "gesturelab": sys.modules["gesturelab"].__file__}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=_fresh_env(served),
        cwd=served["folder"],
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    # The layers came from the code logged with the model, not from this checkout.
    assert "/artifacts/code/gesturelab/" in answer["gesturelab"], answer["gesturelab"]
    got = np.asarray(served["classes"])[answer["argmax"]]
    assert (got == served["expected"]).all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_raw_landmark_sequences(served):
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{NAME}@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=_fresh_env(served),
        cwd=served["folder"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"mlflow models serve did not start:\n{server.stdout.read()[-3000:]}"
                    )
                time.sleep(1)
        x = np.load(served["folder"] / "x.npy")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": x.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            predictions = np.asarray(json.load(response)["predictions"])
        assert predictions.shape == (len(x), len(served["classes"]))
        got = np.asarray(served["classes"])[predictions.argmax(1)]
        assert (got == served["expected"]).all()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.integration
def test_a_served_static_model_takes_the_documented_request_and_refuses_a_hand_of_zeros(
    mlflow_store, sample_frame
):
    """The request docs/data.md shows (column names: the model's signature has them) gets the
    pipeline's labels, through MLflow's own scoring server code; 63 zeros got a label too, and
    now get an error."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
    from gesturelab.models.static_families import build_pipeline
    from tests.conftest import log_static_model

    X, y = sample_frame[list(LANDMARK_COLUMNS)], sample_frame["label"]
    pipeline = build_pipeline("logreg", {"C": 1.0}).fit(X, y)
    model = mlflow.pyfunc.load_model(log_static_model(pipeline, X))
    schema = model.metadata.get_input_schema()

    def request(rows):
        body = {"dataframe_split": {"columns": list(LANDMARK_COLUMNS), "data": rows}}
        return scoring_server.invocations(json.dumps(body), "application/json", model, schema)

    answer = request(X.iloc[:5].to_numpy().tolist())
    assert answer.status == 200
    assert json.loads(answer.response)["predictions"] == list(pipeline.predict(X.iloc[:5]))
    with pytest.raises(Exception) as refused:
        request([[0.0] * 63])
    chain, cause = [], refused.value
    while cause is not None:
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    assert any("hands have no size" in text for text in chain), chain
