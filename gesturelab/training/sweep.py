"""The classical sweep: nested loops over families and grids, every configuration an MLflow run.

Each configuration is validated by grouped k-fold cross-validation over the training rows
(out-of-fold predictions give the ``val_*`` metrics), then refit on all training rows and
logged. The test split scores each family's best once; the champion (best validation macro-F1
overall) is refit on every row and registered.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from tqdm.auto import tqdm

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.landmarks import HAGRID_CLASSES, LABEL_COLUMN, landmark_frame
from gesturelab.datasets.splits import grouped_folds, selection_rows, source_groups
from gesturelab.datasets.static_data import PreparedData
from gesturelab.errors import RegistryError, SweepDataError
from gesturelab.evaluation.full_report import evaluation_report, flat_metrics, prediction_artifacts
from gesturelab.evaluation.metrics import classification_metrics
from gesturelab.evaluation.plots import (
    confusion_matrix_figure,
    feature_ablation_figure,
    leaderboard_figure,
    reject_figure,
    save_unless_same,
)
from gesturelab.features.augment import perturb_viewpoint
from gesturelab.models.predictor import GesturePredictor, model_classes
from gesturelab.models.rejection import reject_rule, rejected
from gesturelab.models.static_families import (
    DEFAULT_FEATURE_SET,
    FAMILIES,
    FEATURE_SETS,
    REFERENCE_CONFIGS,
    SKOPS_TRUSTED_TYPES,
    build_pipeline,
    feature_sets_for,
    is_reference,
    run_name,
    sweep_grid,
)
from gesturelab.training import run_keys
from gesturelab.training.engine import Engine, SerialPool


@dataclass
class SweepResult:
    runs: pd.DataFrame  # one row per configuration
    best: pd.DataFrame  # one row per family: its best configuration with test scores
    ablation: pd.DataFrame  # reference configurations x feature sets
    transfer: pd.DataFrame  # leave-one-source-block-out scores of the best and reference configs
    champion: dict = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    links: dict = field(default_factory=dict)  # the leaderboard in the MLflow UI
    reused: int = 0  # configuration runs reused from an earlier sweep (same run key)
    configurations: int = 0
    selected_on: tuple = ()  # (training rows configurations were selected on, training rows)


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


def check_sweepable(prepared: PreparedData, grids: dict) -> None:
    """What the sweep needs of the data, checked before the first run; one line if it fails.

    Two classes at least; every class in at least two cross-validation groups of the training
    split (else its fold is predicted by a model that never saw it) and in the test split;
    and as many training rows in each fold as the largest KNN neighbourhood of the grid.
    """
    path = prepared.loaded.path
    labels = prepared.data[LABEL_COLUMN]
    classes = sorted(labels.unique())
    if len(classes) < 2:
        raise SweepDataError(
            f"{path}: all {len(labels)} rows are labelled {classes[0]!r}; a classifier needs "
            "at least two classes"
        )
    train, test = prepared.part("train"), prepared.part("test")
    groups = train.groupby(LABEL_COLUMN)["group"].nunique().reindex(classes, fill_value=0)
    short = groups[groups < 2]
    if len(short):
        names = ", ".join(f"{c!r} ({n})" for c, n in short.items())
        raise SweepDataError(
            f"{path}: {len(short)} class(es) have fewer than 2 groups of rows in the training "
            f"split: {names}; every class needs 2 for cross-validation and 1 for the test "
            f"split (groups from {prepared.group_source})"
        )
    missing = sorted(set(classes) - set(test[LABEL_COLUMN]))
    if missing:
        raise SweepDataError(
            f"{path}: class(es) {', '.join(map(repr, missing))} have no row in the test split; "
            "each class needs at least 3 groups of rows"
        )
    k = max(
        [c.get("n_neighbors", 0) for c in grids.get("knn", [])]
        + [REFERENCE_CONFIGS["knn"]["n_neighbors"]]
    )
    folds = train["fold"].to_numpy()
    smallest = min(int((folds != f).sum()) for f in np.unique(folds))
    if smallest < k:
        raise SweepDataError(
            f"{path}: the KNN grid goes up to {k} neighbours, but the smallest cross-validation "
            f"fold trains on {smallest} rows; the sweep needs at least {k} per fold"
        )


def select_best(records: list[dict], tolerance: float, top: float | None = None) -> dict:
    """Best validation macro-F1; among those within ``tolerance`` of it, the most robust.

    Configurations whose clean scores differ by less than the tolerance cannot be told apart
    on a few hundred rows; the one that holds up best under viewpoint perturbation
    (``val_perturbed_f1_macro``) is the safer bet on hands photographed from other angles.
    """
    if top is None:
        top = max(r["val_f1_macro"] for r in records)
    close = [r for r in records if r["val_f1_macro"] >= top - tolerance]
    # Exact ties go to the first configuration in grid order (max keeps the first), never to
    # a timing, so a rerun selects the same models.
    return max(close, key=lambda r: (r["val_perturbed_f1_macro"], r["val_f1_macro"]))


@dataclass
class _Sweep:
    """What every step of one sweep shares: the data in its parts, settings, the progress bar."""

    prepared: PreparedData
    experiment: str
    seed: int
    tolerance: float
    quick: bool
    X_train: pd.DataFrame = None
    y_train: np.ndarray = None
    X_test: pd.DataFrame = None
    y_test: np.ndarray = None
    X_perturbed: pd.DataFrame = None
    folds: np.ndarray = None
    bar: tqdm = None
    fresh: bool = False  # train every configuration again, reusing no finished run
    reused: int = 0
    trained: object = None  # the engine's results, in the order of the planned trainings
    selection_rows: int = config.SELECTION_ROWS
    selection: np.ndarray = None  # the rows configurations are selected on (all, or a subsample)
    X_train_all: pd.DataFrame = None
    y_train_all: np.ndarray = None
    test_digest: str = ""

    def shared(self) -> dict:
        """What every training task needs, sent to the workers once."""
        return {
            "X": self.X_train,
            "y": self.y_train,
            "folds": self.folds,
            "X_perturbed": self.X_perturbed,
            "seed": self.seed,
        }

    def __post_init__(self):
        data = self.prepared.data
        self.selection = selection_rows(data, self.selection_rows, self.seed)
        self.X_train_all, self.y_train_all = self.prepared.Xy("train")
        chosen = self.selection[(data["split"] == "train").to_numpy()]
        self.X_train, self.y_train = self.X_train_all[chosen], self.y_train_all[chosen]
        self.X_test, self.y_test = self.prepared.Xy("test")
        self.X_perturbed = perturb_viewpoint(self.X_train, self.seed)
        self.folds = self.prepared.part("train")["fold"].to_numpy()[chosen]
        test = pd.concat([self.X_test, pd.Series(self.y_test, index=self.X_test.index)], axis=1)
        self.test_digest = hashlib.sha256(test.to_csv().encode()).hexdigest()

    @property
    def subsampled(self) -> bool:
        """Whether configurations are selected on a subsample of the training rows."""
        return len(self.y_train) < len(self.y_train_all)

    @property
    def labels(self) -> list:
        return self.prepared.classes

    def data_params(self) -> dict:
        """What every family run records about the data it was swept on."""
        loaded = self.prepared.loaded
        return {
            "data_file": loaded.path.name,
            "data_sha256": loaded.fingerprint[:16],
            "rows_train": len(self.y_train_all),
            "rows_selection": len(self.y_train),
            "rows_test": len(self.y_test),
            "cv_folds": len(np.unique(self.folds)),
            "selection_tolerance": self.tolerance,
            "groups": self.prepared.group_source,
            **loaded.counts,
        }


def run_sweep(
    prepared: PreparedData,
    *,
    quick: bool = False,
    selection_tolerance: float = config.SELECTION_TOLERANCE,
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
) -> SweepResult:
    """Sweep every family, select, refit the champion; register it only when ``register_as``
    names a model, under ``register_alias`` ("challenger": ``promote`` decides).

    The steps: ``sweep_family`` for each family (a grid, then its best scored on the test
    split), ``feature_ablation_runs``, ``transfer_of_best``, ``log_champion``.
    figures_dir: where the leaderboard and confusion figures go (None: none are written).
    engine: where the configurations and transfer estimates are trained (``training.engine``;
        default: joblib, one process per core). Results are logged here, by this process.
    selection_rows: with more training rows than this, configurations are scored and selected
        on a stratified subsample of this many (``splits.selection_rows``) and each family's
        best is refit on every training row before the test split scores it; 0: never.
    """
    engine = engine or Engine()
    if selection_rows < 0:
        raise SweepDataError(
            f"--selection-rows is a number of training rows (0: every row), not {selection_rows}"
        )
    grids = {family: sweep_grid(family, quick) for family in families}
    check_sweepable(prepared, grids)
    if register_as:
        if quick:
            raise RegistryError(
                "a quick sweep is never registered (a handful of configurations); "
                "run the full sweep to register a champion"
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
        sweep = _Sweep(
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
        total = len(planned)
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
            sweep.bar.close()
            # Measured against the best configuration overall, so the tolerance is spent once.
            overall_top = max(r["val_f1_macro"] for r in records)
            selected = select_best(best_rows, selection_tolerance, top=overall_top)
            champion = {}

            def refit_champion():
                champion.update(log_champion(sweep, selected, register_as, register_alias))

            transfer = pd.DataFrame()
            if transfer_check:  # the champion is refit here while the workers estimate
                transfer = transfer_of_best(
                    sweep, best_rows, families, pool, refit_champion, records
                )
            else:
                refit_champion()
        result = SweepResult(
            runs=_table(records),
            best=_table(best_rows).sort_values("val_f1_macro", ascending=False),
            ablation=_table(ablation),
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


# The columns a reader sorts the runs by, in the saved view and the leaderboard table.
LEADERBOARD_METRICS = [
    "val_f1_macro",
    "val_accuracy",
    "val_perturbed_f1_macro",
    "test_f1_macro",
    "test_accuracy",
    "transfer_f1_macro",
    "fit_time_s",
]


def leaderboard_table(result: SweepResult) -> pd.DataFrame:
    """Every configuration of the sweep, best first, with the family bests' test scores."""
    runs = result.runs.copy()
    best = result.best.set_index("run_id")
    for column in ("test_f1_macro", "test_accuracy", "transfer_f1_macro"):
        runs[column] = runs["run_id"].map(best[column]) if column in best else np.nan
    runs["family_best"] = runs["run_id"].isin(best.index)
    runs = runs.sort_values("val_f1_macro", ascending=False, kind="stable", ignore_index=True)
    runs.insert(0, "rank", np.arange(1, len(runs) + 1))
    columns = ["rank", "family", "run_name", "features", *LEADERBOARD_METRICS, "family_best"]
    return runs[[*columns, "run_id"]]


def publish_leaderboard(sweep: _Sweep, result: SweepResult, sweep_id: str) -> dict:
    """The sweep's leaderboard in the MLflow UI (``gesturelab.tracking.leaderboard_page``)."""
    from gesturelab.tracking import leaderboard_page

    board = leaderboard_table(result)
    best = board[board["family_best"]].copy()
    best["run_page"] = best["run_id"].map(tracking.run_link)
    champion = result.champion
    loaded = sweep.prepared.loaded
    selected = f"{len(sweep.y_train)} rows"
    if sweep.subsampled:
        selected = (
            f"a stratified subsample of {len(sweep.y_train)} of its {len(sweep.y_train_all)} "
            f"rows, the same for every family"
        )
    registered = ""
    if champion.get("version"):
        name = champion["registered"].split("/")[1].split("@")[0]
        link = tracking.model_version_link(name, champion["version"])
        registered = f", registered as [{name} version {champion['version']}]({link})"
    summary = (
        f"the {'quick ' if sweep.quick else ''}classical sweep of `{loaded.path.name}` "
        f"(sha256 {loaded.fingerprint[:12]}, {len(sweep.prepared.data)} rows, "
        f"{len(sweep.labels)} classes). Every configuration is scored by grouped "
        f"{len(np.unique(sweep.folds))}-fold cross-validation on the training split "
        f"({selected}; groups: {sweep.prepared.group_source}); the best of each "
        f"family {'refit on every training row and scored ' if sweep.subsampled else ''}"
        f"once on the test split ({len(sweep.y_test)} rows, groups never seen in "
        f"training). Champion: [{champion['run_name']}]"
        f"({tracking.run_link(champion['run_id'])}), refit on every row{registered}."
    )
    table = leaderboard_page.markdown_table(
        best,
        {
            "family": "family",
            "run_name": "best configuration",
            "val_f1_macro": "CV macro-F1",
            "val_accuracy": "CV accuracy",
            "val_perturbed_f1_macro": "CV macro-F1, other viewpoint",
            "test_f1_macro": "test macro-F1",
            "transfer_f1_macro": "transfer macro-F1",
        },
        links={"run_name": "run_page"},
    )
    figure = leaderboard_figure(
        board.groupby("family").head(5), title="Top 5 configurations per family"
    )
    return leaderboard_page.publish(
        sweep.experiment,
        board,
        title=sweep.experiment,
        summary=summary,
        table=table,
        sort_by="val_f1_macro",
        metrics=LEADERBOARD_METRICS,
        params=["features"],
        tags=["model_family"],
        where={"run_kind": "config", "sweep_id": sweep_id},
        figure=figure,
        label_set=sweep.labels,
        footer=f"{len(board)} configurations in this sweep (`sweep_id` {sweep_id}).",
    )


def run_key(sweep: _Sweep, family: str, configuration: dict, role: str) -> str:
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


def plan(sweep: _Sweep, family: str, configuration: dict, role: str = "config") -> Planned:
    """The configuration's run key, and the finished run with that key unless the sweep is
    ``fresh`` (a run that lost its model does not count for a role that logs one)."""
    key = run_key(
        sweep, family, configuration, "config" if role == "config" else "ablation-no-model"
    )
    found = None if sweep.fresh else tracking.finished_run_with_key(sweep.experiment, key)
    if found is not None and role == "config" and not found.model_uri:
        found = None
    return Planned(family, configuration, role, key, found)


def _adopt(sweep: _Sweep, planned: Planned) -> dict:
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


def model_of(record: dict):
    """A record's fitted pipeline, loaded from its run when the record was adopted."""
    if record.get("model") is None:
        from gesturelab.models.predictor import open_model

        record["model"] = open_model(record["model_uri"]).model
    return record["model"]


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


def fit_and_log(sweep: _Sweep, planned: Planned) -> dict:
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


def sweep_family(sweep: _Sweep, family: str, grid: list[Planned]) -> tuple[list[dict], dict]:
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


def refit_on_training_rows(sweep: _Sweep, best: dict) -> dict:
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


def score_on_test(sweep: _Sweep, best: dict) -> dict:
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


def feature_ablation_runs(sweep: _Sweep, planned: list[Planned]) -> list:
    """Each reference configuration on every feature set: what each preprocessing step buys."""
    if not planned:
        return []
    with tracking.parent_run(sweep.experiment, "feature-ablation", {"model_family": "ablation"}):
        return [fit_and_log(sweep, p) for p in planned]


def transfer_of_best(
    sweep: _Sweep, best_rows: list[dict], families, pool=None, meanwhile=None, records=()
) -> pd.DataFrame:
    """``transfer_estimate`` of each family's best (and, in a full sweep, of the reference
    configurations, found in ``records``), added to the best configurations' runs;
    ``meanwhile`` as there. Each estimate is kept on its configuration's run (tag
    ``transfer_estimate``, with its key): a later sweep with the same key reads it."""
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
            meanwhile=meanwhile,
            max_groups=max_groups,
        )
        rows.update({row["name"]: row for row in estimated.to_dict("records")})
    elif meanwhile is not None:
        meanwhile()
    transfer = pd.DataFrame([rows[r["run_name"]] for r in chosen])
    for record in chosen:
        row = rows[record["run_name"]]
        if record["run_name"] in found:
            continue
        run = tracking.open_run(record["run_id"])
        if any(record is best for best in best_rows):
            scores = ("transfer_accuracy", "transfer_f1_macro")
            run.log_metrics({k: row[k] for k in scores if np.isfinite(row[k])})
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
        best["transfer_f1_macro"] = row["transfer_f1_macro"]
        best["transfer_accuracy"] = row["transfer_accuracy"]
    return transfer


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
    for fold in np.unique(folds) if only is None else only:
        held = folds == fold
        model = clone(pipeline).fit(X[~held], y[~held])
        predicted[held] = model.predict(X[held])
        if perturbed is not None:
            perturbed[held] = model.predict(X_perturbed[held])
        if scores:
            confidence[held], correct[held], kind = _reject_scores(model, X[held], y[held])
    seconds = time.perf_counter() - start
    return predicted, perturbed, seconds, (confidence, correct, kind) if scores else None


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
    meanwhile=None,
    max_groups: int = TRANSFER_MAX_GROUPS,
) -> pd.DataFrame:
    """How well each configuration transfers to a place of the file it never saw.

    Leave-one-source-block-out over all rows (users or subjects when the file has them; more
    than ``max_groups`` groups go through 5 grouped folds). Classes found in a single block are
    left out: no model can be trained and tested on them without leakage.
    candidates: (name, family, params, features) tuples.
    pool: an open ``Engine`` pool to train the candidates on (default: one after another here).
    rows: a boolean mask of the rows to use (a sweep's selection subsample; default: all).
    meanwhile: called once the estimates are queued and before their results are read, for
        this process's own work (the sweep refits its champion while the workers estimate).
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
        if meanwhile is not None:
            meanwhile()
        left_out = ", ".join(sorted(per_class[per_class < 2].index))
        return pd.DataFrame(
            [
                {
                    "name": name,
                    "family": family,
                    "transfer_accuracy": np.nan,
                    "transfer_f1_macro": np.nan,
                    "held_out_groups": n_groups,
                    "rows": 0,
                    "classes_left_out": left_out,
                    "seconds": 0.0,
                }
                for name, family, _, _ in candidates
            ]
        )
    # A task holds out a few groups, not a candidate's every group: one slow candidate (the MLP,
    # 36 fits on the keypoint file) would otherwise keep one worker busy long after the others.
    chunks = np.array_split(
        np.unique(folds), max(1, len(np.unique(folds)) // TRANSFER_FOLDS_PER_TASK)
    )
    tasks = [
        (c, family, params, features, X, labels[keep], folds, chunk)
        for c, (_, family, params, features) in enumerate(candidates)
        for chunk in chunks
    ]
    pool = pool or SerialPool(None)
    results = pool.map(_transfer_task, tasks)
    if meanwhile is not None:
        meanwhile()
    predictions = [np.empty(int(keep.sum()), dtype=object) for _ in candidates]
    spent = [0.0] * len(candidates)
    for (c, *_), (held, predicted, seconds) in zip(tasks, results, strict=True):
        predictions[c][held] = predicted
        spent[c] += seconds
    for (name, family, _, _), predicted, seconds in zip(
        candidates, predictions, spent, strict=True
    ):
        metrics = classification_metrics(labels[keep], predicted)
        rows.append(
            {
                "name": name,
                "family": family,
                "transfer_accuracy": metrics["accuracy"],
                "transfer_f1_macro": metrics["f1_macro"],
                "held_out_groups": n_groups,
                "folds": len(np.unique(folds)),
                "rows": int(keep.sum()),
                "classes_left_out": ", ".join(sorted(per_class[per_class < 2].index)),
                "seconds": seconds,
            }
        )
    return pd.DataFrame(rows)


def _transfer_task(_shared, task) -> tuple:
    """One candidate's predictions for the rows of the groups ``chunk`` names, each group
    predicted by a fit on every row outside it: (those rows, their predictions, seconds)."""
    _, family, params, features, X, y, folds, chunk = task
    pipeline = build_pipeline(family, params, FEATURE_SETS[features])
    held = np.isin(folds, chunk)
    predicted, _, seconds, _ = cross_val_oof(pipeline, X, y, folds, only=chunk)
    return np.flatnonzero(held), predicted[held], seconds


def _table(records) -> pd.DataFrame:
    drop = {
        "model",
        "test_confusion",
        "test_report",
        "stored",
        "refit_stored",
        "run_key",
        "oof_scores",
    }
    return pd.DataFrame([{k: v for k, v in r.items() if k not in drop} for r in records])


def log_champion(
    sweep: _Sweep, best: dict, name: str | None, alias: str = config.CHAMPION_ALIAS
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
        if k.startswith(("val_", "test_")) and k not in ("test_confusion", "test_report")
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


def _champion(sweep: _Sweep, best: dict, run_id: str, model_uri: str, rule, name, alias) -> dict:
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
    if name and tracking.alias_run_id(name, alias) == run_id:
        champion["registered"] = f"models:/{name}@{alias}"
        champion["version"] = tracking.alias_version(name, alias)
    elif name:
        version = tracking.register_model(
            model_uri,
            name,
            alias,
            tags={"selected_run": best["run_name"], "data_file": prepared.loaded.path.name},
            label_set=prepared.classes,
            data_sha256=prepared.loaded.fingerprint,
            classes_of=model_classes,
        )
        champion["registered"] = f"models:/{name}@{alias}"
        champion["version"] = version.version
        from gesturelab.models.model_card import log_card

        log_card(name, version.version)
    return champion


def champion_reject_rule(sweep: _Sweep, pipeline, trained=None, oof_scores=None) -> dict:
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


def save_figures(result: SweepResult, best_rows, labels, figures_dir: Path) -> list[Path]:
    """The leaderboard, each family's test confusion matrix and the feature ablation, each
    drawn only when what it shows changed (``plots.save_unless_same``)."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    top = result.runs.sort_values("val_f1_macro", ascending=False).groupby("family").head(5)
    title = "Top 5 configurations per family (grouped-CV macro-F1)"
    shown = top[["family", "run_name", "val_f1_macro"]].to_dict("list")
    saved.append(
        save_unless_same(
            figures_dir / "leaderboard.png",
            [shown, title],
            lambda: leaderboard_figure(top, metric="val_f1_macro", title=title),
        )
    )
    for best in best_rows:
        matrix = np.asarray(best["test_confusion"])
        title = f"{best['run_name']}: test macro-F1 {best['test_f1_macro']:.3f}"
        saved.append(
            save_unless_same(
                figures_dir / f"confusion_{best['family']}.png",
                [matrix.tolist(), list(labels), title],
                lambda matrix=matrix, title=title: confusion_matrix_figure(
                    matrix, labels, title=title
                ),
            )
        )
    if not result.ablation.empty:
        table = result.ablation.pivot(index="features", columns="family", values="val_f1_macro")
        table = table.reindex([f for f in FEATURE_SETS if f in table.index])
        saved.append(
            save_unless_same(
                figures_dir / "feature_ablation.png",
                table.to_dict("split"),
                lambda: feature_ablation_figure(table),
            )
        )
    return saved
