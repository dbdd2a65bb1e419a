"""Predictors: objects that turn raw hand landmarks into gesture labels, one per model kind.

``load_predictor(uri)`` opens a logged or registered model (``models:/name@alias``,
``runs:/...``, a local model folder) whose pipeline carries its own preprocessing and gives the
predictor of its kind, as siblings of one ``Predictor`` base:

- ``StaticPredictor`` (scikit-learn, one hand → one label) takes a 21×3 array, a 63-vector, a
  batch, a DataFrame in the HaGRID CSV format, or a MediaPipe result;
- ``SequencePredictor`` (Keras, one gesture = a sequence of frames) takes (frames, 21, 3)
  arrays of any length, per-frame DataFrames or lists of per-frame MediaPipe results.

Each refuses the other's input with a message saying which kind of model it is and what it
needs: a single hand means nothing to a sequence model, and a sequence is not a hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.landmarks import (
    HAND_SLOTS,
    INPUT_SHAPE,
    LANDMARK_COLUMNS,
    N_LANDMARKS,
    mirror_hand,
)
from gesturelab.datasets.sequences import MIN_SEQUENCE_FRAMES
from gesturelab.errors import LandmarkInputError, ModelLoadError
from gesturelab.features.landmark_features import as_hands


def mediapipe_to_hands(result, image_size=None) -> np.ndarray:
    """MediaPipe landmarks (normalised to [0, 1]) as (n, 21, 3) pixel-convention hands.

    Accepts a ``solutions.hands`` result (every hand), one landmark list, or a list of them.
    Without ``image_size`` (width, height) x and y stay normalised, which distorts the hand's
    shape by the image's aspect ratio: pass the size for non-square images.
    """
    if hasattr(result, "multi_hand_landmarks"):
        lists = list(result.multi_hand_landmarks or [])
    elif hasattr(result, "landmark"):
        lists = [result]
    else:
        lists = list(result)
    width, height = image_size if image_size is not None else (1.0, 1.0)
    hands = [[(p.x * width, p.y * height, p.z) for p in landmarks.landmark] for landmarks in lists]
    return np.asarray(hands, dtype=np.float64).reshape(-1, *INPUT_SHAPE)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def _ovr_from_ovo(pairwise: np.ndarray, n_classes: int) -> np.ndarray:
    """sklearn's one-vs-one to one-vs-rest transform: votes plus squashed summed confidences."""
    first, second = np.triu_indices(n_classes, 1)
    to_first = np.eye(n_classes)[first]
    to_second = np.eye(n_classes)[second]
    second_wins = (pairwise < 0).astype(float)
    votes = (1.0 - second_wins) @ to_first + second_wins @ to_second
    confidence = pairwise @ to_first - pairwise @ to_second
    return votes + confidence / (3 * (np.abs(confidence) + 1))


class Predictor:
    """What every predictor answers: classes, distributions, top-k, (label, confidence).

    Subclasses give ``predict_distribution`` and ``get_model_info``; ``load`` opens a model
    URI as the predictor of the model's kind (called on a subclass, it refuses the other kind).
    """

    kind = ""
    classes: list
    info: dict
    reject: dict | None = None

    @classmethod
    def load(cls, model_uri: str) -> Predictor:
        """From ``models:/name@alias``, ``models:/name/3``, ``runs:/id/model`` or a folder."""
        import train_with_mlflow as tracking

        loaded = open_model(model_uri)
        kind = PREDICTORS[loaded.kind]
        if (loaded.metadata or {}).get("detector") == config.FRAME_DETECTOR_KIND:
            from gesturelab.models.frame_predictor import FrameDetector

            kind = FrameDetector
        if cls is not Predictor and not issubclass(kind, cls):
            raise ModelLoadError(_wrong_model(model_uri, loaded, cls.kind))
        info = tracking.model_version_info(model_uri)
        return kind.from_loaded(loaded, info)

    def predict_distribution(self, inputs, image_size=None) -> np.ndarray:
        raise NotImplementedError

    def get_model_info(self) -> dict:
        raise NotImplementedError

    def predict_top_k(self, inputs, k: int = 3, image_size=None) -> list[list[tuple]]:
        """The k most likely (label, probability) pairs for each input."""
        probabilities = self.predict_distribution(inputs, image_size)
        order = np.argsort(-probabilities, axis=1)[:, :k]
        return [
            [(self.classes[j], float(row[j])) for j in top]
            for row, top in zip(probabilities, order, strict=True)
        ]

    def predict_batch(self, inputs, image_size=None, reject=True) -> list[tuple[str, float]]:
        """(label, confidence) for each input (the confidence is its best class's)."""
        probabilities = self.predict_distribution(inputs, image_size)
        return [(self.classes[int(p.argmax())], float(p.max())) for p in probabilities]

    def predict_single(self, inputs, image_size=None, reject=True) -> tuple[str, float]:
        """(label, confidence) of one input (one hand, or one sequence)."""
        results = self.predict_batch(inputs, image_size, reject)
        if len(results) != 1:
            raise ValueError(f"predict_single takes one {self.unit}, got {len(results)}")
        return results[0]

    unit = "input"

    def get_label_map(self) -> dict[int, str]:
        return dict(enumerate(self.classes))


class StaticPredictor(Predictor):
    """Predictions from a static landmark classifier, whatever form the landmarks come in."""

    kind = "static"
    unit = "hand"

    def __init__(self, model, info: dict | None = None, reject: dict | None = None):
        self.model = model
        self.classes = [str(c) for c in model.classes_]
        self.info = dict(info or {})
        self.reject = reject  # the model's reject rule (gesturelab.models.rejection), if it has one

    @classmethod
    def from_loaded(cls, loaded, info: dict) -> StaticPredictor:
        return cls(loaded.model, info, loaded.metadata.get("reject"))

    def _hands(self, landmarks, image_size=None) -> np.ndarray | pd.DataFrame:
        if hasattr(landmarks, "multi_hand_landmarks") or hasattr(landmarks, "landmark"):
            return mediapipe_to_hands(landmarks, image_size).reshape(-1, len(LANDMARK_COLUMNS))
        if isinstance(landmarks, pd.DataFrame):
            return landmarks  # keeps a handedness column for models trained with one
        if _looks_like_sequences(landmarks):
            raise LandmarkInputError(
                "this is a static model of single hands (one hand → one label); it was given "
                f"sequences of frames ({_shape_text(landmarks)}): recognise dynamic gestures "
                "with a sequence model (train-seq)"
            )
        hands = as_hands(landmarks)  # 3-D, or 2-D for models of 2-D data
        return hands.reshape(len(hands), -1)

    def predict_distribution(self, landmarks, image_size=None) -> np.ndarray:
        """Class probabilities, shape (n_hands, n_classes), columns in ``get_label_map`` order.

        Models without ``predict_proba`` (an SVM) give a softmax of their decision scores:
        a ranking, not calibrated probabilities.
        """
        X = self._hands(landmarks, image_size)
        if hasattr(self.model, "predict_proba"):  # False for an SVC without probabilities
            return np.asarray(self.model.predict_proba(X))
        return _softmax(self._decision_scores(X))

    def _decision_scores(self, X) -> np.ndarray:
        """One-vs-rest decision scores; for an SVC computed from its one-vs-one scores.

        sklearn turns an SVC's pairwise scores into one-vs-rest ones with a Python loop over
        the 153 class pairs, which alone costs ~2 ms per call; the same formula as matrix
        products costs microseconds.
        """
        steps = getattr(self.model, "steps", [(None, self.model)])
        classifier = steps[-1][1]
        if not (hasattr(classifier, "support_vectors_") and len(self.classes) > 2):
            scores = np.asarray(self.model.decision_function(X), float)
            # Two classes give one score per row, positive for the second class.
            return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores
        return _ovr_from_ovo(self._pairwise(X), len(self.classes))

    def _pairwise(self, X) -> np.ndarray:
        """An SVC's one-vs-one decision scores (n, n_pairs), positive for a pair's first class."""
        steps = getattr(self.model, "steps", [(None, self.model)])
        classifier = steps[-1][1]
        for _, step in steps[:-1]:
            X = step.transform(X)
        shape = classifier.decision_function_shape
        classifier.decision_function_shape = "ovo"
        try:
            return np.atleast_2d(classifier.decision_function(X))
        finally:
            classifier.decision_function_shape = shape

    def _class_margins(self, X) -> np.ndarray:
        """An SVC's confidence per class: the class's smallest one-vs-one margin over any other
        (positive only for a class that wins every pair it is in). For the predicted class it
        is how far the hand is from the nearest boundary its label depends on."""
        if len(self.classes) == 2:
            scores = np.asarray(self.model.decision_function(X), float)
            return np.column_stack([-scores, scores])
        pairwise = self._pairwise(X)
        n = len(self.classes)
        first, second = np.triu_indices(n, 1)
        margins = np.full((len(pairwise), n, n), np.inf)
        margins[:, first, second] = pairwise  # > 0: the first class of the pair wins
        margins[:, second, first] = -pairwise
        return margins.min(axis=2)

    @property
    def reject_score_kind(self) -> str:
        """What the reject threshold applies to: "margin" for an SVC (whose softmax of votes
        crowds every hand near the same value), else the top class probability."""
        if self.reject and "score" in self.reject:
            return self.reject["score"]
        svc = hasattr(self._classifier, "support_vectors_")
        return "margin" if svc and not hasattr(self.model, "predict_proba") else "probability"

    def predict_with_class_scores(self, landmarks, image_size=None):
        """(probabilities, reject scores per class), both (n_hands, n_classes): the margins of
        ``_class_margins`` for an SVC, else the probabilities. Averaged over video frames, the
        smoothed winner's score is what the reject rule thresholds."""
        X = self._hands(landmarks, image_size)
        probabilities = self.predict_distribution(X)
        if self.reject_score_kind == "margin":
            return probabilities, self._class_margins(X)
        return probabilities, probabilities

    def predict_with_scores(self, landmarks, image_size=None):
        """(probabilities, reject score) per hand: the score of the predicted class, what the
        reject rule thresholds (``reject_score_kind``)."""
        probabilities, per_class = self.predict_with_class_scores(landmarks, image_size)
        rows = np.arange(len(probabilities))
        return probabilities, per_class[rows, probabilities.argmax(axis=1)]

    def gesture_labels(self, probabilities, scores=None, reject: bool = True) -> list[str]:
        """The label of each row of ``predict_with_scores``: the best class, or
        ``"no gesture"`` where the model's reject rule says so (``reject=False``: never)."""
        from gesturelab.models.rejection import labels

        return list(labels(probabilities, self.classes, self.reject if reject else None, scores))

    def predict_batch(self, landmarks, image_size=None, reject=True) -> list[tuple[str, float]]:
        """(label, confidence) for each hand; the label is "no gesture" where the model's
        reject rule rejects the hand, the confidence that of its best class."""
        probabilities, scores = self.predict_with_scores(landmarks, image_size)
        names = self.gesture_labels(probabilities, scores, reject)
        return [(n, float(p.max())) for n, p in zip(names, probabilities, strict=True)]

    def get_model_info(self) -> dict:
        return {
            **self.info,
            "kind": "static",
            "classifier": type(self._classifier).__name__,
            "features": self._normaliser.get_params() if self._normaliser is not None else None,
            "classes": self.classes,
            "input": "x, y (2-D landmarks)" if self.dims == 2 else "x, y, z (3-D landmarks)",
            "input_shape": [N_LANDMARKS, self.dims],
            "reject": {k: v for k, v in (self.reject or {}).items() if k != "trade_off"} or None,
        }

    @property
    def _normaliser(self):
        return getattr(self.model, "named_steps", {}).get("landmarks")

    @property
    def _classifier(self):
        return getattr(self.model, "named_steps", {}).get("clf", self.model)

    @property
    def dims(self) -> int:
        """2 for a model trained on 2-D landmarks (it reads x, y of anything), else 3."""
        # an ensemble of pipelines records it itself (its members' normalisers agree)
        return int(getattr(self._normaliser, "input_dims_", getattr(self.model, "input_dims_", 3)))


class SequencePredictor(Predictor):
    """Predictions from a sequence model: each input is a whole gesture, not one hand.

    A sequence is (frames, 21, 3) or (frames, 63) in any length, a DataFrame of per-frame rows
    in the CSV format, or a list of per-frame MediaPipe results (frames without a hand are
    masked and bridged). Several sequences: a list of those, or an (n, frames, ...) array.
    Sequences are resampled to the model's frame count before the model sees them; one with
    fewer than ``MIN_SEQUENCE_FRAMES`` frames with a hand is refused (a single hand is no
    gesture of this model's).
    """

    kind = "sequence"
    unit = "sequence"

    def __init__(self, model, metadata: dict, info: dict | None = None):
        self.model = model
        self.metadata = dict(metadata)
        self.frames = int(metadata.get("frames") or model.input_shape[1])
        n_outputs = int(model.output_shape[-1])
        self.classes = [str(c) for c in metadata.get("classes") or range(n_outputs)]
        self.info = dict(info or {})
        self.reject = None

    @classmethod
    def from_loaded(cls, loaded, info: dict) -> SequencePredictor:
        return cls(loaded.model, loaded.metadata, info)

    @property
    def hand(self) -> str | None:
        """The hand choice of the data it learnt (``config.HAND_CHOICES``), or None: one hand
        as recorded, never mirrored."""
        return self.metadata.get("hand")

    @property
    def hands(self) -> int:
        """Hands a frame the model takes: 2 for a model of ``--hand both`` data, else 1."""
        return int(self.model.input_shape[-1]) // len(LANDMARK_COLUMNS)

    @property
    def frame_shape(self) -> tuple:
        """One frame's landmarks: (21, 3), or (42, 3) for two hands (right, then left)."""
        return (self.hands * N_LANDMARKS, INPUT_SHAPE[1])

    def place_hands(self, hands) -> np.ndarray:
        """One frame for a two-hand model from [(landmarks (21, 3), handedness), ...]: each
        hand in its side's slot (``HAND_SLOTS``: right, then left; the first of a side wins),
        NaN where a side has none."""
        frame = np.full(self.frame_shape, np.nan)
        taken = set()
        for landmarks, handedness in hands:
            side = str(handedness or "").strip().lower()
            if side in HAND_SLOTS and side not in taken:
                at = HAND_SLOTS.index(side) * N_LANDMARKS
                frame[at : at + N_LANDMARKS] = np.asarray(landmarks, dtype=np.float64)
                taken.add(side)
        return frame

    def frame_from_hands(self, hands, width: float = 1.0):
        """One frame as this model takes it, from the hands MediaPipe found in an image
        ([{"landmarks", "handedness", "score"}], pixels; ``width`` the image's): both placed by
        side for a two-hand model, else the most confident hand it learnt (mirrored as its data
        was); and the hand used, None when there is none."""
        found = sorted(hands, key=lambda h: -h["score"])
        if self.hands > 1:
            frame = self.place_hands((h["landmarks"], h["handedness"]) for h in found)
            return frame, (found[0] if found else None)
        for hand in found:
            landmarks = self.takes_hand(hand["landmarks"], hand["handedness"], width)
            if landmarks is not None:
                return landmarks, hand
        return np.full(self.frame_shape, np.nan), None

    def takes_hand(self, landmarks, handedness: str | None, width: float = 1.0):
        """A hand of ``handedness`` ("Left"/"Right", MediaPipe's words) as this model learnt
        hands: a left hand mirrored into the right hand's frame (x -> width - x; ``width`` the
        image width for pixel coordinates) when its data's left hands were; None when the model
        learnt only the other hand (``--hand right`` or ``left``). A two-hand model gets the hand
        in its side's slot of a frame whose other hand is missing (``place_hands``)."""
        side = str(handedness or "").strip().lower()
        if self.hands > 1:
            if side not in HAND_SLOTS:
                raise LandmarkInputError(
                    "this model takes both hands (--hand both): a hand needs its handedness "
                    f"(Left or Right), not {handedness!r}"
                )
            return self.place_hands([(landmarks, side)])
        if self.hand is None or side not in ("left", "right"):
            return np.asarray(landmarks, dtype=np.float64)
        if self.hand in ("left", "right") and side != self.hand:
            return None
        landmarks = np.asarray(landmarks, dtype=np.float64)
        return mirror_hand(landmarks, width) if side == "left" else landmarks

    def _sequence(self, sequence, image_size=None) -> np.ndarray:
        array = self._as_array(sequence, image_size)
        if len(array) < MIN_SEQUENCE_FRAMES:
            raise LandmarkInputError(
                f"this is a sequence model ({self.frames} frames per gesture); it was given "
                f"{len(array)} frame(s) ({_shape_text(sequence)}): a sequence model needs a "
                f"sequence of at least {MIN_SEQUENCE_FRAMES} frames (a video, or the frames "
                "of one gesture), not a single hand"
            )
        return array

    def _as_array(self, sequence, image_size=None) -> np.ndarray:
        shape, values = self.frame_shape, self.hands * len(LANDMARK_COLUMNS)
        if isinstance(sequence, pd.DataFrame):
            sequence = sequence[list(LANDMARK_COLUMNS)].to_numpy(dtype=np.float64)
        elif isinstance(sequence, (list, tuple)) and sequence and _is_mediapipe(sequence[0]):
            sequence = np.stack([self._mediapipe_frame(r, image_size) for r in sequence])
        elif _is_mediapipe(sequence):
            sequence = self._mediapipe_frame(sequence, image_size)[None]  # one frame: refused
        array = np.asarray(sequence, dtype=np.float64)
        if array.ndim == 1 and array.size == values:
            array = array.reshape(1, *shape)  # one frame as a vector: refused
        if array.ndim == 2 and array.shape[1] == values:
            array = array.reshape(len(array), *shape)
        if array.ndim == 2 and array.shape == shape:
            array = array.reshape(1, *shape)  # one frame as points: refused
        if array.ndim != 3 or array.shape[1:] != shape:
            both = (
                " (this model takes both hands: the right hand's 21 points, then the left's)"
                if self.hands > 1
                else ""
            )
            raise LandmarkInputError(
                f"a sequence is (frames, {shape[0]}, 3) or (frames, {values}){both}; "
                f"got shape {array.shape}"
            )
        return array

    def _mediapipe_frame(self, result, image_size=None) -> np.ndarray:
        """One MediaPipe result as a frame: its first hand, or for a two-hand model each hand
        by its handedness."""
        hands = mediapipe_to_hands(result, image_size)
        if self.hands == 1:
            return hands[0] if len(hands) else np.full(INPUT_SHAPE, np.nan)
        sides = [
            h.classification[0].label for h in (getattr(result, "multi_handedness", None) or [])
        ]
        if len(sides) != len(hands):
            raise LandmarkInputError(
                "this model takes both hands (--hand both): give MediaPipe Hands results, "
                "which name each hand's handedness"
            )
        return self.place_hands(zip(hands, sides, strict=True))

    def _sequences(self, sequences, image_size=None) -> list[np.ndarray]:
        if isinstance(sequences, np.ndarray) and sequences.ndim == 4:
            return [self._sequence(s) for s in sequences]
        if isinstance(sequences, np.ndarray) and sequences.ndim == 3:
            if sequences.shape[1:] != self.frame_shape:  # (n, frames, 63)
                return [self._sequence(s) for s in sequences]
        if isinstance(sequences, list) and sequences and not _is_mediapipe(sequences[0]):
            first = np.asarray(sequences[0]) if not isinstance(sequences[0], pd.DataFrame) else 0
            if isinstance(sequences[0], pd.DataFrame) or np.ndim(first) >= 2:
                return [self._sequence(s, image_size) for s in sequences]
        return [self._sequence(sequences, image_size)]

    def predict_distribution(self, sequences, image_size=None) -> np.ndarray:
        """Class probabilities, shape (n_sequences, n_classes)."""
        from gesturelab.datasets.sequences import resample

        fixed = [resample(s, self.frames) for s in self._sequences(sequences, image_size)]
        return self.predict_fixed(np.stack(fixed))

    def predict_fixed(self, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities of sequences already resampled to the model's frames (n, frames, 21, 3),
        or (n, frames, 42, 3) for a two-hand model."""
        batch = np.asarray(batch).reshape(len(batch), self.frames, -1).astype(np.float32)
        n = len(batch)
        if n > batch_size and n % batch_size:
            # Every chunk the same size: a shorter last one would trace the graph a second
            # time (~0.4 s a model). The padding rows are predicted and dropped.
            pad = np.repeat(batch[-1:], batch_size - n % batch_size, axis=0)
            batch = np.concatenate([batch, pad])
        # predict_on_batch runs the compiled graph: ~2 ms, where model(x) or predict() per
        # call cost 30-180 ms on this machine.
        parts = [
            self.model.predict_on_batch(batch[i : i + batch_size])
            for i in range(0, len(batch), batch_size)
        ]
        return np.asarray(np.concatenate(parts)[:n], dtype=np.float64)

    def get_model_info(self) -> dict:
        from gesturelab.models.seq_models import model_features

        features = model_features(self.model)
        return {
            **self.info,
            "kind": "sequence",
            "architecture": self.model.name,
            "features": features,
            "classes": self.classes,
            "input_shape": [self.frames, *self.frame_shape],
            "parameters": int(self.model.count_params()),
        }


PREDICTORS = {"static": StaticPredictor, "sequence": SequencePredictor}
# Older name of the static predictor; ``GesturePredictor.load`` refuses sequence models.
GesturePredictor = StaticPredictor


def load_predictor(model_uri: str) -> Predictor:
    """The predictor of a model's kind: ``StaticPredictor`` or ``SequencePredictor``."""
    return Predictor.load(model_uri)


def _wrong_model(model_uri: str, loaded, wanted: str) -> str:
    if loaded.kind == "sequence":
        frames = loaded.metadata.get("frames") or "?"
        return (
            f"{model_uri} is a sequence model ({frames} frames per gesture), not a static "
            "model of single hands: it needs sequences (a video, or the frames of a gesture)"
        )
    return (
        f"{model_uri} is a static model of single hands (scikit-learn), not a sequence model: "
        "it labels one hand at a time (photos, landmark rows)"
    )


def _looks_like_sequences(landmarks) -> bool:
    """(n, frames, 21, 3) arrays, (n, frames, 63), or a list of (frames, ...) arrays."""
    if isinstance(landmarks, np.ndarray):
        return landmarks.ndim == 4 or (
            landmarks.ndim == 3
            and landmarks.shape[1:] != INPUT_SHAPE
            and landmarks.shape[-1] == len(LANDMARK_COLUMNS)
        )
    if isinstance(landmarks, (list, tuple)) and landmarks:
        first = landmarks[0]
        if isinstance(first, pd.DataFrame):
            return True
        if isinstance(first, (list, tuple)) and first and _is_mediapipe(first[0]):
            return True
        if isinstance(first, np.ndarray):
            return first.ndim == 3 or (first.ndim == 2 and first.shape[1] == len(LANDMARK_COLUMNS))
    return False  # fmt: skip


def _shape_text(value) -> str:
    if isinstance(value, pd.DataFrame):
        return f"a table of {len(value)} row(s)"
    if _is_mediapipe(value):
        return "one MediaPipe result"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return f"shape {tuple(np.shape(value))}"


def _keras_objects() -> dict:
    from gesturelab.models.seq_models import CUSTOM_OBJECTS

    return CUSTOM_OBJECTS


def open_model(model_uri: str):
    """A model gesturelab logged (``runs:/``, ``models:/name@alias``, a folder), loaded safely.

    Only the project's formats load: skops files that hold nothing but the family registry's
    types, and Keras 3 files in safe mode with the project's layers (``LoadedModel``).
    """
    import train_with_mlflow as tracking
    from gesturelab.models.static_families import SKOPS_TRUSTED_TYPES

    return tracking.open_model(
        model_uri, skops_trusted=SKOPS_TRUSTED_TYPES, keras_objects=_keras_objects
    )


def load_sequence_model(model_uri: str):
    """A logged or registered sequence model and its metadata (classes, frames)."""
    loaded = open_model(model_uri)
    if loaded.kind != "sequence":
        raise ModelLoadError(
            f"{model_uri} is a static (scikit-learn) model of single hands; this takes a "
            "sequence model (score a static one with `evaluate --model ... --data <CSV>`)"
        )
    return loaded.model, loaded.metadata


def model_classes(model_uri: str) -> list[str]:
    """The classes a logged model predicts, read from the model itself."""
    loaded = open_model(model_uri)
    if loaded.kind == "static":
        return [str(c) for c in loaded.model.classes_]
    return list(loaded.metadata.get("classes") or range(int(loaded.model.output_shape[-1])))


def load_static(model_uri: str, command: str = "this command") -> StaticPredictor:
    """A static model's predictor; a sequence model is refused, naming what takes it."""
    predictor = load_predictor(model_uri)
    if isinstance(predictor, SequencePredictor):
        raise ModelLoadError(
            f"{model_uri} is a sequence model ({predictor.frames} frames per gesture): "
            f"{command} takes a static model of single hands; score a sequence model with "
            "`evaluate-seq`, run it on a video with `predict`"
        )
    return predictor


def _is_mediapipe(item) -> bool:
    return hasattr(item, "multi_hand_landmarks") or hasattr(item, "landmark")
