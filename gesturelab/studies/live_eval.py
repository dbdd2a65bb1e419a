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

from dataclasses import dataclass, field, replace

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
from gesturelab.datasets.prefixes import accuracy_by_length, gesture_prefixes
from gesturelab.datasets.sequences import (
    MIN_SEQUENCE_FRAMES,
    SequenceSet,
    frame_mask,
    subject_folds,
    subject_split,
)
from gesturelab.evaluation.online_protocol import Gesture, detected_at, evaluate, match
from gesturelab.models.frame_models import stream_probabilities
from gesturelab.serving.frame_segments import (
    EarlyNaming,
    EarlyRules,
    SegmentRules,
    every_run,
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

# The early namer (a sequence model trained on gestures' beginnings, ``early_namer``) fires once
# it has read ``min_frames`` of a run and is this sure of one class; tried on the validation
# streams like the segment rules.
EARLY_NAMER_ARCH = "ddnet"
EARLY_GRID = tuple(
    (min_frames, confidence)
    for min_frames in (6, 8, 10, 15)
    for confidence in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
)
EARLY_MAX_DELAY = 10  # frames at 30 fps: the median delay a rule must keep to be "fast"


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
    early: dict | None = None  # with early=True: the early namer, its rules, segments, scores


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
    early: bool = False,
    early_epochs: int | None = None,
    **overrides,
) -> LiveStudy:
    """Train (or reuse) a per-frame detector on life-like streams of the training subjects,
    choose its segment rules on validation subjects' streams, and score it on the held-out
    subjects' streams with the SHREC'22 protocol. namer: a sequence model trained without the
    test subjects (the leaderboard's validated model) that also names the detector's segments
    once over, with segment rules of its own chosen on the validation streams (``named``).
    early: also train (or reuse) an early namer (``early_namer``; ``early_epochs``) that names
    the same runs as soon as it is sure (``named_early``; the runs it never gets sure of named
    once over by ``namer`` where there is one), its rules chosen on the validation streams
    (``early``)."""
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
    early_result = None
    if early:
        runs = named["rules"] if named is not None else rules
        early_result = early_study(
            split,
            {"validation": validation, "test": test},
            {"validation": val_probabilities, "test": probabilities},
            runs,
            closer=namer,
            epochs=early_epochs,
            seed=seed,
            fresh=fresh,
            log=log,
            experiment=experiment,
        )
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
        early=early_result,
    )


def early_study(split, streams, probabilities, runs, closer=None, **options) -> dict:
    """The early namer (``early_namer``; ``options`` go to it) on the detector's runs: its rules
    chosen on the validation streams (``choose_early``), then the chosen and the fast rule
    scored on the test streams, and what it tells from the test subjects' gestures' first n
    frames (``beginnings_table``).

    closer: a sequence model that names, once over, the runs the early namer never got sure of
    (``rules["chosen+closer"]``: the chosen rule with it). The rules are chosen without it: a
    closer that trained on the validation subjects (the leaderboard's model did) would make
    waiting for the end look better there than it is on anyone else."""
    seed = options.get("seed", config.SEQUENCE_SEED)
    namer = early_namer(split, **options)
    classes = split.fit.classes
    first = min(m for m, _ in EARLY_GRID)
    validation = early_readings(
        streams["validation"], probabilities["validation"], namer.predictor, runs, first
    )
    chosen, fast, table = choose_early(streams["validation"], validation, classes, runs)
    if namer.run is not None and chosen is not None:  # what predict --namer reads
        from gesturelab.training.seq_runs import tracking

        naming = EarlyNaming(namer.predictor, EarlyRules(*chosen), runs)
        tracking().open_run(namer.run.run_id).set_tags(naming.tag())
    test = early_readings(
        streams["test"], probabilities["test"], namer.predictor, runs, first, closer
    )
    alone = [replace(reading, closing=None) for reading in test]
    out = {"namer": namer, "runs": runs, "rule_table": table, "rules": {}}
    variants = [("chosen", chosen, alone), ("fast", fast, alone)]
    if closer is not None:
        variants.append(("chosen+closer", chosen, test))
    for kind, rule, readings in variants:
        if rule is None:
            continue
        segments = named_early(streams["test"], readings, classes, runs, *rule)
        out["rules"][kind] = {
            "min_frames": rule[0],
            "confidence": rule[1],
            "segments": segments,
            "scores": score_live(streams["test"], segments),
            "per_class": per_class(streams["test"], segments),
        }
    out["beginnings"] = beginnings_table(namer.predictor, split.test, seed)
    out["ceiling"] = early_ceiling(namer.predictor, split.test)
    return out


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


@dataclass
class EarlyNamer:
    """A sequence model trained on the beginnings of the training subjects' gestures
    (``datasets.prefixes``), stopped on the validation subjects' beginnings (``early_namer``)."""

    predictor: object  # a SequencePredictor
    run: object  # its RunRecord, or None when not logged
    reused: bool
    best_epoch: int
    epochs_run: int


def early_namer(
    split: LiveSplit,
    arch: str = EARLY_NAMER_ARCH,
    epochs: int | None = None,
    seed: int = config.SEQUENCE_SEED,
    fresh: bool = False,
    log: bool = True,
    experiment: str | None = None,
) -> EarlyNamer:
    """Train (or reuse, by run key) ``arch`` on every beginning of the fitting subjects'
    gestures, early stopping on the validation subjects' beginnings: the test subjects are
    never seen, neither to fit nor to stop."""
    from gesturelab.models.predictor import SequencePredictor
    from gesturelab.training import seq_runs
    from gesturelab.training.seq_experiment import training_run, validate_trained
    from gesturelab.training.seq_training import config_for, fit

    train = gesture_prefixes(split.fit, seed=seed)
    val = gesture_prefixes(split.validation, seed=seed + 1)
    train_config = config_for(arch, len(train.classes), epochs=epochs or None, seed=seed)
    key = seq_runs.run_key(
        train_config, seq_runs.data_digest(train), seq_runs.data_digest(val), "early-namer"
    )
    experiment = experiment or config.LIVE_EXPERIMENT
    found = seq_runs.find_finished(experiment, key, fresh) if log else None
    if found is not None:
        result = seq_runs.reused_result(found, train_config, train.classes)
        run = found
    else:
        tags = {"run_key": key, "role": "early namer", "validation": "by subject"}
        name = f"early namer {arch}"
        with training_run(log, experiment, name, arch, train.classes, tags) as opened:
            result = fit(train, train_config, val)
            validated = validate_trained(
                result, train, train, val, run=opened, experiment=experiment, run_name=name,
                tags=tags, board_dir=None, log=log, n_bootstrap=200,
            )  # fmt: skip
        run = validated.run
    metadata = {"frames": train_config.frames, "classes": list(train.classes)}
    return EarlyNamer(
        SequencePredictor(result.model, metadata),
        run,
        found is not None,
        result.best_epoch,
        result.epochs_run,
    )


def beginnings_table(predictor, data: SequenceSet, seed: int = config.SEQUENCE_SEED) -> dict:
    """What ``predictor`` tells from each gesture's first n frames (from its true first frame),
    per n: its accuracy on ``data`` (held-out subjects)."""
    beginnings = gesture_prefixes(data, late_start=0, seed=seed)
    probabilities = predictor.predict_distribution(beginnings.sequences)
    return accuracy_by_length(beginnings, probabilities.argmax(axis=1))


def early_ceiling(
    predictor, data: SequenceSet, frames: int = EARLY_MAX_DELAY, ji: float = 0.85
) -> dict:
    """Whether a Jaccard index of ``ji`` with a median delay of ``frames`` is within reach of
    ``predictor`` on ``data`` (held-out subjects), even given each gesture's true start.

    A gesture named wrongly is missed and counts as a false detection: JI = correct / (gestures
    + false) >= ji allows at most (1 - ji) / (1 + ji) of the gestures named wrongly. A median
    delay of ``frames`` needs half the correct detections, so ji / 2 of the gestures, named
    rightly from their first ``frames`` frames. Naming the most confident beginnings first
    until the wrong ones reach that allowance gives ``right_at_most``; ``needed`` is ji / 2."""
    beginnings = gesture_prefixes(data, lengths=(frames,), late_start=0)
    short = beginnings.meta["prefix_frames"] == frames
    short &= ~beginnings.meta["whole"]
    sequences = [s for s, keep in zip(beginnings.sequences, short) if keep]
    probabilities = predictor.predict_distribution(sequences)
    right = probabilities.argmax(axis=1) == beginnings.labels[short]
    ranked = right[np.argsort(-probabilities.max(axis=1), kind="stable")]
    allowed = (1 - ji) / (1 + ji) * len(data)
    within = np.cumsum(~ranked) <= allowed
    return {
        "frames": frames,
        "ji": ji,
        "gestures": len(data),
        "accuracy": float(right.mean()),
        "wrong_allowed": round((1 - ji) / (1 + ji), 4),
        "needed": ji / 2,
        "right_at_most": float(np.cumsum(ranked)[within].max(initial=0) / len(data)),
    }


@dataclass
class EarlyReadings:
    """Every run of a stream (the detector's, under ``runs`` rules) and the early namer's
    class distribution after each of its frames from the ``min_frames``-th on."""

    runs: pd.DataFrame  # start_frame, end_frame
    frames: list  # per run: the frame indices read
    distributions: list  # per run: (len(frames), classes)
    closing: list | None = None  # per run: the closer's distribution of the whole run, or None


def early_readings(
    streams, probabilities, predictor, runs: SegmentRules, min_frames: int, closer=None
):
    """``EarlyReadings`` per stream: the namer reads each run's frames so far at every frame
    the detector calls a gesture (what it would say live, causally: ``EarlyNamingSegmenter``
    reads the same frames). A run is where the detector says a gesture is under way (``runs``'
    ``on`` and ``gap``), whether or not the detector would fire on it.
    closer: a sequence model that reads each whole run once it is over (``closing``), to name
    the runs the namer never got sure of."""
    out = []
    for stream, rows in zip(streams, probabilities):
        table = segment_stream(rows, stream.classes, every_run(runs))
        has_hand = frame_mask(stream.frames)
        active = 1.0 - np.asarray(rows)[:, -1] >= runs.on
        pieces, owners, read = [], [], [[] for _ in range(len(table))]
        for r, run in enumerate(table.itertuples()):
            for t in range(run.start_frame + min_frames - 1, run.end_frame + 1):
                if active[t] and has_hand[run.start_frame : t + 1].sum() >= MIN_SEQUENCE_FRAMES:
                    pieces.append(stream.frames[run.start_frame : t + 1])
                    owners.append(r)
                    read[r].append(t)
        n_classes = len(predictor.classes)
        values = predictor.predict_distribution(pieces) if pieces else np.zeros((0, n_classes))
        owners = np.asarray(owners, dtype=int)
        closing = None
        if closer is not None:
            whole = [r for r, f in enumerate(read) if f and f[-1] == table["end_frame"].iat[r]]
            pieces = [stream.frames[table["start_frame"].iat[r] : read[r][-1] + 1] for r in whole]
            named = closer.predict_distribution(pieces) if pieces else []
            closing = [None] * len(table)
            for r, row in zip(whole, named):
                closing[r] = row
        out.append(
            EarlyReadings(
                table[["start_frame", "end_frame"]].reset_index(drop=True),
                [np.asarray(f, dtype=int) for f in read],
                [values[owners == r] for r in range(len(table))],
                closing,
            )
        )
    return out


def named_early(
    streams, readings, classes, runs: SegmentRules, min_frames: int, confidence: float
) -> list[pd.DataFrame]:
    """Segments named by the early namer: a run fires at its first frame, ``min_frames`` or
    more into it, where the namer gives one class ``confidence``; a run it is never that sure
    of is named once it is over (by the readings' closer where there is one, else the namer,
    reading all of it; the event ``gap`` frames after its last gesture frame), if it lasted
    ``min_length`` frames; shorter ones are dropped."""
    names = np.asarray(classes, dtype=object)
    tables = []
    for stream, reading in zip(streams, readings):
        rows, last = [], len(stream.frames) - 1
        for r, run in enumerate(reading.runs.itertuples()):
            frames, values = reading.frames[r], reading.distributions[r]
            allowed = frames >= run.start_frame + min_frames - 1
            sure = np.flatnonzero(allowed & (values.max(axis=1, initial=0) >= confidence))
            if len(sure):
                at, row = int(frames[sure[0]]), values[sure[0]]
            elif run.end_frame - run.start_frame + 1 >= runs.min_length and len(frames):
                closed = reading.closing[r] if reading.closing is not None else None
                row = values[-1] if closed is None else closed
                at = min(run.end_frame + runs.gap, last)
            else:
                continue
            rows.append(
                {
                    "label": names[int(row.argmax())],
                    "start_frame": int(run.start_frame),
                    "end_frame": int(run.end_frame),
                    "detected_at": at,
                    "confidence": round(float(row.max()), 4),
                }
            )
        columns = ["label", "start_frame", "end_frame", "detected_at", "confidence"]
        tables.append(pd.DataFrame(rows, columns=columns))
    return tables


def choose_early(streams, readings, classes, runs: SegmentRules, grid=EARLY_GRID):
    """The early namer's rules on these (validation) streams: every (min_frames, confidence)
    of ``grid`` scored; the best Jaccard index with at most ``MAX_REST_ALARMS`` false alarms a
    minute of rest ("chosen"), and the best among those whose median delay is at most
    ``EARLY_MAX_DELAY`` frames ("fast"). Returns (chosen, fast or None, table)."""
    rows = []
    for min_frames, confidence in grid:
        segments = named_early(streams, readings, classes, runs, min_frames, confidence)
        rows.append(
            {"min_frames": min_frames, "confidence": confidence, **score_live(streams, segments)}
        )
    table = pd.DataFrame(rows)
    quiet = table["rest_alarms_per_min"] <= MAX_REST_ALARMS
    allowed = table[quiet] if quiet.any() else table
    chosen = allowed["JI"].idxmax()
    fast_rows = allowed[allowed["median_delay"] <= EARLY_MAX_DELAY]
    fast = fast_rows["JI"].idxmax() if len(fast_rows) else None
    table["chosen"] = table.index == chosen
    table["fast"] = table.index == fast
    pick = lambda i: None if i is None else grid[i]  # noqa: E731
    return pick(chosen), pick(fast), table
