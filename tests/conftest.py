import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

# Two xdist workers share the machine's two cores. With BLAS and OpenMP pools of two threads in
# each worker (and in the notebooks' kernels and the CLI subprocesses they start) four threads
# compete for two cores, and OpenBLAS spins while it waits: a quick sweep of logistic regression
# and KNN took 24.5 s so, 9.9 s with one thread, beside another busy process. Set before numpy
# loads its BLAS where possible; threadpoolctl below covers libraries a plugin loaded first.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_variable] = "1"

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from gesturelab import config  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    _ONE_THREAD = threadpool_limits(1)

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

# Session fixtures that train or sweep: the tests reading one run on one xdist worker, so the
# fixture is built once, not once per worker.
SHARED_GROUPS = ("small_tcn",)


# Tests that take tens of seconds (a training, a sweep, a subprocess); the rest take about one.
LONG_MARKERS = ("slow", "train", "sweep", "integration")


# tryfirst: xdist's own hook turns the group marks into node-id suffixes, so ours must mark first.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The longest tests first (the notebooks, then trainings, sweeps and subprocesses, then the
    rest), so that the two workers finish together: the last tests handed out are the short
    ones, not a minute-long one that one worker runs while the other has nothing left. Each
    shared fixture's tests in one xdist group."""
    for item in items:
        for name in SHARED_GROUPS:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))
                item.add_marker(pytest.mark.train)  # its first test trains the model

    def order(item):
        if item.get_closest_marker("notebook"):
            return 0
        return 1 if any(item.get_closest_marker(m) for m in LONG_MARKERS) else 2

    items.sort(key=order)


# What the environment said before any test or fixture ran (a module fixture that pointed MLflow
# at its store would otherwise be what the next test restores).
_REGISTRY_URI_AT_START = os.environ.get("MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _mlflow_pointed_by_the_environment():
    """A test that points this process's MLflow at a store (``train_with_mlflow.setup`` sets the
    tracking and registry URIs) leaves nothing behind: the next test on the worker, whichever
    it is, reads the store its own environment names."""
    yield
    registry = _REGISTRY_URI_AT_START
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        if registry is None:  # MLflow copies a registry URI it is given into the environment
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
        else:
            os.environ["MLFLOW_REGISTRY_URI"] = registry


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return config.HAGRID_SAMPLE_CSV


@pytest.fixture(scope="session")
def sample_frame(sample_csv) -> pd.DataFrame:
    return pd.read_csv(sample_csv)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A real, empty MLflow store (SQLite + artifacts) for one test."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def run_cli(*args, store: str, cwd, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m gesturelab ARGS`` as a user runs it, against the MLflow store ``store``."""
    return subprocess.run(
        [sys.executable, "-m", "gesturelab", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        timeout=timeout,
    )


def cli_here(*args, store: str, cwd) -> subprocess.CompletedProcess:
    """``gesturelab.cli.main(ARGS)`` in this process, against the MLflow store ``store``: what
    it returns, prints and says on stderr, without an interpreter's start and imports (seconds
    per call). For a command's message; ``run_cli`` where the whole process is the point (its
    exit, or library noise that only a real terminal would show)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from gesturelab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with using_store(store), pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def log_static_model(model, X, experiment: str = "tests") -> str:
    """Log a fitted pipeline as the sweep does (skops, the registry's types); its model URI."""
    import train_with_mlflow as tracking
    from gesturelab.datasets.landmarks import landmark_frame
    from gesturelab.models.static_families import SKOPS_TRUSTED_TYPES

    with tracking.start_run(experiment, kind="config") as run:
        return run.log_sklearn_model(model, landmark_frame(X).iloc[:3], SKOPS_TRUSTED_TYPES)


@contextmanager
def using_store(store: str):
    """Point this process's MLflow at ``store`` for a block, then back at the environment's.

    ``train_with_mlflow.setup`` sets MLflow's tracking URI for the process; left set, a later
    test's ``MlflowClient()`` would read this store instead of its own.
    """
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        registry = os.environ.get("MLFLOW_REGISTRY_URI")
        try:
            yield
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
            # MLflow copies a registry URI it is given into the environment.
            if registry is None:
                os.environ.pop("MLFLOW_REGISTRY_URI", None)
            else:
                os.environ["MLFLOW_REGISTRY_URI"] = registry


SMALL_GESTURES = ("grab", "swipe_right", "swipe_up")


def small_sequence_model(store: str, run_name: str, epochs: int = 12):
    """A small TCN on three real SHREC'17 gestures, validated on held-out subjects and logged
    to the MLflow store ``store``: (data, validated model)."""
    from gesturelab.datasets import shrec
    from gesturelab.datasets.sequences import pick_classes
    from gesturelab.training.seq_experiment import train_and_log
    from gesturelab.training.seq_training import TrainConfig

    with using_store(store):
        data = pick_classes(shrec.load_compact(), SMALL_GESTURES)
        config = TrainConfig(arch="tcn", frames=24, epochs=epochs, width=32, patience=epochs)
        return data, train_and_log(data, config, n_bootstrap=20, run_name=run_name)


@pytest.fixture(scope="session")
def small_tcn(tmp_path_factory):
    """The small sequence model every test of a logged or served sequence model reads, trained
    once per session: ``small_sequence_model`` (a TCN, 12 epochs, three gestures) logged to a
    store of its own. ``.store``, ``.data``, ``.validated`` (``.run.model_uri`` its model).

    Tests register it under names of their own and may add artifacts to its run (export);
    none may change its weights (calibration works on copies).
    """
    from types import SimpleNamespace

    store = f"sqlite:///{tmp_path_factory.mktemp('small-tcn') / 'mlflow.db'}"
    data, validated = small_sequence_model(store, "small tcn")
    return SimpleNamespace(store=store, data=data, validated=validated)
