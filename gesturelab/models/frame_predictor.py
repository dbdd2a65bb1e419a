"""A logged per-frame detector (``models.frame_models``) as a predictor: per-frame
probabilities of a stream, and the hand of a video frame in the coordinates it learnt.

It learnt SHREC'17's world coordinates: y grows upwards, z (depth) grows away from the sensor,
x, y, z in one unit. MediaPipe gives pixels with y growing downwards and z, also growing away
from the camera, in units of the image's width, so a video's hand is turned y-up and its z
scaled by the width (``from_pixels``); the detector's features are free of position and scale,
so only the axes matter. Which way SHREC'17's x runs against a camera image's is not checked
against a labelled real recording (none is shipped). A left hand is mirrored into a right one.
"""

from __future__ import annotations

import numpy as np

from gesturelab.datasets.landmarks import INPUT_SHAPE
from gesturelab.datasets.life_streams import camera_to_world
from gesturelab.models.frame_models import receptive_field_of, stream_probabilities


def from_pixels(landmarks, width: float, handedness: str | None = None) -> np.ndarray:
    """MediaPipe's pixel landmarks (21, 3) of an image ``width`` wide, as the detector reads
    them: y up, z in pixels growing away from the camera, a left hand mirrored."""
    turned = camera_to_world(np.reshape(landmarks, INPUT_SHAPE), width)
    if str(handedness or "").strip().lower() == "left":
        turned[:, 0] = -turned[:, 0]
    return turned


class FrameDetector:
    """Per-frame probabilities (classes, then "no gesture") of a stream of landmarks.

    What ``predictor.Predictor.load`` returns for a per-frame model; not one of its subclasses
    (which answer per hand or per gesture), so that this module needs nothing of that one."""

    kind = "frame detector"
    unit = "frame"

    def __init__(self, model, metadata: dict, info: dict | None = None):
        self.model = model
        self.metadata = dict(metadata)
        self.classes = [str(c) for c in metadata["classes"]]
        self.info = dict(info or {})
        self.rules = dict(metadata.get("segment_rules") or {})
        self.receptive_field = int(metadata.get("receptive_field") or receptive_field_of(model))

    @classmethod
    def from_loaded(cls, loaded, info: dict) -> FrameDetector:
        return cls(loaded.model, loaded.metadata, info)

    def predict_distribution(self, frames, image_size=None) -> np.ndarray:
        """(n, classes + 1) for a whole stream of n frames ((n, 21, 3) or (n, 63); NaN or
        zeros: no hand), frame t's row from frames up to t only."""
        return stream_probabilities(self.model, frames)

    def window_rows(self, window: np.ndarray) -> np.ndarray:
        """The rows of a live window of a fixed length (frames before the stream: zeros),
        through Keras' compiled predict step: a model call of a fixed shape is traced once,
        and costs milliseconds where an eager call costs a hundred."""
        array = np.asarray(window, dtype=np.float32).reshape(1, len(window), -1)
        return np.asarray(self.model.predict_on_batch(array))[0]

    def get_model_info(self) -> dict:
        return {
            "kind": self.kind,
            "classes": self.classes,
            "segment_rules": self.rules,
            "receptive_field": self.receptive_field,
            **self.info,
        }
