"""How well streaming recognition works, measured on streams built from real sequences.

No continuous recording with timed gestures is shipped, so a stream is built from real,
segmented sequences of subjects the model never saw, played back to back at the data's frame
rate with a pause between gestures (a random 0.5-2 s, seeded). During a pause the hand is gone
(``pause="no hand"``, the hand leaves the camera) or stays where the last gesture ended, still
(``pause="still"``, the harder case: a hand is seen but makes no gesture). The truth is where
each gesture starts and ends.

Scoring, at the level of segments (what ``predict`` reports):

- a gesture is **found** when a segment with its label overlaps it (one segment finds one
  gesture: the earliest of its label it overlaps that had begun when the segment fired);
  recall = found / gestures;
- a segment is **correct** when it finds a gesture; precision = correct / segments; F1 from
  the two;
- a **false alarm** is any other segment (a wrong label, a segment during a pause, or a repeat:
  a second segment for a gesture already found), per minute of stream;
- the **delay** of a found gesture: from the gesture's end to the event of its first matching
  segment (when the recognizer fired); negative when it fired before the gesture ended.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet, frame_mask, point_mask
from gesturelab.serving.streaming import StreamingRecognizer

PAUSE_KINDS = ("no hand", "still")


def build_stream(
    data: SequenceSet,
    fps: float | None = None,
    pause_s: tuple[float, float] = (0.5, 2.0),
    pause: str = "no hand",
    seed: int = config.SEQUENCE_SEED,
) -> tuple[np.ndarray, pd.DataFrame]:
    """(frames (n, 21 or 42, 3) with NaN for no hand, truth table) of ``data`` played back to
    back in a seeded random order."""
    if pause not in PAUSE_KINDS:
        raise ValueError(f"pause is one of {PAUSE_KINDS}, not {pause!r}")
    fps = float(fps or data.frame_rate or 30.0)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    pieces, truth, at = [], [], 0
    nothing = np.full((1, *data.sequences[0].shape[1:]), np.nan)  # 21 or 42 points
    for i in order:
        length = int(round(rng.uniform(*pause_s) * fps))
        if pause == "still" and pieces:
            last = pieces[-1][frame_mask(pieces[-1])]
            hold = last[-1:] if len(last) else nothing
        else:
            hold = nothing
        pieces.append(np.repeat(hold, length, axis=0))
        at += length
        sequence = np.asarray(data.sequences[i], dtype=np.float64)
        sequence = np.where(point_mask(sequence), sequence, np.nan)
        pieces.append(sequence)
        truth.append(
            {
                "label": data.classes[data.labels[i]],
                "start_frame": at,
                "end_frame": at + len(sequence) - 1,
                "subject": data.subjects[i],
            }
        )
        at += len(sequence)
    pieces.append(np.repeat(nothing, int(round(pause_s[1] * fps)), axis=0))
    truth = pd.DataFrame(truth)
    truth["start_s"] = truth["start_frame"] / fps
    truth["end_s"] = (truth["end_frame"] + 1) / fps
    return np.concatenate(pieces), truth


def score_segments(segments: pd.DataFrame, truth: pd.DataFrame, duration_s: float) -> dict:
    """Segment precision, recall, F1, false alarms per minute and delays (module docstring).

    Matching is one to one, in event order: a segment credits the earliest gesture of its
    label that it overlaps, that is not found yet and that had started when the segment's
    event fired. A segment that credits nothing is a false alarm: a wrong label, a segment in
    a pause, or a repeat (a second segment for a gesture already found, counted apart).
    """
    found = np.zeros(len(truth), bool)
    delays = np.full(len(truth), np.nan)
    correct = repeats = 0
    starts, ends = truth["start_s"].to_numpy(), truth["end_s"].to_numpy()
    labels = truth["label"].to_numpy()
    order = segments.sort_values("event_s", kind="stable") if len(segments) else segments
    for seg in order.itertuples():
        same = (starts < seg.end_s) & (ends > seg.start_s) & (labels == seg.label)
        open_ = np.flatnonzero(same & ~found & (starts <= seg.event_s))
        if len(open_):
            k = open_[0]
            found[k], delays[k] = True, seg.event_s - ends[k]
            correct += 1
        elif same.any():
            repeats += 1
    n_seg, n_truth = len(segments), len(truth)
    precision = correct / n_seg if n_seg else 0.0
    recall = found.mean() if n_truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    found_delays = delays[found]
    return {
        "gestures": n_truth,
        "segments": n_seg,
        "precision": round(float(precision), 4),
        "recall": round(float(recall), 4),
        "f1": round(float(f1), 4),
        "false_alarms": n_seg - correct,
        "repeats": repeats,
        "false_alarms_per_min": round((n_seg - correct) / (duration_s / 60.0), 2),
        "median_delay_s": round(float(np.median(found_delays)), 3) if found.any() else None,
        "p90_delay_s": round(float(np.quantile(found_delays, 0.9)), 3) if found.any() else None,
        "minutes": round(duration_s / 60.0, 2),
    }


def protocol_scores(segments: pd.DataFrame, truth: pd.DataFrame, fps: float) -> dict:
    """The SHREC'22 online protocol's means (``evaluation.online_protocol``) for one stream:
    detection rate, false-positive rate, Jaccard index, and delay in frames (from a segment's
    start to the frame its event fired), the classes being the stream's gestures."""
    from gesturelab.evaluation.online_protocol import Gesture, evaluate

    gestures = [
        Gesture(str(g.label), float(g.start_frame), float(g.end_frame)) for g in truth.itertuples()
    ]
    found = [
        Gesture(str(s.label), float(s.start_frame), float(s.end_frame), round(s.event_s * fps))
        for s in segments.itertuples()
    ]
    mean = evaluate({"stream": gestures}, {"stream": found}).loc["mean"]
    return {
        "protocol_dr": round(float(mean["detection_rate"]), 4),
        "protocol_fp": round(float(mean["false_positive_rate"]), 4),
        "protocol_ji": round(float(mean["jaccard"]), 4),
        "protocol_delay_frames": round(float(mean["delay"]), 1),
    }


def evaluate_stream(predictor, frames, truth, fps: float, thresholds=(None,), **options):
    """One row per threshold (None: the model's own) of ``score_segments``, and the segments
    of each as {threshold: table}."""
    rows, segments = [], {}
    for threshold in thresholds:
        with StreamingRecognizer(predictor, fps, threshold=threshold, **options) as recognizer:
            for frame in frames:
                recognizer.push(frame)
        table = recognizer.segments_table()
        key = recognizer.threshold
        segments[key] = table
        rows.append(
            {
                "threshold": key,
                "window": recognizer.window,
                "stride": recognizer.stride,
                **score_segments(table, truth, len(frames) / fps),
                **protocol_scores(table, truth, fps),
            }
        )
    return pd.DataFrame(rows), segments


def held_out_model(
    data: SequenceSet,
    arch: str = "ddnet",
    epochs=None,
    seed: int = config.SEQUENCE_SEED,
    validation_fraction: float | None = None,
    experiment: str | None = None,
    reuse: bool = True,
):
    """A sequence model trained on some subjects (early stopping on the others, as
    ``train-seq --no-refit``), served by a ``SequencePredictor`` with the streaming metadata
    it would be logged with; (predictor, validated model, the held-out subjects' sequences).

    That is the training the sequence leaderboard (notebook 03) does for ``arch`` on the same
    split: when ``experiment`` (None: config.SEQUENCE_EXPERIMENT) holds a finished run with
    its run key (``seq_runs.run_key``: configuration, both subjects' data, training code), its
    model is loaded and scored on the held-out subjects instead of trained a second time
    (``validated.run`` is that run), unless ``reuse`` is False.
    """
    from gesturelab import config
    from gesturelab.datasets.sequences import subject_split
    from gesturelab.models.predictor import SequencePredictor
    from gesturelab.training import seq_runs
    from gesturelab.training.seq_experiment import (
        stream_metadata,
        tracking,
        train_and_log,
        validated_model,
    )
    from gesturelab.training.seq_training import config_for

    fraction = validation_fraction or config.VALIDATION_FRACTION
    train_config = config_for(arch, len(data.classes), epochs=epochs or None, seed=seed)
    train_mask, val_mask = subject_split(data.subjects, fraction, seed=seed)
    val = data.subset(val_mask)
    key = seq_runs.run_key(
        train_config,
        seq_runs.data_digest(data.subset(train_mask)),
        seq_runs.data_digest(val),
        "validation",
    )
    found = seq_runs.find_finished(experiment or config.SEQUENCE_EXPERIMENT, key, not reuse)
    if found is not None:
        result = seq_runs.reused_result(found, train_config, data.classes)
        tracking().adopt_run(found.run_id)
        validated = validated_model(result, val, n_bootstrap=200)
        validated.run = found
    else:
        validated = train_and_log(
            data,
            train_config,
            validation_fraction=fraction,
            log=False,
            split_seed=seed,
            n_bootstrap=200,
        )
    metadata = {
        "frames": train_config.frames,
        "classes": list(data.classes),
        **stream_metadata(data, validated),
    }
    held_out = data.subset(np.isin(data.subjects, validated.validation_subjects))
    return SequencePredictor(validated.result.model, metadata), validated, held_out
