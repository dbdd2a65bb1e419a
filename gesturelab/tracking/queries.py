"""Finding runs: an experiment's finished runs, a run by its key, leaderboards, lost runs."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
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
import pandas as pd
from mlflow.tracking import MlflowClient

from gesturelab.tracking.records import RunRecord, Runs, _record
from gesturelab.tracking.store import TrackingError, fail_orphaned_runs, find_experiment_id, setup


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
