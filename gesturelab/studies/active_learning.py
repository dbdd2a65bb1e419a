"""Which examples are worth labelling: uncertainty sampling against random sampling, with the
same labelling budget, on real data.

A pool of training examples whose labels are hidden, and a test split that is never labelled
(the grouped split the sweep uses). Each run starts from one labelled example per class, drawn
at random, then asks for ``step`` labels at a time, chosen by a ``STRATEGIES`` entry from what a
model trained on the labels so far predicts for the rest of the pool; after each batch the model
is scored on the test split. Runs differ by ``seed`` (the first examples and the random
choices), and the curves' intervals are over seeds. The question the study answers: at which
budget does each strategy reach what training on every label of the pool gives?
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gesturelab.evaluation.metrics import classification_metrics, uncertainty


def _random(probabilities, rng, k):
    return rng.permutation(len(probabilities))[:k]


def _margin(probabilities, rng, k):
    return np.argsort(uncertainty(probabilities)["margin"].to_numpy(), kind="stable")[:k]


def _entropy(probabilities, rng, k):
    spread = uncertainty(probabilities)["entropy"].to_numpy()
    return np.argsort(-spread, kind="stable")[:k]  # the most spread first


# How the next labels are chosen from the unlabelled pool: (probabilities, rng, k) -> indices.
STRATEGIES = {"random": _random, "margin": _margin, "entropy": _entropy}


def learning_curves(
    features,
    labels,
    test_features,
    test_labels,
    make_model,
    *,
    strategies=("random", "margin"),
    step: int = 20,
    seeds=range(5),
    max_budget: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, full): one row per strategy, seed and budget with the test accuracy and
    macro-F1 of a model trained on that many labels; and the same scores of a model trained on
    every label of the pool (the target). ``make_model()`` gives a fresh, unfitted
    scikit-learn classifier with ``predict_proba``; ``features`` are the pool's model inputs."""
    X, y = np.asarray(features), np.asarray(labels, dtype=object)
    X_test, y_test = np.asarray(test_features), np.asarray(test_labels, dtype=object)
    classes = np.unique(y)
    full_model = make_model().fit(X, y)
    scores = classification_metrics(y_test, full_model.predict(X_test))
    full = pd.DataFrame(
        [{"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"], "labels": len(y)}]
    )
    budget_end = min(len(y), max_budget or len(y))
    rows = []
    for strategy in strategies:
        choose = STRATEGIES[strategy]
        for seed in seeds:
            rng = np.random.default_rng(seed)
            # one of each class to start with, the same for every strategy of this seed
            start = np.random.default_rng(seed)
            labelled = [int(start.choice(np.flatnonzero(y == c))) for c in classes]
            while True:
                model = make_model().fit(X[labelled], y[labelled])
                scores = classification_metrics(y_test, model.predict(X_test))
                rows.append(
                    {
                        "strategy": strategy,
                        "seed": seed,
                        "budget": len(labelled),
                        "accuracy": scores["accuracy"],
                        "f1_macro": scores["f1_macro"],
                    }
                )
                if len(labelled) >= budget_end:
                    break
                pool = np.setdiff1d(np.arange(len(y)), labelled)
                k = min(step, budget_end - len(labelled), len(pool))
                picked = choose(model.predict_proba(X[pool]), rng, k)
                labelled += pool[picked].tolist()
    return pd.DataFrame(rows), full


def summarise(curves: pd.DataFrame, full: pd.DataFrame, tolerance: float = 0.01):
    """(table, reached): per strategy and budget the mean macro-F1 over seeds with a 95 %
    interval (t over seeds); and per strategy the budget at which each seed's curve first
    comes within ``tolerance`` of the full-label macro-F1 (median and range over seeds; NaN
    for a seed that never does)."""
    from scipy import stats

    grouped = curves.groupby(["strategy", "budget"])["f1_macro"]
    table = grouped.agg(["mean", "std", "count"]).reset_index()
    half = stats.t.ppf(0.975, np.maximum(table["count"] - 1, 1)) * table["std"].fillna(0.0)
    table["low"] = table["mean"] - half / np.sqrt(table["count"])
    table["high"] = table["mean"] + half / np.sqrt(table["count"])
    target = float(full["f1_macro"].iloc[0]) - tolerance
    reached = []
    for (strategy, seed), run in curves.groupby(["strategy", "seed"]):
        hits = run.loc[run["f1_macro"] >= target, "budget"]
        reached.append(
            {"strategy": strategy, "seed": seed, "budget": hits.min() if len(hits) else np.nan}
        )
    reached = pd.DataFrame(reached)
    summary = reached.groupby("strategy")["budget"].agg(
        median="median", low="min", high="max", seeds_reaching="count"
    )
    summary["seeds"] = reached.groupby("strategy")["seed"].nunique()
    summary["target_f1"] = target
    summary["pool"] = int(full["labels"].iloc[0])
    return table, summary.reset_index()
