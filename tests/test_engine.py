"""The sweep's engines: the same runs and metrics whether configurations train in this
process or on a real two-worker Dask LocalCluster; bad engine settings refused in one line."""

import os

import pandas as pd
import pytest

from gesturelab import config
from gesturelab.datasets.static_data import prepare
from gesturelab.errors import EngineError
from gesturelab.training.engine import Engine
from gesturelab.training.sweep import run_sweep

METRICS = ["val_accuracy", "val_f1_macro", "val_perturbed_f1_macro"]


def test_unknown_backend_and_stray_scheduler_are_refused():
    with pytest.raises(EngineError, match="unknown backend 'spark'; choose one of serial"):
        Engine("spark")
    with pytest.raises(EngineError, match="scheduler address is for --backend dask"):
        Engine("joblib", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(EngineError, match="'not-an-address' is not a scheduler address"):
        Engine("dask", scheduler="not-an-address")  # was a ValueError once the sweep had begun


@pytest.mark.slow
@pytest.mark.sweep
def test_a_dask_sweep_logs_the_same_runs_and_metrics_as_a_serial_one(mlflow_store):
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)

    def sweep(backend, experiment):
        return run_sweep(
            prepared,
            quick=True,
            experiment=experiment,
            families=("knn",),  # the engine's equivalence holds for any family
            feature_ablation=False,
            progress=False,
            engine=Engine(backend, workers=2),
        )

    serial = sweep("serial", "serial-sweep")
    dask = sweep("dask", "dask-sweep")

    def table(result):
        return result.runs.set_index("run_name")[METRICS].sort_index()

    assert len(dask.runs) == len(serial.runs) == 2
    pd.testing.assert_frame_equal(table(dask), table(serial))
    best = ["run_name", "test_f1_macro", "transfer_f1_macro"]
    pd.testing.assert_frame_equal(
        dask.best[best].reset_index(drop=True), serial.best[best].reset_index(drop=True)
    )
    assert dask.champion["run_name"] == serial.champion["run_name"]
    assert set(dask.runs["run_id"]).isdisjoint(serial.runs["run_id"])  # two sets of runs


_KEPT = []


def _grow_and_report(_shared, megabytes):
    """A task that keeps what it built, as a worker that fitted Keras models does."""
    import os
    import time

    import numpy as np

    _KEPT.append(np.ones(megabytes * 2**20, dtype=np.uint8))
    time.sleep(1.2)  # loky looks at a worker's size at most once a second
    return os.getpid()


@pytest.mark.integration
def test_a_joblib_worker_that_keeps_what_it_built_is_not_restarted(recwarn):
    """loky restarts a worker that grew 300 MB after its first task ("A worker stopped while some
    jobs were given to the executor"); a worker keeping TensorFlow's caches is not leaking."""
    with Engine("joblib", 2).open(None) as pool:
        pids = list(pool.map(_grow_and_report, [50, 50, 400, 400, 400, 400]))
    assert len(set(pids)) == 2, pids
    assert not [w for w in recwarn if "A worker stopped" in str(w.message)]


WORKER_SCRIPT = """
import os, sys, time
from gesturelab.training.engine import Engine

def task(shared, item):
    open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
    time.sleep(600)  # a fit nobody will read once the sweep is killed

with Engine("joblib", workers=2).open(None) as pool:
    list(pool.map(task, [1, 2]))
"""


def test_workers_stop_when_the_sweep_that_started_them_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(p.name) for p in tmp_path.iterdir()]
        assert len(workers) == 2
    finally:
        parent.send_signal(signal.SIGKILL)  # as `kill -9` of a sweep or reproduce
        parent.wait()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"

    deadline = time.monotonic() + 60  # their task would run for 600 s
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} were still computing after their parent was killed"
