"""Live recognition measured the way the field measures it: life-like streams of held-out
subjects, scored by the SHREC'22 online protocol (``evaluation.online_protocol``).

The streams (``datasets.life_streams``) are one per subject: that subject's real SHREC'17
gestures joined by rests with the hand in view (with a still hand's jitter, measured on the
training subjects), transitions and idle motion. Idle motion is real hand motion that is none of
the 14 gestures, from two sources kept apart like subjects: sign-language recordings (the shipped
Kaggle ISLR sample; its signers dealt to training, validation and testing) and the shipped
videos (``hand_video.mp4`` for training, ``gestures_video.mp4`` for testing).

Beside the protocol's means (detection rate, false-positive rate, Jaccard index, delay) the
table has what a user feels: false alarms a minute of rest (a segment lying mostly outside every
gesture), and two delays of the correct detections: the protocol's (from the detection's own
start to when it fired) and the latency from the gesture's true start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.life_streams import (
    LifeStream,
    image_tracks,
    life_streams,
    measure_jitter,
    video_motion,
)
from gesturelab.datasets.sequences import (
    SequenceSet,
    subject_folds,
    subject_split,
)
from gesturelab.evaluation.online_protocol import Gesture, detected_at, evaluate, match
from gesturelab.models.frame_models import stream_probabilities
from gesturelab.serving.frame_segments import (
    SegmentRules,
    segment_stream,
)

IDLE_VIDEOS = {"train": "hand_video.mp4", "test": "gestures_video.mp4"}
SIGNS_DIR = config.DATA_DIR / "islr_signs_sample"
# Segment rules tried on the validation subjects' streams; the best Jaccard index among those
# with at most one false alarm a minute of rest is used.
RULE_GRID = tuple(
    SegmentRules(on=on, min_frames=6, fire=fire, gap=gap, recent=recent)
    for on in (0.5, 0.6)
    for fire in (0.6, 0.7, 0.8)
    for gap in (4, 8)
    for recent in (0, 8)
)
MAX_REST_ALARMS = 1.0  # a minute of rest
# Rests of the training streams with the hand out of view: a live detector meets frames without
# a hand (MediaPipe loses it; before the first frame, its window holds none), so it learns them.
TRAINING_NO_HAND = 0.1
# With a sequence model naming each segment once it is over, the event waits for the end anyway:
# what is left to choose is when a frame counts as gesture and how long a dip may last.
NAMED_GRID = tuple(
    SegmentRules(on=on, min_frames=6, fire=0.8, gap=gap) for on in (0.4, 0.5, 0.6)
    for gap in (8, 12, 16)
)  # fmt: skip


@dataclass
class IdleMaterial:
    train: list
    validation: list
    test: list
    notes: list = field(default_factory=list)


def idle_material(fps: float = 30.0) -> IdleMaterial:
    """Real non-gesture hand motion, split by source three ways like the subjects (module
    docstring): the signers dealt to training, validation and testing in turn, and one video
    to training, the other to testing. Validation must not see the training material's idle
    motion, or the false-alarm limit of the segment rules' choice never bites."""
    from gesturelab.datasets.sequence_formats import read_sequences

    signs = read_sequences(SIGNS_DIR, verbose=False, quarantine_dir=None).data
    signers = np.unique(signs.subjects)
    sides = {"train": signers[0::3], "validation": signers[1::3], "test": signers[2::3]}
    videos = {
        side: video_motion(config.DATA_DIR / "mediapipe_samples" / name, fps)
        for side, name in IDLE_VIDEOS.items()
    }
    tracks, notes = {}, []
    for side, who in sides.items():
        own = image_tracks(signs.subset(np.isin(signs.subjects, who)), fps=fps)
        tracks[side] = ([videos[side]] if side in videos else []) + own
        video = f"{IDLE_VIDEOS[side]} and " if side in videos else ""
        notes.append(
            f"idle motion for {side}: {video}{len(own)} sign recordings of signers "
            f"{', '.join(map(str, who))}"
        )
    return IdleMaterial(tracks["train"], tracks["validation"], tracks["test"], notes)


@dataclass
class LiveSplit:
    """Subjects kept apart: the detector fits on ``fit``, is stopped and its segment rules
    chosen on ``validation``, and is measured on ``test`` (the sequence leaderboard's
    held-out subjects, so the 'before' recognizer is measured on the same people)."""

    fit: SequenceSet
    validation: SequenceSet
    test: SequenceSet


def live_split(data: SequenceSet, seed: int = config.SEQUENCE_SEED) -> LiveSplit:
    train_mask, test_mask = subject_split(data.subjects, config.VALIDATION_FRACTION, seed=seed)
    train = data.subset(train_mask)
    validation = np.isin(train.subjects, subject_folds(train.subjects, 5, seed=seed + 1)[0])
    return LiveSplit(train.subset(~validation), train.subset(validation), data.subset(test_mask))


def detections(segments: pd.DataFrame) -> list[Gesture]:
    return [
        Gesture(str(s.label), float(s.start_frame), float(s.end_frame), float(s.detected_at))
        for s in segments.itertuples()
    ]


def score_live(streams: list[LifeStream], segments: list[pd.DataFrame]) -> dict:
    """The protocol's means over the streams, false alarms a minute (all, and of rest), and
    the median delays of correct detections (module docstring)."""
    truth = {str(i): _truth(s) for i, s in enumerate(streams)}
    found = {str(i): detections(t) for i, t in enumerate(segments)}
    table = evaluate(truth, found)
    mean = table.loc["mean"]
    own, latency, rest_alarms, alarms = [], [], 0, 0
    for i, stream in enumerate(streams):
        inside = np.zeros(len(stream.frames), bool)
        for g in stream.truth.itertuples():
            inside[g.start_frame : g.end_frame + 1] = True
        for d, g in match(truth[str(i)], found[str(i)]):
            if g is None:
                alarms += 1
                rest_alarms += inside[int(d.start) : int(d.end) + 1].mean() < 0.5
            else:
                own.append(detected_at(d) - d.start)
                latency.append(detected_at(d) - g.start)
    minutes = sum(s.minutes() for s in streams)
    return {
        "gestures": int(mean["total"]),
        "detections": int(sum(len(f) for f in found.values())),
        "DR": round(float(mean["detection_rate"]), 3),
        "FP": round(float(mean["false_positive_rate"]), 3),
        "JI": round(float(mean["jaccard"]), 3),
        "delay": round(float(mean["delay"]), 1),
        "median_delay": float(np.median(own)) if own else None,
        "median_latency": float(np.median(latency)) if latency else None,
        "false_alarms_per_min": round(alarms / minutes, 2),
        "rest_alarms_per_min": round(rest_alarms / sum(s.minutes("rest") for s in streams), 2),
        "minutes": round(minutes, 1),
    }


def per_class(streams: list[LifeStream], segments: list[pd.DataFrame]) -> pd.DataFrame:
    """The protocol's per-class table (and its mean row) over the streams."""
    truth = {str(i): _truth(s) for i, s in enumerate(streams)}
    found = {str(i): detections(t) for i, t in enumerate(segments)}
    return evaluate(truth, found, classes=list(streams[0].classes))


def _truth(stream: LifeStream) -> list[Gesture]:
    return [
        Gesture(str(g.label), float(g.start_frame), float(g.end_frame))
        for g in stream.truth.itertuples()
    ]


def choose_rules(
    streams, probabilities, grid=RULE_GRID, namer=None
) -> tuple[SegmentRules, pd.DataFrame]:
    """The rules of ``grid`` with the best Jaccard index on these (validation) streams among
    those with at most ``MAX_REST_ALARMS`` false alarms a minute of rest; and every rule's
    scores. namer: a sequence model that names the segments once over (``named_at_end``)."""
    rows = []
    for rules in grid:
        segments = [segment_stream(p, s.classes, rules) for s, p in zip(streams, probabilities)]
        if namer is not None:
            segments = named_at_end(streams, segments, namer, rules.gap)
        rows.append({**rules.__dict__, **score_live(streams, segments)})
    table = pd.DataFrame(rows)
    allowed = table[table["rest_alarms_per_min"] <= MAX_REST_ALARMS]
    best = (allowed if len(allowed) else table)["JI"].idxmax()
    table["chosen"] = table.index == best
    return grid[best], table


def build_streams(split: LiveSplit, idle: IdleMaterial, seed: int, copies: int):
    """(fit streams: ``copies`` per subject, validation streams, test streams, jitter). The
    jitter is measured on the fitting subjects only."""
    jitter = measure_jitter(split.fit.sequences, source="the training subjects' gestures")
    fit = [
        stream
        for c in range(copies)
        for stream in life_streams(
            split.fit, jitter, idle.train, seed + c, no_hand_share=TRAINING_NO_HAND
        )
    ]
    validation = life_streams(split.validation, jitter, idle.validation, seed=seed + 100)
    test = life_streams(split.test, jitter, idle.test, seed=seed + 200)
    return fit, validation, test, jitter


def recognizer_segments(predictor, stream: LifeStream, **options) -> pd.DataFrame:
    """The sliding-window recognizer (``serving.streaming``, the 'before') over a stream, its
    segments in this module's columns (the event's frame as ``detected_at``)."""
    from gesturelab.serving.streaming import StreamingRecognizer

    with StreamingRecognizer(predictor, stream.fps, **options) as recognizer:
        for frame in stream.frames:
            recognizer.push(frame)
    table = recognizer.segments_table()
    table["detected_at"] = (table["event_s"] * stream.fps).round().astype(int) - 1
    return table[["label", "start_frame", "end_frame", "detected_at", "confidence"]]


@dataclass
class LiveStudy:
    """A detector measured on streams of held-out subjects (``live_study``)."""

    split: LiveSplit
    idle: IdleMaterial
    jitter: object
    streams: dict  # {"fit", "validation", "test"}: lists of LifeStream
    result: object  # training.frame_training.FrameTrainResult
    rules: SegmentRules
    rule_table: pd.DataFrame  # every rule of RULE_GRID on the validation streams
    run: object  # the detector's RunRecord, or None when not logged
    probabilities: list  # per test stream: (frames, classes + 1)
    segments: list  # per test stream: the segment table
    scores: dict
    per_class: pd.DataFrame
    reused: bool = False
    named: dict | None = None  # with a namer: its rules, segments, scores and per-class table
    validation_probabilities: list | None = None  # per validation stream, as ``probabilities``


def live_study(
    data: SequenceSet,
    seed: int = config.SEQUENCE_SEED,
    epochs: int = config.LIVE_DETECTOR_EPOCHS,
    copies: int = config.LIVE_STREAM_COPIES,
    arch: str = "causal_tcn",
    fresh: bool = False,
    log: bool = True,
    experiment: str | None = None,
    verbose: int = 0,
    namer=None,
    **overrides,
) -> LiveStudy:
    """Train (or reuse) a per-frame detector on life-like streams of the training subjects,
    choose its segment rules on validation subjects' streams, and score it on the held-out
    subjects' streams with the SHREC'22 protocol. namer: a sequence model trained without the
    test subjects (the leaderboard's validated model) that also names the detector's segments
    once over, with segment rules of its own chosen on the validation streams (``named``).
    ``early_naming.early_study`` takes the study on to an early namer of the same runs."""
    from gesturelab.training import frame_runs
    from gesturelab.training.frame_training import (
        detector_settings,
        train_frame_detector,
    )

    split = live_split(data, seed)
    idle = idle_material(float(data.frame_rate or 30.0))
    fit, validation, test, jitter = build_streams(split, idle, seed, copies)
    settings = detector_settings(arch, epochs, seed, copies=copies, **overrides)
    key = frame_runs.detector_key(settings, fit, validation)
    experiment = experiment or config.LIVE_EXPERIMENT
    found = frame_runs.find_detector(key, experiment, fresh) if log else None
    run, reused = found, found is not None
    if reused:
        result, _ = frame_runs.reused_detector(found, settings, data.classes)
    else:
        result = train_frame_detector(fit, validation, settings, verbose=verbose)
    val_probabilities = [stream_probabilities(result.model, s.frames) for s in validation]
    # every rule's scores on the validation streams (the trade-off between delay and the
    # Jaccard index), chosen again for a reused detector too: the same rules unless the grid or
    # the scoring changed since it was logged, and then the new choice is the one to apply
    rules, rule_table = choose_rules(validation, val_probabilities)
    if not reused and log:
        chosen = rule_table[rule_table["chosen"]].iloc[0]
        run = frame_runs.log_detector(
            result,
            key,
            rules.__dict__,
            rule_table,
            experiment=experiment,
            data={
                "fit_subjects": " ".join(map(str, np.unique(split.fit.subjects))),
                "validation_subjects": " ".join(map(str, np.unique(split.validation.subjects))),
                "jitter": jitter.describe(),
            },
            metrics={f"val_{k}": v for k, v in dict(chosen).items() if k in ("JI", "DR", "FP")},
        )
    probabilities = [stream_probabilities(result.model, s.frames) for s in test]
    segments = [segment_stream(p, s.classes, rules) for s, p in zip(test, probabilities)]
    named = None
    if namer is not None:
        named_rules, named_table = choose_rules(validation, val_probabilities, NAMED_GRID, namer)
        runs = [segment_stream(p, s.classes, named_rules) for s, p in zip(test, probabilities)]
        runs = named_at_end(test, runs, namer, named_rules.gap)
        named = {
            "rules": named_rules,
            "rule_table": named_table,
            "segments": runs,
            "scores": score_live(test, runs),
            "per_class": per_class(test, runs),
        }
    return LiveStudy(
        split=split,
        idle=idle,
        jitter=jitter,
        streams={"fit": fit, "validation": validation, "test": test},
        result=result,
        rules=rules,
        rule_table=rule_table,
        run=run,
        probabilities=probabilities,
        segments=segments,
        scores=score_live(test, segments),
        per_class=per_class(test, segments),
        reused=reused,
        named=named,
        validation_probabilities=val_probabilities,
    )


def named_at_end(streams, segments, predictor, gap: int) -> list[pd.DataFrame]:
    """The detector's segments named by a sequence model (``SequencePredictor``) once they are
    over: the model reads the whole segment, and the event comes when the segmenter knows the
    run has ended (``gap`` frames after its last gesture frame). Where a segment classifier is
    stronger than the detector's own per-frame answer, this trades delay for labels."""
    named = []
    for stream, table in zip(streams, segments):
        table = table.copy()
        if len(table):
            pieces = [stream.frames[g.start_frame : g.end_frame + 1] for g in table.itertuples()]
            probabilities = predictor.predict_distribution(pieces)
            table["label"] = np.asarray(predictor.classes)[probabilities.argmax(axis=1)]
            table["confidence"] = probabilities.max(axis=1).round(4)
            last = len(stream.frames) - 1
            table["detected_at"] = np.minimum(table["end_frame"] + gap, last)
        named.append(table)
    return named


def with_seconds(segments: pd.DataFrame, fps: float) -> pd.DataFrame:
    """A segment table with start_s and end_s, as the timeline figure draws them."""
    table = segments.copy()
    table["start_s"] = table["start_frame"] / fps
    table["end_s"] = (table["end_frame"] + 1) / fps
    return table
