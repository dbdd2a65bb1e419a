"""gesturelab: hand-gesture recognition from MediaPipe hand landmarks."""

import logging as _logging
import os as _os

__version__ = "0.1.0"

# TensorFlow's and MediaPipe's C++ logs, set before either is imported: errors only. Their INFO
# and WARNING lines (CPU features, oneDNN, a line per graph started) say nothing a user acts on.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("GLOG_minloglevel", "2")


class _OneTracePerModel(_logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning.

    TensorFlow counts the traces of every model's prediction step together, as if they were one
    function: a sweep, a study or a calibration that builds many models, each traced once and
    then reused, is reported as retracing. One model called with new batch sizes is not
    (Keras traces it with reduce_retracing), so the warning has no cause left to remove here.
    """

    def filter(self, record: _logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


_logging.getLogger("tensorflow").addFilter(_OneTracePerModel())
