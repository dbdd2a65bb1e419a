"""Exported files take raw landmarks and answer as the original does, on real data.

Static pipelines become TensorFlow graphs (features, scaler, classifier): checked against
``StaticPredictor`` on real HaGRID rows, then through LiteRT and onnxruntime. A recurrent
sequence model converts to TFLite only unrolled: checked on real SHREC'17 sequences. A file
that loses accuracy is reported as failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gesturelab import config
from gesturelab.datasets.static_data import prepare
from gesturelab.models.predictor import StaticPredictor
from gesturelab.models.static_families import FEATURE_SETS, build_pipeline
from gesturelab.serving import export, export_graphs


@pytest.fixture(scope="module")
def hagrid():
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    X, y = prepared.Xy("train")
    X_test, y_test = prepared.Xy("test")
    return X, y, X_test.to_numpy(np.float32), y_test


@pytest.mark.parametrize(
    "family, params, features",
    [
        ("svm", {"kernel": "linear", "C": 0.1}, "xy+dist+angles"),
        ("svm", {"kernel": "rbf", "C": 10.0, "gamma": "scale"}, "xy+dist"),
        ("svm", {"kernel": "poly", "C": 100.0, "gamma": "scale", "degree": 2}, "xyz+dist"),
        ("logreg", {"C": 10.0}, "xy+dist"),
        ("logreg", {"C": 1.0}, "xy+dist+angles+depth"),
        ("svm", {"kernel": "linear", "C": 1.0}, "raw"),
    ],
)
def test_static_graph_is_the_pipeline(hagrid, family, params, features):
    X, y, X_test, _ = hagrid
    pipeline = build_pipeline(family, params, FEATURE_SETS[features]).fit(X, y)
    expected = StaticPredictor(pipeline).predict_distribution(X_test.astype(np.float64))
    graph = export_graphs.StaticGraph(pipeline)
    got = graph(X_test).numpy()
    assert got.shape == expected.shape
    assert (got.argmax(1) == expected.argmax(1)).mean() == 1.0
    assert np.abs(got - expected).max() < 1e-3


def test_static_exports_run_on_litert_and_onnxruntime(hagrid, tmp_path):
    X, y, X_test, y_test = hagrid
    pipeline = build_pipeline("svm", {"kernel": "linear", "C": 0.1}).fit(X, y)
    classes = list(pipeline.classes_)
    labels = np.asarray([classes.index(v) for v in y_test])

    class Loaded:
        kind, model, metadata = "static", pipeline, {}

    representative = X.to_numpy(np.float32)[:100]
    rows, files, failures = export.export_and_check(
        Loaded,
        ["tflite-f32", "tflite-f16", "tflite-int8", "onnx"],
        X_test,
        labels,
        representative,
        tmp_path,
        "svm",
        repeats=5,
    )
    assert not failures, failures
    by = {r["format"]: r for r in rows}
    assert by["original"]["accuracy"] > 0.9
    for fmt in ("tflite-f32", "tflite-f16", "onnx"):
        assert by[fmt]["agreement"] == 1.0, (fmt, by[fmt])
        assert by[fmt]["passed"]
    assert by["tflite-int8"]["agreement"] > 0.9
    assert len(by["onnx"]["sha256"]) == 64 and files["onnx"].suffix == ".onnx"


def test_a_forest_is_refused_with_the_reason(hagrid):
    X, y, _, _ = hagrid
    forest = build_pipeline("random_forest", {"n_estimators": 5, "max_depth": 3}).fit(X, y)
    with pytest.raises(export.ExportError, match="RandomForestClassifier has no TensorFlow graph"):
        export_graphs.StaticGraph(forest)


def test_an_ensemble_exports_as_its_members_averaged_or_names_the_member_without_a_graph(hagrid):
    from gesturelab.models.static_families import ENSEMBLE, ensemble_configuration

    X, y, X_test, _ = hagrid
    linear = [
        ("svm", {"kernel": "linear", "C": 0.1}, "xy+dist+angles"),
        ("logreg", {"C": 10.0}, "xy+dist"),
    ]
    ensemble = build_pipeline(ENSEMBLE, ensemble_configuration(linear)).fit(X, y)
    expected = StaticPredictor(ensemble).predict_distribution(X_test.astype(np.float64))
    got = export_graphs.static_graph(ensemble)(X_test).numpy()
    assert (got.argmax(1) == expected.argmax(1)).mean() == 1.0
    assert np.abs(got - expected).max() < 1e-3
    forest = ("random_forest", {"n_estimators": 5, "max_depth": 3}, "xy+dist")
    mixed = build_pipeline(ENSEMBLE, ensemble_configuration([linear[0], forest])).fit(X, y)
    with pytest.raises(export.ExportError, match="member 'random_forest': RandomForestClassifier"):
        export_graphs.static_graph(mixed)


@pytest.fixture(scope="module")
def shrec_small():
    from gesturelab.datasets import shrec
    from gesturelab.datasets.sequences import pick_classes

    data = pick_classes(shrec.load_compact(), ("grab", "swipe_right", "swipe_up"))
    frames = 16
    x = data.to_fixed(frames).reshape(len(data), frames, -1)
    return x, np.asarray(data.labels), data.subjects


def _trained(arch: str, x, y, epochs: int = 3):
    import keras

    from gesturelab.models.seq_models import build_model

    model = build_model(arch, x.shape[1], 3, width=16)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    keras.utils.set_random_seed(0)
    return model


@pytest.mark.train
def test_a_recurrent_model_runs_on_litert_unrolled(shrec_small, tmp_path):
    x, y, _ = shrec_small
    model = _trained("gru", x, y)

    class Loaded:
        kind, metadata = "sequence", {"classes": ["grab", "swipe_right", "swipe_up"]}

    Loaded.model = model
    source = export.source_for(Loaded)
    assert source.graph is not model  # rebuilt with unroll=True
    assert all(layer.get_config()["unroll"] for layer in source.graph.layers if "gru" in layer.name)
    expected = model.predict_on_batch(x[:40])
    for fmt in ("tflite-f32", "onnx"):
        path = export.export(source, fmt, tmp_path, "gru")
        got = export.runner(path, fmt)(x[:40])
        assert np.abs(got - expected).max() < 1e-4, fmt


@pytest.mark.train
def test_a_file_that_loses_accuracy_fails(shrec_small, tmp_path):
    """A file of another (untrained) model checked as this model's export: reported failed."""
    x, y, _ = shrec_small
    good = _trained("tcn", x, y, epochs=8)
    other = _trained("tcn", x, y, epochs=0)

    class Loaded:
        kind, metadata = "sequence", {"classes": ["grab", "swipe_right", "swipe_up"]}

    Loaded.model = other
    wrong = export.export(export.source_for(Loaded), "tflite-f32", tmp_path, "other")
    Loaded.model = good
    rows = export.check(export.source_for(Loaded), {"tflite-f32": wrong}, x, y, repeats=3)
    assert rows[0]["accuracy"] > 0.8
    assert rows[1]["accuracy"] < rows[0]["accuracy"] - export.MAX_ACCURACY_LOSS
    assert rows[1]["passed"] is False
    assert "FAILED (accuracy)" in export.table_text(rows)


@pytest.mark.slow
def test_export_command_logs_the_check_and_the_card_shows_it(small_tcn, tmp_path):
    """``export`` on a registered sequence model (real SHREC'17 subjects held out by its run):
    the table, the files in the run's export/ folder, and ``model info`` lists the formats."""
    from mlflow import MlflowClient

    import train_with_mlflow as tracking
    from tests.conftest import run_cli, using_store

    store, validated = small_tcn.store, small_tcn.validated
    with using_store(store):
        uri = validated.run.model_uri
        version = tracking.register_model(
            uri, "export-test", "champion", label_set=validated.result.classes, data_sha256=None
        )
    assert str(version.version) == "1"
    out = run_cli(
        "export",
        "--model",
        "models:/export-test@champion",
        "--format",
        "tflite-f16",
        "onnx",
        "--repeats",
        "5",
        store=store,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "checked on SHREC'17 held-out subjects" in out.stdout
    for fmt in ("original", "tflite-f16", "onnx"):
        assert any(line.startswith(fmt) for line in out.stdout.splitlines()), out.stdout
    client = MlflowClient(store)
    names = {a.path for a in client.list_artifacts(validated.run.run_id, "export")}
    assert "export/export-test-v1-onnx.onnx" in names and "export/check.json" in names
    info = run_cli("model", "info", "models:/export-test/1", "--json", store=store, cwd=tmp_path)
    assert info.returncode == 0, info.stderr[-3000:]
    card = json.loads(info.stdout)
    assert [e["format"] for e in card["exports"]] == ["original", "tflite-f16", "onnx"]
    assert card["input_shape"] == [24, 21, 3]
    check = json.loads(
        Path(
            client.download_artifacts(validated.run.run_id, "export/check.json", tmp_path)
        ).read_text()
    )
    onnx = next(r for r in check["rows"] if r["format"] == "onnx")
    assert card["checksums"]["export-test-v1-onnx.onnx"] == onnx["sha256"]


def test_a_static_check_needs_a_real_split_and_names_the_refit_only_for_its_own_file(
    hagrid, tmp_path
):
    from gesturelab.datasets.loading import file_fingerprint

    X, y, _, _ = hagrid
    pipeline = build_pipeline("logreg", {"C": 1.0}).fit(X, y)

    class Loaded:
        kind, model, metadata = "static", pipeline, {}

    refit = {"trained_on": "train+val+test"}
    for split in ("nosuch", "all"):  # "all" ended in a ValueError traceback (no samples left)
        with pytest.raises(export.ExportError, match=f"--split '{split}': a static model"):
            export.held_out_for(Loaded, refit, config.HAGRID_SAMPLE_CSV, split)
    own = file_fingerprint(config.HAGRID_SAMPLE_CSV)
    other = tmp_path / "other.csv"
    other.write_text(config.HAGRID_SAMPLE_CSV.read_text() + "\n")  # same rows, another file
    said = "this model was refit on every row of this file"
    assert said in export.held_out_for(Loaded, refit, config.HAGRID_SAMPLE_CSV, "test", own).what
    held = export.held_out_for(Loaded, refit, other, "test", own)
    assert len(held.y) > 0 and "refit" not in held.what
    unnamed = export.held_out_for(Loaded, refit, other, "test", None).what
    assert "which its run does not name" in unnamed
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(export.ExportError, match="taken: a file is there"):
        export.export_model("models:/any@champion", out=tmp_path / "taken")
