"""Notebook 03's studies and notebook 08's personalisation study give the same rows whether
their fits run here or as tasks of a two-process joblib engine: the engine changes where a fit
runs, not what it learns."""

import numpy as np
import pytest

from gesturelab import personalisation, shrec
from gesturelab.engine import Engine
from gesturelab.seq_studies import gesto_study, pick_classes, scaling_study
from tests.conftest import SMALL_GESTURES

pytestmark = [pytest.mark.slow, pytest.mark.train]


def without_seconds(table):
    return table.drop(columns=["seconds"]).reset_index(drop=True)


def test_the_gesto_ladder_learns_the_same_on_two_worker_processes():
    data = shrec.load_compact()
    here, here_info = gesto_study(data, epochs=2)
    there, there_info = gesto_study(data, epochs=2, engine=Engine("joblib", 2))
    assert len(here) == 9
    assert without_seconds(here).equals(without_seconds(there))
    assert list(here_info["histories"]) == list(there_info["histories"])
    assert here_info["histories"] == there_info["histories"]


def test_the_scaling_points_learn_the_same_on_two_worker_processes():
    data = pick_classes(shrec.load_compact(), SMALL_GESTURES)
    kwargs = {"archs": ("cnn", "tcn"), "sizes": (3, None), "steps": 4, "min_epochs": 1}
    here = scaling_study(data, **kwargs)
    there = scaling_study(data, engine=Engine("joblib", 2), **kwargs)
    assert list(here["arch"]) == ["cnn", "cnn", "tcn", "tcn"]
    assert here["all"].tolist() == [False, True, False, True]
    assert without_seconds(here).equals(without_seconds(there))


def test_base_models_and_calibrations_are_the_same_on_two_worker_processes():
    gestures = pick_classes(shrec.load_compact(), SMALL_GESTURES)
    # Eight subjects in four folds: two folds' base models, two users each.
    data = gestures.subset(np.isin(gestures.subjects, np.unique(gestures.subjects)[:8]))
    plan = {"samples_per_class": [1, 2], "strategies": ["head_only"], "epochs": 2}

    def both(engine):
        bases = personalisation.fold_models(data, 4, 2, arch="cnn", epochs=2, engine=engine)
        return bases, personalisation.study(data, bases, engine=engine, **plan)

    here_bases, here = both(None)
    there_bases, there = both(Engine("joblib", 2))
    for (held, model, frames), (there_held, there_model, there_frames) in zip(
        here_bases, there_bases, strict=True
    ):
        assert list(held) == list(there_held) and frames == there_frames
        for mine, theirs in zip(model.get_weights(), there_model.get_weights(), strict=True):
            assert (mine == theirs).all()
    assert [len(held) for held, _, _ in here_bases] == [2, 2]
    assert len(here) == 2 * 4
    assert without_seconds(here).equals(without_seconds(there))
