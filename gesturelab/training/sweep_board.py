"""The sweep's leaderboard: its table, the run and saved view that show it in the MLflow UI, and
its figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import train_with_mlflow as tracking
from gesturelab.evaluation.plots import (
    confusion_matrix_figure,
    feature_ablation_figure,
    leaderboard_figure,
    save_unless_same,
)
from gesturelab.models.static_families import (
    FEATURE_SETS,
)
from gesturelab.training.sweep_state import SweepResult, SweepState

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


def publish_leaderboard(sweep: SweepState, result: SweepResult, sweep_id: str) -> dict:
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


def records_table(records) -> pd.DataFrame:
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
