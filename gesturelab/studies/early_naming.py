"""Naming a gesture from its beginning: an early namer for the live detector's runs.

The live detector (``live_eval``) is slow to fire because it waits until one class holds most of
a run's probability, and a sequence model trained on whole gestures is sure of nothing until the
gesture is over. The early namer is a sequence model trained on the beginnings of the training
subjects' gestures (``datasets.prefixes``): it reads a run so far at every frame the detector
calls a gesture and fires once it is sure (``serving.frame_segments.EarlyNamingSegmenter`` does
the same live). Here it is trained (keyed and reused), its rules are chosen on the validation
subjects' streams, and it is scored on the test subjects' streams by the SHREC'22 protocol;
``early_ceiling`` says how far any namer of beginnings could go.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from gesturelab import config
from gesturelab.datasets.prefixes import accuracy_by_length, gesture_prefixes
from gesturelab.datasets.sequences import MIN_SEQUENCE_FRAMES, SequenceSet, frame_mask
from gesturelab.serving.frame_segments import (
    EarlyNaming,
    EarlyRules,
    SegmentRules,
    every_run,
    segment_stream,
)
from gesturelab.studies.live_eval import (
    MAX_REST_ALARMS,
    LiveSplit,
    LiveStudy,
    per_class,
    score_live,
)

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


def early_study(study: LiveStudy, closer=None, **options) -> dict:
    """An early namer (``early_namer``; ``options`` go to it) on the runs of ``study``'s
    detector (``live_eval.live_study``; its own segment rules say where runs start and end): its
    rules chosen on the validation streams (``choose_early``), then the chosen and the fast rule
    scored on the test streams, what it tells from the test subjects' gestures' first n frames
    (``beginnings_table``) and how far any namer of beginnings could go (``early_ceiling``).

    closer: a sequence model that names, once over, the runs the early namer never got sure of
    (``rules["chosen+closer"]``: the chosen rule with it). The rules are chosen without it: a
    closer that trained on the validation subjects (the leaderboard's model did) would make
    waiting for the end look better there than it is on anyone else. The chosen rules are
    tagged on the namer's run with the detector's run id (what ``predict --namer`` reads)."""
    split, runs = study.split, study.rules
    streams = {side: study.streams[side] for side in ("validation", "test")}
    probabilities = {"validation": study.validation_probabilities, "test": study.probabilities}
    detector_run = study.run.run_id if study.run is not None else None
    seed = options.setdefault("seed", config.SEQUENCE_SEED)  # live_study's, for its split
    namer = early_namer(split, **options)
    classes = split.fit.classes
    first = min(m for m, _ in EARLY_GRID)
    validation = early_readings(
        streams["validation"], probabilities["validation"], namer.predictor, runs, first
    )
    chosen, fast, table = choose_early(streams["validation"], validation, classes, runs)
    naming = EarlyNaming(namer.predictor, EarlyRules(*chosen), runs) if chosen else None
    if namer.run is not None and naming is not None:  # what predict --namer reads
        from gesturelab.training.seq_runs import tracking

        tracking().open_run(namer.run.run_id).set_tags(naming.tag(detector_run))
    test = early_readings(
        streams["test"], probabilities["test"], namer.predictor, runs, first, closer
    )
    alone = [replace(reading, closing=None) for reading in test]
    # naming: the chosen rule as LiveRecognizer, detect_video and predict --namer take it
    out = {"namer": namer, "runs": runs, "rule_table": table, "rules": {}, "naming": naming}
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
    predictor, data: SequenceSet, delay: int = EARLY_MAX_DELAY, ji: float = 0.85
) -> dict:
    """Whether a Jaccard index of ``ji`` with a median delay of ``delay`` frames is within
    reach of ``predictor`` on ``data`` (held-out subjects), even given each gesture's start.

    A gesture named wrongly is missed and counts as a false detection: JI = correct / (gestures
    + false) >= ji allows at most (1 - ji) / (1 + ji) of the gestures named wrongly. A median
    delay of ``delay`` needs half the correct detections, so ji / 2 of the gestures, named
    rightly by then, from their first ``delay + 1`` frames (the delay counts from the start
    frame). Naming the most confident beginnings first until the wrong ones reach that
    allowance gives ``right_at_most``. The bound is for JI pooled over the gestures; the
    protocol's JI is a mean over classes, so for it the bound is close, not strict."""
    frames = delay + 1
    probabilities = predictor.predict_distribution([s[:frames] for s in data.sequences])
    right = probabilities.argmax(axis=1) == data.labels
    ranked = right[np.argsort(-probabilities.max(axis=1), kind="stable")]
    allowed = (1 - ji) / (1 + ji) * len(data)
    within = np.cumsum(~ranked) <= allowed
    return {
        "delay": delay,
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
    if runs.min_length < min_frames:  # such runs would be named live but have no reading here
        raise ValueError(f"runs.min_length {runs.min_length} is below min_frames {min_frames}")
    out = []
    for stream, rows in zip(streams, probabilities):
        table = segment_stream(rows, stream.classes, every_run(runs))
        has_hand = frame_mask(stream.frames)
        # as FrameSegmenter decides it, in float64
        active = 1.0 - np.asarray(rows, dtype=np.float64)[:, -1] >= runs.on
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
