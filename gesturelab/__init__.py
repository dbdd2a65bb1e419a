"""gesturelab: hand-gesture recognition from MediaPipe hand landmarks."""

__version__ = "0.1.0"
