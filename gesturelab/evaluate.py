"""Score any logged or registered static model on a labelled landmark CSV it has never seen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import train_with_mlflow as tracking
from gesturelab.landmarks import LANDMARK_COLUMNS
from gesturelab.loading import load_landmarks_csv
from gesturelab.metrics import classification_metrics, confusion, per_class_report


def evaluate_model(model_uri: str, data_path, out=None, quarantine_dir=None) -> dict:
    """Accuracy, macro/weighted scores and a per-class report; written to ``out`` as JSON."""
    model = tracking.load_model(model_uri)
    loaded = load_landmarks_csv(data_path, classes=None, quarantine_dir=quarantine_dir)
    X = loaded.data[list(LANDMARK_COLUMNS)]
    y = loaded.y
    predicted = np.asarray(model.predict(X), dtype=object)
    known = [str(c) for c in getattr(model, "classes_", [])]
    labels = sorted(set(known) | set(y)) if known else sorted(set(y) | set(predicted))
    unknown = sorted(set(y) - set(known)) if known else []
    report = {
        "model_uri": model_uri,
        "model": tracking.model_version_info(model_uri),
        "data": {
            "path": str(Path(data_path).resolve()),
            "sha256": loaded.fingerprint,
            **loaded.counts,
            "quarantine": str(loaded.quarantine_path) if loaded.quarantine_path else None,
            "labels_unknown_to_model": unknown,
        },
        "metrics": classification_metrics(y, predicted),
        "per_class": per_class_report(y, predicted, labels),
        "labels": labels,
        "confusion_matrix": confusion(y, predicted, labels).tolist(),
    }
    metrics = report["metrics"]
    print(
        f"{model_uri} on {Path(data_path).name} ({len(y)} rows): "
        f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['f1_macro']:.4f}"
    )
    if unknown:
        print(f"warning: labels the model never saw (always counted wrong): {unknown}")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(f"report written to {out}")
    return report
