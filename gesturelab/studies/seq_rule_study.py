"""Is the sequence leaderboard's rule any good? Each rule tested on subjects no choice saw.

Whole subjects are held out a fold at a time. Inside the rest the leaderboard runs as notebook
03 runs it (every architecture trained on some subjects, stopped early and validated on the
others, the ensemble of the default members added), each rule of ``SEQUENCE_RULES`` names a
champion from those rows, and that champion is scored on the held-out subjects. The validated
model stands in for the champion refit on every subject (a refit per fold would double the
hours): what is tested is which rows the rule believes, not the refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet, subject_folds
from gesturelab.evaluation.full_report import (
    fold_rank_correlation,
    grouped_accuracy_interval,
    grouped_interval,
    held_out_f1,
)
from gesturelab.models.seq_models import SINGLE_ARCHITECTURES
from gesturelab.training.seq_board import architecture_leaderboard
from gesturelab.training.seq_rules import SEQUENCE_RULES
from gesturelab.training.seq_scoring import evaluate_sequences


@dataclass
class SequenceRuleStudy:
    """What ``sequence_rule_study`` found, every label set together."""

    rules: pd.DataFrame  # one row per (label set, rule): held-out accuracy, macro-F1, regret
    boards: pd.DataFrame  # one row per (label set, fold, model): validation and held-out scores
    folds: list  # the held-out subjects of each outer fold


def sequence_rule_study(
    data: SequenceSet,
    *,
    archs=SINGLE_ARCHITECTURES,
    class_counts=tuple(config.SEQUENCE_MODEL_NAMES),
    outer_folds: int = 4,
    epochs: int | None = None,
    seed: int = config.SEQUENCE_SEED,
    experiment: str = config.SEQUENCE_RULE_EXPERIMENT,
    log: bool = True,
    engine=None,
    n_bootstrap: int = config.N_BOOTSTRAP,
    ensemble=None,
    fresh: bool = False,
) -> SequenceRuleStudy:
    """Every rule of ``SEQUENCE_RULES`` scored on held-out subjects (``outer_folds`` of them).

    log: each fold's leaderboard is logged to ``experiment`` and reused by run key, so a second
    run of the study costs minutes of scoring, not hours of training.
    ensemble: the leaderboard's ensemble members (None: its default; () none).
    fresh: train every fold's models again, reusing no finished run.
    """
    folds = subject_folds(data.subjects, outer_folds, seed)
    rows, scores = [], {}  # scores: (classes, fold, arch) -> held-out class probabilities
    held_out = {}  # (classes, fold) -> the held-out sequences of that label set
    for fold, subjects in enumerate(folds):
        outside = np.isin(data.subjects, subjects)
        print(f"rule study, fold {fold + 1} of {len(folds)}: subjects {list(subjects)} held out")
        board, outputs = architecture_leaderboard(
            data.subset(~outside),
            archs=archs,
            class_counts=class_counts,
            epochs=epochs,
            experiment=experiment,
            seed=seed,
            n_bootstrap=n_bootstrap,
            log=log,
            engine=engine,
            publish=False,
            ensemble=ensemble,
            fresh=fresh,
        )
        for n_classes in class_counts:
            held = data.subset(outside).with_classes(n_classes)
            held_out[n_classes, fold] = held
            for _, row in board[board["classes"] == n_classes].iterrows():
                result = outputs[(n_classes, row["arch"])].result
                # the rules are compared on pooled folds (below): this fold's own intervals
                # are not read, a few resamples keep the report whole
                report, probabilities = evaluate_sequences(
                    result.model, held, result.config.frames, n_bootstrap=20, return_scores=True
                )
                scores[n_classes, fold, row["arch"]] = probabilities
                rows.append(
                    {
                        "classes": n_classes,
                        "fold": fold,
                        "arch": row["arch"],
                        "parameters": row["parameters"],
                        "val_accuracy": row["val_accuracy"],
                        "val_f1_macro": row["val_f1_macro"],
                        "held_out_accuracy": report["metrics"]["accuracy"],
                        "held_out_f1_macro": report["metrics"]["f1_macro"],
                    }
                )
    boards = pd.DataFrame(rows)
    rules = _score_rules(boards, scores, held_out, class_counts, len(folds), n_bootstrap)
    return SequenceRuleStudy(rules, boards, [list(map(int, f)) for f in folds])


def _score_rules(boards, scores, held_out, class_counts, n_folds, n_bootstrap) -> pd.DataFrame:
    """Per label set and rule: the champions it named, pooled over the held-out folds
    (accuracy and macro-F1 with an interval over resampled subjects), how far each fell short of
    the best model of its fold there (regret), and how well validation accuracy ranks them."""
    table = []
    for n_classes in class_counts:
        for rule in SEQUENCE_RULES.values():
            truth, predicted, subjects, regret, named = [], [], [], [], []
            for fold in range(n_folds):
                rows = boards[(boards["classes"] == n_classes) & (boards["fold"] == fold)]
                members = rule.pick(rows)
                mean = sum(scores[n_classes, fold, a] for a in members) / len(members)
                held = held_out[n_classes, fold]
                names = np.asarray(held.classes, dtype=object)
                truth.append(names[held.labels])
                predicted.append(names[mean.argmax(axis=1)])
                subjects.append(held.subjects)
                best = rows["held_out_accuracy"].max()
                regret.append(best - float(np.mean(predicted[-1] == truth[-1])))
                named.append("+".join(members))
            truth, predicted = np.concatenate(truth), np.concatenate(predicted)
            subjects = np.concatenate(subjects)
            low, high = grouped_interval(truth, predicted, subjects, n=n_bootstrap)
            accuracy_low, accuracy_high = grouped_accuracy_interval(
                truth == predicted, subjects, n_bootstrap
            )
            table.append(
                {
                    "classes": n_classes,
                    "rule": rule.name,
                    "held_out_accuracy": float(np.mean(truth == predicted)),
                    "accuracy_low": accuracy_low,
                    "accuracy_high": accuracy_high,
                    "held_out_f1_macro": held_out_f1(truth, predicted),
                    "f1_low": low,
                    "f1_high": high,
                    "mean_regret": float(np.mean(regret)),
                    "folds_best": int(sum(r <= 1e-12 for r in regret)),
                    "picks": ", ".join(named),
                }
            )
    rules = pd.DataFrame(table)
    rules["rank_correlation"] = rules["classes"].map(
        {
            n: fold_rank_correlation(
                boards[boards["classes"] == n], "val_accuracy", "held_out_accuracy"
            )
            for n in class_counts
        }
    )
    return rules


def best_rules(rules: pd.DataFrame) -> dict:
    """{label set: the rules whose champions scored best on its held-out subjects}: every rule
    with the best held-out accuracy (rules that named the same models tie), best first by mean
    regret, then in the table's order."""
    best = {}
    for n_classes, rows in rules.groupby("classes", sort=True):
        top = rows[rows["held_out_accuracy"] >= rows["held_out_accuracy"].max() - 1e-12]
        best[n_classes] = list(top.sort_values("mean_regret", kind="stable")["rule"])
    return best
