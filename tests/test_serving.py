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

NAME = "serving-test-gestures"

pytestmark = [pytest.mark.slow, pytest.mark.train]


@pytest.fixture(scope="module")
def served(small_tcn, tmp_path_factory):
    """The session's small TCN (real sequences), registered in its store; the held-out
    sequences at the model's length and the classes gesturelab predicts for them."""
    import train_with_mlflow as tracking
    from gesturelab.predictor import load_predictor

    folder = tmp_path_factory.mktemp("serving")
    uri, data, out = small_tcn.store, small_tcn.data, small_tcn.validated
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
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
