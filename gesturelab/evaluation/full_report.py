"""The full evaluation report: every metric the field reports, with intervals and error analysis.

Accuracy, precision/recall/F1 (macro, micro, weighted), Cohen's kappa, MCC, one-vs-rest ROC-AUC,
top-k accuracy, per-class scores, raw and row-normalised confusion matrices, the most confused
pairs, calibration (expected calibration error and reliability bins), the least confident and the
confidently wrong examples, metrics per slice, and bootstrap intervals. ``scores`` are per-class
scores in ``classes`` order (probabilities, or a softmax of decision scores).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import binomtest, spearmanr
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from gesturelab import config
from gesturelab.evaluation.metrics import classification_metrics, confusion, per_class_report


def headline_metrics(y_true, y_pred) -> dict[str, float]:
    return classification_metrics(y_true, y_pred, full=True)


def score_metrics(y_true, scores, classes) -> dict[str, float]:
    """One-vs-rest ROC-AUC (macro and weighted over the classes present) and top-k accuracy."""
    y_true = np.asarray(y_true, dtype=object)
    scores = np.asarray(scores, dtype=float)
    aucs, supports = [], []
    for j, c in enumerate(classes):
        positive = y_true == c
        if 0 < positive.sum() < len(y_true):
            aucs.append(roc_auc_score(positive, scores[:, j]))
            supports.append(positive.sum())
    out = {}
    if aucs:
        out["roc_auc_ovr_macro"] = float(np.mean(aucs))
        out["roc_auc_ovr_weighted"] = float(np.average(aucs, weights=supports))
    index = {c: j for j, c in enumerate(classes)}
    true_index = np.array([index.get(c, -1) for c in y_true])
    rank = np.argsort(-scores, axis=1)
    for k in (1, 3, 5):
        hit = (rank[:, :k] == true_index[:, None]).any(axis=1)
        out[f"top{k}_accuracy"] = float(hit.mean())
    return out


def calibration(y_true, scores, classes, n_bins: int = 10) -> dict:
    """Expected calibration error of the top score, and the reliability-diagram bins."""
    scores = np.asarray(scores, dtype=float)
    confidence = scores.max(axis=1)
    predicted = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
    correct = predicted == np.asarray(y_true, dtype=object)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins, ece = [], 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            ece += inside.mean() * gap
            bins.append(
                {
                    "low": float(low),
                    "high": float(high),
                    "count": int(inside.sum()),
                    "accuracy": float(correct[inside].mean()),
                    "confidence": float(confidence[inside].mean()),
                }
            )
    return {"ece": float(ece), "bins": bins}


def confused_pairs(matrix: np.ndarray, labels, top: int = 10) -> list[dict]:
    """The largest off-diagonal cells: which true class is taken for which."""
    matrix = np.asarray(matrix)
    support = np.maximum(matrix.sum(axis=1), 1)
    pairs = [
        {
            "true": labels[i],
            "predicted": labels[j],
            "count": int(matrix[i, j]),
            "rate": float(matrix[i, j] / support[i]),
        }
        for i in range(len(labels))
        for j in range(len(labels))
        if i != j and matrix[i, j] > 0
    ]
    return sorted(pairs, key=lambda p: (-p["count"], -p["rate"]))[:top]


def bootstrap_intervals(
    y_true,
    y_pred,
    n: int = config.N_BOOTSTRAP,
    seed: int = config.BOOTSTRAP_SEED,
    level: float = 0.95,
):
    """Percentile intervals of accuracy and macro-F1 over resampled rows."""
    draws = _bootstrap_scores(y_true, y_pred, n, seed)
    tail = (1 - level) / 2 * 100
    return {
        name: {
            "low": float(np.percentile(values, tail)),
            "high": float(np.percentile(values, 100 - tail)),
            "level": level,
            "resamples": n,
        }
        for name, values in draws.items()
    }


def _bootstrap_scores(y_true, y_pred, n: int, seed: int) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of ``n`` resamples of the rows, all resamples at once.

    Macro-F1 as scikit-learn's ``f1_score(average="macro", zero_division=0)`` of each resample:
    the mean over the classes that resample holds (true or predicted) of 2·TP / (true + predicted).
    The rows are drawn one resample at a time, as a loop over resamples would draw them.
    """
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    size = len(y_true)
    _, codes = np.unique(np.concatenate([y_true, y_pred]).astype(str), return_inverse=True)
    k = int(codes.max()) + 1 if size else 1
    true_codes, pred_codes = codes[:size], codes[size:]
    rng = np.random.default_rng(seed)
    rows = np.stack([rng.integers(0, size, size) for _ in range(n)]) if n else np.zeros((0, 0))
    truth, predicted = true_codes[rows], pred_codes[rows]
    right = truth == predicted
    cells = (np.arange(n) * k)[:, None]  # resample r's class c counts in cell r·k + c

    def count(codes, weights=None):
        return np.bincount((codes + cells).ravel(), weights, minlength=n * k).reshape(n, k)

    true_count, pred_count = count(truth), count(predicted)
    hits = count(truth, right.ravel().astype(float))
    both = true_count + pred_count
    f1 = np.divide(2 * hits, both, out=np.zeros((n, k)), where=both > 0)
    return {"accuracy": right.mean(axis=1), "f1_macro": f1.sum(axis=1) / (both > 0).sum(axis=1)}


def held_out_f1(truth, predicted) -> float:
    """Macro-F1 over the classes the held-out rows hold: a fold without some class would
    otherwise count a wrong answer naming it as a whole class scored 0."""
    truth = np.asarray(truth, dtype=object)
    return float(
        f1_score(truth, np.asarray(predicted, dtype=object), labels=np.unique(truth),
                 average="macro", zero_division=0)
    )  # fmt: skip


def grouped_interval(
    truth, predicted, groups, n: int = config.N_BOOTSTRAP, seed: int = config.BOOTSTRAP_SEED
) -> tuple[float, float]:
    """95 % percentile interval of ``held_out_f1`` over resampled groups (whole sources drawn
    with replacement, their rows together: rows of one source are not independent draws)."""
    _, classes = np.unique(
        np.concatenate([np.asarray(truth), np.asarray(predicted)]).astype(str), return_inverse=True
    )
    truth, predicted = classes[: len(truth)], classes[len(truth) :]
    k = int(classes.max()) + 1
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        t, p = truth[rows], predicted[rows]
        hits = np.bincount(t[t == p], minlength=k)
        present = np.bincount(t, minlength=k)
        both = present + np.bincount(p, minlength=k)
        draws.append((2 * hits[present > 0] / both[present > 0]).mean())
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def grouped_accuracy_interval(
    hits, groups, n: int = config.N_BOOTSTRAP, seed: int = config.BOOTSTRAP_SEED
) -> tuple[float, float]:
    """95 % percentile interval of the accuracy over resampled groups (``grouped_interval``'s
    resampling: a subject's sequences drawn together, one person's recordings are not
    independent draws). hits: whether each row was right."""
    _, codes = np.unique(groups, return_inverse=True)
    right, rows = np.bincount(codes, weights=hits), np.bincount(codes)
    draws = np.random.default_rng(seed).integers(0, len(rows), (n, len(rows)))
    accuracy = right[draws].sum(axis=1) / rows[draws].sum(axis=1)
    return float(np.percentile(accuracy, 2.5)), float(np.percentile(accuracy, 97.5))


def fold_rank_correlation(table, score: str, truth: str) -> float:
    """Mean over the table's folds (column ``fold``) of Spearman's rho between a selection score
    and what the candidates scored held out (nan where a fold's values are all equal)."""
    values = []
    for _, rows in table.groupby("fold"):
        if rows[score].nunique() > 1 and rows[truth].nunique() > 1:
            values.append(spearmanr(rows[score], rows[truth]).statistic)
    return float(np.mean(values)) if values else np.nan


def paired_comparison(
    y_true, pred_a, pred_b, n: int = config.N_BOOTSTRAP, seed: int = config.BOOTSTRAP_SEED
) -> dict:
    """Are two models' accuracies on the same rows really different?

    McNemar's exact test on the rows where exactly one model is right, and a paired bootstrap
    interval of the accuracy difference (a minus b).
    """
    y_true = np.asarray(y_true, dtype=object)
    right_a = np.asarray(pred_a, dtype=object) == y_true
    right_b = np.asarray(pred_b, dtype=object) == y_true
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p_value = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        rows = rng.integers(0, len(y_true), len(y_true))
        diffs.append(right_a[rows].mean() - right_b[rows].mean())
    return {
        "accuracy_a": float(right_a.mean()),
        "accuracy_b": float(right_b.mean()),
        "difference": float(right_a.mean() - right_b.mean()),
        "difference_low": float(np.percentile(diffs, 2.5)),
        "difference_high": float(np.percentile(diffs, 97.5)),
        "only_a_right": only_a,
        "only_b_right": only_b,
        "mcnemar_p": float(p_value),
    }


def flat_metrics(report: dict) -> dict[str, float]:
    """The report's numbers as MLflow metric names."""
    flat = dict(report["metrics"])
    for name, interval in report["intervals"].items():
        flat[f"{name}_ci_low"] = interval["low"]
        flat[f"{name}_ci_high"] = interval["high"]
    if "calibration" in report:
        flat["ece"] = report["calibration"]["ece"]
    return flat


def evaluation_report(
    y_true,
    y_pred,
    scores=None,
    classes=None,
    slices: dict | None = None,
    row_ids=None,
    n_bootstrap: int = config.N_BOOTSTRAP,
    n_examples: int = 10,
    seed: int = config.BOOTSTRAP_SEED,
) -> dict:
    """Everything above as one JSON-ready dict.

    slices: {"handedness": values per row, ...}; row_ids name rows in the example lists.
    """
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    labels = list(classes) if classes is not None else sorted(set(y_true) | set(y_pred))
    labels += [c for c in sorted(set(y_true) | set(y_pred)) if c not in labels]
    matrix = confusion(y_true, y_pred, labels)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    report = {
        "rows": len(y_true),
        "metrics": headline_metrics(y_true, y_pred),
        "intervals": bootstrap_intervals(y_true, y_pred, n_bootstrap, seed),
        "per_class": per_class_report(y_true, y_pred, labels),
        "labels": labels,
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalised": normalised.round(4).tolist(),
        "confused_pairs": confused_pairs(matrix, labels),
    }
    if scores is not None:
        scores = np.asarray(scores, dtype=float)
        report["metrics"] |= score_metrics(y_true, scores, list(classes))
        report["calibration"] = calibration(y_true, scores, list(classes))
        ids = np.asarray(row_ids if row_ids is not None else np.arange(len(y_true)))
        confidence = scores.max(axis=1)
        wrong = np.flatnonzero(y_true != y_pred)

        def describe(i):
            return {
                "row": ids[i].item() if hasattr(ids[i], "item") else ids[i],
                "true": y_true[i],
                "predicted": y_pred[i],
                "confidence": float(confidence[i]),
            }

        report["least_confident"] = [describe(i) for i in np.argsort(confidence)[:n_examples]]
        worst = wrong[np.argsort(-confidence[wrong])][:n_examples]
        report["confidently_wrong"] = [describe(i) for i in worst]
    report["slices"] = {}
    for name, values in (slices or {}).items():
        values = np.asarray(values, dtype=object)
        report["slices"][name] = {
            str(value): {
                "rows": int((values == value).sum()),
                "accuracy": float(accuracy_score(y_true[values == value], y_pred[values == value])),
                "f1_macro": float(
                    f1_score(
                        y_true[values == value],
                        y_pred[values == value],
                        average="macro",
                        zero_division=0,
                    )
                ),
            }
            for value in sorted(set(values), key=str)
        }
    return report


def headline_row(report: dict, prefix: str = "") -> dict[str, float | None]:
    """The numbers a leaderboard row shows, with their intervals, from one report."""
    metrics, intervals = report["metrics"], report["intervals"]
    row = {}
    for name in ("accuracy", "f1_macro"):
        row[name] = metrics[name]
        row[f"{name}_low"] = intervals[name]["low"]
        row[f"{name}_high"] = intervals[name]["high"]
    row.update(
        cohen_kappa=metrics["cohen_kappa"],
        mcc=metrics["mcc"],
        roc_auc_ovr_macro=metrics.get("roc_auc_ovr_macro"),
        top3_accuracy=metrics.get("top3_accuracy"),
        ece=report.get("calibration", {}).get("ece"),
    )
    return {f"{prefix}{k}": v for k, v in row.items()}


@dataclass
class RunArtifacts:
    """What a run logs about predictions: metrics, figures and JSON documents, by name."""

    metrics: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)  # artifact name -> matplotlib figure
    dicts: dict = field(default_factory=dict)  # artifact name -> JSON-able document


def prediction_artifacts(y_true, y_pred, prefix: str, labels=None, title: str = ""):
    """Metrics, confusion-matrix figure and per-class report of predictions, named ``prefix*``.

    Returns (RunArtifacts, confusion matrix).
    """
    from gesturelab.evaluation.plots import confusion_matrix_figure

    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    labels = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    matrix = confusion(y_true, y_pred, labels)
    figure = confusion_matrix_figure(matrix, labels, title=title or prefix.rstrip("_"))
    artifacts = RunArtifacts(
        metrics={f"{prefix}{k}": v for k, v in classification_metrics(y_true, y_pred).items()},
        figures={f"{prefix}confusion_matrix.png": figure},
        dicts={
            f"{prefix}classification_report.json": {
                "labels": labels,
                "confusion_matrix": matrix.tolist(),
                "report": per_class_report(y_true, y_pred, labels),
            }
        },
    )
    return artifacts, matrix


def report_artifacts(report: dict, title: str, prefix: str = "") -> RunArtifacts:
    """An evaluation report as a run logs it: every flat metric, the report as JSON, the
    normalised confusion matrix and (with scores) the reliability diagram."""
    from gesturelab.evaluation.plots import confusion_matrix_figure, reliability_figure

    figures = {
        f"{prefix}confusion_matrix_normalised.png": confusion_matrix_figure(
            np.asarray(report["confusion_matrix"]), report["labels"], title, normalise=True
        )
    }
    if "calibration" in report:
        figures[f"{prefix}reliability_diagram.png"] = reliability_figure(report["calibration"])
    return RunArtifacts(
        metrics={f"{prefix}{k}": v for k, v in flat_metrics(report).items()},
        figures=figures,
        dicts={f"{prefix}evaluation_report.json": report},
    )


def write_report(report: dict, *, run_name: str, tags: dict, out=None, log: bool = True) -> dict:
    """What ``evaluate`` and ``evaluate-seq`` do with a report: log it as a run of the
    "evaluations" experiment (its id goes into the report as ``run_id``), then write the JSON.
    """
    if log:
        import train_with_mlflow as tracking

        artifacts = report_artifacts(report, run_name)
        with tracking.start_run("evaluations", run_name, kind="evaluation", tags=tags) as run:
            run.log(artifacts.metrics, artifacts.figures, artifacts.dicts)
        report["run_id"] = run.run_id
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=_json_value))
        print(f"report written to {out}")
    return report


def _json_value(value):
    """numpy numbers as numbers, anything else (paths, ...) as text."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
