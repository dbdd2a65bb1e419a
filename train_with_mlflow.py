"""The project's only door to MLflow: the store, runs and what they log, models, the registry.

The store lives in the repository's ``mlruns/`` (SQLite database and artifacts both inside it)
unless ``MLFLOW_TRACKING_URI`` is set. Every path is absolute, taken from ``gesturelab.config``,
because papermill and JupyterLab start kernels in different working directories and MLflow's
defaults follow the working directory.

This module only records and fetches: callers compute metrics and build figures, and get plain
records back (``RunRecord``), so no caller needs MLflow's column names or imports ``mlflow``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
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
import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from gesturelab import config
from gesturelab.errors import ModelLoadError, RegistryError, TrackingStoreError, check_name

# Re-exported so that callers can catch MLflow's errors without importing mlflow.
TrackingError = mlflow.exceptions.MlflowException

# Bundled with every static model so MLflow's pyfunc can load it where gesturelab is missing.
PACKAGE_DIR = config.REPO_ROOT / "gesturelab"


def pinned(*distributions: str) -> list[str]:
    """``name==version`` of what is installed: requirements.txt stays the only list of pins."""
    return [f"{name}=={metadata.version(name)}" for name in distributions]


# What a logged model needs to load; listing it skips MLflow's slow requirement inference.
SKLEARN_PIP_REQUIREMENTS = pinned("scikit-learn", "numpy", "pandas", "skops")
KERAS_PIP_REQUIREMENTS = pinned("tensorflow-cpu", "keras", "numpy")


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


def is_store_file(path) -> bool:
    """Whether a file on this machine is the store's own: its SQLite database (with the lock
    and journal beside it) or anything under its artifact root."""
    path = Path(path).resolve()
    database = _sqlite_path(tracking_uri())
    if database is not None and path.parent == database.parent:
        if path.name.startswith(database.name):
            return True
    return any(folder.resolve() in path.parents for folder in local_artifact_roots())


def local_artifact_roots() -> list[Path]:
    """The artifact folder new experiments of this store write into, when it is local."""
    paths = []
    root = artifact_root()
    if root and root.startswith("file:"):
        paths.append(Path(urllib.parse.unquote(urllib.parse.urlparse(root).path)))
    return paths


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
    # MLflow samples every 10 s by default: most runs here are shorter than that. (It keeps
    # the setting in an environment variable; one the user set wins.)
    if not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        mlflow.set_system_metrics_sampling_interval(config.SYSTEM_METRICS_INTERVAL_S)
    # ...and says "Started/Stopping system metrics monitoring" at INFO for every run.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    # ...and "Creating initial MLflow database tables" / "Updating database tables" (alembic's
    # migration steps too) for every new store: what a store is made of, not a result.
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if uri not in _READY:
        _check_server(uri)
        with _store_lock(uri):
            # MLflow creates (or migrates) the tables when a store is first opened in a
            # process; both the tracking and the registry store, so open both here.
            client = MlflowClient(uri, uri)
            try:
                client.search_experiments(max_results=1)
                client.search_registered_models(max_results=1)
            except TrackingError as exc:
                refusal = access_refusal(exc)
                if refusal is None:
                    raise
                raise TrackingStoreError(refusal) from exc
        _READY.add(uri)
    return uri


def _check_server(uri: str) -> None:
    """A tracking server answers ``/health`` before the first call. MLflow itself retries a
    refused connection for about four minutes, then ends in a traceback."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
            return
    except urllib.error.HTTPError:
        return  # it answered; what it says of the real calls is reported by them
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingStoreError(
            f"the tracking server {uri} does not answer ({reason}): start it, or point "
            "--tracking-uri / MLFLOW_TRACKING_URI at a store that runs"
        ) from None


def access_refusal(exc: BaseException) -> str | None:
    """One line for a tracking server's refusal (no or wrong credentials, no permission, gone
    mid-run), or None when ``exc`` is something else."""
    if not isinstance(exc, TrackingError):
        return None
    uri = tracking_uri()
    code = getattr(exc, "error_code", "")
    text = str(getattr(exc, "message", exc)).strip()
    first = text.splitlines()[0] if text else code
    if "Invalid Host header" in text:
        host = urllib.parse.urlparse(uri).netloc
        return (
            f"the tracking server {uri} refuses the host name {host!r} (403 Invalid Host "
            f"header): its --allowed-hosts must list {host}"
        )
    if code in ("UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED") or "error code 401" in text:
        return (
            f"the tracking server {uri} needs a user: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (the server refused the ones given, or none were)"
        )
    if code == "PERMISSION_DENIED" or "error code 403" in text:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "(anonymous)")
        return (
            f"the tracking server {uri} refused user {user!r}: {first} (permissions are "
            "granted by the server's admin: docs/getting-started.md)"
        )
    if "Max retries exceeded" in text:
        return f"the tracking server {uri} stopped answering: {first[:300]}"
    return None


def get_or_create_experiment(name: str) -> str:
    """Make ``name`` the active experiment and return its id.

    New experiments get an absolute artifact location; runs started without an experiment
    would otherwise land in "Default", whose artifacts follow the working directory.
    """
    uri = setup()
    known = _EXPERIMENTS.get((uri, name))
    if known is not None and _ready(known):
        mlflow.set_experiment(experiment_id=known)
        return known
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        with _store_lock(uri):
            experiment = mlflow.get_experiment_by_name(name)  # made while we waited?
            if experiment is None:
                check_name(name, "experiment")  # its artifacts go into a folder of that name
                root = artifact_root()
                location = f"{root}/{name}" if root else None
                experiment_id = mlflow.create_experiment(
                    name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
                )
            else:
                experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # a store made before the tag existed
            MlflowClient().set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        fail_orphaned_runs(experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    _EXPERIMENTS[(uri, name)] = experiment_id
    return experiment_id


# Experiments this process has made ready (created or checked, orphaned runs failed): a sweep
# asks for its experiment at every run it starts, and the check is needed once.
_EXPERIMENTS: dict = {}


def _ready(experiment_id: str) -> bool:
    """Still there, active and of the model-training kind."""
    try:
        experiment = mlflow.get_experiment(experiment_id)
    except mlflow.exceptions.MlflowException:  # deleted for good since
        return False
    return experiment.lifecycle_stage == "active" and EXPERIMENT_KIND_TAG in experiment.tags


# ---- what the MLflow UI shows ---------------------------------------------------------------

# MLflow's own experiment tags: the kind picks the model-training view over the GenAI one (the
# UI of 3.17 also needs ``workflowType`` in the link, see ``ui_url``), the note is the
# experiment's description, a shared view state is a saved runs view (columns, sort, filter).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"
SAVED_VIEW_TAG = "mlflow.sharedViewState."
LEADERBOARD_VIEW = "leaderboard"
UI_URL = os.environ.get("GESTURELAB_MLFLOW_UI", "http://127.0.0.1:5000")


def find_experiment_id(name: str) -> str | None:
    setup()
    found = mlflow.get_experiment_by_name(name)
    return None if found is None else found.experiment_id


def describe_experiment(name: str, markdown: str) -> None:
    """Replace the experiment's description (shown above its runs in the UI)."""
    experiment = get_or_create_experiment(name)  # first: it points MLflow at the store
    MlflowClient().set_experiment_tag(experiment, DESCRIPTION_TAG, markdown)


def experiment_description(name: str) -> str:
    setup()
    found = mlflow.get_experiment_by_name(name)
    return "" if found is None else found.tags.get(DESCRIPTION_TAG, "")


def save_runs_view(
    name: str,
    *,
    sort_by: str,
    metrics: Iterable[str],
    params: Iterable[str] = (),
    tags: Iterable[str] = (),
    where: dict | None = None,
    view: str = LEADERBOARD_VIEW,
    title: str = LEADERBOARD_VIEW,
) -> str:
    """Save a runs view of experiment ``name`` under ``view``, as the UI's "Views" menu does;
    the link ``ui_url(name, view=view)`` opens it: runs with the tags ``where``, sorted by
    metric ``sort_by`` (best first), with those metric, param and tag columns. Returns the link.
    """
    column = "{}.`{}`".format
    columns = [
        *(column("metrics", m) for m in metrics),
        *(column("params", p) for p in params),
        *(column("tags", t) for t in tags),
    ]
    state = {
        "searchFilter": " and ".join(f"tags.{k} = '{v}'" for k, v in (where or {}).items()),
        "orderByKey": column("metrics", sort_by),
        "orderByAsc": False,
        "selectedColumns": columns,
        "columnOrder": columns,  # as given, not alphabetical
    }
    now = int(time.time() * 1000)
    envelope = {"name": title, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    experiment = get_or_create_experiment(name)
    MlflowClient().set_experiment_tag(experiment, SAVED_VIEW_TAG + view, json.dumps(envelope))
    return ui_url(name, view=view)


def ui_url(name: str | None = None, *, view: str | None = None, base: str | None = None) -> str:
    """A link into the MLflow UI: the experiment's runs (with ``view``, a saved view of them),
    or the experiment list. ``workflowType`` makes MLflow 3.17 open its model-training pages."""
    if base is None:
        # A tracking server is its own UI; the local store's is `make mlflow-ui`.
        uri = tracking_uri()
        base = uri if uri.startswith(("http://", "https://")) else UI_URL
    base = base.rstrip("/")
    if name is None:
        return f"{base}/#/experiments?workflowType=machine_learning"
    found = find_experiment_id(name)
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={view}" if view else "")
    return f"{base}/#/experiments/{found}/runs?{query}"


def store_exists() -> bool:
    """False for a SQLite store whose file is not there yet (opening it would create it)."""
    path = _sqlite_path(tracking_uri())
    return path is None or path.is_file()


def ui_pages(base: str | None = None) -> list[dict]:
    """Every experiment with runs: its name, run count, runs link and leaderboard view link."""
    if not store_exists():
        return []
    setup()
    client = MlflowClient()
    pages = []
    for experiment in client.search_experiments(order_by=["creation_time ASC"]):
        runs = len(_search(experiment.experiment_id))
        if not runs:
            continue
        saved = SAVED_VIEW_TAG + LEADERBOARD_VIEW in experiment.tags
        pages.append(
            {
                "experiment": experiment.name,
                "runs": runs,
                "url": ui_url(experiment.name, base=base),
                "leaderboard": ui_url(experiment.name, view=LEADERBOARD_VIEW, base=base)
                if saved
                else None,
            }
        )
    return pages


def run_link(run_id: str) -> str:
    """The path of a run's page, for links inside the UI (descriptions)."""
    run = MlflowClient().get_run(run_id)
    return f"#/experiments/{run.info.experiment_id}/runs/{run_id}"


def model_version_link(name: str, version) -> str:
    return f"#/models/{urllib.parse.quote(name)}/versions/{version}"


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


def finished_run_with_key(experiment: str, run_key: str) -> RunRecord | None:
    """The newest FINISHED run of ``experiment`` tagged ``run_key``, or None."""
    setup()
    experiment_id = find_experiment_id(experiment)
    if experiment_id is None:
        return None
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.run_key = '{run_key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    record = _record(runs[0])
    if record.model_uri and not model_present(record.model_uri):
        # its model was deleted from the store: a caller that needs it trains it again
        record = dataclasses.replace(record, model_uri=None)
    return record


def model_present(model_uri: str) -> bool:
    """Whether the model at ``model_uri`` is still in the store (its MLmodel file is there)."""
    setup()
    try:
        location = model_uri
        if model_uri.startswith("models:/m-"):  # a logged model: its own artifact folder
            location = MlflowClient().get_logged_model(model_uri.split("/")[-1]).artifact_location
        listed = mlflow.artifacts.list_artifacts(artifact_uri=location)
    except (mlflow.exceptions.MlflowException, OSError):
        return False
    return any(Path(item.path).name == "MLmodel" for item in listed)


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


# ---- records --------------------------------------------------------------------------------


def label_set_key(classes) -> str:
    """A label set as tags store it: the sorted class names, as JSON."""
    return json.dumps(sorted(str(c) for c in classes))


@dataclass(frozen=True)
class RunRecord:
    """One run as the project reads it: no MLflow column names, no MLflow types."""

    run_id: str
    run_name: str = ""
    kind: str = ""  # run_kind: config, family, champion, final, evaluation, ...
    family: str = ""  # the model family, or the sequence architecture
    label_set: tuple = ()  # the classes, when the run recorded them
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    model_uri: str | None = None
    status: str = ""
    start_time: int = 0


class Runs(list):
    """A list of ``RunRecord`` that also says what the query left out, and why."""

    def __init__(self, records=(), left_out: dict | None = None):
        super().__init__(records)
        self.left_out = dict(left_out or {})


def _record(run) -> RunRecord:
    tags = dict(run.data.tags)
    label_set = tags.get("label_set")
    return RunRecord(
        run_id=run.info.run_id,
        run_name=tags.get("mlflow.runName") or run.info.run_name or "",
        kind=tags.get("run_kind", ""),
        family=tags.get("model_family", ""),
        label_set=tuple(json.loads(label_set)) if label_set else (),
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags=tags,
        model_uri=tags.get("model_uri"),
        status=run.info.status,
        start_time=int(run.info.start_time or 0),
    )


def experiment_of_run(run_id: str) -> str:
    """The name of the experiment a run belongs to."""
    setup()
    client = MlflowClient()
    return client.get_experiment(client.get_run(run_id).info.experiment_id).name


def get_run(run_id: str) -> RunRecord:
    setup()
    return _record(MlflowClient().get_run(run_id))


def read_curves(run_id: str, names) -> dict:
    """What ``Run.log_curves`` wrote: {name: [value of epoch 1, 2, ...]} for each of ``names``."""
    setup()
    client = MlflowClient()
    curves = {}
    for name in names:
        history = sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)
        curves[name] = [m.value for m in history]
    return curves


# ---- logging --------------------------------------------------------------------------------


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

    def log_keras_model(self, model, frames: int, model_metadata: dict, name="model") -> str:
        """A Keras sequence model with its signature and ``model_metadata`` (classes, ...).

        No input example: ``mlflow.keras.log_model`` fails with one for Keras 3 models. The
        model carries the code that defines its layers (``_KerasWithLayers``), so MLflow's own
        ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` load it without gesturelab.
        """
        import mlflow.keras
        from mlflow.types import Schema, TensorSpec

        self._require_active("a model")
        features = int(model.input_shape[-1])
        n_classes = int(model.output_shape[-1])
        signature = mlflow.models.ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, frames, features), "landmarks")]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_classes), "gesture")]),
        )
        info = mlflow.models.Model.log(
            artifact_path=None,
            name=name,
            flavor=_KerasWithLayers,
            registered_model_name=None,
            keras_model=model,
            signature=signature,
            pip_requirements=KERAS_PIP_REQUIREMENTS,
            metadata={"frames": frames, **model_metadata},
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
        shutil.copyfile(Path(__file__), code / Path(__file__).name)
        conf = mlflow_model.flavors["python_function"]
        conf.update(code="code", loader_module=Path(__file__).stem)
        mlflow_model.save(str(Path(path) / "MLmodel"))


def _load_pyfunc(path):
    """MLflow pyfunc's loader of our Keras models (see ``_KerasWithLayers``)."""
    from mlflow.keras.load import _load_pyfunc as load_keras_pyfunc

    import gesturelab.models.seq_models  # noqa: F401  registers SequenceFeatures, FrameDifference, ...

    return load_keras_pyfunc(path)


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


# ---- registry -------------------------------------------------------------------------------


def _champion_version(name: str, alias: str):
    """The version ``name@alias`` points at, or None when there is no such model or alias."""
    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        if exc.error_code == "PERMISSION_DENIED" and not _registered(client, name):
            return None  # a server with basic-auth answers 403, not 404, for a missing model
        raise


def _registered(client, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def check_registration(
    name: str,
    label_set,
    data_sha256: str | None,
    alias: str = config.CHAMPION_ALIAS,
    classes_of: Callable[[str], Iterable] | None = None,
) -> None:
    """Refuse to move ``name@alias`` away from a model trained on other classes or data.

    Called before training, so a sweep that could not register fails in a second, and again
    when registering. A model name belongs to one dataset and one label set: ``predict`` and
    the notebooks load ``name@alias`` without looking at what it was trained on.
    ``classes_of(model_uri)``: the classes of a model registered without a label-set tag (by
    older code); without it such a model is never replaced.
    """
    setup()
    if not name or re.search(r"[/:@%]", name):
        raise RegistryError(f"{name!r} cannot be a registered model name (no '/', ':', '@', '%')")
    current = _champion_version(name, alias)
    if current is None:
        return
    tags = current.tags or {}
    mine = label_set_key(label_set)
    where = f"models:/{name}@{alias} (version {current.version})"
    theirs = tags.get("label_set")
    if theirs is None and classes_of is not None:
        theirs = label_set_key(classes_of(f"models:/{name}/{current.version}"))
    if theirs is None:
        raise RegistryError(
            f"{where} does not say which classes it predicts; register under a name of its "
            "own (--model-name), nothing was moved"
        )
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


def register_model(
    model_uri: str,
    name: str,
    alias: str = config.CHAMPION_ALIAS,
    tags=None,
    *,
    label_set,
    data_sha256: str | None,
    classes_of: Callable[[str], Iterable] | None = None,
):
    """Register a logged model under ``name`` and point ``alias`` at the new version.

    The alias only moves from a model of the same classes and data (``check_registration``);
    both are kept as version tags for the next check.
    """
    setup()
    tags = dict(tags or {})
    check_registration(name, label_set, data_sha256, alias, classes_of)
    tags["label_set"] = label_set_key(label_set)
    tags["n_classes"] = len(label_set)
    if data_sha256:
        tags["data_sha256"] = data_sha256
    version = mlflow.register_model(model_uri, name)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, str(value))
    client.set_registered_model_alias(name, alias, version.version)
    return version


CHALLENGER_ALIAS = "challenger"


def alias_tags(name: str, alias: str = config.CHAMPION_ALIAS) -> dict | None:
    """The tags of the version ``name@alias`` points at, or None."""
    setup()
    version = _champion_version(name, alias)
    return None if version is None else dict(version.tags)


def alias_version(name: str, alias: str) -> str | None:
    """The version number ``name@alias`` points at, or None."""
    setup()
    version = _champion_version(name, alias)
    return None if version is None else str(version.version)


def alias_run_id(name: str, alias: str) -> str | None:
    """The run whose model ``name@alias`` points at, or None."""
    setup()
    version = _champion_version(name, alias)
    return None if version is None else version.run_id


def version_tags(name: str, version) -> dict:
    setup()
    return dict(MlflowClient().get_model_version(name, str(version)).tags or {})


def tag_version(name: str, version, tags: dict) -> None:
    setup()
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def move_alias(name: str, alias: str, version, tags: dict | None = None) -> None:
    """Point ``name@alias`` at ``version`` and record why on that version (``tags``)."""
    tag_version(name, version, tags or {})
    MlflowClient().set_registered_model_alias(name, alias, str(version))


def drop_alias(name: str, alias: str) -> None:
    setup()
    MlflowClient().delete_registered_model_alias(name, alias)


# ---- queries --------------------------------------------------------------------------------


def _search(experiment_id: str, filter_string: str = "", order_by=None) -> list:
    return mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=filter_string,
        order_by=order_by,
        output_format="list",
    )


def runs_used_since(start_ms: int) -> list[str]:
    """The ids of every run, in any experiment, started or reused (``adopt_run``) at or after
    ``start_ms`` (epoch ms): the runs whatever ran since then depends on."""
    setup()
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    ids = [
        run.info.run_id
        for run in _search_all(client, experiments, f"attributes.start_time >= {int(start_ms)}")
    ]
    for run in _search_all(client, experiments, "tags.reused_last_ms LIKE '%'"):
        if int(run.data.tags["reused_last_ms"]) >= start_ms and run.info.run_id not in ids:
            ids.append(run.info.run_id)
    return ids


def _search_all(client, experiments: list[str], filter_string: str) -> list:
    runs, token = [], None
    while experiments:
        page = client.search_runs(experiments, filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    return runs


def missing_runs(run_ids: Iterable[str]) -> list[str]:
    """Those of ``run_ids`` the store no longer holds as finished (deleted, failed, gone)."""
    setup()
    client = MlflowClient()
    missing = []
    for run_id in run_ids:
        try:
            run = client.get_run(run_id)
        except TrackingError:
            missing.append(run_id)
            continue
        if run.info.status != "FINISHED" or run.info.lifecycle_stage != "active":
            missing.append(run_id)
    return missing


def finished_runs(
    experiment: str,
    kind: str | None = None,
    where: dict | None = None,
    latest_sweep: bool = False,
) -> Runs:
    """Finished runs of an experiment (newest first), inside parent runs that finished too.

    kind: the runs' run_kind; where: other tags the runs must have, {tag: value}.
    A sweep that was killed or failed leaves finished configurations under an unfinished
    family run; mixed with a rerun's they would be duplicates. ``latest_sweep`` keeps only
    the runs of the newest sweep that completed (logged its champion). ``left_out`` says how
    many matching runs were left out, and why.
    """
    setup()
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return Runs()
    experiment_id = found.experiment_id
    fail_orphaned_runs(experiment_id)
    wanted = {**({"run_kind": kind} if kind else {}), **(where or {})}
    clauses = [f"tags.{key} = '{value}'" for key, value in wanted.items()]
    runs = _search(experiment_id, " and ".join(clauses))
    unfinished = {r.info.run_id for r in _search(experiment_id, "attributes.status != 'FINISHED'")}
    left_out: Counter = Counter()
    kept = []
    for run in runs:
        if run.info.status != "FINISHED":
            left_out[run.info.status] += 1
        elif run.data.tags.get("mlflow.parentRunId") in unfinished:
            left_out["FINISHED inside an unfinished sweep"] += 1
        else:
            kept.append(run)
    if latest_sweep and any("sweep_id" in run.data.tags for run in kept):
        champions = _search(
            experiment_id,
            "tags.run_kind = 'champion' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
        )
        complete = [c.data.tags["sweep_id"] for c in champions if c.data.tags.get("sweep_id")]
        if complete:
            newest = [run for run in kept if run.data.tags.get("sweep_id") == complete[0]]
            if len(newest) < len(kept):
                left_out["of earlier or unfinished sweeps"] = len(kept) - len(newest)
            kept = newest
    return Runs([_record(run) for run in kept], left_out)


def leaderboard(experiment: str, run_kind: str = "config", metric: str = "val_f1_macro"):
    """The newest complete sweep's runs of ``run_kind`` as a table, best first.

    Columns: run_id, run_name, family, params (JSON), then every metric; ``attrs["left_out"]``
    says what was left out.
    """
    runs = finished_runs(experiment, run_kind, latest_sweep=True)
    rows = [
        {
            "run_id": r.run_id,
            "run_name": r.run_name,
            "family": r.family,
            "params": json.dumps(r.params),
            **r.metrics,
        }
        for r in runs
    ]
    board = pd.DataFrame(rows)
    if not board.empty and metric in board.columns:
        board = board.sort_values(metric, ascending=False).reset_index(drop=True)
    board.attrs["left_out"] = runs.left_out
    return board


# ---- loading --------------------------------------------------------------------------------


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


def open_model(
    model_uri: str, *, skops_trusted: Iterable[str], keras_objects: Callable[[], dict] | None
) -> LoadedModel:
    """Load a static (skops) or sequence (Keras) model that gesturelab wrote.

    skops_trusted: the only types beyond skops' own a static model may hold (the caller's
    family registry; the model file's own list is ignored). keras_objects: returns the
    custom layers a sequence model may use; None refuses sequence models.

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
        flavor = _flavor(flavors, "sklearn", model_uri)
        model = _load_skops(directory, flavor, model_uri, list(skops_trusted))
        return LoadedModel(str(model_uri), "static", model, metadata, directory)
    if "keras" in flavors:
        if keras_objects is None:
            raise ModelLoadError(f"{model_uri}: a sequence (Keras) model, not a static one")
        flavor = _flavor(flavors, "keras", model_uri)
        model = _load_keras(directory, flavor, model_uri, keras_objects)
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


def _load_skops(directory: Path, flavor: dict, uri: str, trusted: list[str]):
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
        foreign = sorted(set(untrusted) - set(trusted))
        moved = [t for t in foreign if t.startswith("gesturelab.")]
        if moved and len(moved) == len(foreign):
            # The package's classes named by where they lived before its layer folders.
            raise ModelLoadError(
                f"{uri}: saved by an older gesturelab whose classes lived elsewhere "
                f"({', '.join(moved[:3])}); train it again: `make reproduce`, or the command "
                "that made it (a run of the same configuration is not reused)"
            )
        if foreign:
            raise ModelLoadError(
                f"{uri}: refused: the model holds types gesturelab does not trust: "
                + ", ".join(foreign[:5])
            )
        model = skops.io.load(path, trusted=trusted)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001  a corrupt file fails in many ways inside skops
        raise ModelLoadError(
            f"{uri}: cannot read {path.name} ({type(exc).__name__}: {exc})"
        ) from None
    if not (hasattr(model, "predict") and hasattr(model, "classes_")):
        raise ModelLoadError(f"{uri}: {type(model).__name__} is not a fitted classifier")
    return model


def _load_keras(directory: Path, flavor: dict, uri: str, keras_objects: Callable[[], dict]):
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

    objects = keras_objects()
    try:
        return keras.saving.load_model(path, custom_objects=objects, safe_mode=True)
    except Exception as exc:  # noqa: BLE001  safe mode and corrupt archives raise many types
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"{uri}: cannot load {path.name} safely ({message})") from None


def run_json(run_id: str, path: str):
    """A JSON artifact of a run, or None when the run has no such file."""
    setup()
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")
    except (mlflow.exceptions.MlflowException, OSError, ValueError):
        return None


def model_checksums(model_uri: str) -> dict:
    """SHA-256 of every file of a logged model, by path inside the model folder; its copy of
    the package (``code/``) is summed as one value (the commit names that code)."""
    import hashlib

    directory = _model_directory(model_uri)
    sums, code = {}, hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.relative_to(directory).parts[0] == "code":
            code.update(path.relative_to(directory).as_posix().encode() + path.read_bytes())
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        sums[f"model/{path.relative_to(directory).as_posix()}"] = digest
    if (directory / "code").is_dir():
        sums["model/code/ (paths and contents)"] = code.hexdigest()
    return sums


def run_of_model(model_uri: str) -> str | None:
    """The run that logged a ``runs:/ID/...`` or ``models:/m-...`` (logged model) URI."""
    setup()
    text = str(model_uri)
    if text.startswith("runs:/"):
        return text[len("runs:/") :].split("/", 1)[0]
    if text.startswith("models:/m-"):
        try:
            return MlflowClient().get_logged_model(text[len("models:/") :]).source_run_id
        except mlflow.exceptions.MlflowException:
            return None
    return None


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
