"""The label check: on the real HaGRID sample with labels made wrong on purpose it finds them,
and the command writes a ranked file a person can work through, for hands and for sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gesturelab import config
from gesturelab.datasets.sequence_formats import read_sequences
from gesturelab.datasets.static_data import prepare
from gesturelab.errors import GestureLabError
from gesturelab.training import label_check
from tests.conftest import cli_here


def test_five_percent_wrong_labels_are_found_on_the_hagrid_sample(tmp_path):
    table = pd.read_csv(config.HAGRID_SAMPLE_CSV)
    table["label"], wrong = label_check.flip_labels(table["label"], 0.05, seed=0)
    noisy = tmp_path / "noisy.csv"
    table.to_csv(noisy, index=False)
    result = label_check.check_static(prepare(noisy, verbose=False, quarantine_dir=None))
    flagged = set(result.issues["line"] - 2)  # file line -> row (header on line 1)
    found = len(flagged & set(wrong))
    assert found / len(flagged) >= 0.8, (found, len(flagged))  # precision
    assert found / len(wrong) >= 0.75, (found, len(wrong))  # recall
    assert abs(result.estimated_wrong - len(wrong)) <= 0.5 * len(wrong)
    # ranked worst first, with the label the model prefers
    assert result.table["rank"].tolist() == list(range(1, len(table) + 1))
    first = result.table.iloc[0]
    assert first["issue"] and first["suggested"] != first["label"]


def test_the_command_ranks_sequences_by_subject_and_writes_what_to_review(tmp_path):
    islr = config.DATA_DIR / "islr_signs_sample"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = cli_here("data", "check-labels", islr, "--out", tmp_path / "lc", "--quarantine-dir",
                   tmp_path / "q", store=store, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "folds by subject" in out.stdout and "labels flagged" in out.stdout
    assert "flagged by low_self_confidence" in out.stdout  # the sequences' rule
    ranked = pd.read_csv(tmp_path / "lc" / "label_check.csv")
    loaded = read_sequences(islr, quarantine_dir=None, verbose=False)
    assert len(ranked) == len(loaded.data)
    assert {"rank", "sequence", "subject", "source", "label", "suggested", "quality"} <= set(
        ranked.columns
    )
    assert (tmp_path / "lc" / "label_check.png").stat().st_size > 0
    refused = cli_here("data", "check-labels", islr, "--model", "models:/x/1", store=store,
                       cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "--arch" in refused.stderr


@pytest.mark.parametrize("seed", [3])
def test_folds_never_score_an_example_with_a_model_that_saw_its_group(seed):
    from sklearn.dummy import DummyClassifier

    labels = np.repeat([0, 1, 2], 20)
    groups = np.repeat(np.arange(12), 5)

    class Spy(DummyClassifier):
        seen: list = []

        def fit(self, X, y):
            Spy.seen.append(set(X[:, 0].astype(int)))
            return super().fit(X, y)

        def predict_proba(self, X):
            assert not (set(X[:, 0].astype(int)) & Spy.seen[-1])
            return super().predict_proba(X)

    X = groups[:, None].astype(float)
    label_check.out_of_fold(lambda: Spy(strategy="prior"), X, labels, groups, seed=seed)
    assert len(Spy.seen) == 5


@pytest.mark.parametrize(
    "rule, expected",
    [("low_self_confidence", set(range(4))), ("predicted_neq_given", set(range(8)))],
)
def test_the_flag_rule_decides_which_examples_are_flagged(rule, expected):
    # three classes the model separates; examples 0-3 of class a given label b (a confident
    # contradiction), examples 4-7 rightly labelled a but hesitantly predicted b: the lowest
    # self-confidence flags only the wrong labels, "predicted differs from given" both kinds
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], 40)
    probabilities = np.full((len(truth), 3), 0.05)
    probabilities[np.arange(len(truth)), truth] = 0.9
    probabilities[4:8] = [0.45, 0.5, 0.05]
    probabilities += rng.uniform(0, 0.01, probabilities.shape)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    given = truth.copy()
    given[:4] = 1
    ids = pd.DataFrame({"row": np.arange(len(truth))})
    result = label_check.check(given, probabilities, ["a", "b", "c"], ids, "toy", rule)
    assert set(result.issues["row"]) == expected
    assert set(np.flatnonzero(result.flags("low_self_confidence"))) == set(range(4))
    if rule == "low_self_confidence":  # the least likely given labels, as many as estimated
        lowest = result.table.sort_values("quality", kind="stable").head(len(expected))
        assert set(lowest["row"]) == expected and result.estimated_wrong == len(expected)
    with pytest.raises(GestureLabError, match="no flag rule 'lowest'"):
        label_check.check(given, probabilities, ["a", "b", "c"], ids, "toy", "lowest")


def test_sequence_study_scores_each_rule_and_shows_motion_beside_its_classes():
    from gesturelab.datasets import shrec
    from gesturelab.studies import label_study

    data = shrec.load_compact()
    # three subjects, four classes: a second of the quick model
    keep = np.isin(data.subjects, [2, 4, 26]) & np.isin(data.labels, [3, 2, 6, 7])
    part = data.subset(keep)
    table = label_study.injected_sequence_check(part, [0.1], [0], "part", arch=None)
    assert list(table["rule"]) == list(label_study.RULES)
    assert table["default"].tolist() == [False, True]  # sequences: low_self_confidence
    assert (table["wrong"] == round(0.1 * len(part))).all()
    assert (table["found"] <= table["flagged"]).all() and table["recall"].max() > 0
    motion = label_study.gesture_motion(part)
    names = np.asarray(part.classes, dtype=object)[part.labels]
    medians = motion.groupby(names).median()
    # the readings tell the gestures apart: swipes travel opposite ways, pinch closes
    assert medians.loc["swipe_left", "travel_x"] < 0 < medians.loc["swipe_right", "travel_x"]
    assert medians.loc["pinch", "opening"] < 0 < medians.loc["expand", "opening"]
    check = label_check.check_sequences(part)
    findings = label_study.sequence_findings(part, check, top=3)
    assert len(findings) == min(3, len(check.issues))
    assert {"finger", "essai", "travel_x", "opening: label / suggested class"} <= set(findings)
    with pytest.raises(GestureLabError, match="at least 2"):
        label_check.check_sequences(data.subset(data.subjects == 2))
