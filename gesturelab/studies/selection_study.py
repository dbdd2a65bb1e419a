"""Is the sweep's selection rule itself any good? Each rule tested on sources it never saw.

Whole sources of the file (HaGRID's source blocks, a keypoint file's recording runs, users or
subjects where the file names them) are held out a fold at a time. Inside the rest the sweep's
selection runs as the sweep runs it: every configuration of every family scored by grouped
cross-validation (clean and viewpoint-perturbed), each family's best chosen, the soft-voting
ensemble of those bests added as one more candidate (as the sweep offers it), every candidate
given a transfer estimate. Each candidate rule then names a champion, and that champion, fitted
on the rest, is scored on the held-out sources: the rule that names the champions that do best
there is the one that predicts what a user sees. One rule does not choose at all: it takes the
ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN
from gesturelab.datasets.splits import grouped_folds, source_groups
from gesturelab.datasets.static_data import PreparedData
from gesturelab.evaluation.full_report import (
    fold_rank_correlation,
    grouped_interval,
    held_out_f1,
)
from gesturelab.evaluation.metrics import classification_metrics
from gesturelab.evaluation.plots import interval_bars_figure, save_unless_same
from gesturelab.features.augment import perturb_viewpoint
from gesturelab.models.static_ensemble import distribution_over
from gesturelab.models.static_families import (
    DEFAULT_FEATURE_SET,
    ENSEMBLE,
    FAMILIES,
    FEATURE_SETS,
    build_pipeline,
    ensemble_configuration,
    run_name,
    sweep_grid,
)
from gesturelab.training.engine import Engine
from gesturelab.training.selection_rules import SELECTION_RULES, select_best
from gesturelab.training.sweep import split_configuration
from gesturelab.training.sweep_transfer import fold_models, transfer_estimate


@dataclass
class SelectionStudy:
    """What ``selection_study`` found on one dataset."""

    dataset: str
    rules: pd.DataFrame  # one row per rule: held-out macro-F1 with its interval, regret, picks
    picks: pd.DataFrame  # one row per (outer fold, family best): its scores and held-out F1
    outer_folds: int
    rows: int
    classes_left_out: str


def selection_study(
    prepared: PreparedData,
    dataset: str,
    *,
    quick: bool = False,
    families=FAMILIES,
    outer_folds: int = 5,
    tolerance: float = config.SELECTION_TOLERANCE,
    seed: int = config.SEED,
    engine: Engine | None = None,
    transfer_groups: int | None = None,
    progress: bool = True,
) -> SelectionStudy:
    """Every rule of ``SELECTION_RULES`` (and the ensemble) scored on held-out sources.

    quick: the families' quick grids and a 5-fold transfer estimate (the sweep's quick mode).
    transfer_groups: the transfer estimate's ``max_groups`` (default: as the sweep sets it).
    progress: a bar over the held-out folds.
    """
    data = prepared.data
    sources = source_groups(data, 20)
    labels = data[LABEL_COLUMN].to_numpy(dtype=object)
    per_class = pd.Series(sources).groupby(labels).nunique()
    # a class seen in one source only cannot be held out and learned at once
    keep = np.isin(labels, per_class[per_class >= 2].index)
    outer = np.full(len(data), -1)
    outer[keep] = grouped_folds(labels[keep], sources[keep], outer_folds, seed)
    grids = {f: sweep_grid(f, quick, prepared.dims) for f in families}
    if transfer_groups is None:
        transfer_groups = 5 if quick else 60
    engine = engine or Engine()
    picks = []
    predictions = {}  # (fold, name) -> predictions of the held-out rows
    for fold in tqdm(range(outer_folds), desc=f"rules on {dataset}", disable=not progress):
        inner = keep & (outer != fold)
        held = outer == fold
        bests = _family_bests(prepared, inner, grids, tolerance, seed, engine)
        candidates = [(b["name"], b["family"], b["params"], b["features"]) for b in bests.values()]
        with engine.open(None) as pool:
            transfer = transfer_estimate(
                prepared, candidates, seed=seed, pool=pool, rows=inner, max_groups=transfer_groups
            ).set_index("name")
        X_in, y_in = data.loc[inner, prepared.columns], labels[inner]
        X_out, y_out = data.loc[held, prepared.columns], labels[held]
        classes = sorted(set(y_in))
        held_out = {}  # family -> (predictions, class distributions) of the held-out rows
        for family, best in bests.items():
            if family == ENSEMBLE:
                continue
            model = build_pipeline(family, best["params"], FEATURE_SETS[best["features"]], seed)
            model.fit(X_in, y_in)
            held_out[family] = (
                np.asarray(model.predict(X_out), dtype=object),
                distribution_over(model, X_out, classes),
            )
        if ENSEMBLE in bests:  # what the ensemble fitted on the same rows predicts
            mean = sum(d for _, d in held_out.values()) / len(held_out)
            held_out[ENSEMBLE] = (np.asarray(classes, dtype=object)[mean.argmax(axis=1)], mean)
        for family, best in bests.items():
            predicted = held_out[family][0]
            predictions[fold, family] = predicted
            picks.append(
                {
                    "fold": fold,
                    "family": family,
                    "configuration": best["name"],
                    "val_f1_macro": best["val_f1_macro"],
                    "val_perturbed_f1_macro": best["val_perturbed_f1_macro"],
                    "top_val_f1_macro": best["top"],
                    "transfer_f1_macro": float(transfer.loc[best["name"], "transfer_f1_macro"]),
                    "held_out_f1_macro": held_out_f1(y_out, predicted),
                }
            )
    picks = pd.DataFrame(picks)
    rules = _score_rules(picks, predictions, outer, labels, sources, tolerance)
    return SelectionStudy(
        dataset=dataset,
        rules=rules,
        picks=picks,
        outer_folds=outer_folds,
        rows=int(keep.sum()),
        classes_left_out=", ".join(sorted(per_class[per_class < 2].index)),
    )


def _family_bests(prepared, inner, grids, tolerance, seed, engine) -> dict:
    """Each family's best configuration on the ``inner`` rows, chosen as the sweep chooses it
    (grouped CV over the file's own groups; the tolerance; viewpoint robustness)."""
    data = prepared.data
    X = data.loc[inner, prepared.columns]
    y = data.loc[inner, LABEL_COLUMN].to_numpy(dtype=object)
    folds = grouped_folds(y, data.loc[inner, "group"].to_numpy(), 5, seed)
    shared = {"X": X, "y": y, "folds": folds, "X_perturbed": perturb_viewpoint(X, seed)}
    tasks = [(family, c, seed) for family, grid in grids.items() for c in grid]
    with engine.open(shared) as pool:
        scored = list(pool.map(_cross_validate, tasks))
    bests = {}
    for family in grids:
        records = [r for r in scored if r["family"] == family]
        bests[family] = select_best(records, tolerance)
    if len(bests) >= 2:  # the sweep offers their ensemble too
        bests[ENSEMBLE] = _ensemble_of(bests, y)
    # the sweep measures its tolerance from the best configuration overall, the ensemble
    # included (not the best of the families' bests): the rules are given the same top
    top = max(r["val_f1_macro"] for r in [*scored, *bests.values()])
    return {family: {**best, "top": top} for family, best in bests.items()}


def _cross_validate(shared, task) -> dict:
    """A configuration's grouped-CV scores (clean and perturbed) and its out-of-fold class
    distributions, from which an ensemble of configurations is scored without a fit."""
    family, configuration, seed = task
    params, features = split_configuration(configuration)
    pipeline = build_pipeline(family, params, FEATURE_SETS[features], seed)
    X, X_perturbed, y = shared["X"], shared["X_perturbed"], shared["y"]
    classes = sorted(set(y))
    clean, perturbed = np.empty(len(y), dtype=object), np.empty(len(y), dtype=object)
    distributions = {"clean": np.zeros((len(y), len(classes))), "perturbed": None}
    distributions["perturbed"] = np.zeros_like(distributions["clean"])
    for held, model in fold_models(pipeline, X, y, shared["folds"]):
        clean[held] = model.predict(X[held])
        perturbed[held] = model.predict(X_perturbed[held])
        for kind, rows in (("clean", X[held]), ("perturbed", X_perturbed[held])):
            distributions[kind][held] = distribution_over(model, rows, classes)
    return {
        "family": family,
        "name": run_name(family, params, features),
        "params": params,
        "features": features,
        "val_f1_macro": classification_metrics(y, clean)["f1_macro"],
        "val_perturbed_f1_macro": classification_metrics(y, perturbed)["f1_macro"],
        "distributions": distributions,
    }


def _ensemble_of(bests: dict, y) -> dict:
    """The soft-voting ensemble of the families' bests as the sweep offers it to the rule: its
    grouped-CV scores from its members' out-of-fold distributions (what the ensemble, fitted
    fold by fold, predicts)."""
    classes = np.asarray(sorted(set(y)), dtype=object)
    scores = {}
    for kind, column in (("clean", "val_f1_macro"), ("perturbed", "val_perturbed_f1_macro")):
        mean = sum(b["distributions"][kind] for b in bests.values()) / len(bests)
        scores[column] = classification_metrics(y, classes[mean.argmax(axis=1)])["f1_macro"]
    members = [(b["family"], b["params"], b["features"]) for b in bests.values()]
    configuration = ensemble_configuration(members)
    return {
        "family": ENSEMBLE,
        "name": run_name(ENSEMBLE, configuration),
        "params": configuration,
        "features": DEFAULT_FEATURE_SET,
        **scores,
    }


def _score_rules(picks, predictions, outer, labels, sources, tolerance) -> pd.DataFrame:
    """Per rule: the champions it named, pooled over the held-out folds (macro-F1 with an
    interval over resampled sources), how far each fell short of the best family best of its
    fold (regret), and how well the rule's score ranks the families' bests there."""
    named = {}
    for rule in SELECTION_RULES.values():
        chosen = []
        for _, rows in picks.groupby("fold"):
            records = rows.to_dict("records")
            chosen.append(rule.pick(records, tolerance, records[0]["top_val_f1_macro"])["family"])
        named[rule.name] = chosen
    score_of = {"cv": "val_f1_macro", "cv+perturbed": "val_perturbed_f1_macro"}
    score_of.update({"transfer": "transfer_f1_macro", "cv+transfer": "transfer_f1_macro"})
    held = outer >= 0
    truth = np.asarray(labels, dtype=object)
    table = []
    for name, chosen in named.items():
        predicted = np.empty(len(labels), dtype=object)
        regret = []
        for fold, family in enumerate(chosen):
            predicted[outer == fold] = predictions[fold, family]
            fold_rows = picks[picks["fold"] == fold]
            best = fold_rows["held_out_f1_macro"].max()
            got = fold_rows.loc[fold_rows["family"] == family, "held_out_f1_macro"].iloc[0]
            regret.append(best - got)
        f1 = held_out_f1(truth[held], predicted[held])
        low, high = grouped_interval(truth[held], predicted[held], sources[held])
        column = score_of.get(name)
        table.append(
            {
                "rule": name,
                "held_out_f1_macro": f1,
                "low": low,
                "high": high,
                "mean_regret": float(np.mean(regret)),
                "folds_best": int(sum(r <= 1e-12 for r in regret)),
                "rank_correlation": (
                    fold_rank_correlation(picks, column, "held_out_f1_macro") if column else np.nan
                ),
                "picks": ", ".join(chosen),
            }
        )
    return pd.DataFrame(table)


def rules_table(studies: list[SelectionStudy]) -> pd.DataFrame:
    """Every study's rules in one table, the dataset named on each row."""
    return pd.concat([s.rules.assign(dataset=s.dataset) for s in studies], ignore_index=True)


def best_rules(table: pd.DataFrame) -> dict:
    """{dataset: the rule whose champions scored best on its held-out sources} of
    ``rules_table``."""
    winners = table.loc[table.groupby("dataset", sort=False)["held_out_f1_macro"].idxmax()]
    return dict(zip(winners["dataset"], winners["rule"]))


def save_rules_figure(studies: list[SelectionStudy], path) -> Path:
    """Held-out macro-F1 of each rule's champions with its interval, one panel per dataset."""
    table = rules_table(studies)
    return save_unless_same(
        path,
        table.round(6).to_dict("records"),
        lambda: interval_bars_figure(
            table, "held_out_f1_macro", "low", "high", "rule", group="dataset"
        ),
    )
