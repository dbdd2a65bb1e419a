"""The sweep's engines: the same runs and metrics whether configurations train in this
process or on a real two-worker Dask LocalCluster; bad engine settings refused in one line."""

import pandas as pd
import pytest

from gesturelab import config
from gesturelab.engine import Engine
from gesturelab.errors import EngineError
from gesturelab.static_data import prepare
from gesturelab.sweep import run_sweep

METRICS = ["val_accuracy", "val_f1_macro", "val_perturbed_f1_macro"]


def test_unknown_backend_and_stray_scheduler_are_refused():
    with pytest.raises(EngineError, match="unknown backend 'spark'; choose one of serial"):
        Engine("spark")
    with pytest.raises(EngineError, match="scheduler address is for --backend dask"):
        Engine("joblib", scheduler="tcp://127.0.0.1:8786")


@pytest.mark.slow
@pytest.mark.sweep
def test_a_dask_sweep_logs_the_same_runs_and_metrics_as_a_serial_one(mlflow_store):
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)

    def sweep(backend, experiment):
        return run_sweep(
            prepared,
            quick=True,
            experiment=experiment,
            families=("logreg", "knn"),
            feature_ablation=False,
            progress=False,
            engine=Engine(backend, workers=2),
        )

    serial = sweep("serial", "serial-sweep")
    dask = sweep("dask", "dask-sweep")

    def table(result):
        return result.runs.set_index("run_name")[METRICS].sort_index()

    assert len(dask.runs) == len(serial.runs) == 4
    pd.testing.assert_frame_equal(table(dask), table(serial))
    best = ["run_name", "test_f1_macro", "transfer_f1_macro"]
    pd.testing.assert_frame_equal(
        dask.best[best].reset_index(drop=True), serial.best[best].reset_index(drop=True)
    )
    assert dask.champion["run_name"] == serial.champion["run_name"]
    assert set(dask.runs["run_id"]).isdisjoint(serial.runs["run_id"])  # two sets of runs
