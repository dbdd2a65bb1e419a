"""The Keras sequence models: the feature layer's invariances, masks, building, saving, learning."""

import keras
import numpy as np
import pytest
from conftest import using_store

from gesturelab.datasets import shrec
from gesturelab.datasets.sequences import pad_or_truncate, pick_classes, subject_split
from gesturelab.errors import UnknownNameError
from gesturelab.models.seq_models import (
    SINGLE_ARCHITECTURES,
    AdamW,
    FrameDifference,
    SequenceFeatures,
    average_ensemble,
    build_model,
    model_features,
)
from gesturelab.training.seq_training import (
    config_for,
    fit,
    member_configs,
    model_input,
    predict_proba,
    refit_config,
)


@pytest.fixture(scope="module")
def shipped():
    return shrec.load_compact()


def _features(x, features=("positions", "local", "velocities", "distances")):
    return keras.ops.convert_to_numpy(SequenceFeatures(features)(x))


def test_features_ignore_where_the_hand_is_and_how_big(shipped):
    x = model_input(shipped.subset(np.arange(4)), 32)
    moved = x.reshape(4, 32, 21, 3) + np.array([0.3, -0.2, 0.5], dtype=np.float32)
    scaled = x * 1.7
    base = _features(x)
    np.testing.assert_allclose(_features(moved.reshape(4, 32, 63)), base, atol=2e-4)
    np.testing.assert_allclose(_features(scaled), base, atol=2e-4)
    assert base.shape == (4, 32, 63 * 3 + 210)
    # the raw set is the unchanged input, for the GESTO reproduction
    np.testing.assert_array_equal(_features(x, ("raw",)), x)


def test_features_keep_the_direction_of_motion(shipped):
    """Mirroring the path left-right must change the features: swipe left is not swipe right."""
    x = model_input(shipped.subset(np.arange(4)), 32).reshape(4, 32, 21, 3)
    mirrored = x * np.array([-1, 1, 1], dtype=np.float32)
    a = _features(x.reshape(4, 32, 63), ("positions",))
    b = _features(mirrored.reshape(4, 32, 63), ("positions",))
    assert np.abs(a - b).max() > 0.5


def test_padding_frames_are_masked_and_zero(shipped):
    seq = pad_or_truncate(shipped.sequences[0], 100).reshape(1, 100, 63)
    layer = SequenceFeatures()
    mask = keras.ops.convert_to_numpy(layer.compute_mask(seq))
    n = len(shipped.sequences[0])
    assert mask[0, :n].all() and not mask[0, n:].any()
    assert not _features(seq)[0, n:].any()
    assert SequenceFeatures(emit_mask=False).compute_mask(seq) is None


@pytest.mark.parametrize("arch", SINGLE_ARCHITECTURES)
@pytest.mark.parametrize("frames", [32, 57])  # 57: a dataset's median length, odd
def test_every_architecture_builds_saves_and_loads(arch, frames, tmp_path):
    model = build_model(arch, frames, 14, seed=1)
    x = np.random.default_rng(0).normal(size=(3, frames, 63)).astype(np.float32)
    out = keras.ops.convert_to_numpy(model(x))
    assert out.shape == (3, 14)
    np.testing.assert_allclose(out.sum(axis=1), 1, atol=1e-5)
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), out, atol=1e-6)


def test_reference_lstm_is_the_gesto_model():
    model = build_model("lstm", 30, 3, features="raw")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "SequenceFeatures", "LSTM", "LSTM", "Dense", "Dense"]
    counts = [layer.count_params() for layer in model.layers[2:]]
    # The GESTO report lists 32,768 / 7,296 / 1,056 / 99 (41,219). Its LSTM(32) figure is an
    # arithmetic slip: 4 gates x 32 units x (64 inputs + 32 recurrent + 1 bias) = 12,416.
    assert counts == [32_768, 12_416, 1_056, 99]


def test_unknown_architecture_or_features_are_refused():
    known = "known: lstm, gru, tcn, cnn, ddnet, ensemble"
    with pytest.raises(UnknownNameError, match=f"unknown architecture 'transformer'; {known}"):
        build_model("transformer", 32, 14)
    with pytest.raises(UnknownNameError, match=known):
        config_for("transformer", 14)
    with pytest.raises(ValueError, match="averages trained members"):
        build_model("ensemble", 32, 14)
    with pytest.raises(ValueError, match="features must be one of"):
        build_model("tcn", 32, 14, features="angles")


def test_a_small_tcn_learns_three_gestures_of_unseen_subjects(small_tcn):
    """Grab, swipe right and swipe up after 12 epochs: far above chance on held-out subjects."""
    data, validated = small_tcn.data, small_tcn.validated
    result = validated.result
    val = np.isin(data.subjects, validated.validation_subjects)
    assert 0 < val.sum() < len(data) // 2
    accuracy = predict_proba(result.model, data.subset(val), 24).argmax(1) == data.labels[val]
    assert accuracy.mean() > 0.8
    assert len(result.history["val_loss"]) == result.epochs_run


def _trained_weights(optimizer, x, y):
    keras.utils.set_random_seed(3)
    model = build_model("cnn", 16, 3, width=8, seed=3)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    return model.get_weights()


@pytest.mark.train
def test_adamw_decays_with_the_schedule_evaluated_once_and_matches_keras(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 16, 63)).astype(np.float32)
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)

    def schedule():
        return keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=8, alpha=0.01)

    ours = _trained_weights(AdamW(schedule(), weight_decay=0.05), x, y)
    theirs = _trained_weights(keras.optimizers.AdamW(schedule(), weight_decay=0.05), x, y)
    untouched = _trained_weights(keras.optimizers.Adam(schedule()), x, y)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the decay did something: without it the weights differ
    assert max(np.abs(a - b).max() for a, b in zip(ours, untouched)) > 1e-4
    model = build_model("cnn", 16, 3, width=8)
    model.compile(optimizer=AdamW(schedule()), loss="categorical_crossentropy")
    model.save(tmp_path / "compiled.keras")
    assert isinstance(keras.models.load_model(tmp_path / "compiled.keras").optimizer, AdamW)


def test_ddnet_motion_streams_are_frame_differences_at_two_scales():
    x = np.cumsum(np.random.default_rng(0).normal(size=(2, 8, 63)), axis=1).astype(np.float32)
    slow = keras.ops.convert_to_numpy(FrameDifference(1)(x))
    fast = keras.ops.convert_to_numpy(FrameDifference(2)(x))
    np.testing.assert_allclose(slow[:, 1:], x[:, 1:] - x[:, :-1], atol=1e-5)
    np.testing.assert_allclose(fast[:, 1:], x[:, 2::2] - x[:, :-2:2], atol=1e-5)
    assert not slow[:, 0].any() and fast.shape == (2, 4, 63)
    # a padded (all-zero) frame is no motion, not a jump back to the origin
    x[:, 6:] = 0
    assert not keras.ops.convert_to_numpy(FrameDifference(1)(x))[:, 6:].any()


def test_ensemble_is_the_mean_of_its_members_and_saves_as_one_model(tmp_path):
    members = [build_model(arch, 16, 5, width=16, seed=i) for i, arch in enumerate(("tcn", "cnn"))]
    ensemble = average_ensemble(members)
    x = np.random.default_rng(1).normal(size=(4, 16, 63)).astype(np.float32)
    mean = np.mean([keras.ops.convert_to_numpy(m(x)) for m in members], axis=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ensemble(x)), mean, atol=1e-6)
    ensemble.save(tmp_path / "ensemble.keras")
    again = keras.models.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), mean, atol=1e-6)
    assert model_features(again) == ["positions", "local", "velocities", "distances"]
    with pytest.raises(ValueError, match="differ in input or output shape"):
        average_ensemble([members[0], build_model("tcn", 16, 6, width=16)])


@pytest.mark.train
def test_ensemble_training_fits_each_member_and_refits_each_for_its_own_epochs(shipped):
    data = pick_classes(shipped, ("grab", "swipe_right"))
    train, val = subject_split(data.subjects, 0.25, seed=0)
    config = config_for("ensemble", 14, members=("cnn", "ddnet"), epochs=2, frames=16)
    result = fit(data.subset(train), config, data.subset(val))
    assert all(1 <= e <= 2 for e in result.extra["member_best_epochs"])
    assert {"val_cnn_loss", "val_ddnet_loss", "loss_cnn", "loss_ddnet"} <= set(result.history)
    scores = predict_proba(result.model, data.subset(val), 16)
    assert scores.shape == (int(val.sum()), 2)
    again = refit_config(result)
    assert again.member_epochs == result.extra["member_best_epochs"]
    members = member_configs(again, 2)
    assert [(c.arch, c.epochs) for c in members] == list(zip(("cnn", "ddnet"), again.member_epochs))
    seeds = member_configs(config_for("ensemble", 14, members=("ddnet", "cnn", "ddnet")), 14)
    assert [c.seed for c in seeds] == [0, 0, 1]


@pytest.mark.train
def test_an_ensemble_is_scored_on_its_members_held_out_subjects_and_only_if_they_agree(shipped):
    from gesturelab.training.seq_board import validate_ensemble
    from gesturelab.training.seq_experiment import train_and_log

    data = pick_classes(shipped, ("grab", "swipe_right"))
    small = {"epochs": 1, "frames": 16, "width": 16}
    common = {"log": False, "n_bootstrap": 10}
    cnn = train_and_log(data, config_for("cnn", 14, **small), split_seed=0, **common)
    tcn = train_and_log(data, config_for("tcn", 14, **small), split_seed=0, **common)
    out = validate_ensemble(data, [cnn, tcn], **common)
    assert out.validation_subjects == cnn.validation_subjects
    assert len(out.labels) == np.isin(data.subjects, cnn.validation_subjects).sum()
    elsewhere = train_and_log(data, config_for("tcn", 14, **small), split_seed=1, **common)
    assert elsewhere.validation_subjects != cnn.validation_subjects
    with pytest.raises(ValueError, match="validated on different subjects"):
        validate_ensemble(data, [cnn, elsewhere], **common)


@pytest.mark.parametrize("arch", [*SINGLE_ARCHITECTURES, "ensemble"])
def test_moving_or_scaling_the_hand_does_not_change_any_model(arch, shipped):
    """Even untrained, every architecture sees the same input after a move or a zoom."""
    if arch == "ensemble":
        model = average_ensemble([build_model(a, 32, 14, seed=1) for a in ("ddnet", "cnn")])
    else:
        model = build_model(arch, 32, 14, seed=1)
    x = model_input(shipped.subset(np.arange(6)), 32)
    moved = (x.reshape(6, 32, 21, 3) * 1.6 + np.array([0.2, -0.4, 0.3])).reshape(6, 32, 63)
    base = keras.ops.convert_to_numpy(model(x))
    again = keras.ops.convert_to_numpy(model(moved.astype(np.float32)))
    np.testing.assert_allclose(again, base, atol=1e-4)


def test_train_seq_default_follows_the_registered_champion_else_config(mlflow_store, small_tcn):
    """Not a figure's CSV: rerunning a notebook no longer changes a command's default."""
    import train_with_mlflow as tracking
    from gesturelab import config
    from gesturelab.training.seq_defaults import default_architecture

    assert default_architecture(14) == (
        config.SEQUENCE_ARCHITECTURES[14],
        "config.SEQUENCE_ARCHITECTURES: no registered champion to follow",
    )
    with using_store(small_tcn.store):
        tracking.register_model(
            small_tcn.validated.run.model_uri,
            config.SEQUENCE_MODEL_NAMES[28],
            tags={"arch": "tcn"},
            label_set=small_tcn.data.classes,
            data_sha256=None,
        )
        assert default_architecture(28) == (
            "tcn",
            f"that of the registered {config.SEQUENCE_MODEL_NAMES[28]}@champion",
        )
