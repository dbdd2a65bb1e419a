"""Beginnings of gestures: what a recognizer that names a gesture before it ends has seen.

A sequence model trained on whole gestures has never been shown a beginning on its own, so what
it says after a gesture's first ten frames, and how sure it is, means little. ``gesture_prefixes``
turns segmented gestures into their beginnings (each gesture's first n frames for several n, the
whole gesture among them), each labelled with its gesture: a model trained on them learns what a
beginning tells, and how sure it may be of it, which is what firing early must be decided on.

A live detector places a gesture's start within a few frames of the true one, more often late
than early (``studies.live_eval``); ``late_start`` drops up to that many first frames at random.
"""

from __future__ import annotations

import numpy as np

from gesturelab import config
from gesturelab.datasets.sequences import MIN_SEQUENCE_FRAMES, SequenceSet

PREFIX_LENGTHS = (6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60)  # frames; the whole gesture too
LATE_START = 3  # frames a beginning may start after the gesture's first


def gesture_prefixes(
    data: SequenceSet,
    lengths=PREFIX_LENGTHS,
    late_start: int = LATE_START,
    seed: int = config.SEQUENCE_SEED,
) -> SequenceSet:
    """Every gesture's beginnings of ``lengths`` frames (those shorter than it) and the whole
    gesture, each starting up to ``late_start`` frames late (seeded). ``meta["prefix_frames"]``
    holds each one's length, ``meta["whole"]`` whether it is the whole gesture."""
    rng = np.random.default_rng(seed)
    sequences, labels, subjects, frames, whole = [], [], [], [], []
    for sequence, label, subject in zip(data.sequences, data.labels, data.subjects, strict=True):
        for n in [*(n for n in lengths if n < len(sequence)), len(sequence)]:
            skip = int(rng.integers(0, late_start + 1)) if n < len(sequence) else 0
            piece = sequence[skip : skip + n]
            if len(piece) < MIN_SEQUENCE_FRAMES:
                continue
            sequences.append(piece)
            labels.append(label)
            subjects.append(subject)
            frames.append(len(piece))
            whole.append(n == len(sequence))
    return SequenceSet(
        sequences=sequences,
        labels=np.asarray(labels, dtype=data.labels.dtype),
        subjects=np.asarray(subjects),
        classes=data.classes,
        meta={"prefix_frames": np.asarray(frames), "whole": np.asarray(whole)},
        frame_rate=data.frame_rate,
        source=f"beginnings of {data.source or 'the gestures'}",
        hand=data.hand,
    )


def accuracy_by_length(data: SequenceSet, predicted, lengths=PREFIX_LENGTHS) -> dict:
    """Accuracy of ``predicted`` labels (indices) on ``gesture_prefixes`` output, per beginning
    length (and "whole"): what can be told from a gesture's first n frames."""
    correct = np.asarray(predicted) == data.labels
    frames, whole = data.meta["prefix_frames"], data.meta["whole"]
    out = {n: float(correct[(frames == n) & ~whole].mean()) for n in lengths if (frames == n).any()}
    out["whole"] = float(correct[whole].mean())
    return out
