"""Notebook 03's studies give the same rows whether their fits run here or as tasks of a
two-process joblib engine: the engine changes where a fit runs, not what it learns."""

import pytest

from gesturelab.datasets import shrec
from gesturelab.datasets.sequences import pick_classes
from gesturelab.studies.seq_studies import gesto_study, scaling_study
from gesturelab.training.engine import Engine
from tests.conftest import SMALL_GESTURES

pytestmark = [pytest.mark.slow, pytest.mark.train]


def without_seconds(table):
    return table.drop(columns=["seconds"]).reset_index(drop=True)


def test_the_gesto_ladder_learns_the_same_on_two_worker_processes():
    """Two steps that use every option of the ladder between them (0b: LSTM, ReLU, pixel scale,
    random validation; 6: TCN, subject validation, features, augmentation, AdamW with its
    schedule, label smoothing); the whole ladder runs in the quick reproduce."""
    data = shrec.load_compact()
    steps = ("0b", "6")
    here, here_info = gesto_study(data, epochs=2, steps=steps)
    there, there_info = gesto_study(data, epochs=2, engine=Engine("joblib", 2), steps=steps)
    assert [c.split(" ", 1)[0] for c in here["condition"]] == list(steps)
    assert without_seconds(here).equals(without_seconds(there))
    assert list(here_info["histories"]) == list(there_info["histories"])
    assert here_info["histories"] == there_info["histories"]


def test_the_scaling_points_learn_the_same_on_two_worker_processes():
    data = pick_classes(shrec.load_compact(), SMALL_GESTURES)
    # one architecture: the engine's equivalence does not depend on which one trains
    kwargs = {"archs": ("cnn",), "sizes": (3, None), "steps": 4, "min_epochs": 1}
    here = scaling_study(data, **kwargs)
    there = scaling_study(data, engine=Engine("joblib", 2), **kwargs)
    assert list(here["arch"]) == ["cnn", "cnn"]
    assert here["all"].tolist() == [False, True]
    assert without_seconds(here).equals(without_seconds(there))
