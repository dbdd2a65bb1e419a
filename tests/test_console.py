"""What the console shows: no library noise a user cannot act on, every warning they can."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_many_models_each_traced_once_are_not_reported_as_retracing():
    from gesturelab.models.seq_models import build_model

    logger, collect = logging.getLogger("tensorflow"), _Collect()
    logger.addHandler(collect)
    try:
        x = np.random.default_rng(0).random((4, 8, 63), dtype=np.float32)
        for _ in range(7):  # TensorFlow warns from the fifth
            build_model("cnn", 8, 3, width=4).predict_on_batch(x)
        logger.warning("a warning to act on")
    finally:
        logger.removeHandler(collect)
    assert collect.messages == ["a warning to act on"]


@pytest.mark.integration
def test_tensorflows_cpp_logs_are_errors_only():
    """Importing gesturelab sets TensorFlow's and MediaPipe's C++ log levels before either
    loads: no oneDNN or CPU-feature lines from a command."""
    script = "import gesturelab, tensorflow as tf; tf.constant(1.0) + 1; print('ok')"
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel")
    }
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "ok", out.stderr
    assert "oneDNN" not in out.stderr and "cpu_feature_guard" not in out.stderr, out.stderr


@pytest.mark.integration
def test_mediapipe_setup_lines_stay_off_the_terminal():
    """MediaPipe's C++ setup lines (XNNPACK delegate, absl's W0000) went to descriptor 2 past
    every log level: now only what a person reads is left."""
    from gesturelab import config

    photo = str(config.DATA_DIR / "mediapipe_samples" / "thumb_up.jpg")
    script = f"""
import cv2, sys
from gesturelab.datasets.extraction import HandLandmarker
image = cv2.cvtColor(cv2.imread({photo!r}), cv2.COLOR_BGR2RGB)
with HandLandmarker() as marker:
    print(len(marker.detect(image)))
print("after", file=sys.stderr)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "1", out.stderr
    assert out.stderr == "after\n", out.stderr  # and what is written after still shows
