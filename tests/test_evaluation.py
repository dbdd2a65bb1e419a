"""The evaluation report on cases whose answers are known."""

import numpy as np
import pytest

from gesturelab.evaluation.full_report import (
    bootstrap_intervals,
    calibration,
    evaluation_report,
    flat_metrics,
    paired_comparison,
    score_metrics,
)

CLASSES = ["a", "b", "c", "d", "e", "f"]


def one_hot(labels):
    return np.eye(len(CLASSES))[[CLASSES.index(x) for x in labels]]


def test_perfect_predictions():
    y = np.array(CLASSES * 5, dtype=object)
    report = evaluation_report(y, y, one_hot(y), CLASSES, n_bootstrap=50)
    metrics = report["metrics"]
    for name in (
        "accuracy",
        "f1_macro",
        "f1_micro",
        "f1_weighted",
        "cohen_kappa",
        "mcc",
        "roc_auc_ovr_macro",
        "roc_auc_ovr_weighted",
        "top1_accuracy",
    ):
        assert metrics[name] == pytest.approx(1.0), name
    assert report["calibration"]["ece"] == pytest.approx(0.0)
    assert report["intervals"]["accuracy"] == {
        "low": 1.0,
        "high": 1.0,
        "level": 0.95,
        "resamples": 50,
    }
    assert report["confused_pairs"] == [] and report["confidently_wrong"] == []


def test_top_k_counts_the_true_class_in_the_first_k():
    y = np.array(["a", "b"], dtype=object)
    scores = np.array([[0.1, 0.5, 0.3, 0.05, 0.03, 0.02], [0.0, 0.1, 0.2, 0.3, 0.35, 0.05]])
    metrics = score_metrics(y, scores, CLASSES)
    assert metrics["top1_accuracy"] == 0.0
    assert metrics["top3_accuracy"] == 0.5  # "a" is 3rd for row 0, "b" is 5th for row 1
    assert metrics["top5_accuracy"] == 1.0


def test_expected_calibration_error_of_an_overconfident_model():
    y = np.array(["a", "b"] * 10, dtype=object)
    scores = np.full((20, 6), 0.04)
    scores[:, 0] = 0.8  # always says "a" with confidence 0.8: right half the time
    assert calibration(y, scores, CLASSES)["ece"] == pytest.approx(0.3)


def test_confused_pairs_slices_and_examples():
    y = np.array(["a"] * 10 + ["b"] * 10, dtype=object)
    pred = y.copy()
    pred[:4] = "b"
    pred[10] = "a"
    scores = one_hot(pred) * 0.9 + 0.02
    hand = np.array(["Left", "Right"] * 10, dtype=object)
    report = evaluation_report(
        y,
        pred,
        scores,
        CLASSES,
        slices={"handedness": hand},
        row_ids=np.arange(100, 120),
        n_bootstrap=20,
    )
    assert report["confused_pairs"][0] == {"true": "a", "predicted": "b", "count": 4, "rate": 0.4}
    assert report["confusion_matrix_normalised"][0][:2] == [0.6, 0.4]
    assert {e["row"] for e in report["confidently_wrong"]} == {100, 101, 102, 103, 110}
    assert set(report["slices"]["handedness"]) == {"Left", "Right"}
    assert report["slices"]["handedness"]["Left"]["rows"] == 10
    assert "accuracy_ci_low" in flat_metrics(report) and "ece" in flat_metrics(report)


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.choice(CLASSES, 300).astype(object)
    pred = np.where(rng.random(300) < 0.8, y, "a").astype(object)
    interval = bootstrap_intervals(y, pred, n=300)["accuracy"]
    assert interval["low"] < np.mean(y == pred) < interval["high"]
    assert interval["high"] - interval["low"] < 0.15


def test_bootstrap_scores_are_scikit_learns_on_each_resample():
    """All resamples scored at once give, resample by resample, what a loop over resamples
    with scikit-learn's scores gives (rare classes, classes only predicted, integer labels)."""
    from sklearn.metrics import f1_score

    from gesturelab.evaluation.full_report import _bootstrap_scores

    rng = np.random.default_rng(1)
    for y, pred in (
        (rng.choice(["a", "b", "c", "rare"], 60, p=[0.4, 0.3, 0.28, 0.02]), None),
        (rng.integers(0, 5, 25), rng.integers(0, 7, 25)),
    ):
        y = y.astype(object)
        pred = np.where(rng.random(len(y)) < 0.7, y, "only-predicted") if pred is None else pred
        pred = pred.astype(object)
        scores = _bootstrap_scores(y, pred, n=200, seed=3)
        draws = np.random.default_rng(3)
        for r in range(200):
            rows = draws.integers(0, len(y), len(y))
            assert scores["accuracy"][r] == np.mean(y[rows] == pred[rows])
            truth, guess = y[rows].astype(str), pred[rows].astype(str)
            expected = f1_score(truth, guess, average="macro", zero_division=0)
            assert abs(scores["f1_macro"][r] - expected) < 1e-12, r


def test_paired_comparison():
    y = np.array(["a"] * 40, dtype=object)
    same = paired_comparison(y, y, y, n=50)
    assert same["mcnemar_p"] == 1.0 and same["difference"] == 0.0
    worse = y.copy()
    worse[:15] = "b"
    result = paired_comparison(y, y, worse, n=200)
    assert result["only_a_right"] == 15 and result["only_b_right"] == 0
    assert result["mcnemar_p"] < 0.001 and result["difference_low"] > 0


def test_weakest_classes_name_misses_and_absorptions():
    from gesturelab.studies.champion_report import Scored, weakest_classes

    # "a" is missed (taken for "b"); "c" is never missed but absorbs "d".
    y = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 10 + ["d"] * 10, dtype=object)
    pred = y.copy()
    pred[:4] = "b"
    pred[30:32] = "c"
    report = evaluation_report(y, pred, one_hot(pred), CLASSES[:4], n_bootstrap=10)
    scored = Scored("m", "task", "data", "run", report, y, pred)
    described = {name: how for name, _, how in weakest_classes(scored, k=4)}
    assert described["a"] == "mostly taken for b"
    assert described["c"] == "d taken for it"


def test_report_marks_the_champion_row_by_its_validation_run_else_its_architecture():
    from gesturelab.studies.champion_report import _is_champion_row
    from train_with_mlflow import RunRecord

    rows = [
        RunRecord(run_id, family=family, tags={"n_classes": n})
        for run_id, n, family in (("a", "14", "ddnet"), ("b", "14", "tcn"), ("c", "28", "ddnet"))
    ]
    board = rows
    from_notebook = {"validated_by_run": "b", "model_family": "tcn"}
    assert [_is_champion_row(r, board, from_notebook) for r in rows[:2]] == [False, True]
    from_cli = {"validated_by_run": "elsewhere", "model_family": "ddnet"}
    assert [_is_champion_row(r, board, from_cli) for r in rows] == [True, False, True]
    assert not any(_is_champion_row(r, board, {}) for r in rows)


def test_grouped_interval_resamples_whole_sources_and_counts_only_true_classes():
    from gesturelab.evaluation.full_report import grouped_interval, held_out_f1

    truth = np.array(["a"] * 6 + ["b"] * 6, dtype=object)
    assert grouped_interval(truth, truth, np.repeat(np.arange(4), 3)) == (1.0, 1.0)
    # a wrong answer naming a class the rows do not hold is not a class scored 0
    assert held_out_f1(truth[:6], np.array(["a"] * 5 + ["c"], dtype=object)) == pytest.approx(
        2 * 5 / 11
    )
    predicted = truth.copy()
    predicted[:3] = "b"  # one whole source wrong
    groups = np.repeat(np.arange(4), 3)
    low, high = grouped_interval(truth, predicted, groups, n=400)
    assert low < held_out_f1(truth, predicted) < high == 1.0
