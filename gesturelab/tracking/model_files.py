"""Loading models safely: only the formats the project writes (skops files of trusted types, .keras
files in safe mode), never a model's bundled code.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
import yaml
from mlflow.tracking import MlflowClient

from gesturelab.errors import ModelLoadError
from gesturelab.tracking.store import setup


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
    """The run that logged a ``runs:/ID/...``, ``models:/m-...`` (logged model) or registered
    (``models:/name@alias``, ``models:/name/3``) URI; None for a folder."""
    setup()
    text = str(model_uri)
    if text.startswith("runs:/"):
        return text[len("runs:/") :].split("/", 1)[0]
    if text.startswith("models:/m-"):
        try:
            return MlflowClient().get_logged_model(text[len("models:/") :]).source_run_id
        except mlflow.exceptions.MlflowException:
            return None
    if text.startswith("models:/"):
        return model_version_info(text).get("run_id")
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
