"""The labelling study (notebook 09) on static landmark files: does the label check find
labels made wrong on purpose, and how many labels does uncertainty sampling need?"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN
from gesturelab.datasets.static_data import prepare
from gesturelab.models.static_families import build_pipeline, make_classifier
from gesturelab.studies.active_learning import learning_curves, summarise
from gesturelab.training import label_check


def injected_label_check(path, rates=(0.02, 0.05, 0.10), seeds=(0,), name=None) -> pd.DataFrame:
    """For each rate and seed: that share of the file's labels changed to another class at
    random, the file written again (so that its groups come from the noisy labels, as a
    user's would), the label check run on it; its precision and recall against the rows that
    were changed, and its estimate of how many are wrong."""
    clean = prepare(path, quarantine_dir=None, verbose=False)
    table = clean.loaded.data[[*clean.columns, LABEL_COLUMN]].reset_index(drop=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gesturelab-label-study-") as folder:
        for rate in rates:
            for seed in seeds:
                noisy = table.copy()
                flipped, wrong = label_check.flip_labels(table[LABEL_COLUMN], rate, seed)
                noisy[LABEL_COLUMN] = flipped.to_numpy()
                target = Path(folder) / f"noisy_{rate}_{seed}.csv"
                noisy.to_csv(target, index=False)
                started = time.perf_counter()
                result = label_check.check_static(
                    prepare(target, quarantine_dir=None, verbose=False)
                )
                flagged = set((result.issues["line"] - 2).tolist())  # header on line 1
                found = len(flagged & set(wrong.tolist()))
                rows.append(
                    {
                        "dataset": name or Path(path).stem,
                        "rate": rate,
                        "seed": seed,
                        "rows": len(table),
                        "wrong": len(wrong),
                        "flagged": len(flagged),
                        "found": found,
                        "precision": found / max(len(flagged), 1),
                        "recall": found / max(len(wrong), 1),
                        "estimated_wrong": result.estimated_wrong,
                        "seconds": round(time.perf_counter() - started, 1),
                    }
                )
    return pd.DataFrame(rows)


def active_learning(
    path,
    *,
    strategies=("random", "margin", "entropy"),
    step: int = 18,
    seeds=range(10),
    max_budget: int | None = None,
    tolerance: float = 0.01,
):
    """Learning curves on a static file's grouped split (``active_learning.learning_curves``):
    the pool is its training rows, scored on its test rows, with the sweep's logistic
    regression on the project's features (normalisation and scaling fitted on the unlabelled
    pool, which a labeller has). (curves, full, table, reached): see ``summarise``."""
    prepared = prepare(path, quarantine_dir=None, verbose=False)
    X, y = prepared.Xy("train")
    X_test, y_test = prepared.Xy("test")
    front = build_pipeline("logreg", {"C": 1.0})[:-1].fit(X)

    def make_model():
        return make_classifier("logreg", {"C": 1.0}, config.SEED)

    curves, full = learning_curves(
        front.transform(X),
        y,
        front.transform(X_test),
        y_test,
        make_model,
        strategies=strategies,
        step=step,
        seeds=seeds,
        max_budget=max_budget,
    )
    table, reached = summarise(curves, full, tolerance)
    return curves, full, table, reached


def curves_figure(table: pd.DataFrame, full: pd.DataFrame, reached: pd.DataFrame, title: str):
    """Mean macro-F1 against labels used, with the 95 % band over seeds, per strategy; the
    full-label score as a line."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.2))
    for strategy, part in table.groupby("strategy"):
        line = axis.plot(part["budget"], part["mean"], label=strategy)[0]
        axis.fill_between(part["budget"], part["low"], part["high"], alpha=0.2,
                          color=line.get_color())  # fmt: skip
        hit = reached.loc[reached["strategy"] == strategy, "median"]
        if len(hit) and np.isfinite(hit.iat[0]):
            axis.axvline(hit.iat[0], color=line.get_color(), linestyle=":", linewidth=1)
    target = float(full["f1_macro"].iloc[0])
    axis.axhline(target, color="black", linewidth=1, label=f"every label ({target:.3f})")
    axis.set_xlabel("labels used")
    axis.set_ylabel("test macro-F1 (mean over seeds, 95 % band)")
    axis.set_title(title)
    axis.set_ylim(max(0.0, table["low"].min() - 0.02), 1.0)
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure
