"""The sweep's champion: refit on every row, its reject rule, logged, registered, and written where
notebooks find it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN, landmark_frame
from gesturelab.evaluation.plots import (
    reject_figure,
)
from gesturelab.models.predictor import GesturePredictor, model_classes
from gesturelab.models.rejection import reject_rule, rejected
from gesturelab.models.static_families import (
    FEATURE_SETS,
    SKOPS_TRUSTED_TYPES,
    build_pipeline,
)
from gesturelab.training import run_keys
from gesturelab.training.selection_rules import TRANSFER_TAGS, transfer_refusal
from gesturelab.training.sweep_state import SweepState, model_of
from gesturelab.training.sweep_transfer import TRANSFER_SCORES, cross_val_oof


def champion_file(reports_dir) -> Path:
    return Path(reports_dir) / "static_champion.json"


def write_champion(champion: dict, reports_dir) -> Path:
    """The sweep's champion where notebook 04 and others look for it (registered or not)."""
    path = champion_file(reports_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = ("run_name", "model_uri", "registered")
    path.write_text(json.dumps({k: champion[k] for k in keep if k in champion}))
    return path


def champion_uri(reports_dir) -> str:
    """The last sweep's champion: registered if it was, else only logged; without a report,
    the registered HaGRID champion."""
    path = champion_file(reports_dir)
    if path.exists():
        champion = json.loads(path.read_text())
        return champion.get("registered", champion["model_uri"])
    return f"models:/{config.STATIC_MODEL_NAME}@{config.CHAMPION_ALIAS}"


def log_champion(
    sweep: SweepState, best: dict, name: str | None, alias: str = config.CHAMPION_ALIAS
) -> dict:
    """Refit the selected configuration on every row (more data, same recipe) as a run of its
    own; register it when ``name`` is given. A finished champion run of the same selected run
    (its key, the rows, the scoring code) is reused instead; registered again only when the
    alias points elsewhere."""
    prepared = sweep.prepared
    key = run_keys.derived_key(
        best["run_key"], "champion", prepared.loaded.fingerprint, run_keys.scoring_code_version()
    )
    found = None if sweep.fresh else tracking.finished_run_with_key(sweep.experiment, key)
    rule = tracking.run_json(found.run_id, "reject_rule.json") if found is not None else None
    if found is not None and found.model_uri and rule is not None:
        tracking.adopt_run(found.run_id)
        return _champion(sweep, best, found.run_id, found.model_uri, rule, name, alias)
    pipeline = build_pipeline(
        best["family"], best["params"], FEATURE_SETS[best["features"]], sweep.seed
    )
    X_all = landmark_frame(prepared.data, prepared.dims)
    y_all = np.asarray(prepared.data[LABEL_COLUMN], dtype=object)
    selection = {
        f"selection_{k}": best[k]
        for k in best
        if k.startswith(("val_", "test_"))
        and k not in ("test_confusion", "test_report")
        or k in TRANSFER_SCORES
        and np.isfinite(best[k])  # a sweep without the estimate: nan
    }
    rule = champion_reject_rule(sweep, pipeline, model_of(best), best.get("oof_scores"))
    with tracking.start_run(
        sweep.experiment,
        f"champion ({best['family']})",
        kind="champion",
        tags={"model_family": best["family"], "selected_from_run": best["run_id"], "run_key": key},
        label_set=sweep.labels,
        system_metrics=True,
    ) as run:
        run.log_params(
            {
                **best["params"],
                "features": best["features"],
                "seed": sweep.seed,
                "trained_on": "train+val+test",
                "selection_rule": best.get("selection_rule", ""),
            }
        )
        dataset = prepared.dataset
        run.log_dataset(
            dataset["data"], dataset["path"], dataset["fingerprint"], "training", LABEL_COLUMN
        )
        start = time.perf_counter()
        pipeline.fit(X_all, y_all)
        run.log_metrics({"fit_time_s": time.perf_counter() - start, **selection})
        run.log_metrics({f"reject_{k}": v for k, v in rule.items() if isinstance(v, float)})
        run.log_params(
            {
                "reject_method": rule["method"],
                **({"reject_class": rule["class"]} if "class" in rule else {}),
            }
        )
        run.log_dicts({"reject_rule.json": rule})
        if rule["method"] == "threshold":
            run.log_figures({"reject_trade_off.png": reject_figure(rule, best["run_name"])})
        model_uri = run.log_sklearn_model(
            pipeline, X_all.iloc[:3], SKOPS_TRUSTED_TYPES, metadata={"reject": rule}
        )
    return _champion(sweep, best, run.run_id, model_uri, rule, name, alias)


def _champion(
    sweep: SweepState, best: dict, run_id: str, model_uri: str, rule, name, alias
) -> dict:
    """The champion's record; registered under ``name`` unless ``name@alias`` is this run's."""
    prepared = sweep.prepared
    champion = {
        "family": best["family"],
        "run_name": best["run_name"],
        "selected_run_id": best["run_id"],
        "val_f1_macro": best["val_f1_macro"],
        "test_f1_macro": best["test_f1_macro"],
        "run_id": run_id,
        "model_uri": model_uri,
        "reject": rule,
    }
    estimate = {k: best[k] for k in TRANSFER_TAGS if np.isfinite(best.get(k, np.nan))}
    if name and tracking.alias_run_id(name, alias) == run_id:
        champion["registered"] = f"models:/{name}@{alias}"
        champion["version"] = tracking.alias_version(name, alias)
    elif name:
        refusal = None
        if alias == config.CHAMPION_ALIAS:
            refusal = transfer_refusal(tracking.alias_tags(name, alias), estimate)
        if refusal:  # the new model waits as the challenger; the champion stays
            alias = tracking.CHALLENGER_ALIAS
            champion["refused"] = refusal
        version = tracking.register_model(
            model_uri,
            name,
            alias,
            tags={
                "selected_run": best["run_name"],
                "data_file": prepared.loaded.path.name,
                "selection_rule": best.get("selection_rule", ""),
                **estimate,
            },
            label_set=prepared.classes,
            data_sha256=prepared.loaded.fingerprint,
            classes_of=model_classes,
        )
        champion["registered"] = f"models:/{name}@{alias}"
        champion["version"] = version.version
        from gesturelab.models.model_card import log_card

        log_card(name, version.version)
    return champion


def champion_reject_rule(sweep: SweepState, pipeline, trained=None, oof_scores=None) -> dict:
    """The champion's reject rule, chosen on the out-of-fold predictions of its configuration
    (``gesturelab.models.rejection``): each training row scored by a model that never saw its fold.

    trained: the configuration fitted on the training split; the rule's coverage and accuracy
    on the test split are measured with it (the champion itself is refit on every row, so its
    scores, and the share it answers, shift a little from those of the fold models).
    oof_scores: those scores as the configuration's cross-validation computed them (a run
    trained in this sweep); None (a reused run) fits the folds again.
    """
    if oof_scores is None:
        _, _, _, oof_scores = cross_val_oof(
            pipeline, sweep.X_train, sweep.y_train, sweep.folds, scores=True
        )
    confidence, correct, kind = oof_scores
    rule = reject_rule(sweep.labels, confidence, correct, score=kind)
    if trained is not None and rule["method"] == "threshold":
        predictor = GesturePredictor(trained, reject=rule)
        probabilities, scores = predictor.predict_with_scores(sweep.X_test)
        answered = ~rejected(probabilities, predictor.classes, rule, scores)
        best = np.asarray(predictor.classes, dtype=object)[probabilities.argmax(axis=1)]
        rule["test_coverage"] = float(answered.mean())
        rule["test_accuracy_answered"] = (
            float((best[answered] == sweep.y_test[answered]).mean()) if answered.any() else 0.0
        )
    return rule
