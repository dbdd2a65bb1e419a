"""A soft-voting ensemble of whole static pipelines: the families' best configurations, each with
its own features, averaged into one classifier the sweep can select, log and register.

Members are complete pipelines (``LandmarkNormalizer`` -> ``StandardScaler`` -> classifier), not
bare classifiers, because the families' bests do not share a feature set (the linear ones read
joint angles, the others do not). Each member's class distribution is its ``predict_proba``,
or for an SVM without probabilities the softmax of its one-vs-rest decision scores (as
``StaticPredictor`` gives it): no member is refit for calibration, so an ensemble costs the
members' fits and nothing else.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone


def member_distribution(model, X) -> np.ndarray:
    """One fitted member's class distribution, columns in ``model.classes_`` order."""
    if hasattr(model, "predict_proba"):  # False for an SVC without probabilities
        return np.asarray(model.predict_proba(X), dtype=float)
    scores = np.asarray(model.decision_function(X), dtype=float)
    if scores.ndim == 1:  # two classes: one score, positive for the second
        scores = np.column_stack([-scores, scores])
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def average_distributions(distributions, member_classes, classes) -> np.ndarray:
    """The mean of members' distributions, each reindexed onto ``classes`` (a class a member
    never saw counts as probability 0 from it)."""
    index = {c: i for i, c in enumerate(classes)}
    total = np.zeros((len(distributions[0]), len(classes)))
    for probabilities, seen in zip(distributions, member_classes, strict=True):
        columns = [index[c] for c in seen]
        total[:, columns] += probabilities
    return total / len(distributions)


def distribution_over(model, X, classes) -> np.ndarray:
    """One fitted model's class distribution with its columns on ``classes`` (0 for a class
    it never saw)."""
    return average_distributions([member_distribution(model, X)], [list(model.classes_)], classes)


class SoftVotingEnsemble(ClassifierMixin, BaseEstimator):
    """Fits each member pipeline on the same rows; predicts the class of the highest mean
    probability over the members.

    members: (name, unfitted pipeline) pairs; fitted clones are kept in ``members_``.
    """

    def __init__(self, members=()):
        self.members = members

    def fit(self, X, y):
        y = np.asarray(y, dtype=object)
        if len(self.members) < 2:
            raise ValueError(f"an ensemble needs two or more members, got {len(self.members)}")
        self.members_ = [(name, clone(member).fit(X, y)) for name, member in self.members]
        self.classes_ = np.unique(y)
        # the landmarks' dimensionality the members were fitted on (2 or 3), as a pipeline's
        # normaliser records it, so a predictor knows what the ensemble reads
        normalisers = [getattr(m, "named_steps", {}).get("landmarks") for _, m in self.members_]
        self.input_dims_ = int(getattr(normalisers[0], "input_dims_", 3))
        return self

    def predict_proba(self, X) -> np.ndarray:
        fitted = [model for _, model in self.members_]
        return average_distributions(
            [member_distribution(model, X) for model in fitted],
            [list(model.classes_) for model in fitted],
            list(self.classes_),
        )

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def describe(self) -> str:
        """The members by name: 'svm + logreg + mlp'."""
        return " + ".join(name for name, _ in self.members)
