"""The model registry: registering a model under a name, its aliases (champion, challenger),
version tags.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

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
from gesturelab.errors import RegistryError
from gesturelab.tracking.records import label_set_key
from gesturelab.tracking.store import setup


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
