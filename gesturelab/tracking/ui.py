"""What the MLflow UI shows: experiment descriptions, saved runs views, links into the UI."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable

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

from gesturelab.tracking.queries import _search
from gesturelab.tracking.store import (
    _sqlite_path,
    find_experiment_id,
    get_or_create_experiment,
    setup,
    tracking_uri,
)

DESCRIPTION_TAG = "mlflow.note.content"


SAVED_VIEW_TAG = "mlflow.sharedViewState."


LEADERBOARD_VIEW = "leaderboard"


UI_URL = os.environ.get("GESTURELAB_MLFLOW_UI", "http://127.0.0.1:5000")


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
