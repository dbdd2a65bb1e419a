"""Loading a model never runs code the model file asks for (pickle, foreign skops types, Lambda)."""

import os
import subprocess
import sys

import mlflow.sklearn
import numpy as np
import pytest
import skops.io
import yaml
from conftest import log_static_model
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.static_data import prepare
from gesturelab.errors import ModelLoadError
from gesturelab.models.predictor import open_model
from gesturelab.models.static_families import SKOPS_TRUSTED_TYPES, build_pipeline


class Payload:
    """What an attacker pickles: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def fitted():
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    X, y = prepared.Xy("train")
    return build_pipeline("svm", {"kernel": "linear", "C": 1.0}).fit(X, y), X


def _rewrite_mlmodel(folder, change):
    path = folder / "MLmodel"
    conf = yaml.safe_load(path.read_text())
    change(conf)
    path.write_text(yaml.safe_dump(conf))


def _save(pipeline, folder):
    mlflow.sklearn.save_model(
        pipeline, folder, skops_trusted_types=list(SKOPS_TRUSTED_TYPES), pip_requirements=[]
    )


def _pickle_model(tmp_path, fitted, serialization="pickle"):
    """A real MLflow sklearn folder whose model file is replaced by a payload."""
    folder = tmp_path / f"{serialization}-model"
    mlflow.sklearn.save_model(
        fitted[0], folder, serialization_format=serialization, pip_requirements=[]
    )
    marker = tmp_path / "pwned"
    import pickle

    (folder / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    return folder, marker


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle"])
def test_pickled_model_is_refused_before_it_is_read(tmp_path, fitted, serialization):
    folder, marker = _pickle_model(tmp_path, fitted, serialization)
    with pytest.raises(ModelLoadError, match=f"refused.*{serialization}"):
        open_model(str(folder))
    assert not marker.exists()


@pytest.mark.integration
def test_cli_evaluate_on_a_pickled_model_runs_nothing(tmp_path, fitted, mlflow_store):
    folder, marker = _pickle_model(tmp_path, fitted)
    out = subprocess.run(
        [sys.executable, "-m", "gesturelab", "evaluate", "--no-log", "--model", str(folder)]
        + ["--data", str(config.HAGRID_SAMPLE_CSV)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_store},
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "refused" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists()


def test_skops_trusts_the_projects_types_not_the_files(tmp_path):
    """A skops file may name os.system; its MLmodel trusting it must not make us load it."""
    model = make_pipeline(FunctionTransformer(os.system))
    folder = tmp_path / "skops-model"
    folder.mkdir()
    skops.io.dump(model, folder / "model.skops")
    untrusted = skops.io.get_untrusted_types(file=folder / "model.skops")
    assert untrusted  # the file does hold a type nobody trusted
    (folder / "MLmodel").write_text(
        yaml.safe_dump(
            {
                "flavors": {
                    "sklearn": {
                        "pickled_model": "model.skops",
                        "serialization_format": "skops",
                        "skops_trusted_types": untrusted,
                    }
                }
            }
        )
    )
    with pytest.raises(ModelLoadError, match="does not trust"):
        open_model(str(folder))


def test_foreign_flavours_and_paths_outside_the_folder_are_refused(tmp_path, fitted):
    folder = tmp_path / "model"
    _save(fitted[0], folder)
    _rewrite_mlmodel(folder, lambda c: c["flavors"].pop("sklearn"))
    with pytest.raises(ModelLoadError, match="flavors python_function"):
        open_model(str(folder))

    other = tmp_path / "escape"
    _save(fitted[0], other)

    def escape(conf):
        conf["flavors"]["sklearn"]["pickled_model"] = "../model/model.skops"

    _rewrite_mlmodel(other, escape)
    with pytest.raises(ModelLoadError, match="outside the model folder"):
        open_model(str(other))


def test_project_models_load_as_path_file_uri_and_registry(tmp_path, fitted, mlflow_store):
    pipeline, X = fitted
    folder = tmp_path / "good"
    _save(pipeline, folder)
    for uri in (str(folder), folder.as_uri()):
        loaded = open_model(uri)
        assert loaded.kind == "static"
        np.testing.assert_array_equal(loaded.model.predict(X), pipeline.predict(X))
    model_uri = log_static_model(pipeline, X, "safety")
    tracking.register_model(
        model_uri, "safety-model", label_set=pipeline.classes_, data_sha256=None
    )
    for uri in (model_uri, "models:/safety-model@champion", "models:/safety-model/1"):
        assert open_model(uri).kind == "static"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/nonexistent@champion", "nonexistent"),
        ("runs:/0123456789abcdef/model", "not found"),
        ("models:/", "models:/"),
        ("no/such/folder", "no such model folder"),
    ],
)
def test_missing_models_give_one_line(uri, message, mlflow_store):
    with pytest.raises(ModelLoadError, match=message) as error:
        open_model(uri)
    assert "\n" not in str(error.value)


def test_a_folder_that_is_no_model(tmp_path):
    with pytest.raises(ModelLoadError, match="not an MLflow model"):
        open_model(str(tmp_path))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        open_model(str(tmp_path / "file.txt"))


def test_keras_lambda_layers_are_refused(tmp_path):
    import keras
    import mlflow.keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    folder = tmp_path / "lambda"
    mlflow.keras.save_model(keras.Model(inputs, outputs), str(folder), pip_requirements=[])
    with pytest.raises(ModelLoadError, match="safely"):
        open_model(str(folder))


def test_a_keras_file_symlinked_out_of_the_folder_is_refused(tmp_path):
    import keras
    import mlflow.keras

    inputs = keras.Input((4,))
    folder = tmp_path / "linked"
    mlflow.keras.save_model(
        keras.Model(inputs, keras.layers.Dense(2)(inputs)), str(folder), pip_requirements=[]
    )
    target = folder / "data" / "model.keras"
    outside = tmp_path / "outside.keras"
    target.rename(outside)
    target.symlink_to(outside)
    with pytest.raises(ModelLoadError, match="outside the model folder"):
        open_model(str(folder))


def test_a_flavor_that_is_not_a_mapping_is_one_error(tmp_path, fitted):
    folder = tmp_path / "model"
    _save(fitted[0], folder)
    _rewrite_mlmodel(folder, lambda c: c["flavors"].update(sklearn=["x"]))
    with pytest.raises(ModelLoadError, match="not a mapping"):
        open_model(str(folder))


def test_a_model_saved_before_the_layer_folders_says_to_train_it_again(tmp_path, fitted):
    """skops files name the classes where they lived: LandmarkNormalizer was
    gesturelab.features.LandmarkNormalizer before the package's layer folders."""
    import zipfile

    folder = tmp_path / "old"
    _save(fitted[0], folder)
    path = folder / "model.skops"
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = files["schema.json"].decode()
    assert '"gesturelab.features.landmark_features"' in schema
    files["schema.json"] = schema.replace(
        '"gesturelab.features.landmark_features"', '"gesturelab.features"'
    ).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(ModelLoadError, match="saved by an older gesturelab .* train it again"):
        open_model(str(folder))
