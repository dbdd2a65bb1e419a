"""The reject option: when a hand makes none of the trained gestures, say "no gesture".

A classifier always names one of its classes, so a hand that makes no trained gesture gets the
nearest one. Every static model therefore carries a reject rule in its metadata:
- an explicit class (a folder or label named ``none``) when the data has one: the model learnt
  what "no gesture" looks like, and predicting it means no gesture;
- otherwise a confidence threshold, chosen on the out-of-fold validation predictions so that
  a share ``REJECT_COVERAGE`` of validation hands is still answered. The trade-off it buys
  (coverage, and accuracy on the hands it answers) is reported beside it.
The score thresholded is ``GesturePredictor.predict_with_scores``'s, the same at selection and at
prediction: the top class probability, or for an SVM the smallest one-vs-one margin of the
predicted class (the softmax of an SVM's votes puts almost every hand near the same value, so
it cannot tell a clear gesture from none; measured on HaGRID's champion).
"""

from __future__ import annotations

import numpy as np

from gesturelab import config

NO_GESTURE = "no gesture"
NONE_CLASSES = ("none", "no_gesture", "no gesture", "nothing", "background")


def none_class(classes) -> str | None:
    """The class that means "no gesture", if the label set has one."""
    return next((c for c in classes if str(c).strip().lower() in NONE_CLASSES), None)


def trade_off(confidence, correct, thresholds=None) -> list[dict]:
    """Coverage and accuracy on the answered hands at each threshold."""
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, bool)
    if thresholds is None:
        thresholds = np.unique(np.round(np.quantile(confidence, np.linspace(0, 1, 21)), 4))
    rows = []
    for t in thresholds:
        accepted = confidence >= t
        rows.append(
            {
                "threshold": float(t),
                "coverage": float(accepted.mean()),
                "accuracy_answered": float(correct[accepted].mean()) if accepted.any() else None,
            }
        )
    return rows


def reject_rule(
    classes, confidence, correct, coverage: float = config.REJECT_COVERAGE, score="probability"
) -> dict:
    """The rule a model is logged with (see the module docstring); ``score``: what
    ``confidence`` is ("probability" or "margin")."""
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, bool)
    explicit = none_class(classes)
    if explicit is not None:
        return {"method": "class", "class": explicit, "val_accuracy": float(correct.mean())}
    # The highest threshold that still answers ``coverage`` of the validation hands.
    threshold = float(np.quantile(confidence, 1 - coverage, method="lower"))
    accepted = confidence >= threshold
    return {
        "method": "threshold",
        "score": score,
        "threshold": threshold,
        "target_coverage": coverage,
        "val_coverage": float(accepted.mean()),
        "val_accuracy_answered": float(correct[accepted].mean()),
        "val_accuracy": float(correct.mean()),
        "chosen_on": "out-of-fold predictions of the training split",
        "trade_off": trade_off(confidence, correct),
    }


def rejected(probabilities, classes, rule: dict | None, scores=None) -> np.ndarray:
    """True where ``rule`` says the hand makes no gesture; ``scores``: the rule's score per
    row (needed for a margin rule; a probability rule defaults to the top probability)."""
    probabilities = np.atleast_2d(probabilities)
    if not rule:
        return np.zeros(len(probabilities), dtype=bool)
    if rule["method"] == "class":
        best = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]
        return best == rule["class"]
    if scores is None:
        if rule.get("score", "probability") != "probability":
            raise ValueError(f"this reject rule thresholds the {rule['score']}: pass its scores")
        scores = probabilities.max(axis=1)
    return np.asarray(scores, float) < rule["threshold"]


def labels(probabilities, classes, rule: dict | None, scores=None) -> np.ndarray:
    """The best class of each row, or ``NO_GESTURE`` where the rule rejects it."""
    probabilities = np.atleast_2d(probabilities)
    best = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]
    return np.where(rejected(probabilities, classes, rule, scores), NO_GESTURE, best)
