"""Runs as the project reads them: plain records, no MLflow column names or types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# Before MLflow on purpose: skops, on first import, finds the module of each of SciPy's ufuncs by
# walking sys.modules in order until it meets scipy.special. Loaded after MLflow and TensorFlow,
# that walk took 3 to 7 s of every process that saved or loaded a model; loaded first, 1 s.
import scipy.special  # noqa: F401

# isort: split
from mlflow.tracking import MlflowClient

from gesturelab.tracking.store import setup


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
