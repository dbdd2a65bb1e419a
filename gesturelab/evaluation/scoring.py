"""Score any logged or registered static model on a labelled landmark CSV it has never seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.evaluation.full_report import evaluation_report, write_report
from gesturelab.models.predictor import load_static

SLICE_COLUMNS = ("handedness", "user_id", "subject", "source", "group")


def evaluate_model(
    model_uri: str,
    data_path,
    out=None,
    quarantine_dir=None,
    log: bool = True,
    n_bootstrap=config.N_BOOTSTRAP,
    read_options: dict | None = None,
) -> dict:
    """The full evaluation report (see gesturelab.evaluation.full_report), printed, written, logged.

    data_path: any dataset ``gesturelab.datasets`` reads (a file, an image folder, a name).
    """
    from gesturelab import datasets
    from gesturelab.models.rejection import rejected

    predictor = load_static(model_uri, "`evaluate`")
    loaded = datasets.read(data_path, quarantine_dir=quarantine_dir, **(read_options or {}))
    X = loaded.data
    y = loaded.y
    scores, reject_scores = predictor.predict_with_scores(loaded.data)
    predicted = np.asarray(predictor.classes, dtype=object)[scores.argmax(axis=1)]
    slices = {c: loaded.data[c].to_numpy() for c in SLICE_COLUMNS if c in loaded.data.columns}
    report = evaluation_report(
        y,
        predicted,
        scores,
        predictor.classes,
        slices=slices,
        row_ids=loaded.lines,
        n_bootstrap=n_bootstrap,
    )
    unknown = sorted(set(y) - set(predictor.classes))
    if predictor.reject:
        # What the model's reject option does on this data: hands it answers, and how well.
        said_none = rejected(scores, predictor.classes, predictor.reject, reject_scores)
        answered = ~said_none
        report["reject"] = {
            "rule": {k: v for k, v in predictor.reject.items() if k != "trade_off"},
            "coverage": float(answered.mean()),
            "accuracy_answered": float((predicted[answered] == y[answered]).mean())
            if answered.any()
            else None,
        }
    report["model_uri"] = model_uri
    report["model"] = tracking.model_version_info(model_uri)
    report["data"] = {
        "path": str(Path(loaded.path).resolve()),
        "sha256": loaded.fingerprint,
        **loaded.counts,
        "quarantine": str(loaded.quarantine_path) if loaded.quarantine_path else None,
        "labels_unknown_to_model": unknown,
    }
    report["note"] = "example rows are line numbers of the CSV"
    metrics, intervals = report["metrics"], report["intervals"]
    print(
        f"{model_uri} on {Path(data_path).name} ({len(X)} rows): "
        f"accuracy {metrics['accuracy']:.4f} "
        f"[{intervals['accuracy']['low']:.4f}, {intervals['accuracy']['high']:.4f}], "
        f"macro-F1 {metrics['f1_macro']:.4f} "
        f"[{intervals['f1_macro']['low']:.4f}, {intervals['f1_macro']['high']:.4f}]"
    )
    if unknown:
        print(f"warning: labels the model never saw (always counted wrong): {unknown}")
    return write_report(
        report,
        run_name=f"{model_uri} on {Path(data_path).name}",
        tags={"model_uri": model_uri, "data_sha256": loaded.fingerprint},
        out=out,
        log=log,
    )
