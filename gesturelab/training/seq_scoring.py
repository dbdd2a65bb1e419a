"""A sequence model on held-out sequences: the full report and the scores."""

from __future__ import annotations

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet
from gesturelab.evaluation.scoring import Labelled, score
from gesturelab.training.seq_runs import tracking


def evaluate_sequences(
    model,
    data: SequenceSet,
    frames: int,
    n_bootstrap: int = config.N_BOOTSTRAP,
    seed: int = config.SEQUENCE_SEED,
    return_scores: bool = False,
):
    """The full evaluation report of ``model`` on ``data``, sliced by subject and by finger.

    model: a Keras model, or the ``SequencePredictor`` that serves it (``evaluate-seq`` scores
    through the predictor, so a served model is scored by the code that serves it).
    """
    from gesturelab.models.predictor import SequencePredictor

    predictor = model if isinstance(model, SequencePredictor) else None
    if predictor is None:
        predictor = SequencePredictor(model, {"frames": frames, "classes": list(data.classes)})
    scored = score(predictor, Labelled.sequences(data), n_bootstrap=n_bootstrap, seed=seed)
    report, scores = scored.report, scored.scores
    report["predict_ms_per_sequence"] = 1000 * scored.seconds / max(len(data), 1)
    report["data"] = {"source": data.source, "n_sequences": len(data)}
    return (report, scores) if return_scores else report


def evaluate_model_uri(
    model_uri: str,
    data_root=None,
    split: str = "test",
    out=None,
    log: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
    data=None,
) -> dict:
    """Score a logged sequence model on a SHREC'17/DHG split, or on any sequence dataset
    (``data``: a file, folder or imported dataset's name); JSON report and MLflow run."""
    from gesturelab.datasets import shrec
    from gesturelab.errors import ModelLoadError
    from gesturelab.evaluation.full_report import write_report
    from gesturelab.models.predictor import SequencePredictor, load_predictor

    predictor = load_predictor(model_uri)
    if not isinstance(predictor, SequencePredictor):
        raise ModelLoadError(
            f"{model_uri} is a static (scikit-learn) model of single hands; this takes a "
            "sequence model (score a static one with `evaluate --model ... --data <CSV>`)"
        )
    classes = tuple(predictor.metadata.get("classes") or ())
    n_classes = len(predictor.classes)
    data_spec = data
    if data_spec is not None:
        from gesturelab.datasets.sequence_formats import read_sequences

        loaded = read_sequences(
            data_spec,
            classes=list(predictor.classes),
            verbose=False,
            split=split,
            hand=predictor.hand,
            hand_strict=False,
        )
        data = loaded.data
        split = split if loaded.format == "shrec" else loaded.name
    else:
        data = shrec.load(data_root, split, n_classes)
    if classes and classes != tuple(data.classes):
        raise ModelLoadError(
            f"{model_uri} predicts {len(classes)} classes ({', '.join(classes[:3])}, ...), "
            f"the data has {len(data.classes)} ({', '.join(data.classes[:3])}, ...)"
        )
    report = evaluate_sequences(predictor, data, predictor.frames, n_bootstrap)
    report["model_uri"] = model_uri
    report["model"] = tracking().model_version_info(model_uri)
    report["split"] = split
    return write_report(
        report,
        run_name=f"{model_uri} on {split}",
        tags={
            "model_uri": model_uri,
            "data": str(data_spec or data_root or data.source),
            "split": split,
        },
        out=out,
        log=log,
    )
