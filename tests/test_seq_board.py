"""The sequence leaderboard's runs are not redone: a second leaderboard with nothing changed
reuses every training (same scores, no new run), ``fresh`` trains again, a change to a
configuration trains that one only; and its trainings run as tasks of the engine, a real
two-worker Dask LocalCluster logging the same runs and metrics as this process."""

import pytest

from gesturelab.datasets import shrec
from gesturelab.datasets.sequences import pick_classes
from gesturelab.training.engine import Engine
from gesturelab.training.seq_board import architecture_leaderboard
from tests.conftest import SMALL_GESTURES

pytestmark = pytest.mark.slow

SCORES = ["val_accuracy", "val_f1_macro", "val_ece", "best_epoch", "epochs_run", "parameters"]


@pytest.fixture(scope="module")
def gestures():
    return pick_classes(shrec.load_compact(), SMALL_GESTURES)


def board(data, experiment, with_outputs=False, **kwargs):
    """Two architectures and a two-seed 1D-CNN ensemble on three real SHREC'17 gestures:
    three trainings (cnn, tcn, cnn seed 1) and the ensemble."""
    kwargs = {"archs": ("cnn", "tcn"), "ensemble": ("cnn", "cnn"), "epochs": 2, **kwargs}
    out, outputs = architecture_leaderboard(
        data, class_counts=(3,), experiment=experiment, n_bootstrap=20, **kwargs
    )
    return (out.set_index("arch"), outputs) if with_outputs else out.set_index("arch")


def training_runs(experiment):
    import train_with_mlflow as tracking

    return [
        run
        for run in tracking.finished_runs(experiment)
        if run.kind == "config" and "run_key" in run.tags
    ]


def test_a_second_board_and_champion_reuse_their_trainings_and_fresh_trains_again(
    mlflow_store, gestures
):
    first, outputs = board(gestures, "seq-board", with_outputs=True)
    assert (first.attrs["trainings"], first.attrs["reused"]) == (3, 0)
    assert len(training_runs("seq-board")) == 4  # three trainings and the ensemble

    again = board(gestures, "seq-board")
    assert again.attrs["reused"] == 3
    assert len(training_runs("seq-board")) == 4, "a reused training logged a new run"
    assert again["run_id"].to_dict() == first["run_id"].to_dict()
    # the reused models, loaded from the store and scored again, score as they did
    assert again[SCORES].equals(first[SCORES])

    # one architecture is enough to see a changed configuration or `fresh` train again; the
    # board's seed (notebook 03's parameter) reaches the model's initialisation (and the split,
    # where subjects have as many sequences: the seed breaks those ties)
    seeded = board(gestures, "seq-board", archs=("tcn",), ensemble=(), seed=5)
    assert seeded.attrs["reused"] == 0, "a changed configuration reused a run"
    import train_with_mlflow as tracking

    params = tracking.get_run(seeded.loc["tcn", "run_id"]).params
    assert params["seed"] == "5", params
    fresh = board(gestures, "seq-board", archs=("tcn",), ensemble=(), fresh=True)
    assert fresh.attrs["reused"] == 0 and fresh.attrs["trainings"] == 1
    assert fresh.loc["tcn", "run_id"] != first.loc["tcn", "run_id"]
    same = fresh.loc[["tcn"], SCORES].equals(first.loc[["tcn"], SCORES])
    assert same, "training is deterministic on one machine"
    champion_refits_are_reused_and_not_registered_twice(gestures, outputs[(3, "ensemble")])


def test_a_dask_leaderboard_logs_the_same_runs_and_metrics_as_a_serial_one(mlflow_store, gestures):
    # two trainings on the cluster's two workers (cnn, cnn seed 1) and the ensemble of both
    serial = board(gestures, "seq-serial", archs=("cnn",), engine=Engine("serial"))
    dask = board(gestures, "seq-dask", archs=("cnn",), engine=Engine("dask", workers=2))
    assert dask.attrs["reused"] == 0
    assert sorted(dask.index) == sorted(serial.index) == ["cnn", "ensemble"]
    assert dask[SCORES].sort_index().equals(serial[SCORES].sort_index())
    names = sorted(run.run_name for run in training_runs("seq-dask"))
    assert names == sorted(run.run_name for run in training_runs("seq-serial"))
    assert names == ["cnn 3-class", "cnn seed 1 3-class", "ensemble 3-class"]


def champion_refits_are_reused_and_not_registered_twice(gestures, validated):
    """The leaderboard's champion (an ensemble of two 1D-CNNs: its refit is two fits), refit on
    every subject and registered; the same store as the leaderboard's test, its trainings
    reused."""
    import numpy as np

    import train_with_mlflow as tracking
    from gesturelab.training.seq_experiment import refit_champions, train_champion

    def champion(**kwargs):
        return train_champion(
            gestures,
            validated=validated,
            register_as="three-gestures",
            experiment="seq-board",
            n_bootstrap=20,
            **kwargs,
        )

    first = champion(reuse=True)
    again = champion(reuse=True)
    assert again.run.run_id == first.run.run_id
    assert again.registered_version == first.registered_version == "1"
    assert again.final.best_epoch == first.final.best_epoch
    # notebook 03 refits its champions side by side on the engine, each member a task (that a
    # worker learns what this process learns: the tests of the board above); put together,
    # the members are the model train_champion refit here, and it logs them as they are
    fitted = refit_champions(gestures, {3: validated}, experiment="seq-board")
    assert fitted[3].config == first.final.config
    for mine, theirs in zip(first.final.model.get_weights(), fitted[3].model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    refit = champion(fitted=fitted[3])  # reuse=False: train-seq's default refits
    assert refit.final is fitted[3]
    assert refit.run.run_id != first.run.run_id
    assert refit.registered_version == "2"
    assert tracking.alias_run_id("three-gestures", "champion") == refit.run.run_id
    # a refit that train_champion(reuse=True) would find is not trained again
    assert not refit_champions(gestures, {3: validated}, experiment="seq-board", reuse=True)


def test_the_streaming_notebooks_model_is_the_leaderboards_training_reused(mlflow_store, gestures):
    """Notebook 07 trains DD-Net on the leaderboard's split: the board's finished run answers it
    (loaded, not trained again), and scores exactly as a training in this process would."""
    import numpy as np

    from gesturelab.studies.stream_eval import held_out_model

    first = board(gestures, "seq-stream", archs=("ddnet",), ensemble=(), engine=Engine("joblib"))
    run_id = first.loc["ddnet", "run_id"]
    predictor, reused, held_out = held_out_model(
        gestures, "ddnet", epochs=2, experiment="seq-stream"
    )
    assert reused.run is not None and reused.run.run_id == run_id
    runs = training_runs("seq-stream")
    assert [run.run_id for run in runs] == [run_id], "reusing the run logged a new one"
    assert runs[0].tags["reused_times"] == "1"

    trained_predictor, trained, trained_held_out = held_out_model(
        gestures, "ddnet", epochs=2, experiment="seq-stream", reuse=False
    )
    assert trained.run is None
    assert trained.validation_subjects == reused.validation_subjects
    assert len(trained_held_out) == len(held_out)
    # the leaderboard trained it in a worker process: the same weights as a training here
    np.testing.assert_array_equal(trained.scores, reused.scores)
    assert trained_predictor.metadata == predictor.metadata
