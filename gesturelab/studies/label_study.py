"""The labelling study (notebook 09): does the label check find labels made wrong on purpose
(static landmark files and sequences), and how many labels does uncertainty sampling need?"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN, WRIST
from gesturelab.datasets.sequences import hand_frames, hand_size
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
                seconds = time.perf_counter() - started
                rows_of = result.table.sort_values("row")["line"].to_numpy() - 2  # header: line 1
                rows += _scored(name or Path(path).stem, rate, seed, wrong, result, seconds,
                                "static", rows_of)  # fmt: skip
    return pd.DataFrame(rows)


def injected_sequence_check(
    data, rates=(0.05,), seeds=(0,), name="sequences", arch="ddnet", progress=False
) -> pd.DataFrame:
    """The same for a ``SequenceSet``: labels changed at random, the label check run with
    ``arch`` trained per fold (``None``: the quick model); folds by subject as always."""
    from dataclasses import replace

    rows = []
    for rate in rates:
        for seed in seeds:
            flipped, wrong = label_check.flip_labels(data.labels, rate, seed)
            noisy = replace(data, labels=flipped.to_numpy(dtype=np.int64))
            started = time.perf_counter()
            result = label_check.check_sequences(noisy, arch=arch, progress=progress)
            seconds = time.perf_counter() - started
            rows += _scored(name, rate, seed, wrong, result, seconds, "sequences")
    return pd.DataFrame(rows)


# The rules each injected check is scored with, from the same out-of-fold probabilities.
RULES = ("prune_by_noise_rate", "low_self_confidence")


def _scored(dataset, rate, seed, wrong, result, seconds, kind, positions=None) -> list[dict]:
    """One row per rule of ``RULES``: precision and recall against the examples made wrong;
    ``positions`` maps the check's examples to the positions ``wrong`` counts in."""
    wrong = set(np.asarray(wrong).tolist())
    positions = np.arange(len(result.labels)) if positions is None else np.asarray(positions)
    rows = []
    for rule in RULES:
        flagged = set(positions[result.flags(rule)].tolist())
        found = len(flagged & wrong)
        rows.append({
            "dataset": dataset,
            "rate": rate,
            "seed": seed,
            "rule": rule,
            "default": rule == label_check.FLAG_BY[kind],
            "rows": len(positions),
            "wrong": len(wrong),
            "flagged": len(flagged),
            "found": found,
            "precision": found / max(len(flagged), 1),
            "recall": found / max(len(wrong), 1),
            "estimated_wrong": result.estimated_wrong,
            "seconds": round(seconds, 1),
        })  # fmt: skip
    return rows


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


# Landmarks whose distance tells a closing hand from an opening one.
THUMB_TIP, INDEX_TIP = 4, 8
MOTION = ("travel_x", "travel_y", "opening")


def gesture_motion(data) -> pd.DataFrame:
    """What a person checks first in a flagged gesture, per sequence and in hand sizes (the
    wrist to the middle finger's knuckle): how far the wrist moved along the recording's x and
    y axes from the first five frames to the last five, and how much the thumb and index tips
    opened (negative: closed)."""
    rows = []
    for sequence in data.sequences:
        hand = hand_frames(sequence)
        size = hand_size(hand)
        travel = (hand[-5:, WRIST].mean(axis=0) - hand[:5, WRIST].mean(axis=0)) / size
        gap = np.linalg.norm(hand[:, THUMB_TIP] - hand[:, INDEX_TIP], axis=-1) / size
        rows.append((travel[0], travel[1], gap[-5:].mean() - gap[:5].mean()))
    return pd.DataFrame(rows, columns=list(MOTION)).round(2)


def sequence_findings(data, result, top: int = 12) -> pd.DataFrame:
    """The ``top`` flagged sequences of a label check with their motion beside the median
    motion of their given class and of the class the model prefers, so a reader can judge
    (a ``swipe_left`` whose wrist travels like a ``swipe_right``'s is a wrong label)."""
    motion = gesture_motion(data)
    names = np.asarray(data.classes, dtype=object)[np.asarray(data.labels)]
    medians = motion.groupby(names).median()
    issues = result.issues.head(top)
    table = issues[["rank", "sequence", "subject", "label", "suggested", "p_label"]].copy()
    for key in ("finger", "essai"):
        if key in data.meta:
            table[key] = np.asarray(data.meta[key])[issues["sequence"]]
    for column in MOTION:
        table[column] = motion[column].to_numpy()[issues["sequence"]]
        given = medians[column].reindex(table["label"]).to_numpy()
        preferred = medians[column].reindex(table["suggested"]).to_numpy()
        table[f"{column}: label / suggested class"] = [
            f"{a:+.2f} / {b:+.2f}" for a, b in zip(given, preferred, strict=True)
        ]
    return table.reset_index(drop=True)
