"""One evaluation over every champion, static and sequence: what notebook 05 calls.

Nothing is read back from stored numbers: each candidate model is loaded from its MLflow run
and scored again on the data it never saw (the HaGRID test split; the SHREC'17 subjects held
out of its training), through the same ``evaluation_report`` as everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.evaluation.full_report import headline_row, paired_comparison
from gesturelab.evaluation.scoring import Labelled, score


@dataclass
class Scored:
    name: str
    task: str
    measured_on: str
    run_id: str
    report: dict
    y_true: np.ndarray
    y_pred: np.ndarray
    champion: bool = False
    extra: dict = field(default_factory=dict)


def _champion_tags(model_name: str) -> dict:
    """The tags of the run the registered champion was logged from; {} when there is none."""
    import train_with_mlflow as tracking

    try:
        info = tracking.model_version_info(f"models:/{model_name}@{config.CHAMPION_ALIAS}")
    except tracking.TrackingError:  # no champion registered (yet) is a normal state here
        return {}
    return tracking.get_run(info["run_id"]).tags


def _latest_tags(experiment: str, kind: str, where: dict | None = None) -> dict:
    """Tags of the newest finished run of ``kind`` (and tags ``where``); {} when none."""
    import train_with_mlflow as tracking

    runs = tracking.finished_runs(experiment, kind, where, latest_sweep=True)
    if not runs:
        return {}
    return max(runs, key=lambda r: r.start_time).tags


def _newest_per(runs, key) -> list:
    """The newest run of each ``key(run)``, oldest first."""
    newest = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        newest.pop(key(run), None)
        newest[key(run)] = run
    return list(newest.values())


def score_static(
    processed_path, experiment=config.STATIC_EXPERIMENT, n_bootstrap=config.N_BOOTSTRAP
):
    """Each family's selected configuration on the HaGRID test split (its model never saw it)."""
    import train_with_mlflow as tracking
    from gesturelab.datasets.static_data import prepare
    from gesturelab.models.predictor import GesturePredictor

    prepared = prepare(processed_path, verbose=False)
    test = prepared.part("test")
    X, y = prepared.Xy("test")
    runs = tracking.finished_runs(experiment, "config", latest_sweep=True)
    runs = _newest_per([r for r in runs if "test_accuracy" in r.metrics], lambda r: r.family)
    if not runs:
        return []
    champion_run = _champion_tags(config.STATIC_MODEL_NAME).get("selected_from_run")
    if champion_run not in {r.run_id for r in runs}:  # not registered (a quick run) or elsewhere
        champion_run = _latest_tags(experiment, "champion").get("selected_from_run")
    scored = []
    held = Labelled(
        X,
        y,
        f"HaGRID sample test split ({len(y)} rows)",
        slices={"source block": test["group"].astype(str).to_numpy()},
        row_ids=test.index.to_numpy(),
    )
    for run in runs:
        predictor = GesturePredictor.load(f"runs:/{run.run_id}/model")
        result = score(predictor, held, n_bootstrap=n_bootstrap)
        report, predicted = result.report, result.predicted
        scored.append(
            Scored(
                name=f"{run.family}: {run.run_name}",
                task="HaGRID static, 18 classes",
                measured_on=f"HaGRID sample test split ({len(y)} rows)",
                run_id=run.run_id,
                report=report,
                y_true=y,
                y_pred=predicted,
                champion=run.run_id == champion_run,
                extra={"test_rows": test, "model_uri": f"runs:/{run.run_id}/model"},
            )
        )
    return scored


def score_sequences(
    experiment=config.SEQUENCE_EXPERIMENT, n_bootstrap=config.N_BOOTSTRAP, data=None
):
    """Each architecture of the notebook-03 leaderboard on the subjects it was validated on."""
    import train_with_mlflow as tracking
    from gesturelab.datasets import shrec
    from gesturelab.models.predictor import load_sequence_model
    from gesturelab.training.seq_scoring import evaluate_sequences

    runs = tracking.finished_runs(experiment, where={"study": "leaderboard"})
    runs = _newest_per(runs, lambda r: (int(r.tags["n_classes"]), r.family))
    if not runs:
        return []
    data = data if data is not None else shrec.load_compact()
    # The registered champions; unregistered (a quick run), the newest refit of notebook 03.
    champions = {
        n: _champion_tags(name)
        or _latest_tags(experiment, "", {"study": "champion", "n_classes": n})
        for n, name in config.SEQUENCE_MODEL_NAMES.items()
    }
    scored = []
    for run in sorted(runs, key=lambda r: (int(r.tags["n_classes"]), r.family)):
        n_classes = int(run.tags["n_classes"])
        subjects = [int(s) for s in run.params["data_subjects_validation"].split()]
        held_out = data.with_classes(n_classes).subset(np.isin(data.subjects, subjects))
        model, metadata = load_sequence_model(f"runs:/{run.run_id}/model")
        frames = int(metadata.get("frames") or model.input_shape[1])
        report, scores = evaluate_sequences(
            model, held_out, frames, n_bootstrap, return_scores=True
        )
        names = np.asarray(held_out.classes, dtype=object)
        scored.append(
            Scored(
                name=f"{run.family} {n_classes}-class",
                task=f"SHREC'17 dynamic, {n_classes} classes",
                measured_on=f"SHREC'17 subjects {subjects} ({len(held_out)} sequences)",
                run_id=run.run_id,
                report=report,
                y_true=names[held_out.labels],
                y_pred=names[scores.argmax(axis=1)],
                champion=_is_champion_row(run, runs, champions.get(n_classes, {})),
                extra={"held_out": held_out, "scores": scores},
            )
        )
    return scored


def _is_champion_row(run, leaderboard, champion: dict) -> bool:
    """The leaderboard row the champion was validated by, else the row of its architecture.

    A champion trained by ``train-seq`` was validated by its own run, not a leaderboard row;
    the leaderboard's row of the same architecture and label set stands for it.
    ``run`` and ``leaderboard``'s items are RunRecords; ``champion`` is the champion's tags.
    """
    same_task = {r.run_id for r in leaderboard if r.tags["n_classes"] == run.tags["n_classes"]}
    if champion.get("validated_by_run") in same_task:
        return run.run_id == champion["validated_by_run"]
    return bool(champion) and run.family == champion.get("model_family")


def summary(scored: list[Scored]) -> pd.DataFrame:
    rows = []
    for s in scored:
        rows.append(
            {
                "task": s.task,
                "model": s.name + (" (champion)" if s.champion else ""),
                **headline_row(s.report),
                "measured_on": s.measured_on,
            }
        )
    return pd.DataFrame(rows)


def paired_against_champions(scored: list[Scored], n: int = 1000) -> pd.DataFrame:
    """McNemar's test and a paired bootstrap of each model against its task's champion."""
    rows = []
    for champion in (s for s in scored if s.champion):
        for other in (s for s in scored if s.task == champion.task and s is not champion):
            test = paired_comparison(champion.y_true, champion.y_pred, other.y_pred, n=n)
            rows.append(
                {"task": champion.task, "champion": champion.name, "versus": other.name, **test}
            )
    return pd.DataFrame(rows)


def weakest_classes(scored: Scored, k: int = 3) -> list[tuple[str, float, str]]:
    """The k classes with the lowest F1, each with its main confusion in words.

    A class loses F1 by being missed (recall) or by absorbing another class (precision); the
    description names the larger of the two off-diagonal cells of the confusion matrix.
    """
    labels = list(scored.report["labels"])
    matrix = np.array(scored.report["confusion_matrix"])
    np.fill_diagonal(matrix, 0)
    f1 = per_class_f1(scored.report).sort_values()
    out = []
    for name, value in f1[f1 < 1.0].head(k).items():
        i = labels.index(name)
        missed, absorbed = matrix[i].argmax(), matrix[:, i].argmax()
        if matrix[i, missed] >= matrix[absorbed, i]:
            described = f"mostly taken for {labels[missed]}"
        else:
            described = f"{labels[absorbed]} taken for it"
        out.append((name, float(value), described))
    return out


def per_class_f1(report: dict) -> pd.Series:
    per_class = report["per_class"]
    return pd.Series({c: per_class[c]["f1-score"] for c in report["labels"] if c in per_class})


def hand_configuration_errors(scored: Scored) -> tuple[int, int]:
    """28-class SHREC'17: (errors with the right gesture but the wrong hand, all errors)."""

    def gesture(names):
        return np.asarray([str(x).rsplit("_", 2)[0] for x in names])

    wrong = scored.y_true != scored.y_pred
    same_gesture = gesture(scored.y_true) == gesture(scored.y_pred)
    return int((wrong & same_gesture).sum()), int(wrong.sum())
