"""The sequence leaderboard's rules (which rows each believes) and how the rule study scores
them on held-out subjects (the champions' pooled accuracy, regret, the ranking's correlation);
the study's trainings run in notebook 03's test."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from gesturelab import config
from gesturelab.studies.seq_rule_study import _score_rules, best_rules
from gesturelab.training.seq_rules import SEQUENCE_RULES, champion_pick


def board_rows(fold: int, val: dict) -> pd.DataFrame:
    parameters = {"tcn": 300, "cnn": 100, "ddnet": 150, "ensemble": 250}
    return pd.DataFrame(
        [
            {
                "classes": 2,
                "fold": fold,
                "arch": arch,
                "parameters": parameters[arch],
                "val_accuracy": acc,
                "val_f1_macro": f1,
            }
            for arch, (acc, f1) in val.items()
        ]
    )


def test_each_rule_names_the_rows_it_believes():
    rows = board_rows(0, {"tcn": (0.90, 0.88), "cnn": (0.895, 0.90), "ddnet": (0.90, 0.89),
                          "ensemble": (0.85, 0.85)})  # fmt: skip
    picks = {name: rule.pick(rows) for name, rule in SEQUENCE_RULES.items()}
    assert picks == {
        "accuracy": ("ddnet",),  # tied with the TCN: the smaller model
        "macro-f1": ("cnn",),
        "smallest-close": ("cnn",),  # within 0.01 of the best, and the smallest
        "ensemble": ("ensemble",),
        "top-two": ("ddnet", "tcn"),
    }
    assert champion_pick(rows, 2) == picks[config.SEQUENCE_SELECTION_RULE]
    with pytest.raises(ValueError, match="no rows of 14 classes"):
        champion_pick(rows, 14)
    # a board without an ensemble: the ensemble rule takes the best validated model
    assert SEQUENCE_RULES["ensemble"].pick(rows[rows["arch"] != "ensemble"]) == ("ddnet",)


def test_the_study_scores_each_rule_by_its_champions_on_held_out_subjects():
    # Two folds of four held-out sequences (two subjects each); every model's class
    # probabilities there, and its validation scores inside the rest.
    truth = np.array([0, 0, 1, 1])
    held = {
        (2, fold): SimpleNamespace(classes=("a", "b"), labels=truth, subjects=np.array(s))
        for fold, s in ((0, [1, 1, 2, 2]), (1, [3, 3, 4, 4]))
    }

    def probabilities(predicted, confidence=0.9):
        out = np.full((4, 2), 1 - confidence)
        out[np.arange(4), predicted] = confidence
        return out

    scores = {
        (2, 0, "tcn"): probabilities([0, 0, 1, 0]),  # 3 of 4
        (2, 0, "cnn"): probabilities([0, 0, 1, 1], 0.6),  # 4 of 4, unsure
        (2, 0, "ensemble"): probabilities([1, 0, 1, 0]),  # 2 of 4
        (2, 1, "tcn"): probabilities([0, 0, 1, 1]),
        (2, 1, "cnn"): probabilities([1, 1, 1, 1], 0.6),
        (2, 1, "ensemble"): probabilities([0, 0, 1, 1]),
    }
    boards = pd.concat(
        [
            board_rows(0, {"tcn": (0.9, 0.9), "cnn": (0.8, 0.8), "ensemble": (0.7, 0.7)}),
            board_rows(1, {"tcn": (0.9, 0.9), "cnn": (0.8, 0.8), "ensemble": (0.95, 0.95)}),
        ],
        ignore_index=True,
    )
    boards["held_out_accuracy"] = [
        float(np.mean(scores[2, f, a].argmax(1) == truth))
        for f, a in zip(boards["fold"], boards["arch"])
    ]
    rules = _score_rules(boards, scores, held, (2,), 2, n_bootstrap=50).set_index("rule")

    accuracy = rules.loc["accuracy"]  # the TCN (3 of 4), then the ensemble (4 of 4)
    assert accuracy["picks"] == "tcn, ensemble"
    assert accuracy["held_out_accuracy"] == pytest.approx(7 / 8)
    assert accuracy["mean_regret"] == pytest.approx((0.25 + 0) / 2)
    assert accuracy["folds_best"] == 1
    assert accuracy["f1_low"] <= accuracy["held_out_f1_macro"] <= accuracy["f1_high"]
    # four subjects of two sequences: their accuracies 1/2, 1, 1, 1 resampled
    assert 0.5 <= accuracy["accuracy_low"] < 7 / 8 < accuracy["accuracy_high"] == 1.0
    # the ensemble rule: 2 of 4, then 4 of 4
    assert rules.loc["ensemble", "held_out_accuracy"] == pytest.approx(6 / 8)
    # top-two averages the two singles' probabilities: the sure TCN outvotes the unsure CNN
    # on the fourth sequence of fold 0 (3 of 4) and on the first two of fold 1 (4 of 4)
    top_two = rules.loc["top-two"]
    assert top_two["picks"] == "tcn+cnn, tcn+cnn"
    assert top_two["held_out_accuracy"] == pytest.approx(7 / 8)
    assert rules.loc["smallest-close", "picks"] == "tcn, ensemble"  # nothing within 0.01
    # Spearman's rho of validation against held-out accuracy: fold 0 swaps the TCN and the
    # CNN (0.5); fold 1 orders them right, the ensemble tied with the TCN held out (0.866)
    assert accuracy["rank_correlation"] == pytest.approx((0.5 + np.sqrt(3) / 2) / 2)
    # rules of equal held-out accuracy tie, lower regret first
    assert best_rules(rules.reset_index()) == {
        2: ["accuracy", "macro-f1", "smallest-close", "top-two"]
    }
