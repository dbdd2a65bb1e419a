"""Runs and what they log: params, metrics, curves, figures, tables, datasets and models, with
their provenance (commit, command, process).
"""

from __future__ import annotations

import contextvars
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import MappingProxyType

import matplotlib.pyplot as plt

# Before MLflow on purpose: skops, on first import, finds the module of each of SciPy's ufuncs by
# walking sys.modules in order until it meets scipy.special. Loaded after MLflow and TensorFlow,
# that walk took 3 to 7 s of every process that saved or loaded a model; loaded first, 1 s.
import scipy.special  # noqa: F401

# isort: split
import mlflow
import mlflow.artifacts
import mlflow.exceptions
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from gesturelab import config
from gesturelab.tracking.records import RunRecord, _record, label_set_key
from gesturelab.tracking.store import _process_start, get_or_create_experiment, setup
from gesturelab.tracking.ui import DESCRIPTION_TAG

# Bundled with every static model so MLflow's pyfunc can load it where gesturelab is missing.
PACKAGE_DIR = config.REPO_ROOT / "gesturelab"
# The door: a Keras model's pyfunc loader is its ``_load_pyfunc`` (it registers our layers).
DOOR = config.REPO_ROOT / "train_with_mlflow.py"


def pinned(*distributions: str) -> list[str]:
    """``name==version`` of what is installed: requirements.txt stays the only list of pins."""
    return [f"{name}=={metadata.version(name)}" for name in distributions]


# What a logged model needs to load; listing it skips MLflow's slow requirement inference.
SKLEARN_PIP_REQUIREMENTS = pinned("scikit-learn", "numpy", "pandas", "skops")


KERAS_PIP_REQUIREMENTS = pinned("tensorflow-cpu", "keras", "numpy")


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PACKAGE_DIR.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PACKAGE_DIR.parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


_CONTEXT_TAGS = contextvars.ContextVar("context_tags", default=MappingProxyType({}))


@contextmanager
def tagging(**tags):
    """Every run started inside carries these tags too (a sweep's id, say)."""
    token = _CONTEXT_TAGS.set({**_CONTEXT_TAGS.get(), **{k: str(v) for k, v in tags.items()}})
    try:
        yield
    finally:
        _CONTEXT_TAGS.reset(token)


def _command() -> str:
    """The command line that started this process, as a user would type it again."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("gesturelab/__main__.py", "gesturelab/cli.py")):
        argv = ["python", "-m", "gesturelab", *argv[1:]]
    return " ".join(argv)[:500]


def run_origin() -> dict:
    """Tags every run carries: the code's commit, the process that owns it, the context's."""
    return {
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "process_start": _process_start(os.getpid()) or "",
        "command": _command(),
        **_CONTEXT_TAGS.get(),
    }


def adopt_run(run_id: str) -> None:
    """Make a finished run part of what is running now: the child of the active run, with the
    context's tags (a sweep's id), and a count of how often it was reused instead of trained."""
    client = MlflowClient()
    tags = dict(_CONTEXT_TAGS.get())
    active = mlflow.active_run()
    if active is not None:
        tags["mlflow.parentRunId"] = active.info.run_id
    previous = client.get_run(run_id).data.tags.get("reused_times", "0")
    tags["reused_times"] = str(int(previous) + 1)
    tags["reused_last_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    tags["reused_last_ms"] = str(int(time.time() * 1000))
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


class Run:
    """What can be logged to one run. Models and dataset inputs need it to be the active run
    (inside ``start_run``); everything else also works on a finished run (``open_run``)."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._client = MlflowClient()

    def log_params(self, params: dict) -> None:
        items = [Param(str(k), str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self._client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict, step: int = 0) -> None:
        now = int(time.time() * 1000)
        self._batch([Metric(str(k), float(v), now, step) for k, v in metrics.items()])

    def log_curves(self, curves: dict) -> None:
        """Per-epoch values, one metric history each: {name: [value of epoch 1, 2, ...]}."""
        now = int(time.time() * 1000)
        self._batch(
            [
                Metric(str(name), float(value), now, epoch)
                for name, values in curves.items()
                for epoch, value in enumerate(values, start=1)
            ]
        )

    def _batch(self, metrics: list) -> None:
        for i in range(0, len(metrics), 1000):
            self._client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def set_tags(self, tags: dict) -> None:
        if tags:
            self._client.log_batch(
                self.run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()]
            )

    def describe(self, markdown: str) -> None:
        """The run's description, shown on its page."""
        self._client.set_tag(self.run_id, DESCRIPTION_TAG, markdown)

    def log_figures(self, figures: dict) -> None:
        """Matplotlib figures by artifact name; each is closed once logged."""
        for name, figure in figures.items():
            self._client.log_figure(self.run_id, figure, name)
            plt.close(figure)

    def log_dicts(self, dicts: dict) -> None:
        for name, payload in dicts.items():
            self._client.log_dict(self.run_id, payload, name)

    def log_table(self, table: pd.DataFrame, name: str) -> None:
        """A table artifact (MLflow's JSON table format, which the UI shows as a table)."""
        with warnings.catch_warnings():
            # MLflow 3.17 selects object columns the way pandas 3 deprecates
            warnings.filterwarnings("ignore", message=".*select_dtypes")
            self._client.log_table(self.run_id, data=table, artifact_file=name)

    def log_artifacts(self, paths: Iterable = (), folder=None, folder_name: str | None = None):
        for path in paths:
            self._client.log_artifact(self.run_id, str(path))
        if folder is not None and Path(folder).is_dir():
            self._client.log_artifacts(self.run_id, str(folder), folder_name)

    def log_text(self, text: str, name: str) -> None:
        self._client.log_text(self.run_id, text, name)

    def log_files(self, paths: Iterable, folder: str) -> None:
        """Files into the run's artifact folder ``folder``."""
        for path in paths:
            self._client.log_artifact(self.run_id, str(path), folder)

    def log(self, metrics=None, figures=None, dicts=None) -> None:
        """Metrics, figures and JSON documents at once (``evaluation.RunArtifacts`` fields)."""
        self.log_metrics(metrics or {})
        self.log_figures(figures or {})
        self.log_dicts(dicts or {})

    def _require_active(self, what: str) -> None:
        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            raise RuntimeError(f"{what} is logged only to the run of the enclosing start_run")

    def log_dataset(
        self, data: pd.DataFrame, path, fingerprint: str, context: str, targets=None
    ) -> None:
        """Record a dataset the run used, with the SHA-256 of the file it came from."""
        self._require_active("a dataset")
        with warnings.catch_warnings():
            # A local path matches two equivalent source types; MLflow picks one and says so.
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
            dataset = mlflow.data.from_pandas(
                data,
                source=str(Path(path).resolve()),
                name=Path(path).name,
                targets=targets,
                digest=fingerprint[:16],
            )
        mlflow.log_input(dataset, context=context)
        self.set_tags({f"dataset_{context}_sha256": fingerprint})

    def log_sklearn_model(
        self, model, example: pd.DataFrame, trusted_types, name="model", metadata=None
    ) -> str:
        """A fitted scikit-learn pipeline, saved with skops, with signature and input example.

        ``trusted_types``: the classes beyond skops' own the file holds (the caller's registry).
        ``metadata``: JSON-able facts that travel in the model's MLmodel file (a reject rule).
        """
        self._require_active("a model")
        signature = infer_signature(example, np.asarray(model.predict(example), dtype=str))
        info = mlflow.sklearn.log_model(
            model,
            name=name,
            signature=signature,
            input_example=example,
            pip_requirements=SKLEARN_PIP_REQUIREMENTS,
            code_paths=[str(PACKAGE_DIR)],
            serialization_format="skops",
            skops_trusted_types=list(trusted_types),
            metadata=metadata,
        )
        self.set_tags({"model_uri": info.model_uri})
        return info.model_uri

    def log_keras_model(self, model, frames: int | None, model_metadata: dict, name="model") -> str:
        """A Keras sequence model with its signature and ``model_metadata`` (classes, ...).

        frames None: the model takes streams of any length (a per-frame detector, whose
        output then has a row per frame).

        No input example: ``mlflow.keras.log_model`` fails with one for Keras 3 models. The
        model carries the code that defines its layers (``_KerasWithLayers``), so MLflow's own
        ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` load it without gesturelab.
        """
        import mlflow.keras
        from mlflow.types import Schema, TensorSpec

        self._require_active("a model")
        features = int(model.input_shape[-1])
        n_classes = int(model.output_shape[-1])
        steps = -1 if frames is None else frames
        per_frame = (-1,) if len(model.output_shape) == 3 else ()
        signature = mlflow.models.ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, steps, features), "landmarks")]),
            outputs=Schema(
                [TensorSpec(np.dtype(np.float32), (-1, *per_frame, n_classes), "gesture")]
            ),
        )
        info = mlflow.models.Model.log(
            artifact_path=None,
            name=name,
            flavor=_KerasWithLayers,
            registered_model_name=None,
            keras_model=model,
            signature=signature,
            pip_requirements=KERAS_PIP_REQUIREMENTS,
            metadata={"frames": frames, **model_metadata} if frames else dict(model_metadata),
        )
        self.set_tags({"model_uri": info.model_uri})
        return info.model_uri

    def record(self) -> RunRecord:
        return _record(self._client.get_run(self.run_id))


class _KerasWithLayers:
    """``mlflow.keras`` as a flavor, plus what MLflow's pyfunc needs to rebuild our layers.

    Keras finds a custom layer only once the module that registers it is imported, and MLflow's
    Keras loader imports nothing of ours, so a served model failed with "Could not locate class
    'SequenceFeatures'". The model's pyfunc flavor gets the package and this module as code
    (MLflow puts ``code/`` on ``sys.path``) and this module's ``_load_pyfunc`` as its loader,
    which imports the layers and hands over to MLflow's Keras loader. The ``keras`` flavor, the
    one gesturelab loads (``open_model``, safe mode, never the bundled code), is unchanged.
    """

    @staticmethod
    def save_model(path, mlflow_model=None, keras_model=None, **kwargs):
        import shutil

        import mlflow.keras

        mlflow.keras.save_model(keras_model, path, mlflow_model=mlflow_model, **kwargs)
        code = Path(path) / "code"
        shutil.copytree(
            PACKAGE_DIR,
            code / PACKAGE_DIR.name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        shutil.copyfile(DOOR, code / DOOR.name)
        conf = mlflow_model.flavors["python_function"]
        conf.update(code="code", loader_module=DOOR.stem)
        mlflow_model.save(str(Path(path) / "MLmodel"))


@contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    *,
    kind: str,
    tags: dict | None = None,
    label_set=None,
    system_metrics: bool = False,
):
    """A run of ``kind``, the child of the active run if there is one; yields a ``Run``.

    Every run carries ``run_origin()`` (commit, host, process, the context's tags) and, given
    ``label_set``, the classes it is about. ``system_metrics``: MLflow samples CPU and memory
    (``system/...`` metrics) every ``config.SYSTEM_METRICS_INTERVAL_S`` while the run is open;
    for runs that train (a family's sweep, a champion's refit, a Keras fit), not for each
    configuration of a sweep, whose parent already samples the same seconds.
    """
    parent = mlflow.active_run()
    experiment_id = parent.info.experiment_id if parent else get_or_create_experiment(experiment)
    all_tags = {"run_kind": kind, **run_origin(), **(tags or {})}
    if label_set is not None:
        all_tags["label_set"] = label_set_key(label_set)
    with mlflow.start_run(
        run_name=run_name,
        nested=parent is not None,
        experiment_id=experiment_id,
        tags=all_tags,
        log_system_metrics=system_metrics,
    ) as run:
        yield Run(run.info.run_id)


def parent_run(experiment: str, run_name: str, tags: dict | None = None):
    """A run that groups the child runs of one model family (and samples system metrics)."""
    return start_run(experiment, run_name, kind="family", tags=tags, system_metrics=True)


def open_run(run_id: str) -> Run:
    """A finished run, to add metrics, params, tags, figures and files to."""
    setup()
    return Run(run_id)


def log_experiment_run(
    model,
    *,
    family: str,
    params: dict,
    metrics: dict,
    X_example: pd.DataFrame,
    trusted_types,
    figures: dict | None = None,
    dicts: dict | None = None,
    run_name: str | None = None,
    dataset: dict | None = None,
    tags: dict | None = None,
    label_set=None,
    log_model_artifact: bool = True,
    experiment: str = config.STATIC_EXPERIMENT,
) -> RunRecord:
    """Log one configuration of a static model: params, metrics, figures, dataset, the model.

    ``metrics``, ``figures`` and ``dicts`` are computed by the caller. ``dataset`` is
    {"data": DataFrame, "path": ..., "fingerprint": ..., "targets": column}. ``X_example``:
    a few raw input rows, the model's input example. Opens a child run when a parent is active.
    """
    with start_run(
        experiment,
        run_name,
        kind="config",
        tags={"model_family": family, **(tags or {})},
        label_set=label_set,
    ) as run:
        run.log_params(params)
        if dataset is not None:
            run.log_dataset(
                dataset["data"],
                dataset["path"],
                dataset["fingerprint"],
                "training",
                dataset.get("targets"),
            )
        run.log(metrics, figures, dicts)
        if log_model_artifact:
            run.log_sklearn_model(model, X_example, trusted_types)
    return run.record()
