"""Classification metrics shared by the sweep, `evaluate` and the notebooks."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    cohen_kappa_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
)


def classification_metrics(y_true, y_pred, full: bool = False) -> dict[str, float]:
    """Accuracy and macro/weighted precision, recall and F1 (0 where a class is never predicted).

    full: also micro averages, Cohen's kappa and the Matthews correlation coefficient.
    """
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    metrics = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro", "weighted") if full else ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        metrics[f"precision_{average}"] = float(p)
        metrics[f"recall_{average}"] = float(r)
        metrics[f"f1_{average}"] = float(f)
    if full:
        metrics["cohen_kappa"] = float(cohen_kappa_score(y_true, y_pred))
        metrics["mcc"] = float(matthews_corrcoef(y_true, y_pred))
    return metrics


def per_class_report(y_true, y_pred, labels=None) -> dict:
    """sklearn's classification report as a dict: precision/recall/F1/support per class."""
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred))
    return classification_report(
        y_true, y_pred, labels=list(labels), output_dict=True, zero_division=0
    )


def confusion(y_true, y_pred, labels) -> np.ndarray:
    return confusion_matrix(
        np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object), labels=list(labels)
    )


def uncertainty(probabilities: np.ndarray) -> pd.DataFrame:
    """confidence (top probability), margin (top minus second) and entropy (over log K, so 1
    is a uniform guess) of each row of class probabilities."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    ordered = -np.sort(-p, axis=1)
    second = ordered[:, 1] if p.shape[1] > 1 else np.zeros(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return pd.DataFrame(
        {
            "confidence": ordered[:, 0],
            "margin": ordered[:, 0] - second,
            "entropy": entropy / np.log(p.shape[1]) if p.shape[1] > 1 else 0.0,
        }
    )
