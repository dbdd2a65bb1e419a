"""Does calibration help real people? Leave-subjects-out on SHREC'17 (notebook 08).

Subjects are dealt into folds; for each fold a base model is trained on every other subject
(the champion's recipe, no validation subjects: ``train-seq --validation-fraction 0``), so it
never saw the fold's subjects. Each of those subjects then plays the user: k sequences per
class calibrate the base model (``training.calibration``, which holds a third of them back
to decide whether to keep the result), and the subject's remaining sequences score the
original, the calibrated candidate (before the fallback) and the model actually used (after).
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet, subject_folds
from gesturelab.training import calibration as cal


def fold_models(
    data: SequenceSet, n_folds: int, use_folds: int, arch="ddnet", epochs=None, engine=None
):
    """[(held-out subjects, base model trained without them)] for the first ``use_folds``;
    each base is a task of ``engine`` (``gesturelab.training.engine.Engine``; serial when None)."""
    from gesturelab.training.engine import Engine
    from gesturelab.training.seq_training import config_for

    folds = subject_folds(data.subjects, n_folds, seed=config.SEQUENCE_SEED)[:use_folds]
    train_config = config_for(arch, len(data.classes), epochs=epochs)
    with (engine or Engine("serial")).open(data) as pool:
        models = list(pool.map(_fit_without, [(held, train_config) for held in folds]))
    return [(held, model, train_config.frames) for held, model in zip(folds, models, strict=True)]


def _fit_without(data: SequenceSet, task):
    from gesturelab.training.seq_training import fit

    held, train_config = task
    return fit(data.subset(~np.isin(data.subjects, held)), train_config).model


def study(
    data: SequenceSet,
    bases,
    samples_per_class=(1, 3, 5),
    strategies=cal.STRATEGIES,
    learning_rates=(1e-5,),
    repeats: int = 1,
    epochs: int | None = None,
    progress=None,
    engine=None,
) -> pd.DataFrame:
    """One row per (subject, k, strategy, learning rate, repeat): accuracy on the subject's
    remaining sequences of the original, the candidate and the model used, and the
    held-back numbers the fallback decided on.

    Each subject is a task of ``engine`` (serial when None); a calibration's result does not
    depend on where or after what it runs, so the rows are the same on any engine.
    """
    from gesturelab.training.engine import Engine

    settings = {
        "samples_per_class": tuple(samples_per_class),
        "strategies": tuple(strategies),
        "learning_rates": tuple(learning_rates),
        "repeats": repeats,
        "epochs": epochs,
        "study": uuid.uuid4().hex,  # which bases a worker's compiled copies belong to
    }
    items = [(b, subject) for b, (held, _, _) in enumerate(bases) for subject in held]
    rows = []
    with (engine or Engine("serial")).open((data, bases, settings)) as pool:
        for subject_rows in pool.map(_calibrate_subject, items):
            rows.extend(subject_rows)
            if progress is not None:
                progress.update(len(subject_rows))
    return pd.DataFrame(rows)


class ReusedCopies:
    """Many calibrations of one model (a study over users): one compiled copy per freeze
    strategy and learning rate, put back before each calibration to the state a fresh copy
    starts from (weights, optimizer, dropout seeds).

    A fresh copy costs about 4 s before its first epoch (saving and loading the model, then
    tracing its training, validation and prediction steps), most of a 6-7 s calibration; a
    reused copy's steps are traced already. The results equal fresh copies' (tested). The model
    a calibration returns is the copy itself: score it before the next calibration with the
    same settings, which overwrites it.
    """

    def __init__(self, model):
        self.model = model
        self._copies: dict = {}

    def reset(self, config: cal.CalibrationConfig):
        key = (config.freeze_strategy, config.learning_rate)
        if key not in self._copies:
            tuned, trainable = cal.compiled_copy(self.model, config)
            tuned.optimizer.build(tuned.trainable_variables)
            variables = list(tuned.variables) + list(tuned.optimizer.variables)
            self._copies[key] = (tuned, trainable, variables, [v.numpy() for v in variables])
        tuned, trainable, variables, start = self._copies[key]
        for variable, value in zip(variables, start, strict=True):
            variable.assign(value)
        return tuned, trainable


# A worker's compiled copies of the base it calibrates, kept between its tasks (one study's).
_COPIES: dict = {}


def _calibrate_subject(shared, item) -> list[dict]:
    """Every calibration of one subject: its rows, in the order of the settings."""
    import tensorflow as tf

    # A calibration predicts with its copy of the model, which TensorFlow may report as
    # "retracing": expected here, and many lines in a notebook. Only for this task: the
    # process's other warnings stay on.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        return _calibrations(shared, item)
    finally:
        logger.setLevel(level)


def _calibrations(shared, item) -> list[dict]:
    data, bases, settings = shared
    b, subject = item
    _, model, frames = bases[b]
    key = (settings["study"], b)
    if key not in _COPIES:
        _COPIES.clear()
        _COPIES[key] = ReusedCopies(model)
    copies = _COPIES[key]
    model = copies.model
    user = data.subset(data.subjects == subject)
    x = user.to_fixed(frames).reshape(len(user), frames, -1)
    y = np.asarray(user.labels)
    rows = []
    for k in settings["samples_per_class"]:
        for repeat in range(settings["repeats"]):
            chosen, rest = cal.pick_per_class(y, k, seed=repeat)
            if not len(rest):
                continue
            original = _accuracy(model, x[rest], y[rest])
            for strategy in settings["strategies"]:
                for rate in settings["learning_rates"]:
                    config = {"freeze_strategy": strategy, "learning_rate": rate}
                    if settings["epochs"]:
                        config["epochs"] = settings["epochs"]
                    start = time.perf_counter()
                    used, result = cal.calibrate(
                        model, x[chosen], y[chosen], cal.CalibrationConfig(**config), copies
                    )
                    rows.append(
                        {
                            "subject": subject,
                            "samples_per_class": k,
                            "strategy": strategy,
                            "learning_rate": rate,
                            "repeat": repeat,
                            "calibration_samples": len(chosen),
                            "remaining": len(rest),
                            "original": original,
                            # Scored before the next calibration overwrites the reused copy.
                            "candidate": _accuracy(result.candidate, x[rest], y[rest]),
                            "used": _accuracy(used, x[rest], y[rest]),
                            "kept": result.kept,
                            "held_back": result.n_holdout,
                            "held_before": result.accuracy_before,
                            "held_after": result.accuracy_after,
                            "seconds": time.perf_counter() - start,
                        }
                    )
    return rows


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, learning rate and k: the mean gain of the model used and of the candidate,
    how often the candidate was worse than the original on the remaining sequences (before the
    fallback) and how often the model used was (after it), and how often it was kept."""
    rows = rows.assign(
        gain=rows["used"] - rows["original"],
        candidate_gain=rows["candidate"] - rows["original"],
        candidate_worse=rows["candidate"] < rows["original"],
        used_worse=rows["used"] < rows["original"],
        calibrated=rows["kept"] == "calibrated",
    )
    keys = ["strategy", "learning_rate", "samples_per_class"]
    table = rows.groupby(keys, sort=False).agg(
        users=("subject", "nunique"),
        original=("original", "mean"),
        used=("used", "mean"),
        mean_gain=("gain", "mean"),
        candidate_gain=("candidate_gain", "mean"),
        worse_before_fallback=("candidate_worse", "mean"),
        worse_after_fallback=("used_worse", "mean"),
        kept=("calibrated", "mean"),
    )
    return table.reset_index()


def _accuracy(model, x, y) -> float:
    return float((np.asarray(model.predict_on_batch(x)).argmax(axis=1) == y).mean())
