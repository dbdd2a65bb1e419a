"""A sweep killed half-way (SIGKILL, a real process) and started again ends with exactly one
finished run per configuration and no run left RUNNING; a sweep over the same data, split,
seed and code reuses every configuration run instead of training it again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

FAMILIES = ("svm", "knn", "logreg")


def _runs(store):
    from mlflow import MlflowClient

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("hagrid-classical-sweep")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], max_results=5000)


@pytest.mark.slow
def test_a_killed_sweep_resumes_with_one_finished_run_per_configuration(tmp_path):
    from tests.conftest import run_cli

    # Three families: the kill lands in the second (svm has three configurations); the Keras
    # MLP and the forest add minutes and nothing to what resuming must do.
    sweep_args = ["--quick", "--families", *FAMILIES, "--figures-dir", tmp_path]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    # The polling below opens the store from this process. Opened for the first time while the
    # sweep creates MLflow's tables, it would create them too and one of the two fails (the
    # sweep's lock does not cover a bare client), so the store exists before the sweep starts.
    assert _runs(store) == []
    err = (tmp_path / "sweep.err").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gesturelab", "sweep", *sweep_args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    deadline = time.time() + 600
    while time.time() < deadline:
        runs = _runs(store)
        finished = [
            r
            for r in runs
            if r.info.status == "FINISHED" and r.data.tags.get("run_kind") == "config"
        ]
        # Past the first family and while a run is open: a kill between two families (their
        # scoring, a second or two with these small ones) would leave nothing RUNNING.
        running = any(r.info.status == "RUNNING" for r in runs)
        if process.poll() is not None:
            break
        if len(finished) >= 4 and running:
            # A quick configuration's run lasts tens of milliseconds: it could finish between
            # this look and the kill (it did, once in a full run). Frozen, the sweep cannot.
            os.kill(process.pid, signal.SIGSTOP)
            try:
                frozen = _runs(store)
            except Exception:  # frozen while writing: the store is locked; look again
                frozen = []
            if any(r.info.status == "RUNNING" for r in frozen):
                break
            os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.5)
    assert process.poll() is None, (
        "the sweep ended before it could be killed: " + (tmp_path / "sweep.err").read_text()[-3000:]
    )
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    err.close()
    killed = _runs(store)
    statuses = Counter((r.data.tags.get("run_kind"), r.info.status) for r in killed)
    assert any(r.info.status == "RUNNING" for r in killed), statuses  # what a kill leaves

    again = run_cli("sweep", *sweep_args, store=store, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    reused, total = map(int, re.search(r"reused (\d+) of (\d+)", again.stdout).groups())
    assert reused >= 3 and total > reused
    runs = _runs(store)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    keyed = [r for r in runs if "run_key" in r.data.tags]
    finished = Counter(
        (r.data.tags.get("run_kind"), r.data.tags["run_key"])
        for r in keyed
        if r.info.status == "FINISHED"
    )
    assert sum(kind in ("config", "ablation") for kind, _ in finished) == total
    assert sum(kind == "champion" for kind, _ in finished) == 1
    assert set(finished.values()) == {1}, "a configuration has more than one finished run"

    third = run_cli("sweep", *sweep_args, store=store, cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"reused {total} of {total}" in third.stdout

    def board(out):
        return out.stdout.split("Best per family")[1].split("\nchampion:")[0]

    assert board(again) == board(third)  # the same leaderboard from reused runs

    def champion(out):
        return out.stdout.split("\nchampion:")[1].splitlines()[0]

    assert champion(again) == champion(third)  # the same champion run's model, not a refit
    # new runs: the family runs and the feature ablation's that hold adopted runs, the leaderboard
    assert len(_runs(store)) == len(runs) + len(FAMILIES) + 2
