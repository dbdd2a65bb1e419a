"""Transfer estimates: the sweep's best configurations scored on groups of rows they never trained
on, one group held out at a time.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from sklearn.base import clone

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN
from gesturelab.datasets.splits import grouped_folds, source_groups
from gesturelab.datasets.static_data import PreparedData
from gesturelab.evaluation.full_report import grouped_interval
from gesturelab.evaluation.metrics import classification_metrics
from gesturelab.models.predictor import GesturePredictor
from gesturelab.models.static_ensemble import distribution_over
from gesturelab.models.static_families import (
    COMPOSITES,
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    REFERENCE_CONFIGS,
    build_pipeline,
    run_name,
)
from gesturelab.training import run_keys
from gesturelab.training.engine import SerialPool
from gesturelab.training.sweep_state import SweepState


def transfer_of_best(
    sweep: SweepState, best_rows: list[dict], families, pool=None, records=()
) -> pd.DataFrame:
    """``transfer_estimate`` of each family's best (and, in a full sweep, of the reference
    configurations, found in ``records``), added to the best configurations' runs. Each
    estimate is kept on its configuration's run (tag ``transfer_estimate``, with its key): a
    later sweep with the same key reads it."""
    chosen = list(best_rows)
    if not sweep.quick:
        chosen += [
            {**r, "run_name": f"reference {run_name(r['family'], r['params'])}"}
            for r in records
            if r["family"] in families
            and r["family"] in REFERENCE_CONFIGS
            and r["params"] == REFERENCE_CONFIGS[r["family"]]
            and r["features"] == DEFAULT_FEATURE_SET
            and not any(
                b["family"] == r["family"] and b["params"] == r["params"] for b in best_rows
            )
        ]
    # a quick sweep holds out groups five at a time, not one (a fit per group)
    max_groups = 5 if sweep.quick else TRANSFER_MAX_GROUPS
    found = {}
    for record in chosen:
        record["transfer_key"] = run_keys.derived_key(record["run_key"], "transfer", max_groups)
        stored = record.get("stored")
        kept = json.loads(stored.tags.get("transfer_estimate", "{}")) if stored else {}
        if not sweep.fresh and kept.get("key") == record["transfer_key"]:
            found[record["run_name"]] = {"name": record["run_name"], **kept["row"]}
    todo = [
        (r["run_name"], r["family"], r["params"], r["features"])
        for r in chosen
        if r["run_name"] not in found
    ]
    rows = dict(found)
    if todo:
        estimated = transfer_estimate(
            sweep.prepared,
            todo,
            seed=sweep.seed,
            pool=pool,
            rows=sweep.selection,
            max_groups=max_groups,
        )
        rows.update({row["name"]: row for row in estimated.to_dict("records")})
    transfer = pd.DataFrame([rows[r["run_name"]] for r in chosen])
    for record in chosen:
        row = rows[record["run_name"]]
        if record["run_name"] in found:
            continue
        run = tracking.open_run(record["run_id"])
        if any(record is best for best in best_rows):
            run.log_metrics({k: row[k] for k in TRANSFER_SCORES if np.isfinite(row.get(k, np.nan))})
        kept = {k: v for k, v in row.items() if k != "name"}
        run.set_tags(
            {
                "transfer_estimate": json.dumps(
                    {"key": record["transfer_key"], "row": kept}, default=float
                )
            }
        )
    for best in best_rows:
        row = rows[best["run_name"]]
        best.update({k: row.get(k, np.nan) for k in TRANSFER_SCORES})
    return transfer


# What a configuration's run keeps of its transfer estimate (macro-F1 with its 95 % interval
# over resampled held-out groups).
TRANSFER_SCORES = ("transfer_accuracy", "transfer_f1_macro", "transfer_f1_low", "transfer_f1_high")


def cross_val_oof(pipeline, X, y, folds, X_perturbed=None, scores: bool = False, only=None):
    """Out-of-fold predictions: each row predicted by a clone that never saw its fold.

    With ``X_perturbed`` (the same rows seen from another viewpoint) the same fold models also
    predict those. With ``scores``, the same fold models also give what a reject rule is chosen
    on (``_reject_scores``), so the champion's rule needs no second round of fold fits.
    ``only``: the folds to hold out (default: every fold); the other rows are left unpredicted.
    Returns (predicted, predicted_perturbed or None, seconds, scores or None).
    """
    predicted = np.empty(len(y), dtype=object)
    perturbed = np.empty(len(y), dtype=object) if X_perturbed is not None else None
    confidence, correct, kind = np.empty(len(y)), np.empty(len(y), dtype=bool), None
    start = time.perf_counter()
    for held, model in fold_models(pipeline, X, y, folds, only):
        predicted[held] = model.predict(X[held])
        if perturbed is not None:
            perturbed[held] = model.predict(X_perturbed[held])
        if scores:
            confidence[held], correct[held], kind = _reject_scores(model, X[held], y[held])
    seconds = time.perf_counter() - start
    return predicted, perturbed, seconds, (confidence, correct, kind) if scores else None


def fold_models(pipeline, X, y, folds, only=None):
    """(rows of a fold, a clone of ``pipeline`` fitted on every other row), fold by fold
    (``only``: those folds)."""
    for fold in np.unique(folds) if only is None else only:
        held = folds == fold
        yield held, clone(pipeline).fit(X[~held], y[~held])


def _reject_scores(model, X, y) -> tuple:
    """Per row: the score the reject rule thresholds, whether the best class is right, and the
    kind of score (``GesturePredictor.reject_score_kind``)."""
    predictor = GesturePredictor(model)
    probabilities, confidence = predictor.predict_with_scores(X)
    best = np.asarray(predictor.classes, dtype=object)[probabilities.argmax(axis=1)]
    return confidence, best == np.asarray(y, dtype=object), predictor.reject_score_kind


TRANSFER_MAX_GROUPS = 60  # held out one at a time up to this many groups, else 5 grouped folds


TRANSFER_FOLDS_PER_TASK = 6  # groups held out by one task of the engine


def transfer_estimate(
    prepared: PreparedData,
    candidates,
    block_size: int = 20,
    seed: int = config.SEED,
    pool=None,
    rows=None,
    max_groups: int = TRANSFER_MAX_GROUPS,
) -> pd.DataFrame:
    """How well each configuration transfers to a place of the file it never saw.

    Leave-one-source-block-out over all rows (users or subjects when the file has them; more
    than ``max_groups`` groups go through 5 grouped folds). Classes found in a single block are
    left out: no model can be trained and tested on them without leakage.
    candidates: (name, family, params, features) tuples. A composite (an ensemble of other
        configurations, ``static_families.COMPOSITES``) is not trained again: its held-out
        predictions are its members' held-out distributions averaged, which is what it would
        predict fitted on the same rows (its members are fitted on exactly those).
    pool: an open ``Engine`` pool to train the candidates on (default: one after another here).
    rows: a boolean mask of the rows to use (a sweep's selection subsample; default: all).
    """
    data = prepared.data if rows is None else prepared.data[rows]
    groups = source_groups(data, block_size)
    labels = data[LABEL_COLUMN].to_numpy(dtype=object)
    per_class = pd.Series(groups).groupby(labels).nunique()
    keep = np.isin(labels, per_class[per_class >= 2].index)
    n_groups = len(np.unique(groups[keep]))
    folds = (
        groups[keep]
        if n_groups <= max_groups
        else grouped_folds(labels[keep], groups[keep], 5, seed)
    )
    X = data.loc[keep, prepared.columns]
    rows = []
    if len(set(labels[keep])) < 2:  # every class sits in one place of the file: no estimate
        left_out = ", ".join(sorted(per_class[per_class < 2].index))
        return pd.DataFrame(
            [
                {
                    "name": name,
                    "family": family,
                    "transfer_accuracy": np.nan,
                    "transfer_f1_macro": np.nan,
                    "transfer_f1_low": np.nan,
                    "transfer_f1_high": np.nan,
                    "held_out_groups": n_groups,
                    "rows": 0,
                    "classes_left_out": left_out,
                    "seconds": 0.0,
                }
                for name, family, _, _ in candidates
            ]
        )
    classes = sorted(set(labels[keep]))
    trained = _trained_candidates(candidates)
    # A task holds out a few groups, not a candidate's every group: one slow candidate (the MLP,
    # 36 fits on the keypoint file) would otherwise keep one worker busy long after the others.
    chunks = np.array_split(
        np.unique(folds), max(1, len(np.unique(folds)) // TRANSFER_FOLDS_PER_TASK)
    )
    tasks = [
        (c, family, params, features, X, labels[keep], folds, chunk, classes)
        for c, (family, params, features) in enumerate(trained)
        for chunk in chunks
    ]
    pool = pool or SerialPool(None)
    results = pool.map(_transfer_task, tasks)
    n = int(keep.sum())
    trained_predictions = [np.empty(n, dtype=object) for _ in trained]
    distributions = [np.zeros((n, len(classes))) for _ in trained]
    trained_spent = [0.0] * len(trained)
    for (c, *_), (held, predicted, distribution, seconds) in zip(tasks, results, strict=True):
        trained_predictions[c][held] = predicted
        distributions[c][held] = distribution
        trained_spent[c] += seconds
    predictions, spent = [], []
    for _, family, params, features in candidates:
        if family in COMPOSITES:
            members = [trained.index(_member_key(m)) for m in COMPOSITES[family].members(params)]
            mean = sum(distributions[m] for m in members) / len(members)
            predictions.append(np.asarray(classes, dtype=object)[mean.argmax(axis=1)])
            spent.append(sum(trained_spent[m] for m in members))
        else:
            c = trained.index(_member_key((family, params, features)))
            predictions.append(trained_predictions[c])
            spent.append(trained_spent[c])
    for (name, family, _, _), predicted, seconds in zip(
        candidates, predictions, spent, strict=True
    ):
        metrics = classification_metrics(labels[keep], predicted)
        low, high = grouped_interval(labels[keep], predicted, groups[keep])
        rows.append(
            {
                "name": name,
                "family": family,
                "transfer_accuracy": metrics["accuracy"],
                "transfer_f1_macro": metrics["f1_macro"],
                "transfer_f1_low": low,
                "transfer_f1_high": high,
                "held_out_groups": n_groups,
                "folds": len(np.unique(folds)),
                "rows": int(keep.sum()),
                "classes_left_out": ", ".join(sorted(per_class[per_class < 2].index)),
                "seconds": seconds,
            }
        )
    return pd.DataFrame(rows)


def _member_key(member) -> tuple:
    family, params, features = member
    return family, json.dumps(params, sort_keys=True), features


def _trained_candidates(candidates) -> list[tuple]:
    """What must be trained for ``candidates``: each plain configuration once, and every member
    of a composite (keys of ``_member_key``, in first-seen order)."""
    trained = []
    for _, family, params, features in candidates:
        members = (
            COMPOSITES[family].members(params)
            if family in COMPOSITES
            else [(family, params, features)]
        )
        for member in members:
            if _member_key(member) not in trained:
                trained.append(_member_key(member))
    return trained


def _transfer_task(_shared, task) -> tuple:
    """One configuration's predictions for the rows of the groups ``chunk`` names, each group
    predicted by a fit on every row outside it: (those rows, their predictions, their class
    distributions over ``classes``, seconds)."""
    _, family, params, features, X, y, folds, chunk, classes = task
    pipeline = build_pipeline(family, json.loads(params), FEATURE_SETS[features])
    predicted = np.empty(len(y), dtype=object)
    distribution = np.zeros((len(y), len(classes)))
    start = time.perf_counter()
    for held, model in fold_models(pipeline, X, y, folds, only=chunk):
        predicted[held] = model.predict(X[held])
        distribution[held] = distribution_over(model, X[held], classes)
    held = np.isin(folds, chunk)
    seconds = time.perf_counter() - start
    return np.flatnonzero(held), predicted[held], distribution[held], seconds
