"""Find the labels a model strongly disagrees with: out-of-fold probabilities, then confident
learning (``cleanlab``) to rank the examples whose given label is likely wrong.

Every example is scored by a model that did not train on it: folds keep groups (users, subjects,
recording blocks) whole, so a near-copy of an example never vouches for its label. The model is
a quick classical one by default (an RBF SVM with libsvm's probabilities; for static hands on
the normalised landmarks and their distances, for sequences on each sequence resampled to
``SEQUENCE_FRAMES`` frames, centred on the wrist's mean and scaled by the hand's size, with its
frame-to-frame motion), or the configuration of a given static model, refit per fold, or for
sequences a Keras architecture (``arch``) trained per fold (minutes, where the quick model takes
seconds). Every example is ranked by its self-confidence (the out-of-fold probability of its
given label); which are flagged is cleanlab's rule of ``FLAG_BY`` for the kind of data.

Measured with 5 % of labels made wrong at random (notebook 09 and ``docs/results/labelling.md``
give the runs): on the HaGRID sample and the keypoint file the default model finds them with
precision 0.91 and 0.89, recall 0.83 and 0.99; on SHREC'17 DD-Net per fold (``arch="ddnet"``)
with 0.89 and 0.90, where the quick sequence model reaches 0.74 and 0.80.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN, WRIST
from gesturelab.datasets.sequences import (
    SequenceSet,
    frame_mask,
    hand_frames,
    hand_size,
    resample,
)
from gesturelab.datasets.splits import grouped_folds
from gesturelab.errors import GestureLabError
from gesturelab.features.landmark_features import LandmarkNormalizer
from gesturelab.models.static_families import FEATURE_SETS

N_FOLDS = 5
SEQUENCE_FRAMES = 16
STATIC_MODEL = "RBF SVM (C=10) on xy+dist with libsvm's probabilities"
# A sequence architecture trains this many epochs a fold (``--epochs``), on all of the fold's
# training part. Measured once on SHREC'17 (one draw of 5 % wrong labels, DD-Net): early
# stopping on subjects held out of each fold's training part (up to 150 epochs) flagged with
# precision 0.77 and recall 0.93, 60 fixed epochs with 0.87 and 0.85 (out-of-fold accuracy on
# the untouched labels 0.926 and 0.927): more precision for some recall, and a quarter less time.
# Tuned on SHREC'17's 1,960 sequences only; a much smaller dataset may need more epochs.
FOLD_EPOCHS = config.LABEL_CHECK_EPOCHS
# Measured with 5 % of labels made wrong (notebook 09; three draws, SHREC'17 one with DD-Net):
#   rule                  HaGRID sample P / R   keypoint file P / R   SHREC'17 P / R
#   prune_by_noise_rate   0.91 / 0.83           0.89 / 0.99           0.71 / 0.82
#   low_self_confidence   0.98 / 0.75           0.95 / 0.97           0.89 / 0.90
# Both flag about as many as cleanlab estimates are wrong; they differ in which. Among
# sequences the quick or a per-fold model confuses similar gestures (pinch and expand, grab
# and tap) on the untouched labels too, and the noise-rate rule, which picks by margin inside
# each pair of classes, takes those; the lowest self-confidence takes the labels the model
# finds least likely, which the wrong ones are. On the HaGRID sample cleanlab's count comes out
# low (25-30 of 35), so the noise-rate rule's few extra flags are what reach recall 0.8 there.
FLAG_BY = config.LABEL_FLAG_BY


@dataclass
class LabelCheck:
    """Every example with its given label, the label the out-of-fold model prefers, the
    quality of the given label (its out-of-fold probability) and whether confident learning
    calls it an issue; ranked worst first."""

    table: pd.DataFrame
    per_class: pd.DataFrame
    estimated_wrong: int
    model: str
    accuracy: float  # of the out-of-fold predictions against the given labels
    # the given class indices and out-of-fold probabilities, in the data's order
    labels: np.ndarray | None = field(default=None, repr=False)
    probabilities: np.ndarray | None = field(default=None, repr=False)

    @property
    def issues(self) -> pd.DataFrame:
        return self.table[self.table["issue"]]

    def flags(self, rule: str) -> np.ndarray:
        """Which examples (in the data's order) another of cleanlab's rules would flag, from
        the same out-of-fold probabilities: rules compare without training again."""
        from cleanlab.filter import find_label_issues

        return find_label_issues(self.labels, self.probabilities, filter_by=rule)

    def summary(self) -> str:
        n = len(self.table)
        return (
            f"{len(self.issues)} of {n} labels flagged (confident learning estimates "
            f"{self.estimated_wrong} wrong, {self.estimated_wrong / max(n, 1):.1%}); "
            f"out-of-fold accuracy {self.accuracy:.3f} ({self.model})"
        )


class _ProbabilitySVC(SVC):
    """An RBF SVM with libsvm's own probabilities (Platt scaling of each pair of classes on
    internal folds, then pairwise coupling). scikit-learn 1.9 deprecates ``probability=True``
    for ``CalibratedClassifierCV``, but confident learning needs these: on the HaGRID sample
    with 5 % of labels made wrong (two seeds) they flag them with precision 0.97/0.90, where a
    one-vs-rest sigmoid or temperature calibration reaches 0.64/0.42 and 0.67/0.62. The
    deprecation warning is silenced here, where the choice is made (pinned: 1.9.1)."""

    def fit(self, X, y, sample_weight=None):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*probability.*", category=FutureWarning)
            return super().fit(X, y, sample_weight)


def _svm(seed: int) -> SVC:
    return _ProbabilitySVC(C=10.0, probability=True, random_state=seed)


def _folds(labels, groups, n_folds: int, seed: int) -> np.ndarray:
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise GestureLabError(
            "the label check scores every example with a model that never saw its group "
            f"(user, subject or source file), and this data has {n_groups}: it needs at least 2"
        )
    # label names as text: grouped_folds stratifies on them (integers held as objects are no
    # class labels to scikit-learn)
    return grouped_folds(np.asarray(labels).astype(str), groups, min(n_folds, n_groups), seed)


def out_of_fold(make_model, X, labels, groups, n_folds=N_FOLDS, seed=config.SEED) -> np.ndarray:
    """Probabilities (n, n_classes) of each example from a model fitted on the other folds;
    ``labels`` are class indices 0..k-1, every class a column even when a fold lacks it."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1
    folds = _folds(labels, groups, n_folds, seed)
    probabilities = np.zeros((len(labels), n_classes))
    for fold in np.unique(folds):
        test = folds == fold
        model = make_model()
        model.fit(_rows(X, ~test), labels[~test])
        probabilities[np.ix_(test, model.classes_)] = model.predict_proba(_rows(X, test))
    return probabilities


def _rows(X, index):
    return X.iloc[np.flatnonzero(index)] if isinstance(X, pd.DataFrame) else X[index]


def check(
    labels, probabilities, classes, ids: pd.DataFrame, model: str, flag_by: str
) -> LabelCheck:
    """Confident learning on out-of-fold ``probabilities`` of examples with class indices
    ``labels``; ``ids`` says where each example is (line, sequence, source...); ``flag_by``
    one of ``config.LABEL_FLAG_RULES``."""
    from cleanlab.count import num_label_issues
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if flag_by not in config.LABEL_FLAG_RULES:
        raise GestureLabError(
            f"no flag rule {flag_by!r}: one of {', '.join(config.LABEL_FLAG_RULES)}"
        )
    labels = np.asarray(labels, dtype=np.int64)
    classes = [str(c) for c in classes]
    issue = find_label_issues(labels, probabilities, filter_by=flag_by)
    quality = get_label_quality_scores(labels, probabilities)
    suggested = probabilities.argmax(axis=1)
    table = ids.reset_index(drop=True).copy()
    table["label"] = np.asarray(classes, dtype=object)[labels]
    table["suggested"] = np.asarray(classes, dtype=object)[suggested]
    table["p_label"] = probabilities[np.arange(len(labels)), labels].round(4)
    table["p_suggested"] = probabilities.max(axis=1).round(4)
    table["quality"] = np.round(quality, 4)
    table["issue"] = issue
    table = table.sort_values(["issue", "quality"], ascending=[False, True], kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    per_class = (
        table.groupby("label", sort=False)
        .agg(examples=("issue", "size"), flagged=("issue", "sum"))
        .reindex(classes, fill_value=0)
    )
    per_class["flagged_share"] = (per_class["flagged"] / per_class["examples"].clip(lower=1)).round(
        4
    )
    estimated = int(num_label_issues(labels, probabilities))
    accuracy = float((suggested == labels).mean())
    name = f"{model}; flagged by {flag_by}"
    return LabelCheck(
        table.reset_index(drop=True), per_class, estimated, name, accuracy, labels, probabilities
    )


def flip_labels(labels, share: float, seed: int):
    """``share`` of ``labels`` changed to another of their classes, chosen at random, as a
    study injects wrong labels: (labels, the positions changed)."""
    labels = pd.Series(np.asarray(labels, dtype=object))
    rng = np.random.default_rng(seed)
    classes = sorted(labels.unique())
    rows = rng.choice(len(labels), round(share * len(labels)), replace=False)
    flipped = labels.copy()
    for row in rows:
        others = [c for c in classes if c != labels.iat[row]]
        flipped.iat[row] = others[rng.integers(len(others))]
    return flipped, rows


def check_static(
    prepared, model=None, n_folds=N_FOLDS, seed=config.SEED, flag_by: str | None = None
) -> LabelCheck:
    """Every row of a prepared static dataset (``static_data.prepare``); ``model`` a fitted
    scikit-learn pipeline whose configuration is refit per fold (default ``STATIC_MODEL``)."""
    from sklearn.base import clone

    data = prepared.data
    classes = prepared.classes
    index = {c: i for i, c in enumerate(classes)}
    labels = data[LABEL_COLUMN].map(index).to_numpy(dtype=np.int64)
    if model is None:
        features = dict(FEATURE_SETS["xy+dist"])

        def make():
            return Pipeline(
                [
                    ("landmarks", LandmarkNormalizer(**features)),
                    ("scale", StandardScaler()),
                    ("clf", _svm(seed)),
                ]
            )

        name = f"{STATIC_MODEL}, {n_folds} grouped folds"
    else:

        def make():
            return clone(model)

        name = f"the configuration of {type(model[-1]).__name__}, {n_folds} grouped folds"
    probabilities = out_of_fold(make, data[prepared.columns], labels, data["group"], n_folds, seed)
    ids = pd.DataFrame({"row": np.arange(len(data)), "group": data["group"].to_numpy()})
    lines = np.asarray(prepared.loaded.lines)
    if len(lines) == len(data):  # the file line of each row, to find it in the file
        ids.insert(0, "line", lines)
    if "source" in data.columns:
        ids["source"] = data["source"].to_numpy()
    return check(labels, probabilities, classes, ids, name, flag_by or FLAG_BY["static"])


def sequence_features(data: SequenceSet, frames: int = SEQUENCE_FRAMES) -> np.ndarray:
    """Each sequence as one vector: resampled to ``frames`` frames with a hand, centred on the
    wrist's mean position and divided by the hand's mean size, then its frame-to-frame motion."""
    rows = []
    for sequence in data.sequences:
        fixed = resample(sequence, frames).reshape(frames, -1, 3)
        hands = hand_frames(fixed)
        centre = hands[:, WRIST].mean(axis=0)
        positions = (fixed - centre) / hand_size(hands) * frame_mask(fixed)[:, None, None]
        motion = np.diff(positions, axis=0)
        rows.append(np.concatenate([positions.reshape(-1), motion.reshape(-1)]))
    return np.asarray(rows, dtype=np.float64)


def check_sequences(
    data: SequenceSet,
    arch: str | None = None,
    n_folds=N_FOLDS,
    seed=config.SEQUENCE_SEED,
    flag_by: str | None = None,
    progress: bool = False,
    epochs: int = FOLD_EPOCHS,
) -> LabelCheck:
    """Every sequence, folds keeping subjects (or source files) whole; ``arch`` a sequence
    architecture trained ``epochs`` a fold instead of the quick model."""
    labels = np.asarray(data.labels, dtype=np.int64)
    groups = data.subjects.astype(str)
    if arch is None:
        X = sequence_features(data)

        def make():
            return Pipeline([("scale", StandardScaler()), ("clf", _svm(seed))])

        probabilities = out_of_fold(make, X, labels, groups, n_folds, seed)
        name = (
            f"RBF SVM on {SEQUENCE_FRAMES} resampled frames and their motion, "
            f"{n_folds} folds by subject"
        )
    else:
        probabilities = _keras_out_of_fold(data, arch, n_folds, seed, progress, epochs)
        name = f"{arch}, {epochs} epochs a fold, {n_folds} folds by subject"
    ids = pd.DataFrame(
        {
            "sequence": np.arange(len(data)),
            "subject": groups,
            "source": data.meta.get("source", np.full(len(data), data.source)),
        }
    )
    flag_by = flag_by or FLAG_BY["sequences"]
    return check(labels, probabilities, data.classes, ids, name, flag_by)


def _keras_out_of_fold(
    data: SequenceSet, arch: str, n_folds: int, seed: int, progress: bool, epochs: int
) -> np.ndarray:
    from tqdm.auto import tqdm

    from gesturelab.training.seq_defaults import frames_for
    from gesturelab.training.seq_training import config_for, fit, predict_proba

    folds = _folds(data.labels, data.subjects.astype(str), n_folds, seed)
    n_classes = len(data.classes)
    shrec = data.class_variants.get(n_classes) == tuple(data.classes)
    train_config = config_for(
        arch,
        n_classes,
        tuned_on="shrec17" if shrec else "data",
        frames=None if shrec else frames_for(data),
        epochs=epochs,
        early_stopping=False,
        seed=seed,
    )
    probabilities = np.zeros((len(data), n_classes))
    for fold in tqdm(np.unique(folds), desc=f"{arch} per fold", unit="fold", disable=not progress):
        test = folds == fold
        result = fit(data.subset(~test), train_config)
        probabilities[test] = predict_proba(result.model, data.subset(test), train_config.frames)
    return probabilities
