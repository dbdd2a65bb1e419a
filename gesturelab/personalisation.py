"""Does calibration help real people? Leave-subjects-out on SHREC'17 (notebook 08).

Subjects are dealt into folds; for each fold a base model is trained on every other subject
(the champion's recipe, no validation subjects: ``train-seq --validation-fraction 0``), so it
never saw the fold's subjects. Each of those subjects then plays the user: k sequences per
class calibrate the base model (``gesturelab.calibration``, which holds a third of them back
to decide whether to keep the result), and the subject's remaining sequences score the
original, the calibrated candidate (before the fallback) and the model actually used (after).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from gesturelab import calibration as cal
from gesturelab.sequences import SequenceSet, subject_folds


def fold_models(data: SequenceSet, n_folds: int, use_folds: int, arch="ddnet", epochs=None):
    """[(held-out subjects, base model trained without them)] for the first ``use_folds``."""
    from gesturelab.seq_training import config_for, fit

    folds = subject_folds(data.subjects, n_folds, seed=0)[:use_folds]
    out = []
    for held in folds:
        train = data.subset(~np.isin(data.subjects, held))
        config = config_for(arch, len(data.classes), epochs=epochs)
        out.append((held, fit(train, config).model, config.frames))
    return out


def study(
    data: SequenceSet,
    bases,
    samples_per_class=(1, 3, 5),
    strategies=cal.STRATEGIES,
    learning_rates=(1e-5,),
    repeats: int = 1,
    epochs: int | None = None,
    progress=None,
) -> pd.DataFrame:
    """One row per (subject, k, strategy, learning rate, repeat): accuracy on the subject's
    remaining sequences of the original, the candidate and the model used, and the
    held-back numbers the fallback decided on."""
    import tensorflow as tf

    # Every calibration predicts with a fresh copy of the model, which TensorFlow reports as
    # "retracing" each time: expected here, and hundreds of lines in a notebook.
    tf.get_logger().setLevel("ERROR")
    rows = []
    for held, model, frames in bases:
        for subject in held:
            user = data.subset(data.subjects == subject)
            x = user.to_fixed(frames).reshape(len(user), frames, -1)
            y = np.asarray(user.labels)
            for k in samples_per_class:
                for repeat in range(repeats):
                    chosen, rest = cal.pick_per_class(y, k, seed=repeat)
                    if not len(rest):
                        continue
                    original = _accuracy(model, x[rest], y[rest])
                    for strategy in strategies:
                        for rate in learning_rates:
                            settings = {"freeze_strategy": strategy, "learning_rate": rate}
                            if epochs:
                                settings["epochs"] = epochs
                            start = time.perf_counter()
                            used, result = cal.calibrate(
                                model, x[chosen], y[chosen], cal.CalibrationConfig(**settings)
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
                                    "candidate": _accuracy(result.candidate, x[rest], y[rest]),
                                    "used": _accuracy(used, x[rest], y[rest]),
                                    "kept": result.kept,
                                    "held_back": result.n_holdout,
                                    "held_before": result.accuracy_before,
                                    "held_after": result.accuracy_after,
                                    "seconds": time.perf_counter() - start,
                                }
                            )
                            if progress is not None:
                                progress.update(1)
    return pd.DataFrame(rows)


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
