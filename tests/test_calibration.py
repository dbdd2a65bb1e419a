"""Calibration on real SHREC'17 subjects: the freeze strategies train what the guide says, a
calibration that does not help keeps the original (never a worse model), one that does is
kept, and the command registers it as a new version with its parent."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest

from gesturelab.models.seq_models import average_ensemble, build_model
from gesturelab.training import calibration as cal

GESTURES = ("grab", "swipe_right", "swipe_up")
FRAMES = 24
USER = 21  # a held-out subject of the small model (its run's validation subjects)


@pytest.fixture(scope="module")
def trained(small_tcn):
    """The session's small TCN on three real SHREC'17 gestures; the user's sequences."""
    data, validated = small_tcn.data, small_tcn.validated
    user = data.subset(data.subjects == USER)
    x = user.to_fixed(FRAMES).reshape(len(user), FRAMES, -1)
    return {
        "store": small_tcn.store,
        "data": data,
        "validated": validated,
        "x": x,
        "y": user.labels,
    }


def _model(trained):
    return trained["validated"].result.model


def test_freeze_strategies_train_the_last_layers_and_never_batch_norm():
    model = build_model("ddnet", 16, 3, width=16)
    trained = {s: cal.freeze(model, s) for s in cal.STRATEGIES}
    assert trained["head_only"] == ["gesture"]
    assert set(trained["last_block"]) < set(trained["half"])
    assert trained["last_block"][-1] == trained["half"][-1] == "gesture"
    weighted = [layer for layer in model.layers if layer.weights]
    assert len(trained["half"]) <= int(np.ceil(0.5 * len(weighted)))
    cal.freeze(model, "half")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert not layer.trainable
    ensemble = average_ensemble([build_model("tcn", 16, 3, width=16), model])
    assert cal.freeze(ensemble, "head_only") == ["gesture", "gesture"]  # each member's head
    with pytest.raises(ValueError, match="freeze strategy must be one of"):
        cal.freeze(model, "everything")


def test_holdout_split_keeps_a_sample_of_every_class_back_when_it_can():
    labels = np.array([0] * 5 + [1] * 3 + [2])
    fit, back = cal.holdout_split(labels, 1 / 3)
    assert sorted(np.concatenate([fit, back])) == list(range(9))
    assert sorted(labels[back]) == [0, 0, 1]  # class 2 has one sample: calibrated on only
    assert set(labels[fit]) == {0, 1, 2}


def test_a_calibration_that_hurts_keeps_the_original(trained):
    """A learning rate far too high wrecks the copy; the original comes back untouched."""
    model = _model(trained)
    weights = [w.copy() for w in model.get_weights()]
    config = cal.CalibrationConfig(freeze_strategy="half", learning_rate=3.0, epochs=4, patience=4)
    used, result = cal.calibrate(model, trained["x"], trained["y"], config)
    assert used is model
    assert result.kept == "original" and not result.success
    assert result.accuracy_after < result.accuracy_before
    assert "kept the original model" in result.message
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))


def test_calibration_learns_a_users_own_way_of_gesturing(trained):
    """This user's gestures under other names (their 'grab' is everyone's 'swipe_right', ...):
    the original is wrong on all of them, calibration learns the user's mapping."""
    model = _model(trained)
    x, y = trained["x"], (trained["y"] + 1) % 3
    chosen, rest = cal.pick_per_class(y, 5)
    config = cal.CalibrationConfig(
        freeze_strategy="head_only", learning_rate=3e-2, epochs=40, patience=10
    )
    used, result = cal.calibrate(model, x[chosen], y[chosen], config)
    assert result.success and used is not model
    assert result.accuracy_after > result.accuracy_before
    before = (model.predict_on_batch(x[rest]).argmax(1) == y[rest]).mean()
    after = (used.predict_on_batch(x[rest]).argmax(1) == y[rest]).mean()
    assert before < 0.3 and after > 0.6, (before, after)
    assert result.trainable_layers == ["gesture"]


def test_user_calibrator_collects_checks_and_saves(trained, tmp_path):
    model = _model(trained)
    calibrator = cal.UserCalibrator(
        model, class_names=list(GESTURES), config=cal.CalibrationConfig(epochs=2)
    )
    with pytest.raises(ValueError, match="not a gesture of this model"):
        calibrator.add_sample(trained["x"][0], "wave")
    with pytest.raises(ValueError, match="a sequence is"):
        calibrator.add_sample(np.zeros((10, 5)), "grab")
    for sequence, label in zip(trained["x"], trained["y"], strict=True):
        if calibrator.get_sample_counts()[GESTURES[label]] < 5:
            calibrator.add_sample(sequence, GESTURES[label])
    counts = calibrator.get_sample_counts()
    ready, message = calibrator.is_ready()
    assert ready == all(v >= 5 for v in counts.values()), (counts, message)
    if not ready:
        with pytest.raises(ValueError, match="not ready to calibrate"):
            calibrator.calibrate()
    result = calibrator.calibrate(force=True)
    assert result.n_calibration + result.n_holdout == sum(counts.values())
    path = calibrator.save(tmp_path / "user.keras")
    again = cal.UserCalibrator(path, class_names=list(GESTURES))
    x = trained["x"][:8]
    assert np.allclose(again.model.predict_on_batch(x), calibrator.model.predict_on_batch(x))


def test_a_study_reusing_compiled_copies_gives_each_users_fresh_calibrations(trained):
    """The study calibrates every user with copies compiled once (per strategy and rate) and
    put back between users; another user first changes nothing: each row equals a calibration
    of a fresh copy, the kept model and its candidate scored alike (the copy holds dropout,
    whose seeds must be put back too). The users' gestures go by other names, so that
    calibration moves the scores."""
    from gesturelab.studies import personalisation

    data, model = trained["data"], _model(trained)
    data = data.subset(np.ones(len(data), dtype=bool))
    data.labels = (np.asarray(data.labels) + 1) % 3
    other = next(s for s in np.unique(data.subjects) if s != USER)
    bases = [((other, USER), model, FRAMES)]
    settings = {"samples_per_class": (3,), "strategies": ("head_only", "half"), "epochs": 3}
    rows = personalisation.study(data, bases, learning_rates=(3e-2,), **settings)
    rows = rows[rows["subject"] == USER].reset_index(drop=True)
    x, y = trained["x"], (np.asarray(trained["y"]) + 1) % 3
    for row in rows.itertuples():
        chosen, rest = cal.pick_per_class(y, row.samples_per_class)
        config = cal.CalibrationConfig(row.strategy, row.learning_rate, epochs=3)
        used, result = cal.calibrate(model, x[chosen], y[chosen], config)
        assert (row.held_before, row.held_after) == (
            result.accuracy_before,
            result.accuracy_after,
        )
        assert row.kept == result.kept
        for column, scored in (("candidate", result.candidate), ("used", used)):
            accuracy = (scored.predict_on_batch(x[rest]).argmax(1) == y[rest]).mean()
            assert getattr(row, column) == accuracy, (row, column)
    assert len(rows) == 2 and (rows["candidate"] > rows["original"]).all(), rows


@pytest.mark.slow
def test_calibrate_command_registers_a_child_version(trained, tmp_path):
    import train_with_mlflow as tracking
    from gesturelab.datasets.seq_writers import write_npz
    from tests.conftest import run_cli, using_store

    store, validated = trained["store"], trained["validated"]
    with using_store(store):
        tracking.register_model(
            validated.run.model_uri,
            "calibration-test",
            "champion",
            label_set=GESTURES,
            data_sha256=None,
        )
    user = trained["data"].subset(trained["data"].subjects == USER)
    user.labels = (user.labels + 1) % 3  # the user's own names for their gestures
    bundle = write_npz(user, tmp_path / "user.npz")
    args = ["calibrate", "--model", "models:/calibration-test@champion", "--data", bundle]
    args += ["--strategy", "head_only", "--learning-rate", "0.03", "--epochs", "40"]
    out = run_cli(*args, "--samples-per-class", "5", "--user", "ana", store=store, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "registered: models:/calibration-test@user-ana (version 2)" in out.stdout, out.stdout
    info = run_cli(
        "model", "info", "models:/calibration-test@user-ana", "--json", store=store, cwd=tmp_path
    )
    card = json.loads(info.stdout)
    assert card["lineage"]["parent_version"] == "1"
    assert card["lineage"]["calibration_user"] == "ana"


def test_the_mlp_saves_as_config_and_weights_and_refuses_other_layers(tmp_path):
    import skops.io

    from gesturelab import config
    from gesturelab.datasets.static_data import prepare
    from gesturelab.models.static_families import SKOPS_TRUSTED_TYPES, build_pipeline

    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    X, y = prepared.Xy("train")
    X_test, _ = prepared.Xy("test")
    pipeline = build_pipeline("mlp", {"hidden": "32", "epochs": 5}).fit(X, y)
    path = tmp_path / "mlp.skops"
    skops.io.dump(pipeline, path)
    back = skops.io.load(path, trusted=list(SKOPS_TRUSTED_TYPES))
    assert np.allclose(back.predict_proba(X_test), pipeline.predict_proba(X_test))
    state = pipeline.steps[-1][1].__getstate__()
    config_json = json.loads(state["network_config_"])
    config_json["layers"][1]["class_name"] = "Lambda"
    state["network_config_"] = json.dumps(config_json)
    from gesturelab.models.static_mlp import KerasMLPClassifier

    with pytest.raises(ValueError, match="an MLP holds only"):
        KerasMLPClassifier().__setstate__(state)


@pytest.mark.slow
def test_a_static_mlp_is_calibrated_from_the_command_line(tmp_path):
    """The static MLP family: a user whose hand shapes carry other names is learned from three
    rows per class and registered as a child version."""
    import train_with_mlflow as tracking
    from gesturelab import config
    from gesturelab.datasets.static_data import prepare
    from gesturelab.models.static_families import build_pipeline
    from tests.conftest import log_static_model, run_cli, using_store

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    X, y = prepared.Xy("train")
    pipeline = build_pipeline("mlp", {"hidden": "128,64", "epochs": 100}).fit(X, y)
    with using_store(store):
        uri = log_static_model(pipeline, X)
        tracking.register_model(
            uri, "static-mlp", "champion", label_set=prepared.classes, data_sha256=None
        )
    user = prepared.part("test")[[*prepared.columns, "label"]].copy()
    classes = sorted(set(user["label"]))
    rename = dict(zip(classes, classes[1:] + classes[:1], strict=True))
    user["label"] = user["label"].map(rename)
    user.to_csv(tmp_path / "user.csv", index=False)
    args = ["calibrate", "--model", "models:/static-mlp@champion", "--data", tmp_path / "user.csv"]
    args += ["--strategy", "half", "--learning-rate", "0.01", "--epochs", "80"]
    out = run_cli(*args, "--samples-per-class", "4", "--user", "bo", store=store, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "registered: models:/static-mlp@user-bo (version 2)" in out.stdout, out.stdout
    line = next(x for x in out.stdout.splitlines() if "remaining samples" in x)
    before, after = (float(v) for v in re.findall(r"(\d\.\d{4})", line))
    assert before < 0.2 < 0.6 < after, line
