"""The one source of truth for landmark names, CSV columns, class lists and input shapes."""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 21
N_COORDS = 3
INPUT_SHAPE = (N_LANDMARKS, N_COORDS)
# Sequences read with --hand both hold two hands a frame, 2 x 21 points in this order; every
# other sequence holds one hand (21 points).
HAND_SLOTS = ("right", "left")
# How files name a hand's side (lower case): MediaPipe's Left/Right, Kaggle's left_hand, ...
HAND_SIDES = {
    "left": {"left_hand", "left", "l", "lefthand", "hand_left", "lh"},
    "right": {"right_hand", "right", "r", "righthand", "hand_right", "rh"},
}


def side_of(text) -> str | None:
    """ "left"/"right" for a cell that names a hand's side (``HAND_SIDES``), None otherwise."""
    name = str(text).strip().lower()
    return next((side for side, names in HAND_SIDES.items() if name in names), None)


# MediaPipe Hands landmark order (landmark k-1 is column x{k}, y{k}, z{k} in the HaGRID CSV).
LANDMARK_NAMES = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_finger_mcp",
    "index_finger_pip",
    "index_finger_dip",
    "index_finger_tip",
    "middle_finger_mcp",
    "middle_finger_pip",
    "middle_finger_dip",
    "middle_finger_tip",
    "ring_finger_mcp",
    "ring_finger_pip",
    "ring_finger_dip",
    "ring_finger_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
)
WRIST = 0
MIDDLE_MCP = 9

# Each finger from the wrist to its tip; consecutive triples give the joint angles.
FINGER_CHAINS = (
    (0, 1, 2, 3, 4),
    (0, 5, 6, 7, 8),
    (0, 9, 10, 11, 12),
    (0, 13, 14, 15, 16),
    (0, 17, 18, 19, 20),
)
HAND_CONNECTIONS = tuple(
    (chain[i], chain[i + 1]) for chain in FINGER_CHAINS for i in range(len(chain) - 1)
) + ((5, 9), (9, 13), (13, 17))

LANDMARK_COLUMNS = tuple(
    f"{axis}{k}" for k in range(1, N_LANDMARKS + 1) for axis in ("x", "y", "z")
)
# 2-D data (the community's keypoint files, landmarks from a 2-D detector) has no z at all.
LANDMARK_COLUMNS_2D = tuple(f"{axis}{k}" for k in range(1, N_LANDMARKS + 1) for axis in ("x", "y"))
LABEL_COLUMN = "label"


def landmark_columns(dims: int = N_COORDS) -> tuple[str, ...]:
    """The coordinate columns of 3-D (x, y, z) or 2-D (x, y) landmarks."""
    if dims not in (2, 3):
        raise ValueError(f"landmarks have 2 or 3 coordinates, not {dims}")
    return LANDMARK_COLUMNS if dims == 3 else LANDMARK_COLUMNS_2D


def columns_dims(columns) -> int | None:
    """3 if ``columns`` hold every x, y and z column, 2 if every x and y but no z, else None."""
    present = set(columns)
    if present.issuperset(LANDMARK_COLUMNS):
        return 3
    if present.issuperset(LANDMARK_COLUMNS_2D) and not present & set(LANDMARK_COLUMNS[2::3]):
        return 2
    return None


# No camera image is a million pixels wide, and normalised or world coordinates are near 1:
# a value beyond this is a unit or export error, and squaring it overflows the features.
MAX_ABS_COORDINATE = 1e6

# Optional columns a landmark CSV may carry beside the 63 coordinates. Rows extracted from
# images and videos add source/frame/hand/handedness/score; the full HaGRID set adds user ids.
GROUP_COLUMNS = ("user_id", "subject", "group")
METADATA_COLUMNS = (
    "source",
    "frame",
    "hand_index",
    "handedness",
    "score",
    "split",
    *GROUP_COLUMNS,
)

HAGRID_CLASSES = (
    "call",
    "dislike",
    "fist",
    "four",
    "like",
    "mute",
    "ok",
    "one",
    "palm",
    "peace",
    "peace_inverted",
    "rock",
    "stop",
    "stop_inverted",
    "three",
    "three2",
    "two_up",
    "two_up_inverted",
)


def landmark_frame(X, dims: int = N_COORDS):
    """A model's input: the raw landmark columns (63, or 42 for 2-D) as float64."""
    import numpy as np
    import pandas as pd

    columns = list(landmark_columns(dims))
    if isinstance(X, pd.DataFrame):
        return X[columns].astype(np.float64)
    return pd.DataFrame(np.asarray(X, np.float64).reshape(len(X), -1), columns=columns)


# A hand whose wrist and middle-finger MCP are closer than this (in the file's units) has no
# size: readers set it aside, and models refuse it (63 zeros is the usual case).
MIN_HAND_SPAN = 1e-9


def no_size(hands) -> np.ndarray:
    """Which of ``hands`` (n, 21, 2 or 3) have no size: wrist and middle-finger MCP at one point."""
    with np.errstate(over="ignore", invalid="ignore"):
        span = np.linalg.norm(hands[:, MIDDLE_MCP, :2] - hands[:, WRIST, :2], axis=1)
    return np.isfinite(span) & (span < MIN_HAND_SPAN)


def hands_in(points: int) -> int:
    """How many hands a frame of ``points`` landmarks holds (1 or 2); a ValueError otherwise."""
    hands, rest = divmod(int(points), N_LANDMARKS)
    if rest or hands not in (1, len(HAND_SLOTS)):
        raise ValueError(f"{points} points a frame: a frame holds one hand (21) or two (42)")
    return hands


def mirror_hand(landmarks, width: float = 1.0) -> np.ndarray:
    """A left hand as the right hand it mirrors (x -> width - x: 1 for image-normalised
    coordinates, the image width for pixels), so that one model serves both hands. Any array
    whose last axis is (x, y, z) or (x, y); the dtype is kept."""
    mirrored = np.array(landmarks, copy=True)
    mirrored[..., 0] = width - mirrored[..., 0]
    return mirrored
