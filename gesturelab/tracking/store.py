"""The store: where runs go (a SQLite file in mlruns/, a database, a tracking server), opened
safely by several processes at once, and its experiments.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

# Before MLflow on purpose: skops, on first import, finds the module of each of SciPy's ufuncs by
# walking sys.modules in order until it meets scipy.special. Loaded after MLflow and TensorFlow,
# that walk took 3 to 7 s of every process that saved or loaded a model; loaded first, 1 s.
import scipy.special  # noqa: F401

# isort: split
import mlflow
import mlflow.artifacts
import mlflow.exceptions
import mlflow.sklearn
from mlflow.tracking import MlflowClient

from gesturelab import config
from gesturelab.errors import TrackingStoreError, check_name

# Re-exported so that callers can catch MLflow's errors without importing mlflow.
TrackingError = mlflow.exceptions.MlflowException


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


# MLflow's own experiment tags: the kind picks the model-training view over the GenAI one (the
# UI of 3.17 also needs ``workflowType`` in the link, see ``ui_url``), the note is the
# experiment's description, a shared view state is a saved runs view (columns, sort, filter).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


MODEL_TRAINING = "custom_model_development"


def find_experiment_id(name: str) -> str | None:
    setup()
    found = mlflow.get_experiment_by_name(name)
    return None if found is None else found.experiment_id


def _process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot), to tell a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


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
