"""One way to score a model of ours on labelled held-out data, static or sequence.

``score(predictor, held)`` takes a predictor of either kind (``load_predictor``) and
``Labelled`` data (hand rows, or a ``SequenceSet``) and returns the truth, the scores, the
predictions and the full evaluation report. ``evaluate``, ``evaluate-seq``, notebook 05's report
and ``promote`` score through it; ``evaluate_model`` is the ``evaluate`` command's whole run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet
from gesturelab.evaluation.full_report import evaluation_report, write_report
from gesturelab.models.predictor import load_static


@dataclass
class Labelled:
    """Held-out data of either kind with its labels: ``inputs`` are hand rows (a DataFrame of
    landmark columns, what a static predictor takes) or a ``SequenceSet``."""

    inputs: object
    truth: np.ndarray  # the label of each row or sequence, by name
    what: str
    slices: dict = field(default_factory=dict)
    row_ids: object = None

    @classmethod
    def sequences(cls, data: SequenceSet, what: str | None = None) -> Labelled:
        """Sequences sliced by subject (and by finger where the data says which)."""
        slices = {"subject": data.subjects.astype(str)}
        if "finger" in data.meta:
            slices["finger"] = np.where(np.asarray(data.meta["finger"]) == 1, "one", "whole_hand")
        return cls(
            inputs=data,
            truth=np.asarray(data.classes, dtype=object)[data.labels],
            what=what or f"{data.source} ({len(data)} sequences)",
            slices=slices,
            row_ids=[f"seq{i}_subject{s}" for i, s in enumerate(data.subjects)],
        )


@dataclass
class Scored:
    truth: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray  # (n, classes) probabilities, columns in ``classes`` order
    classes: list
    reject_scores: np.ndarray | None = None  # what a static model's reject rule thresholds
    report: dict | None = None
    seconds: float = 0.0  # the predictions' wall time


def score(
    predictor,
    held: Labelled,
    *,
    report: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
    seed: int = config.BOOTSTRAP_SEED,
) -> Scored:
    """``predictor`` on ``held``: scores, predictions and (``report``) the full report."""
    start = time.perf_counter()
    if isinstance(held.inputs, SequenceSet):
        fixed = held.inputs.to_fixed(predictor.frames, "resample")
        scores, reject_scores = predictor.predict_fixed(fixed), None
    else:
        scores, reject_scores = predictor.predict_with_scores(held.inputs)
    seconds = time.perf_counter() - start
    classes = list(predictor.classes)
    predicted = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
    full = None
    if report:
        full = evaluation_report(
            held.truth,
            predicted,
            scores,
            classes,
            slices=held.slices,
            row_ids=held.row_ids,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
    return Scored(held.truth, predicted, scores, classes, reject_scores, full, seconds)


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
    slices = {c: loaded.data[c].to_numpy() for c in SLICE_COLUMNS if c in loaded.data.columns}
    held = Labelled(X, y, f"{data_path} ({len(X)} rows)", slices, row_ids=loaded.lines)
    scored = score(predictor, held, n_bootstrap=n_bootstrap)
    scores, reject_scores, predicted = scored.scores, scored.reject_scores, scored.predicted
    report = scored.report
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
