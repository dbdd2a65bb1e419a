"""Export a model of ours to deployable files and check each file against the original.

Targets (``TARGETS``, one entry each): ``keras`` (the ``.keras`` file), ``tflite-f32``,
``tflite-f16``, ``tflite-dynamic`` (int8 weights, float activations), ``tflite-int8`` (int8
weights and activations, calibrated on representative training samples; the input and output stay
float32 so the file still takes raw landmarks) and ``onnx``.

Every exported file takes raw landmarks, exactly what the logged model takes: the preprocessing
is part of the graph. A sequence model's ``SequenceFeatures`` layer is Keras ops already. A
static scikit-learn pipeline is rebuilt as a TensorFlow graph (``StaticGraph``): the
``LandmarkNormalizer`` features, the scaler and the classifier (an SVM with its support vectors,
or a logistic regression), giving the scores ``StaticPredictor.predict_distribution`` gives.
Random forests and nearest neighbours have no such graph: they are refused with that said.

Recurrent layers (LSTM, GRU) are rebuilt with ``unroll=True`` before conversion: the TFLite
converter cannot lower their loop to built-in ops, and an unrolled layer is the same weights
and the same arithmetic (the converter fails with "Lowering tensor list ops is failed").

TFLite files run on ``ai-edge-litert``'s interpreter, ONNX files on ``onnxruntime``; both are
what a deployment would use, not TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturelab.errors import LandmarkInputError
from gesturelab.serving.export_graphs import ExportError, Source, source_for
from gesturelab.serving.export_targets import FORMATS, TARGETS, export, runner

# A conversion that loses more than this much accuracy on held-out data is reported as failed.
MAX_ACCURACY_LOSS = 0.01


REPRESENTATIVE_SAMPLES = 200


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def latency_ms(predict, batch: np.ndarray, repeats: int) -> dict:
    """p50/p95/p99 milliseconds of ``predict(batch)`` over ``repeats`` calls (after warm-up)."""
    for _ in range(3):
        predict(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(batch)
        times.append((time.perf_counter() - start) * 1000)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _scores(y_true, probabilities, reference) -> dict:
    from sklearn.metrics import f1_score

    predicted = probabilities.argmax(axis=1)
    return {
        "accuracy": float((predicted == y_true).mean()),
        "f1_macro": float(
            f1_score(y_true, predicted, average="macro", labels=np.unique(y_true), zero_division=0)
        ),
        "agreement": float((predicted == reference.argmax(axis=1)).mean()),
        "max_abs_diff": float(np.abs(probabilities - reference).max()),
    }


def check(
    source: Source,
    files: dict,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 64,
    repeats: int = 200,
) -> list[dict]:
    """The original and every exported file side by side on the same held-out rows.

    files: {format: path}. x: held-out input (n, *input_shape) float32; y: class indices.
    Each row: accuracy, macro-F1, top-1 agreement with the original, largest probability
    difference, file size, latency p50/p95/p99 for one sample and for a batch of ``batch_size``
    (one thread each), and ``passed``: accuracy within ``MAX_ACCURACY_LOSS`` of the original.
    """
    x = np.asarray(x, np.float32)
    if x.shape[1:] != tuple(source.input_shape):
        raise LandmarkInputError(
            f"held-out input has shape {x.shape[1:]}, the model takes {source.input_shape}"
        )
    reference = _batched(source.predict, x, 256)
    one, batch = x[:1], x[: min(batch_size, len(x))]
    rows = [
        {
            "format": "original",
            **_scores(y, reference, reference),
            "size_kb": float("nan"),
            **{f"one_{k}_ms": v for k, v in latency_ms(source.predict, one, repeats).items()},
            **{f"batch_{k}_ms": v for k, v in latency_ms(source.predict, batch, repeats).items()},
            "passed": True,
        }
    ]
    for fmt, path in files.items():
        run = runner(path, fmt)
        probabilities = _batched(run, x, 256)
        scores = _scores(y, probabilities, reference)
        rows.append(
            {
                "format": fmt,
                **scores,
                "size_kb": os.path.getsize(path) / 1024,
                **{f"one_{k}_ms": v for k, v in latency_ms(run, one, repeats).items()},
                **{f"batch_{k}_ms": v for k, v in latency_ms(run, batch, repeats).items()},
                "passed": scores["accuracy"] >= rows[0]["accuracy"] - MAX_ACCURACY_LOSS,
            }
        )
    return rows


def _batched(predict, x, size):
    return np.concatenate([predict(x[i : i + size]) for i in range(0, len(x), size)])


def export_and_check(
    loaded,
    formats,
    x_eval,
    y_eval,
    representative,
    folder=None,
    name: str = "model",
    repeats: int = 200,
) -> tuple[list[dict], dict, list[dict]]:
    """Export ``loaded`` to ``formats`` and check each file: (rows, {format: path}, failures).

    failures: formats that could not be converted ({format, error}); they are rows of the
    table too (``passed`` False), so nothing fails silently.
    """
    source = source_for(loaded)
    folder = Path(folder or tempfile.mkdtemp(prefix="gesturelab-export-"))
    files, failures = {}, []
    for fmt in formats:
        try:
            files[fmt] = export(source, fmt, folder, name, representative)
        except ExportError as exc:
            failures.append({"format": fmt, "error": str(exc)})
    rows = check(source, files, x_eval, y_eval, repeats=repeats)
    for failure in failures:
        rows.append({"format": failure["format"], "passed": False, "error": failure["error"]})
    for row in rows:
        if row["format"] in files:
            row["sha256"] = sha256(files[row["format"]])
            row["file"] = files[row["format"]].name
    return rows, files, failures


@dataclass
class HeldOut:
    """Held-out rows to check exports on, training-side rows to calibrate int8 on."""

    x: np.ndarray
    y: np.ndarray
    representative: np.ndarray
    what: str


STATIC_SPLITS = ("test", "val", "train")


def held_out_for(
    loaded, run_params: dict, data=None, split: str = "test", trained_sha256: str | None = None
) -> HeldOut:
    """The data an export is checked on.

    A sequence model of SHREC'17 without ``data``: the subjects its run held out
    (``data_subjects_validation``), refused when it was refit on every subject. A static model
    needs ``data``: its rows of ``split`` (the grouped split ``sweep`` uses) are the check,
    the other rows the representative samples. ``trained_sha256``: the digest of the file
    the model was trained on (its run's dataset tag), to say when the check is not held out.
    """
    rng = np.random.default_rng(0)
    if loaded.kind == "sequence":
        from gesturelab.datasets import shrec

        frames = int(loaded.metadata.get("frames") or loaded.model.input_shape[1])
        classes = [str(c) for c in loaded.metadata.get("classes") or []]
        if data is None:
            held = [int(s) for s in str(run_params.get("data_subjects_validation", "")).split()]
            trained = {int(s) for s in str(run_params.get("data_subjects_train", "")).split()}
            if not held or trained & set(held) or run_params.get("trained_on") == "all":
                raise ExportError(
                    "this model saw every SHREC'17 subject (refit): pass --data with sequences "
                    "it never saw"
                )
            sequences = shrec.load(None, "train", 28 if len(classes) == 28 else 14)
            if list(sequences.classes) != classes:  # a model of some of SHREC's gestures
                from gesturelab.datasets.sequences import pick_classes

                sequences = pick_classes(sequences, classes)
            test = np.isin(sequences.subjects, held)
            what = f"SHREC'17 held-out subjects {' '.join(map(str, held))}"
        else:
            from gesturelab.datasets.sequence_formats import read_sequences

            sequences = read_sequences(
                data,
                classes=classes,
                verbose=False,
                split=split,
                hand=loaded.metadata.get("hand"),  # the data read the way the model learnt it
                hand_strict=False,
            ).data
            test = np.ones(len(sequences), bool)
            what = f"{data}"
        x = sequences.to_fixed(frames).reshape(len(sequences), frames, -1)
        pool = np.flatnonzero(~test) if (~test).any() else np.flatnonzero(test)
        pick = rng.permutation(pool)[:REPRESENTATIVE_SAMPLES]
        return HeldOut(x[test], sequences.labels[test], x[pick], f"{what} ({test.sum()} sequences)")
    if data is None:
        raise ExportError("a static model is checked on data: pass --data (a landmark CSV)")
    if split not in STATIC_SPLITS:
        raise ExportError(
            f"--split {split!r}: a static model is checked on one part of the sweep's grouped "
            f"split of --data ({', '.join(STATIC_SPLITS)}), the other parts give the samples "
            "that calibrate int8"
        )
    from gesturelab.datasets.static_data import prepare

    prepared = prepare(data, verbose=False)
    columns = prepared.columns
    classes = [str(c) for c in loaded.model.classes_]
    index = {c: i for i, c in enumerate(classes)}
    rows = prepared.data[prepared.data["label"].astype(str).isin(index)]
    test = (rows["split"] == split).to_numpy()
    if not test.any() or test.all():
        raise ExportError(
            f"{data}: its {split} split has {test.sum()} of {len(rows)} rows of the model's "
            "classes; the check needs rows in it and rows outside it"
        )
    x = rows[columns].to_numpy(np.float32)
    y = rows["label"].astype(str).map(index).to_numpy()
    pick = rng.permutation(np.flatnonzero(~test))[:REPRESENTATIVE_SAMPLES]
    what = f"{data} {split} split ({test.sum()} rows)"
    if run_params.get("trained_on") == "train+val+test":
        trained = trained_sha256 or run_params.get("data_sha256")
        if trained and prepared.loaded.fingerprint.startswith(trained):
            what += (
                "; this model was refit on every row of this file, these included, so its "
                "accuracy here is not held out (the agreement of each file with it is)"
            )
        elif not trained:
            what += (
                "; this model was refit on every row of its training file, which its run does "
                "not name: if it is this file, its accuracy here is not held out"
            )
    return HeldOut(x[test], y[test], x[pick], what)


def table_text(rows: list[dict]) -> str:
    """The check as a fixed-width table (what ``export`` prints)."""
    head = (
        f"{'format':<15} {'accuracy':>8} {'macro-F1':>8} {'agree':>6} {'size KB':>8} "
        f"{'1: p50':>7} {'p95':>6} {'p99':>6} {'batch p50':>9} {'p95':>6} {'p99':>6}  result"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if "accuracy" not in r:
            lines.append(f"{r['format']:<15} FAILED: {r.get('error', '')}")
            continue
        size = "" if r["format"] == "original" else f"{r['size_kb']:.0f}"
        verdict = "ok" if r["passed"] else "FAILED (accuracy)"
        lines.append(
            f"{r['format']:<15} {r['accuracy']:>8.4f} {r['f1_macro']:>8.4f} "
            f"{r['agreement']:>6.3f} {size:>8} {r['one_p50_ms']:>7.3f} {r['one_p95_ms']:>6.3f} "
            f"{r['one_p99_ms']:>6.3f} {r['batch_p50_ms']:>9.3f} {r['batch_p95_ms']:>6.3f} "
            f"{r['batch_p99_ms']:>6.3f}  {'' if r['format'] == 'original' else verdict}"
        )
    return "\n".join(lines)


def export_model(
    model_uri: str,
    formats=FORMATS,
    data=None,
    split: str = "test",
    out=None,
    log: bool = True,
    repeats: int = 200,
) -> dict:
    """``python -m gesturelab export``: export, check on held-out data, log to the model's run.

    Files that pass go to the run's ``export/`` artifacts with the table (``export/check.json``,
    ``export/check_table.json``) and metrics ``export_<format>_<measure>``; a file that fails
    (conversion error, or more than one point of accuracy lost) is not logged as a shipped
    file, and the result says so (``failed``).
    """
    import pandas as pd

    import train_with_mlflow as tracking
    from gesturelab import config
    from gesturelab.models.predictor import open_model

    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ExportError(f"--out {out}: a file is there; export writes a folder of files")
    loaded = open_model(model_uri)
    info = tracking.model_version_info(model_uri)
    run_id = info.get("run_id") or tracking.run_of_model(model_uri)
    run = tracking.get_run(run_id) if run_id else None
    params, tags = (run.params, run.tags) if run else ({}, {})
    held = held_out_for(loaded, params, data, split, tags.get("dataset_training_sha256"))
    slug = f"{info['name']}-v{info['version']}" if "version" in info else Path(str(model_uri)).name
    folder = Path(out) if out else config.REPO_ROOT / "build" / "export" / slug
    if loaded.kind == "static":
        formats = [f for f in formats if not TARGETS[f].sequence_only]
    rows, files, failures = export_and_check(
        loaded, formats, held.x, held.y, held.representative, folder, slug, repeats
    )
    failed = [r["format"] for r in rows if not r["passed"]]
    result = {
        "model_uri": model_uri,
        "model": info,
        "checked_on": held.what,
        "rows": rows,
        "files": {k: str(v) for k, v in files.items()},
        "failed": failed,
        "max_accuracy_loss": MAX_ACCURACY_LOSS,
        "folder": str(folder),
    }
    if log and run_id:
        shipped = [files[r["format"]] for r in rows if r["passed"] and r["format"] in files]
        run = tracking.open_run(run_id)
        run.log_files(shipped, "export")
        run.log_dicts({"export/check.json": result})
        run.log_table(pd.DataFrame(rows), "export/check_table.json")
        measures = ("accuracy", "f1_macro", "agreement", "size_kb", "one_p50_ms", "one_p99_ms")
        run.log_metrics(
            {
                f"export_{r['format'].replace('-', '_')}_{k}": r[k]
                for r in rows
                for k in measures
                if np.isfinite(r.get(k, np.nan))  # the original has no size; failures nothing
            }
        )
        result["logged_to_run"] = run_id
    return result
