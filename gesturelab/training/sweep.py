"""The classical sweep: nested loops over families and grids, every configuration an MLflow run.

Each configuration is validated by grouped k-fold cross-validation over the training rows
(out-of-fold predictions give the ``val_*`` metrics), then refit on all training rows and
logged. The test split scores each family's best once; the champion (best validation macro-F1
overall) is refit on every row and registered.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.landmarks import HAGRID_CLASSES, landmark_frame
from gesturelab.datasets.static_data import PreparedData
from gesturelab.errors import RegistryError, SweepDataError
from gesturelab.evaluation.full_report import evaluation_report, flat_metrics, prediction_artifacts
from gesturelab.evaluation.metrics import classification_metrics
from gesturelab.models.predictor import GesturePredictor, model_classes
from gesturelab.models.static_families import (
    DEFAULT_FEATURE_SET,
    ENSEMBLE,
    FAMILIES,
    FEATURE_SETS,
    REFERENCE_CONFIGS,
    SKOPS_TRUSTED_TYPES,
    build_pipeline,
    ensemble_configuration,
    feature_sets_for,
    is_reference,
    run_name,
    sweep_grid,
)
from gesturelab.training import run_keys
from gesturelab.training.engine import Engine
from gesturelab.training.selection_rules import select_best
from gesturelab.training.selection_rules import selection_rule as selection_rule_of
from gesturelab.training.sweep_board import publish_leaderboard, records_table, save_figures
from gesturelab.training.sweep_champion import log_champion
from gesturelab.training.sweep_state import SweepResult, SweepState, check_sweepable, model_of
from gesturelab.training.sweep_transfer import cross_val_oof, transfer_of_best


def default_model_name(classes, dataset_name) -> str:
    """The registered name a label set gets unless told otherwise: one name, one label set.

    HaGRID's 18 classes keep the project's name; any other set is named for its dataset (an
    imported dataset's name, else the file's stem) and size, so a subset or a user's own
    gestures can never take HaGRID's champion alias.
    """
    if sorted(map(str, classes)) == sorted(HAGRID_CLASSES):
        return config.STATIC_MODEL_NAME
    return f"{dataset_slug(dataset_name)}-{len(classes)}-gestures"


def default_experiment(classes, dataset_name) -> str:
    """HaGRID's 18 classes sweep into the project's experiment; any other label set into one
    of its own, so that a leaderboard never mixes label sets."""
    if sorted(map(str, classes)) == sorted(HAGRID_CLASSES):
        return config.STATIC_EXPERIMENT
    return f"{dataset_slug(dataset_name)}-classical-sweep"


def dataset_slug(dataset_name) -> str:
    return re.sub(r"[^a-z0-9]+", "-", Path(str(dataset_name)).stem.lower()).strip("-") or "static"


def run_sweep(
    prepared: PreparedData,
    *,
    quick: bool = False,
    selection_tolerance: float = config.SELECTION_TOLERANCE,
    selection_rule: str = config.SELECTION_RULE,
    experiment: str = config.STATIC_EXPERIMENT,
    families=FAMILIES,
    feature_ablation: bool = True,
    transfer_check: bool = True,
    register_as: str | None = None,
    register_alias: str = config.CHAMPION_ALIAS,
    figures_dir=None,
    progress: bool = True,
    seed: int = config.SEED,
    fresh: bool = False,
    engine: Engine | None = None,
    selection_rows: int = config.SELECTION_ROWS,
    ensemble: bool | None = None,
) -> SweepResult:
    """Sweep every family, select, refit the champion; register it only when ``register_as``
    names a model, under ``register_alias`` ("challenger": ``promote`` decides).

    The steps: ``sweep_family`` for each family (a grid, then its best scored on the test
    split), ``feature_ablation_runs``, ``transfer_of_best``, ``log_champion``.
    selection_rule: how the champion is chosen among the families' bests
        (``selection_rules.SELECTION_RULES``; the default is the rule that best predicted
        held-out sources in ``studies.selection_study``). A rule that reads transfer
        estimates needs ``transfer_check``.
    figures_dir: where the leaderboard and confusion figures go (None: none are written).
    engine: where the configurations and transfer estimates are trained (``training.engine``;
        default: joblib, one process per core). Results are logged here, by this process.
    selection_rows: with more training rows than this, configurations are scored and selected
        on a stratified subsample of this many (``splits.selection_rows``) and each family's
        best is refit on every training row before the test split scores it; 0: never.
    ensemble: also offer a soft-voting ensemble of the families' bests to the selection rule,
        as a configuration of its own (cross-validated, logged, tested, transfer-estimated like
        the others); default: in a full sweep of two or more families, not in a quick one.
    """
    engine = engine or Engine()
    rule = selection_rule_of(selection_rule)
    if rule.transfer and not transfer_check:
        raise SweepDataError(
            f"the selection rule {rule.name!r} chooses by transfer estimate; it needs the "
            "transfer check (choose another rule, e.g. 'cv+perturbed', to skip it)"
        )
    if selection_rows < 0:
        raise SweepDataError(
            f"--selection-rows is a number of training rows (0: every row), not {selection_rows}"
        )
    grids = {family: sweep_grid(family, quick, prepared.dims) for family in families}
    check_sweepable(prepared, grids)
    if ensemble and len(grids) < 2:
        raise SweepDataError(
            f"--ensemble averages the bests of two or more families; this sweep has "
            f"{len(grids)} ({', '.join(grids)}): add families with --families, or leave it out"
        )
    ensemble = (not quick if ensemble is None else ensemble) and len(grids) >= 2
    if register_as:
        # A quick sweep's champion (a handful of configurations) never takes the name a label
        # set is served under; under a name of its own it checks the registry and serving
        # path end to end (a smoke test against a new tracking server).
        default = default_model_name(prepared.classes, prepared.loaded.name)
        if quick and register_as == default:
            raise RegistryError(
                f"a quick sweep is never registered as {default!r}, the name this label set "
                "is served under (a handful of configurations): run the full sweep, or give "
                "the quick champion a name of its own (--model-name)"
            )
        tracking.check_registration(
            register_as,
            prepared.classes,
            prepared.loaded.fingerprint,
            register_alias,
            classes_of=model_classes,
        )
    # Every run of this sweep carries its id: a leaderboard shows one sweep, not a mix of a
    # killed sweep's runs with its rerun's.
    sweep_id = uuid.uuid4().hex[:12]
    with tracking.tagging(sweep_id=sweep_id):
        tracking.get_or_create_experiment(experiment)
        sweep = SweepState(
            prepared,
            experiment,
            seed,
            selection_tolerance,
            quick,
            fresh=fresh,
            selection_rows=selection_rows,
        )
        ablation_sets = feature_sets_for(
            prepared.dims, ["raw", "xy+dist"] if quick else list(FEATURE_SETS)
        )
        ablation_families = (
            [f for f in REFERENCE_CONFIGS if f in families] if feature_ablation else []
        )
        plans = {family: [plan(sweep, family, c) for c in grid] for family, grid in grids.items()}
        ablation_plans = [
            plan(sweep, family, {**REFERENCE_CONFIGS[family], "features": features}, "ablation")
            for family in ablation_families
            for features in ablation_sets
        ]
        planned = [p for family in plans.values() for p in family] + ablation_plans
        total = len(planned) + int(ensemble)
        sweep.bar = tqdm(total=total, desc="sweep", disable=not progress)
        records, best_rows = [], []
        with engine.open(sweep.shared()) as pool:
            # Every training that no finished run answers is queued at once, so the workers
            # stay busy across families; results come back in this order and are logged here.
            todo = [p for p in planned if p.found is None]
            sweep.trained = pool.map(
                train_configuration, [(p.family, p.configuration) for p in todo]
            )
            for family in grids:
                family_records, best = sweep_family(sweep, family, plans[family])
                records += family_records
                best_rows.append(best)
            ablation = feature_ablation_runs(sweep, ablation_plans)
            if ensemble:
                ensemble_records, ensemble_best = ensemble_of_bests(sweep, best_rows, pool)
                records += ensemble_records
                best_rows.append(ensemble_best)
            sweep.bar.close()
            # Measured against the best configuration overall, so the tolerance is spent once.
            overall_top = max(r["val_f1_macro"] for r in records)
            transfer = pd.DataFrame()
            if transfer_check:
                # before the champion: its run and registered version keep its estimate, which
                # the promotion guard reads
                transfer = transfer_of_best(sweep, best_rows, families, pool, records=records)
            selected = rule.pick(best_rows, selection_tolerance, overall_top)
            selected["selection_rule"] = rule.name
            champion = log_champion(sweep, selected, register_as, register_alias)
        result = SweepResult(
            runs=records_table(records),
            best=records_table(best_rows).sort_values("val_f1_macro", ascending=False),
            ablation=records_table(ablation),
            transfer=transfer,
        )
        result.champion = champion
        if figures_dir is not None:
            result.figures = save_figures(result, best_rows, sweep.labels, Path(figures_dir))
        result.links = publish_leaderboard(sweep, result, sweep_id)
        result.reused = sweep.reused
        result.configurations = total
        result.selected_on = (len(sweep.y_train), len(sweep.y_train_all))
        return result


def ensemble_of_bests(sweep: SweepState, best_rows: list[dict], pool) -> tuple[list, dict]:
    """The soft-voting ensemble of the families' best configurations as one more candidate
    (``static_families.ENSEMBLE``): trained and scored as any configuration is (grouped CV,
    clean and perturbed, a fit on the training rows, the test split), under a parent run of
    its own. Its run key holds its members', so a sweep whose bests did not change reuses it."""
    members = [(b["family"], b["params"], b["features"]) for b in best_rows]
    planned = plan(sweep, ENSEMBLE, ensemble_configuration(members))
    if planned.found is None:
        sweep.trained = pool.map(train_configuration, [(ENSEMBLE, planned.configuration)])
    return sweep_family(sweep, ENSEMBLE, [planned])


def run_key(sweep: SweepState, family: str, configuration: dict, role: str) -> str:
    """What determines a configuration run's result: family, parameters, features, the data
    (SHA-256 and its split into test rows and folds), the seed, the training code, the role
    (a grid run logs its model, an ablation run does not)."""
    split = sweep.prepared.data[["split", "fold"]].astype(str).to_numpy()
    return run_keys.run_key(
        family=family,
        configuration={k: configuration[k] for k in sorted(configuration)},
        data=sweep.prepared.loaded.fingerprint,
        split=hashlib.sha256("|".join(map(",".join, split)).encode()).hexdigest(),
        selection=hashlib.sha256(np.packbits(sweep.selection).tobytes()).hexdigest(),
        seed=sweep.seed,
        code=run_keys.static_code_version(),
        role=role,
    )


@dataclass
class Planned:
    """One configuration run of a sweep: its key, and the finished run that answers it, if any."""

    family: str
    configuration: dict
    role: str  # "config" (logs its model) or "ablation" (metrics only)
    key: str
    found: tracking.RunRecord | None = None

    @property
    def log_model(self) -> bool:
        return self.role == "config"


def plan(sweep: SweepState, family: str, configuration: dict, role: str = "config") -> Planned:
    """The configuration's run key, and the finished run with that key unless the sweep is
    ``fresh`` (a run that lost its model does not count for a role that logs one)."""
    key = run_key(
        sweep, family, configuration, "config" if role == "config" else "ablation-no-model"
    )
    found = None if sweep.fresh else tracking.finished_run_with_key(sweep.experiment, key)
    if found is not None and role == "config" and not found.model_uri:
        found = None
    return Planned(family, configuration, role, key, found)


def _adopt(sweep: SweepState, planned: Planned) -> dict:
    """The record of a finished run with the configuration's key, adopted into this sweep (its
    model is loaded only if a later step needs it: ``model_of``)."""
    found = planned.found
    tracking.adopt_run(found.run_id)
    sweep.reused += 1
    sweep.bar.update(1)
    sweep.bar.set_postfix_str(f"{planned.family} reused")
    metrics = {k: v for k, v in found.metrics.items() if not k.startswith(("test_", "transfer_"))}
    record = _record(planned, found.run_name, found.run_id, found.model_uri, None, metrics)
    record["stored"] = found
    return record


def train_configuration(shared: dict, task: tuple) -> dict:
    """One configuration trained and scored wherever the engine runs it (never logs): the
    out-of-fold predictions (clean and perturbed) and a fit on all training rows."""
    family, configuration = task
    params, features = split_configuration(configuration)
    pipeline = build_pipeline(family, params, FEATURE_SETS[features], shared["seed"])
    X, y = shared["X"], shared["y"]
    val_pred, perturbed_pred, cv_fit_time, oof_scores = cross_val_oof(
        pipeline, X, y, shared["folds"], shared["X_perturbed"], scores=True
    )
    start = time.perf_counter()
    pipeline.fit(X, y)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    pipeline.predict(X)
    predict_ms = 1000 * (time.perf_counter() - start) / len(X)
    return {
        "pipeline": pipeline,
        "val_pred": val_pred,
        "perturbed_pred": perturbed_pred,
        "oof_scores": oof_scores,
        "fit_time_s": fit_time,
        "cv_fit_time_s": cv_fit_time,
        "predict_ms_per_sample": predict_ms,
    }


def fit_and_log(sweep: SweepState, planned: Planned) -> dict:
    """One configuration's run: the finished run with its key, adopted, or the engine's next
    result (``train_configuration``) logged as a new run. Returns the configuration's record."""
    if planned.found is not None:
        return _adopt(sweep, planned)
    family, configuration = planned.family, planned.configuration
    trained = next(sweep.trained)
    pipeline = trained["pipeline"]
    tags = {"run_key": planned.key, **({} if planned.log_model else {"run_kind": "ablation"})}
    params, features = split_configuration(configuration)
    y = sweep.y_train
    perturbed = classification_metrics(y, trained["perturbed_pred"])
    name = run_name(family, params, features)
    artifacts, _ = prediction_artifacts(y, trained["val_pred"], "val_", sweep.labels, title=name)
    metrics = {
        **artifacts.metrics,
        "fit_time_s": trained["fit_time_s"],
        "cv_fit_time_s": trained["cv_fit_time_s"],
        "predict_ms_per_sample": trained["predict_ms_per_sample"],
        "val_perturbed_accuracy": perturbed["accuracy"],
        "val_perturbed_f1_macro": perturbed["f1_macro"],
    }
    logged = tracking.log_experiment_run(
        pipeline,
        family=family,
        params={**params, "features": features, "seed": sweep.seed},
        metrics=metrics,
        figures=artifacts.figures,
        dicts=artifacts.dicts,
        X_example=landmark_frame(sweep.X_train.iloc[:3], sweep.prepared.dims),
        trusted_types=SKOPS_TRUSTED_TYPES,
        run_name=name,
        dataset=sweep.prepared.dataset,
        tags={"reference_config": str(is_reference(family, params)).lower(), **tags},
        label_set=sweep.labels,
        log_model_artifact=planned.log_model,
    )
    sweep.bar.update(1)
    sweep.bar.set_postfix_str(f"{family} val F1 {metrics['val_f1_macro']:.3f}")
    record = _record(planned, name, logged.run_id, logged.model_uri, pipeline, metrics)
    record["oof_scores"] = trained["oof_scores"]  # the champion's reject rule reads them
    return record


def split_configuration(configuration: dict) -> tuple[dict, str]:
    """A grid entry as (the classifier's parameters, the feature set's name)."""
    params = {k: v for k, v in configuration.items() if k != "features"}
    return params, configuration.get("features", DEFAULT_FEATURE_SET)


def _record(planned: Planned, name, run_id, model_uri, model, metrics) -> dict:
    """What the sweep keeps of one configuration run, trained now or reused."""
    params, features = split_configuration(planned.configuration)
    return {
        "family": planned.family,
        "run_name": name,
        "features": features,
        "reference_config": is_reference(planned.family, params),
        "params": params,
        "run_id": run_id,
        "run_key": planned.key,
        "model_uri": model_uri,
        "model": model,
        **metrics,
    }


def sweep_family(sweep: SweepState, family: str, grid: list[Planned]) -> tuple[list[dict], dict]:
    """Every configuration of one family under a family run; its best scored on the test split
    (after a refit on every training row when the configurations were selected on a subsample).

    Returns the family's records and its best record (with ``test_*`` scores).
    """
    with tracking.parent_run(sweep.experiment, family, {"model_family": family}) as parent:
        parent.log_params({**sweep.data_params(), "n_configs": len(grid)})
        if sweep.prepared.loaded.quarantine_path is not None:
            parent.log_artifacts([sweep.prepared.loaded.quarantine_path])
        records = [fit_and_log(sweep, planned) for planned in grid]
        best = select_best(records, sweep.tolerance)
        if sweep.subsampled:
            best = refit_on_training_rows(sweep, best)
    best.update(score_on_test(sweep, best))
    parent.log_metrics(
        {
            "best_val_f1_macro": best["val_f1_macro"],
            "best_test_f1_macro": best["test_f1_macro"],
            "best_test_accuracy": best["test_accuracy"],
        }
    )
    parent.log_params({"best_run": best["run_name"]})
    return records, best


def refit_on_training_rows(sweep: SweepState, best: dict) -> dict:
    """The best configuration of a subsampled sweep fitted on every training row, as a run of
    its own (``run_kind`` refit) that the test split then scores; returns the best record with
    that model (its ``run_id`` stays the selected configuration's).

    The fit runs here, beside the workers still training the next families' configurations
    (a second joblib call from this process would resize the workers' pool under the first).
    A finished refit run of the same configuration run (its key) is reused instead.
    """
    key = run_keys.derived_key(best["run_key"], "refit on every training row")
    found = None if sweep.fresh else tracking.finished_run_with_key(sweep.experiment, key)
    if found is not None and found.model_uri:
        tracking.adopt_run(found.run_id)
        return {
            **best,
            "model": None,
            "model_uri": found.model_uri,
            "refit_run_id": found.run_id,
            "refit_stored": found,
            "selection_model_uri": best["model_uri"],
        }
    pipeline = build_pipeline(
        best["family"], best["params"], FEATURE_SETS[best["features"]], sweep.seed
    )
    start = time.perf_counter()
    pipeline.fit(sweep.X_train_all, sweep.y_train_all)
    fit_time = time.perf_counter() - start
    name = f"{best['run_name']} (all {len(sweep.y_train_all)} training rows)"
    logged = tracking.log_experiment_run(
        pipeline,
        family=best["family"],
        params={**best["params"], "features": best["features"], "seed": sweep.seed},
        metrics={"fit_time_s": fit_time},
        X_example=landmark_frame(sweep.X_train_all.iloc[:3], sweep.prepared.dims),
        trusted_types=SKOPS_TRUSTED_TYPES,
        run_name=name,
        dataset=sweep.prepared.dataset,
        tags={"run_kind": "refit", "selected_from_run": best["run_id"], "run_key": key},
        label_set=sweep.labels,
        experiment=sweep.experiment,
    )
    return {
        **best,
        "model": pipeline,
        "model_uri": logged.model_uri,
        "refit_run_id": logged.run_id,
        "refit_stored": None,
        "selection_model_uri": best["model_uri"],
    }


def score_on_test(sweep: SweepState, best: dict) -> dict:
    """The test split's scores of a family's best configuration, added to its run; a run that
    holds them already (the same run key, test rows and scoring code) is not scored again."""
    run_id = best.get("refit_run_id", best["run_id"])
    key = run_keys.derived_key(
        best["run_key"], "test scores", sweep.test_digest, run_keys.scoring_code_version()
    )
    # the run scored: the refit's when the sweep refit the best on every training row
    stored = best["refit_stored"] if "refit_run_id" in best else best.get("stored")
    if stored is not None and stored.tags.get("test_key") == key:
        classification = tracking.run_json(run_id, "test_classification_report.json")
        report = tracking.run_json(run_id, "test_evaluation_report.json")
        if classification is not None and report is not None:
            metrics = {k: v for k, v in stored.metrics.items() if k.startswith("test_")}
            matrix = np.asarray(classification["confusion_matrix"])
            return {**metrics, "test_confusion": matrix, "test_report": report}
    model = model_of(best)
    X = landmark_frame(sweep.X_test, sweep.prepared.dims)
    start = time.perf_counter()
    predicted = np.asarray(model.predict(X), dtype=object)
    seconds = time.perf_counter() - start
    title = f"{best['run_name']} (test)"
    artifacts, matrix = prediction_artifacts(sweep.y_test, predicted, "test_", sweep.labels, title)
    scores = GesturePredictor(model).predict_distribution(sweep.X_test)
    report = evaluation_report(sweep.y_test, predicted, scores, list(model.classes_))
    report_metrics = {f"test_{k}": v for k, v in flat_metrics(report).items()}
    metrics = {
        **artifacts.metrics,
        "test_predict_ms_per_sample": 1000 * seconds / max(len(X), 1),
        **report_metrics,
    }
    run = tracking.open_run(run_id)
    run.log(metrics, artifacts.figures, {**artifacts.dicts, "test_evaluation_report.json": report})
    run.set_tags({"test_key": key})  # last: a run killed while logging is scored again
    return {**metrics, "test_confusion": matrix, "test_report": report}


def feature_ablation_runs(sweep: SweepState, planned: list[Planned]) -> list:
    """Each reference configuration on every feature set: what each preprocessing step buys."""
    if not planned:
        return []
    with tracking.parent_run(sweep.experiment, "feature-ablation", {"model_family": "ablation"}):
        return [fit_and_log(sweep, p) for p in planned]
