"""The project's only door to MLflow: store location, experiments, run logging, registry.

The store lives in the repository's ``mlruns/`` (SQLite database and artifacts both inside it)
unless ``MLFLOW_TRACKING_URI`` is set. Every path is absolute, taken from ``gesturelab.config``,
because papermill and JupyterLab start kernels in different working directories and MLflow's
defaults follow the working directory.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import MappingProxyType

import matplotlib.pyplot as plt
import mlflow
import mlflow.artifacts
import mlflow.exceptions
import mlflow.sklearn
import numpy as np
import pandas as pd
import yaml
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from gesturelab import config, models
from gesturelab.errors import ModelLoadError, RegistryError
from gesturelab.landmarks import LABEL_COLUMN, LANDMARK_COLUMNS
from gesturelab.metrics import classification_metrics, confusion, per_class_report
from gesturelab.plots import confusion_matrix_figure

PACKAGE_DIR = Path(__file__).resolve().parent / "gesturelab"


def _pinned(*distributions: str) -> list[str]:
    """``name==version`` of what is installed: requirements.txt stays the only list of pins."""
    return [f"{name}=={metadata.version(name)}" for name in distributions]


# What a logged model needs to load; listing it skips MLflow's slow requirement inference.
MODEL_PIP_REQUIREMENTS = _pinned("scikit-learn", "numpy", "pandas", "skops")
# The types a static model may hold beyond skops' own: from the family registry, never from
# a model's MLmodel file.
SKOPS_TRUSTED_TYPES = list(models.SKOPS_TRUSTED_TYPES)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{config.MLFLOW_DB}"


def artifact_root() -> str | None:
    """Where new experiments keep artifacts: beside the SQLite database when there is one."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).resolve().parent / "artifacts").as_uri()
    if uri.startswith(("http://", "https://", "databricks")):
        return None  # a tracking server chooses its own artifact store
    return config.MLFLOW_ARTIFACTS_DIR.as_uri()  # another database: keep artifacts in mlruns/


_READY: set[str] = set()


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]).resolve() if uri.startswith("sqlite:///") else None


@contextmanager
def _store_lock(uri: str):
    """An exclusive lock beside a SQLite store, held while creating tables or experiments.

    Two processes that open a brand-new SQLite store at once both create MLflow's tables and
    one fails ("table ... already exists"); two creating one experiment send one's runs to
    "Default". A file lock makes the second wait for the first; other stores need none.
    """
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    import fcntl

    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def setup() -> str:
    """Point MLflow at the project's store, creating it safely; returns the tracking URI."""
    uri = tracking_uri()
    # Loading a model from a run prints a progress bar per artifact; notebooks load dozens.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    path = _sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri not in _READY:
        with _store_lock(uri):
            # MLflow creates (or migrates) the tables when a store is first opened in a
            # process; both the tracking and the registry store, so open both here.
            client = MlflowClient(uri, uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        _READY.add(uri)
    return uri


def get_or_create_experiment(name: str) -> str:
    """Make ``name`` the active experiment and return its id.

    New experiments get an absolute artifact location; runs started without an experiment
    would otherwise land in "Default", whose artifacts follow the working directory.
    """
    uri = setup()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        with _store_lock(uri):
            experiment = mlflow.get_experiment_by_name(name)  # made while we waited?
            if experiment is None:
                root = artifact_root()
                location = f"{root}/{name}" if root else None
                experiment_id = mlflow.create_experiment(name, artifact_location=location)
            else:
                experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
        fail_orphaned_runs(experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


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


def _process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot), to tell a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


_CONTEXT_TAGS = contextvars.ContextVar("context_tags", default=MappingProxyType({}))


@contextmanager
def tagging(**tags):
    """Every run started inside carries these tags too (a sweep's id, say)."""
    token = _CONTEXT_TAGS.set({**_CONTEXT_TAGS.get(), **{k: str(v) for k, v in tags.items()}})
    try:
        yield
    finally:
        _CONTEXT_TAGS.reset(token)


def run_origin() -> dict:
    """Tags every run carries: the code's commit, the process that owns it, the context's."""
    return {
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "process_start": _process_start(os.getpid()) or "",
        **_CONTEXT_TAGS.get(),
    }


def _process_alive(tags: dict) -> bool:
    try:
        pid = int(tags["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (KeyError, ValueError, OSError):
        return True  # no pid recorded, or someone else's process: cannot tell, leave it
    started = tags.get("process_start")
    return not started or _process_start(pid) in (None, started)


def fail_orphaned_runs(experiment_id: str) -> int:
    """Mark FAILED the runs of this host whose process died before ending them.

    A killed sweep leaves its family and configuration runs RUNNING forever, and readers of
    the experiment cannot tell them from live ones. Runs of other hosts are left alone: their
    processes cannot be seen from here. Returns how many runs were marked.
    """
    client = MlflowClient()
    host = socket.gethostname()
    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    dead = {
        run.info.run_id: run.data.tags["pid"]
        for run in running
        if run.data.tags.get("host") == host and not _process_alive(run.data.tags)
    }
    # Runs a user's code opened inside a dead run carry no pid of their own: same process.
    grew = True
    while grew:
        grew = False
        for run in running:
            parent = run.data.tags.get("mlflow.parentRunId")
            if parent in dead and run.info.run_id not in dead:
                dead[run.info.run_id] = dead[parent]
                grew = True
    for run_id, pid in dead.items():
        reason = f"process {pid} on {host} ended without finishing the run"
        client.set_tag(run_id, "failed_reason", reason)
        client.set_terminated(run_id, "FAILED")
    return len(dead)


@contextmanager
def parent_run(experiment: str, run_name: str, tags: dict | None = None):
    """A run that groups the child runs of one model family."""
    experiment_id = get_or_create_experiment(experiment)
    all_tags = {"run_kind": "family", **run_origin(), **(tags or {})}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        yield run


def landmark_frame(X) -> pd.DataFrame:
    """The model's input: the 63 raw landmark columns as float64, whatever came in."""
    if isinstance(X, pd.DataFrame):
        return X[list(LANDMARK_COLUMNS)].astype(np.float64)
    return pd.DataFrame(np.asarray(X, np.float64).reshape(len(X), -1), columns=LANDMARK_COLUMNS)


def log_dataset(data: pd.DataFrame, path, fingerprint: str, context: str) -> None:
    """Record a dataset the run used, with the SHA-256 of the file it came from."""
    columns = [c for c in (*LANDMARK_COLUMNS, LABEL_COLUMN) if c in data.columns]
    with warnings.catch_warnings():
        # A local path matches two equivalent source types; MLflow picks one and says so.
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
        dataset = mlflow.data.from_pandas(
            data[columns],
            source=str(Path(path).resolve()),
            name=Path(path).name,
            targets=LABEL_COLUMN if LABEL_COLUMN in data.columns else None,
            digest=fingerprint[:16],
        )
    mlflow.log_input(dataset, context=context)
    mlflow.set_tag(f"dataset_{context}_sha256", fingerprint)


def log_model(model, X_example: pd.DataFrame, name: str = "model"):
    """Log a fitted sklearn pipeline with signature and input example; returns ModelInfo."""
    example = landmark_frame(X_example.iloc[:3])
    signature = infer_signature(example, np.asarray(model.predict(example), dtype=str))
    return mlflow.sklearn.log_model(
        model,
        name=name,
        signature=signature,
        input_example=example,
        pip_requirements=MODEL_PIP_REQUIREMENTS,
        code_paths=[str(PACKAGE_DIR)],
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )


def log_predictions(y_true, y_pred, prefix: str, labels=None, title: str = "") -> dict:
    """Metrics, confusion-matrix figure and per-class report of predictions, in the active run."""
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    labels = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    metrics = {f"{prefix}{k}": v for k, v in classification_metrics(y_true, y_pred).items()}
    mlflow.log_metrics(metrics)
    matrix = confusion(y_true, y_pred, labels)
    figure = confusion_matrix_figure(matrix, labels, title=title or prefix.rstrip("_"))
    mlflow.log_figure(figure, f"{prefix}confusion_matrix.png")
    plt.close(figure)
    mlflow.log_dict(
        {
            "labels": labels,
            "confusion_matrix": matrix.tolist(),
            "report": per_class_report(y_true, y_pred, labels),
        },
        f"{prefix}classification_report.json",
    )
    return {"metrics": metrics, "confusion_matrix": matrix}


def log_evaluation(model, X, y, prefix: str, labels=None, title: str = "") -> dict:
    """Score a fitted model on (X, y) in the active run, with its prediction time."""
    X = landmark_frame(X)
    start = time.perf_counter()
    predicted = np.asarray(model.predict(X), dtype=object)
    seconds = time.perf_counter() - start
    result = log_predictions(y, predicted, prefix, labels, title)
    timing = {f"{prefix}predict_ms_per_sample": 1000 * seconds / max(len(X), 1)}
    mlflow.log_metrics(timing)
    result["metrics"].update(timing)
    result["predicted"] = predicted
    return result


def log_experiment_run(
    model,
    *,
    family: str,
    params: dict,
    y_val,
    val_pred,
    X_example,
    fit_time_s: float,
    labels=None,
    run_name: str | None = None,
    dataset: dict | None = None,
    tags: dict | None = None,
    extra_params: dict | None = None,
    extra_metrics: dict | None = None,
    log_model_artifact: bool = True,
    experiment: str = config.STATIC_EXPERIMENT,
) -> dict:
    """Log one configuration: params, validation metrics of ``val_pred``, timings, the model.

    ``model`` is already fitted; ``val_pred`` are its configuration's validation predictions
    (out-of-fold in the sweep). Opens a child run when a parent is active. ``dataset`` is
    {"data": DataFrame, "path": ..., "fingerprint": ...} and is logged as the run's input.
    Returns run_id, model_uri and the metrics.
    """
    parent = mlflow.active_run()
    experiment_id = parent.info.experiment_id if parent else get_or_create_experiment(experiment)
    all_tags = {
        "run_kind": "config",
        "model_family": family,
        **run_origin(),
        **(tags or {}),
    }
    with mlflow.start_run(
        run_name=run_name,
        nested=parent is not None,
        experiment_id=experiment_id,
        tags=all_tags,
    ) as run:
        mlflow.log_params({**params, **(extra_params or {})})
        if dataset is not None:
            log_dataset(dataset["data"], dataset["path"], dataset["fingerprint"], "training")
        result = log_predictions(y_val, val_pred, "val_", labels, title=run_name or family)
        timing = {"fit_time_s": fit_time_s, **(extra_metrics or {})}
        mlflow.log_metrics(timing)
        model_uri = None
        if log_model_artifact:
            model_uri = log_model(model, landmark_frame(X_example)).model_uri
            mlflow.set_tag("model_uri", model_uri)
    return {
        "run_id": run.info.run_id,
        "model_uri": model_uri,
        "metrics": {**result["metrics"], **timing},
        "val_confusion": result["confusion_matrix"],
    }


def _champion_version(name: str, alias: str):
    """The version ``name@alias`` points at, or None when there is no such model or alias."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _label_set_key(classes) -> str:
    """A label set as the version tag stores it: sorted class names, JSON."""
    return json.dumps(sorted(str(c) for c in classes))


def check_registration(
    name: str, label_set, data_sha256: str | None, alias: str = config.CHAMPION_ALIAS
) -> None:
    """Refuse to move ``name@alias`` away from a model trained on other classes or data.

    Called before training, so a sweep that could not register fails in a second, and again
    when registering. A model name belongs to one dataset and one label set: ``predict`` and
    the notebooks load ``name@alias`` without looking at what it was trained on.
    """
    setup()
    if not name or re.search(r"[/:@%]", name):
        raise RegistryError(f"{name!r} cannot be a registered model name (no '/', ':', '@', '%')")
    current = _champion_version(name, alias)
    if current is None:
        return
    tags = current.tags or {}
    mine = _label_set_key(label_set)
    theirs = tags.get("label_set") or _model_label_set(f"models:/{name}/{current.version}")
    where = f"models:/{name}@{alias} (version {current.version})"
    if theirs != mine:
        count = len(json.loads(theirs))
        raise RegistryError(
            f"{where} predicts {count} other classes than this model's {len(label_set)}; "
            "register under a name of its own (--model-name), nothing was moved"
        )
    if tags.get("data_sha256") and tags["data_sha256"] != (data_sha256 or "unknown"):
        raise RegistryError(
            f"{where} was trained on other data ({tags.get('data_file', 'sha256')} "
            f"{tags['data_sha256'][:12]}, this is {(data_sha256 or 'unknown')[:12]}); register "
            "under a name of its own (--model-name), nothing was moved"
        )


def _model_label_set(model_uri: str) -> str:
    """The classes of a registered model without tags (registered by older code), as JSON."""
    loaded = open_model(model_uri)
    if loaded.kind == "static":
        classes = loaded.model.classes_
    else:
        classes = loaded.metadata.get("classes") or range(int(loaded.model.output_shape[-1]))
    return _label_set_key(classes)


def register_model(
    model_uri: str,
    name: str,
    alias: str = config.CHAMPION_ALIAS,
    tags=None,
    *,
    label_set,
    data_sha256: str | None,
):
    """Register a logged model under ``name`` and point ``alias`` at the new version.

    The alias only moves from a model of the same classes and data (``check_registration``);
    both are kept as version tags for the next check.
    """
    setup()
    tags = dict(tags or {})
    check_registration(name, label_set, data_sha256, alias)
    tags["label_set"] = _label_set_key(label_set)
    tags["n_classes"] = len(label_set)
    if data_sha256:
        tags["data_sha256"] = data_sha256
    version = mlflow.register_model(model_uri, name)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, str(value))
    client.set_registered_model_alias(name, alias, version.version)
    return version


def log_champion(
    model, X_all, *, family, params, metrics, dataset, source_run_id, extra_params, experiment
):
    """A top-level run holding the champion refit on every shipped row, ready to register."""
    experiment_id = get_or_create_experiment(experiment)
    tags = {
        "run_kind": "champion",
        "model_family": family,
        **run_origin(),
        "selected_from_run": source_run_id,
    }
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"champion ({family})", tags=tags
    ) as run:
        mlflow.log_params({**params, **extra_params, "trained_on": "train+val+test"})
        log_dataset(dataset["data"], dataset["path"], dataset["fingerprint"], "training")
        start = time.perf_counter()
        model.fit(landmark_frame(X_all), np.asarray(dataset["data"][LABEL_COLUMN], dtype=object))
        mlflow.log_metric("fit_time_s", time.perf_counter() - start)
        mlflow.log_metrics({f"selection_{k}": v for k, v in metrics.items()})
        info = log_model(model, landmark_frame(X_all))
        mlflow.set_tag("model_uri", info.model_uri)
    return {"run_id": run.info.run_id, "model_uri": info.model_uri}


def log_test_evaluation(run_id: str, model, X, y, labels=None, title: str = "") -> dict:
    """Score a finished run's model on the held-out test rows, adding ``test_*`` to that run."""
    setup()
    with mlflow.start_run(run_id=run_id):
        return log_evaluation(model, X, y, "test_", labels, title=title)


def log_to_run(run_id: str, metrics=None, params=None, artifact_paths=(), dicts=None) -> None:
    """Add metrics, params, files and JSON documents to an existing run."""
    setup()
    client = MlflowClient()
    for name, payload in (dicts or {}).items():
        client.log_dict(run_id, payload, name)
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, float(value))
    for key, value in (params or {}).items():
        client.log_param(run_id, key, value)
    for path in artifact_paths:
        client.log_artifact(run_id, str(path))


def finished_runs(
    experiment: str, filter_string: str = "", latest_sweep: bool = False
) -> pd.DataFrame:
    """Runs of an experiment that finished, inside parent runs that finished too.

    A sweep that was killed or failed leaves finished configurations under an unfinished
    family run; mixed with a rerun's they would be duplicates. ``latest_sweep`` keeps only
    the runs of the newest sweep that completed (logged its champion). ``attrs["left_out"]``
    says how many matching runs were left out, and why.
    """
    setup()
    experiment_ = mlflow.get_experiment_by_name(experiment)
    if experiment_ is None:
        return pd.DataFrame()
    fail_orphaned_runs(experiment_.experiment_id)
    runs = mlflow.search_runs(
        experiment_ids=[experiment_.experiment_id],
        filter_string=filter_string,
        output_format="pandas",
    )
    if runs.empty:
        return runs
    unfinished = set(
        mlflow.search_runs(
            experiment_ids=[experiment_.experiment_id],
            filter_string="attributes.status != 'FINISHED'",
            output_format="pandas",
        ).get("run_id", [])
    )
    parent = runs.get("tags.mlflow.parentRunId", pd.Series(None, index=runs.index))
    finished = runs["status"] == "FINISHED"
    orphaned = finished & parent.isin(unfinished)
    left_out = runs.loc[~finished, "status"].value_counts().to_dict()
    if orphaned.any():
        left_out["FINISHED inside an unfinished sweep"] = int(orphaned.sum())
    runs = runs[finished & ~orphaned].reset_index(drop=True)
    if latest_sweep and "tags.sweep_id" in runs.columns:
        champions = mlflow.search_runs(
            experiment_ids=[experiment_.experiment_id],
            filter_string="tags.run_kind = 'champion' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            output_format="pandas",
        )
        complete = champions.get("tags.sweep_id", pd.Series(dtype=object)).dropna()
        if len(complete):
            newest = runs["tags.sweep_id"] == complete.iat[0]
            if (~newest).any():
                left_out["of earlier or unfinished sweeps"] = int((~newest).sum())
            runs = runs[newest].reset_index(drop=True)
    runs.attrs["left_out"] = left_out
    return runs


def leaderboard(experiment: str, run_kind: str = "config", metric: str = "val_f1_macro"):
    """Finished runs of an experiment as a DataFrame, best first, with plain column names."""
    runs = finished_runs(experiment, f"tags.run_kind = '{run_kind}'", latest_sweep=True)
    left_out = runs.attrs.get("left_out", {})
    if runs.empty:
        return runs
    renamed = {c: c.split(".", 1)[1] for c in runs.columns if c.startswith("metrics.")}
    renamed["tags.mlflow.runName"] = "run_name"
    renamed["tags.model_family"] = "family"
    board = runs.rename(columns=renamed)
    params = [c for c in board.columns if c.startswith("params.")]
    board["params"] = board[params].apply(
        lambda row: json.dumps({k[7:]: v for k, v in row.items() if v is not None}), axis=1
    )
    keep = ["run_id", "run_name", "family", "params", *renamed.values()]
    keep = list(dict.fromkeys(c for c in keep if c in board.columns))
    board = board[keep].sort_values(metric, ascending=False).reset_index(drop=True)
    board.attrs["left_out"] = left_out
    return board


def log_evaluation_report(report: dict, run_name: str, tags: dict | None = None) -> str:
    """An evaluation as its own run in the "evaluations" experiment: every metric, the whole
    report as JSON, the normalised confusion matrix and the reliability diagram."""
    from gesturelab.evaluation import flat_metrics
    from gesturelab.plots import reliability_figure

    experiment_id = get_or_create_experiment("evaluations")
    all_tags = {"run_kind": "evaluation", **run_origin(), **(tags or {})}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        mlflow.log_metrics(flat_metrics(report))
        mlflow.log_dict(report, "evaluation_report.json")
        figure = confusion_matrix_figure(
            np.asarray(report["confusion_matrix"]), report["labels"], run_name, normalise=True
        )
        mlflow.log_figure(figure, "confusion_matrix_normalised.png")
        plt.close(figure)
        if "calibration" in report:
            figure = reliability_figure(report["calibration"])
            mlflow.log_figure(figure, "reliability_diagram.png")
            plt.close(figure)
    return run.info.run_id


@dataclass
class LoadedModel:
    """A model the project wrote, loaded without running anything the model file asks for."""

    uri: str
    kind: str  # "static" (scikit-learn pipeline) or "sequence" (Keras)
    model: object
    metadata: dict
    directory: Path


_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _model_directory(model_uri: str) -> Path:
    """The local folder of a model URI or path, fetched without deserialising anything."""
    text = str(model_uri).strip()
    if not text:
        raise ModelLoadError("no model given (an empty model URI)")
    if text.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(text).path))
    elif _URI_SCHEME.match(text) and not Path(text).exists():
        setup()
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=text)
        except mlflow.exceptions.MlflowException as exc:
            message = str(exc.message).splitlines()[0]
            raise ModelLoadError(f"{text}: {message}") from None
        except OSError as exc:
            raise ModelLoadError(f"{text}: cannot fetch the model ({exc})") from None
        path = Path(local)
    else:
        path = Path(text)
    if not path.exists():
        raise ModelLoadError(f"{text}: no such model folder")
    if not path.is_dir():
        raise ModelLoadError(f"{text}: is a file; a model is a folder with an MLmodel file")
    if not (path / "MLmodel").is_file():
        raise ModelLoadError(f"{text}: is a folder but not an MLflow model (no MLmodel file)")
    return path


def _inside(directory: Path, relative, uri: str) -> Path:
    """A file named by the model's MLmodel, which must stay inside the model's folder."""
    path = (directory / str(relative)).resolve()
    if not path.is_relative_to(directory.resolve()):
        raise ModelLoadError(f"{uri}: refused: MLmodel points outside the model folder")
    return path


def open_model(model_uri: str) -> LoadedModel:
    """Load a static (skops) or sequence (Keras) model that gesturelab wrote.

    MLflow's own loaders obey the model's ``MLmodel``: a pickle or cloudpickle format runs
    code on load, the skops allow-list is read from the file, and a model's ``code/`` folder
    is put on ``sys.path``. Here only the project's formats are accepted, skops trusts only the
    project's types, Keras loads in safe mode, and nothing of the model's is imported.
    """
    directory = _model_directory(model_uri)
    try:
        conf = yaml.safe_load((directory / "MLmodel").read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{model_uri}: unreadable MLmodel file ({exc})") from None
    flavors = conf.get("flavors") if isinstance(conf, dict) else None
    if not isinstance(flavors, dict):
        raise ModelLoadError(f"{model_uri}: MLmodel lists no flavors")
    metadata = conf.get("metadata") if isinstance(conf.get("metadata"), dict) else {}
    if "sklearn" in flavors:
        model = _load_skops(directory, _flavor(flavors, "sklearn", model_uri), model_uri)
        return LoadedModel(str(model_uri), "static", model, metadata, directory)
    if "keras" in flavors:
        model = _load_keras(directory, _flavor(flavors, "keras", model_uri), model_uri)
        return LoadedModel(str(model_uri), "sequence", model, metadata, directory)
    known = ", ".join(sorted(str(f) for f in flavors)) or "none"
    raise ModelLoadError(
        f"{model_uri}: refused: flavors {known}; gesturelab loads only the scikit-learn (skops) "
        "and Keras models it writes"
    )


def _flavor(flavors: dict, name: str, uri: str) -> dict:
    flavor = flavors[name] or {}
    if not isinstance(flavor, dict):
        raise ModelLoadError(f"{uri}: MLmodel's {name} flavor is not a mapping")
    return flavor


def _load_skops(directory: Path, flavor: dict, uri: str):
    import skops.io

    serialization = flavor.get("serialization_format", "pickle")
    if serialization != "skops":
        raise ModelLoadError(
            f"{uri}: refused: the model is saved with {serialization!r}, which can run arbitrary "
            "code when loaded; gesturelab loads only skops files"
        )
    path = _inside(directory, flavor.get("pickled_model", "model.skops"), uri)
    if not path.is_file():
        raise ModelLoadError(f"{uri}: the model file {path.name} is missing")
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
        foreign = sorted(set(untrusted) - set(SKOPS_TRUSTED_TYPES))
        if foreign:
            raise ModelLoadError(
                f"{uri}: refused: the model holds types gesturelab does not trust: "
                + ", ".join(foreign[:5])
            )
        model = skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001  a corrupt file fails in many ways inside skops
        raise ModelLoadError(
            f"{uri}: cannot read {path.name} ({type(exc).__name__}: {exc})"
        ) from None
    if not (hasattr(model, "predict") and hasattr(model, "classes_")):
        raise ModelLoadError(f"{uri}: {type(model).__name__} is not a fitted classifier")
    return model


def _load_keras(directory: Path, flavor: dict, uri: str):
    if flavor.get("save_exported_model"):
        raise ModelLoadError(
            f"{uri}: refused: an exported TensorFlow graph; gesturelab loads .keras files only"
        )
    if str(flavor.get("keras_version", "")).split(".")[0] != "3":
        raise ModelLoadError(f"{uri}: refused: Keras {flavor.get('keras_version')!r}, not Keras 3")
    data = Path(str(flavor.get("data", "data")))
    if (directory / data).is_dir():
        data = data / "model"
    # The whole path is checked, the file included: a symlinked model.keras must not lead out.
    path = _inside(directory, data.with_name(data.name + ".keras"), uri)
    if not path.is_file():
        raise ModelLoadError(f"{uri}: the model file {path.name} is missing")
    import keras

    import gesturelab.seq_models  # noqa: F401  registers the project's layers with Keras

    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # noqa: BLE001  safe mode and corrupt archives raise many types
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"{uri}: cannot load {path.name} safely ({message})") from None


def load_model(model_uri: str):
    """A static model (scikit-learn pipeline): ``runs:/...``, ``models:/name@alias``, a path."""
    loaded = open_model(model_uri)
    if loaded.kind != "static":
        raise ModelLoadError(f"{model_uri}: a sequence (Keras) model, not a static one")
    return loaded.model


def model_version_info(model_uri: str) -> dict:
    """Name, version and run of a ``models:/name@alias`` or ``models:/name/version`` URI."""
    setup()
    if not model_uri.startswith("models:/"):
        return {"model_uri": model_uri}
    reference = model_uri[len("models:/") :]
    client = MlflowClient()
    if "@" in reference:
        name, alias = reference.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    elif "/" in reference:
        name, number = reference.split("/", 1)
        version = client.get_model_version(name, number)
    else:
        return {"model_uri": model_uri}
    return {
        "model_uri": model_uri,
        "name": version.name,
        "version": version.version,
        "run_id": version.run_id,
    }


# ---- sequence models (Keras) ----------------------------------------------------------------

KERAS_PIP_REQUIREMENTS = _pinned("tensorflow-cpu", "keras", "numpy")


def log_keras_model(model, classes, frames: int, name: str = "model"):
    """A Keras sequence model with its signature and class names; returns ModelInfo.

    No input example: ``mlflow.keras.log_model`` fails with one for Keras 3 models. The model's
    custom feature layer lives in ``gesturelab.seq_models``, which loading imports first.
    """
    import mlflow.keras
    from mlflow.types import Schema, TensorSpec

    import gesturelab.seq_models as seq_models

    features = int(model.input_shape[-1])
    signature = mlflow.models.ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, frames, features), "landmarks")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, len(classes)), "gesture")]),
    )
    return mlflow.keras.log_model(
        model,
        name=name,
        signature=signature,
        pip_requirements=KERAS_PIP_REQUIREMENTS,
        metadata={
            "classes": list(classes),
            "frames": frames,
            "input": "raw landmark sequences (frames, 21*3), MediaPipe order; zeros = padding",
            "custom_objects_module": seq_models.__name__,
        },
    )


def load_keras_model(model_uri: str):
    """A logged or registered sequence model and its metadata (classes, frames)."""
    loaded = open_model(model_uri)
    if loaded.kind != "sequence":
        raise ModelLoadError(
            f"{model_uri} is a static (scikit-learn) model of single hands; this takes a "
            "sequence model (score a static one with `evaluate --model ... --data <CSV>`)"
        )
    return loaded.model, loaded.metadata


def log_sequence_run(
    result,
    *,
    report: dict,
    experiment: str,
    run_name: str,
    dataset: dict,
    tags: dict | None = None,
    extra_params: dict | None = None,
    extra_metrics: dict | None = None,
    tensorboard_dir=None,
    log_model_artifact: bool = True,
) -> dict:
    """One trained sequence model: params, per-epoch curves, the validation report, the model.

    ``result`` is a ``gesturelab.seq_training.TrainResult``; ``report`` the evaluation report of
    its held-out subjects (``gesturelab.evaluation.evaluation_report``); ``dataset`` names the
    data: {"source": ..., "sha256": ..., "n_sequences": ..., "subjects_train": ..., ...}.
    """
    from gesturelab.evaluation import flat_metrics
    from gesturelab.plots import reliability_figure

    parent = mlflow.active_run()
    experiment_id = parent.info.experiment_id if parent else get_or_create_experiment(experiment)
    all_tags = {
        "run_kind": "config",
        "model_family": result.config.arch,
        **run_origin(),
        **(tags or {}),
    }
    with mlflow.start_run(
        run_name=run_name, nested=parent is not None, experiment_id=experiment_id, tags=all_tags
    ) as run:
        mlflow.log_params({**result.config.params(), **(extra_params or {})})
        mlflow.log_params({f"data_{k}": v for k, v in dataset.items()})
        for key, values in result.history.items():
            name = key if key.startswith("val_") else f"train_{key}"
            for epoch, value in enumerate(values, start=1):
                mlflow.log_metric(f"epoch_{name}", value, step=epoch)
        metrics = {
            "fit_time_s": result.fit_seconds,
            "seconds_per_epoch": result.seconds_per_epoch,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "n_parameters": result.model.count_params(),
            **(extra_metrics or {}),
        }
        if report:
            metrics.update({f"val_{k}": v for k, v in flat_metrics(report).items()})
            mlflow.log_dict(report, "val_evaluation_report.json")
            figure = confusion_matrix_figure(
                np.asarray(report["confusion_matrix"]), report["labels"], run_name, normalise=True
            )
            mlflow.log_figure(figure, "val_confusion_matrix.png")
            plt.close(figure)
            if "calibration" in report:
                figure = reliability_figure(report["calibration"])
                mlflow.log_figure(figure, "val_reliability_diagram.png")
                plt.close(figure)
        mlflow.log_metrics(metrics)
        if tensorboard_dir is not None and Path(tensorboard_dir).is_dir():
            mlflow.log_artifacts(str(tensorboard_dir), "tensorboard")
            mlflow.set_tag("tensorboard_dir", str(tensorboard_dir))
        model_uri = None
        if log_model_artifact:
            model_uri = log_keras_model(result.model, result.classes, result.config.frames)
            model_uri = model_uri.model_uri
            mlflow.set_tag("model_uri", model_uri)
    return {"run_id": run.info.run_id, "model_uri": model_uri, "metrics": metrics}


def find_runs(experiment: str, filter_string: str = "", latest_sweep: bool = False):
    """Finished runs of an experiment as MLflow gives them (params.*, metrics.*, tags.*)."""
    return finished_runs(experiment, filter_string, latest_sweep)


def run_tags(run_id: str) -> dict:
    setup()
    return dict(MlflowClient().get_run(run_id).data.tags)
