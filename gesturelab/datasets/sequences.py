"""Landmark sequences of any length: container, fixed-length views, subject splits, augmentation.

A sequence is a (frames, 21, 3) float array in MediaPipe landmark order, or (frames, 42, 3) for
two hands (``--hand both``: the right hand's 21 points, then the left's; ``HAND_SLOTS``). A hand
whose values are all NaN (not found in that video frame) is missing: it is masked, never guessed
from nothing; a frame is missing when all its hands are. Models see sequences resampled to a
fixed number of frames; a padded frame is all zeros, which is also the masking convention of
Keras' ``Masking`` layer, and so is a missing hand beside one that is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gesturelab import config
from gesturelab.datasets.landmarks import MIDDLE_MCP, N_COORDS, N_LANDMARKS, WRIST, hands_in

FIXED_LENGTH_METHODS = ("resample", "pad")
# The fewest frames with a hand a gesture can have: readers set shorter sequences aside and
# predictors refuse them.
MIN_SEQUENCE_FRAMES = 4
SHAPES = ((N_LANDMARKS, N_COORDS), (2 * N_LANDMARKS, N_COORDS))  # one hand, two hands


@dataclass
class SequenceSet:
    sequences: list
    labels: np.ndarray
    subjects: np.ndarray
    classes: tuple
    meta: dict = field(default_factory=dict)
    frame_rate: float | None = None
    source: str = ""
    # Other label sets of the same sequences: {n_classes: class names}, labels in meta.
    class_variants: dict = field(default_factory=dict)
    # The reader's hand choice (config.HAND_CHOICES; left hands mirrored), or None: one hand
    # as recorded. A model trained on it records it, and its predictor treats hands the same.
    hand: str | None = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels)
        self.subjects = np.asarray(self.subjects)
        if not (len(self.sequences) == len(self.labels) == len(self.subjects)):
            raise ValueError("sequences, labels and subjects differ in length")
        points = self.sequences[0].shape[1:] if len(self.sequences) else (N_LANDMARKS, N_COORDS)
        for i, seq in enumerate(self.sequences):
            if seq.ndim != 3 or seq.shape[1:] != points or points not in SHAPES:
                raise ValueError(
                    f"sequence {i} has shape {seq.shape}, not (frames, 21, 3) or, for two "
                    "hands, (frames, 42, 3) like every sequence of the set"
                )

    @property
    def hands(self) -> int:
        """Hands a frame: 1, or 2 for data read with ``--hand both``."""
        return hands_in(self.sequences[0].shape[1]) if len(self.sequences) else 1

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray([len(s) for s in self.sequences])

    @property
    def label_names(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[self.labels]

    def subset(self, index) -> SequenceSet:
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index)
        return SequenceSet(
            sequences=[self.sequences[i] for i in index],
            labels=self.labels[index],
            subjects=self.subjects[index],
            classes=self.classes,
            meta={k: np.asarray(v)[index] for k, v in self.meta.items()},
            frame_rate=self.frame_rate,
            source=self.source,
            class_variants=self.class_variants,
            hand=self.hand,
        )

    def with_classes(self, n_classes: int) -> SequenceSet:
        """The same sequences labelled with the n-class variant stored in ``meta``."""
        if n_classes == len(self.classes):
            return self
        key = f"label_{n_classes}"
        if key not in self.meta or n_classes not in self.class_variants:
            raise ValueError(f"no {n_classes}-class labels in {self.source or 'this set'}")
        out = self.subset(np.arange(len(self)))
        out.labels = np.asarray(self.meta[key])
        out.classes = tuple(self.class_variants[n_classes])
        return out

    def to_fixed(self, frames: int, method: str = "resample") -> np.ndarray:
        """(n, frames, 21 or 42, 3) float32; padded frames and missing hands are all zeros."""
        if method not in FIXED_LENGTH_METHODS:
            raise ValueError(f"method must be one of {FIXED_LENGTH_METHODS}")
        fix = resample if method == "resample" else pad_or_truncate
        return np.stack([fix(s, frames) for s in self.sequences]).astype(np.float32)

    def summary(self) -> str:
        lengths = self.lengths
        return (
            f"{len(self)} sequences, {len(np.unique(self.subjects))} subjects, "
            f"{len(self.classes)} classes, {lengths.min()}-{lengths.max()} frames "
            f"(median {np.median(lengths):.0f})"
        )


def hand_mask(sequence: np.ndarray) -> np.ndarray:
    """(frames, hands): True where that hand is there, finite and not the all-zero padding."""
    sequence = np.asarray(sequence)
    values = sequence.reshape(len(sequence), int(np.prod(sequence.shape[1:])))
    points = sequence.shape[1] if sequence.ndim == 3 else values.shape[1] // N_COORDS
    hands = hands_in(points)
    per_hand = values.reshape(len(sequence), hands, values.shape[1] // hands)
    return np.isfinite(per_hand).all(axis=2) & (np.abs(per_hand).sum(axis=2) > 0)


def frame_mask(sequence: np.ndarray) -> np.ndarray:
    """True for frames with a hand (either hand of a two-hand sequence)."""
    return hand_mask(sequence).any(axis=1)


def hand_frames(sequence: np.ndarray) -> np.ndarray:
    """The frames with a hand (every frame when none has one)."""
    present = frame_mask(sequence)
    return sequence[present] if present.any() else sequence


def hand_size(frames: np.ndarray) -> float:
    """The hand's mean size over ``frames`` (wrist to the middle finger's knuckle), the unit
    that makes positions scale-free; never zero."""
    size = np.linalg.norm(frames[:, MIDDLE_MCP] - frames[:, WRIST], axis=-1).mean()
    return max(float(size), 1e-6)


def point_mask(sequence: np.ndarray) -> np.ndarray:
    """``hand_mask`` spread over each hand's points: (frames, points, 1), for ``np.where``."""
    present = hand_mask(sequence)
    return np.repeat(present, N_LANDMARKS, axis=1)[:, :, None]


def resample(sequence: np.ndarray, frames: int, positions=None) -> np.ndarray:
    """Linear interpolation over the frames that have a hand, at ``frames`` evenly spaced times.

    ``positions`` (in [0, 1], increasing) replaces the even spacing; time warping uses it.
    Missing frames are bridged from their neighbours; a sequence with no hand at all gives zeros.
    Two hands are resampled each over its own frames, on the times of the frames where either
    hand is there: a hand missing from a stretch is bridged only inside its own first and last
    frames, and is zeros (missing) outside them.
    """
    sequence = np.asarray(sequence, dtype=np.float64)
    points = sequence.shape[1]
    present = hand_mask(sequence)
    valid = present.any(axis=1)
    if valid.sum() == 0:
        return np.zeros((frames, points, N_COORDS), dtype=np.float32)
    known_t = np.flatnonzero(valid).astype(np.float64)
    if positions is None:
        positions = np.linspace(0.0, 1.0, frames)
    t = known_t[0] + np.asarray(positions) * (known_t[-1] - known_t[0])
    if present.shape[1] == 1:
        return _interpolate(sequence, valid, t, frames)
    out = np.zeros((frames, points, N_COORDS), dtype=np.float32)
    for h in range(present.shape[1]):
        own = present[:, h]
        if not own.any():
            continue
        block = slice(h * N_LANDMARKS, (h + 1) * N_LANDMARKS)
        seen = np.flatnonzero(own)
        inside = (t >= seen[0]) & (t <= seen[-1])
        out[inside, block] = _interpolate(sequence[:, block], own, t[inside], int(inside.sum()))
    return out


def _interpolate(sequence, valid, t, frames) -> np.ndarray:
    """One hand's frames where ``valid``, at times ``t`` (frame numbers), linearly."""
    points = sequence.shape[1]
    known_t = np.flatnonzero(valid).astype(np.float64)
    known = sequence[valid].reshape(len(known_t), -1)
    if len(known_t) == 1:
        return np.repeat(known.reshape(1, points, N_COORDS), frames, 0).astype(np.float32)
    # np.interp per column, vectorised: locate each t between two known frames once.
    right = np.clip(np.searchsorted(known_t, t, side="right"), 1, len(known_t) - 1)
    left = right - 1
    w = ((t - known_t[left]) / (known_t[right] - known_t[left]))[:, None]
    out = known[left] * (1 - w) + known[right] * w
    return out.reshape(frames, points, N_COORDS).astype(np.float32)


def pad_or_truncate(sequence: np.ndarray, frames: int) -> np.ndarray:
    """The first ``frames`` frames, zero-padded at the end; missing hands become zeros."""
    sequence = np.asarray(sequence, dtype=np.float32)[:frames]
    out = np.zeros((frames, sequence.shape[1], N_COORDS), dtype=np.float32)
    out[: len(sequence)] = np.where(point_mask(sequence), sequence, 0.0)
    return out


def subject_folds(subjects, n_folds: int, seed: int = config.SEQUENCE_SEED) -> list[np.ndarray]:
    """Subjects dealt into folds so each fold's number of sequences is as even as possible."""
    subjects = np.asarray(subjects)
    ids, counts = np.unique(subjects, return_counts=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    order = order[np.argsort(-counts[order], kind="stable")]
    folds = [[] for _ in range(n_folds)]
    sizes = np.zeros(n_folds)
    for i in order:
        k = int(np.argmin(sizes))
        folds[k].append(ids[i])
        sizes[k] += counts[i]
    return [np.sort(np.asarray(f)) for f in folds]


def subject_split(subjects, validation_fraction: float = 0.2, seed: int = config.SEQUENCE_SEED):
    """Boolean masks (train, validation) with whole subjects on each side."""
    n_folds = max(2, round(1 / validation_fraction))
    held_out = subject_folds(subjects, n_folds, seed)[0]
    validation = np.isin(subjects, held_out)
    return ~validation, validation


@dataclass
class SequenceAugmenter:
    """Random, label-preserving changes of raw sequences, drawn fresh for every batch.

    Rotations stay small: the swipes are defined by their direction in the camera's frame, so a
    swipe rotated by 90 degrees would be another gesture.
    """

    rotation_deg: float = 15.0
    scale: float = 0.15
    translation: float = 0.05
    jitter: float = 0.002
    time_warp: float = 0.2
    crop: float = 0.1
    drop_frames: float = 0.1

    def __call__(self, sequences: list, frames: int, rng: np.random.Generator) -> np.ndarray:
        out = np.stack([self.temporal(s, frames, rng) for s in sequences])
        return self.spatial(out, rng)

    def temporal(self, sequence, frames: int, rng) -> np.ndarray:
        sequence = np.asarray(sequence)
        if self.drop_frames and len(sequence) > 4:
            keep = rng.random(len(sequence)) >= self.drop_frames
            keep[[0, -1]] = True
            sequence = np.where(keep[:, None, None], sequence, np.nan)
        start, stop = 0.0, 1.0
        if self.crop:
            start, stop = rng.uniform(0, self.crop / 2), 1 - rng.uniform(0, self.crop / 2)
        base = np.linspace(0.0, 1.0, frames)
        if self.time_warp:
            # A smooth, monotone speed change: a random cubic bent by up to time_warp.
            bend = rng.uniform(-self.time_warp, self.time_warp)
            base = base + bend * base * (1 - base) * (1 - 2 * base) * 2.6
            base = np.clip(np.maximum.accumulate(base), 0, 1)
        return resample(sequence, frames, start + base * (stop - start))

    def spatial(self, batch: np.ndarray, rng) -> np.ndarray:
        n, frames, points = batch.shape[:3]
        angles = np.deg2rad(rng.uniform(-self.rotation_deg, self.rotation_deg, size=(n, 3)))
        rotations = np.stack([_rotation(a) for a in angles])
        hands = batch.reshape(n, frames, -1, N_LANDMARKS, N_COORDS)
        mask = np.abs(hands).sum(axis=(3, 4)) > 0  # (n, frames, hands)
        # about the mean wrist of the hands there, so two hands turn and scale as one scene
        centre = hands[:, :, :, 0, :].sum(axis=(1, 2)).reshape(n, 1, 1, 3) / np.maximum(
            mask.sum(axis=(1, 2)), 1
        ).reshape(n, 1, 1, 1)
        out = np.einsum("ntjc,ndc->ntjd", batch - centre, rotations)
        out = out * rng.uniform(1 - self.scale, 1 + self.scale, size=(n, 1, 1, 1))
        out = out + centre + rng.uniform(-self.translation, self.translation, size=(n, 1, 1, 3))
        out = out + rng.normal(0, self.jitter, size=out.shape)
        keep = np.repeat(mask, N_LANDMARKS, axis=2)[..., None]
        return np.where(keep, out, 0).astype(np.float32)


AUGMENTATIONS = {
    "full": SequenceAugmenter(),
    "spatial": SequenceAugmenter(time_warp=0.0, crop=0.0, drop_frames=0.0),
    "temporal": SequenceAugmenter(rotation_deg=0.0, scale=0.0, translation=0.0, jitter=0.0),
    "mild": SequenceAugmenter(
        rotation_deg=8.0,
        scale=0.08,
        translation=0.02,
        jitter=0.001,
        time_warp=0.1,
        crop=0.04,
        drop_frames=0.05,
    ),
}


def _rotation(angles) -> np.ndarray:
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def pick_classes(data: SequenceSet, names) -> SequenceSet:
    codes = [list(data.classes).index(n) for n in names]
    out = data.subset(np.isin(data.labels, codes))
    out.labels = (
        np.searchsorted(codes, out.labels)
        if codes == sorted(codes)
        else np.asarray([codes.index(c) for c in out.labels])
    )
    out.classes = tuple(names)
    return out
