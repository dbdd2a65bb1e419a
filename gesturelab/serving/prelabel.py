"""Pre-labelling: a trained model proposes labels for unlabelled recordings, so that people
review only what it is unsure of.

``prelabel_static`` runs a static model over photos, videos (a frame in every ``every``) and
landmark CSVs without labels; every hand gets the model's best class with its confidence (top
probability), margin (top minus second) and entropy (normalised to [0, 1]). A hand whose
confidence reaches ``threshold`` and that the model's reject rule keeps is *accepted*; the rest
go to the *queue*, most uncertain first (``RANKS``), with the 0.4-0.6 confidence band the
deployment workflow collects for retraining marked, followed by a random share (``audit``) of
the accepted ones, the workflow's quality-control sample.

``write_prelabels`` leaves, in one folder: ``proposals.csv`` (every hand, its proposal and
status), ``accepted.csv`` (a landmark CSV with a ``label`` column, which ``data import`` and
every static reader take), ``queue.csv`` (the queued hands ranked, with their landmarks, where
they came from and the picture to judge them by) and ``queue/`` (that picture: the photo or
video frame with the hand drawn and the proposal written on it), and ``prelabel.json`` (the
model, the settings, the counts); for windows of videos also ``queue_frames.csv`` (the queued
windows' hands, frame by frame), which the labeller (``serving.labelling``) reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gesturelab import config
from gesturelab.datasets.extraction import (
    VIDEO_SUFFIXES,
    HandLandmarker,
    _cv2,
    collect_inputs,
    distinct_hands,
    draw_hand,
    extract_images,
    hand_rows,
    iter_video_frames,
    read_image,
    video_properties,
)
from gesturelab.datasets.landmarks import LABEL_COLUMN, LANDMARK_COLUMNS
from gesturelab.datasets.loading import load_landmarks_csv
from gesturelab.errors import MediaError, path_text
from gesturelab.evaluation.metrics import uncertainty

DEFAULT_THRESHOLD = config.PRELABEL_THRESHOLD
HARD_BAND = config.HARD_BAND
DEFAULT_EVERY = config.PRELABEL_EVERY
DEFAULT_AUDIT = config.PRELABEL_AUDIT
TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".gz"}


# How the queue is ordered, most in need of a person first: a key to sort ascending by.
RANKS = {
    "margin": lambda t: t["margin"],
    "entropy": lambda t: -t["entropy"],
    "band": lambda t: (t["confidence"] - 0.5).abs(),  # the middle of the 0.4-0.6 band first
}
DEFAULT_RANK = config.PRELABEL_RANKS[0]
assert tuple(RANKS) == config.PRELABEL_RANKS, "config.PRELABEL_RANKS names every rank here"


@dataclass
class Prelabels:
    """Every hand the model saw, with its proposal; see the module docstring."""

    proposals: pd.DataFrame
    problems: pd.DataFrame
    threshold: float
    rank: str
    classes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    # "hand": a row of proposals is one hand (a static model); "sequence": a window of a video
    # (a sequence model), its hands in ``frames`` (one row per hand per frame, as recorded)
    kind: str = "hand"
    frames: pd.DataFrame | None = None

    @property
    def accepted(self) -> pd.DataFrame:
        """Hands: a landmark CSV with a label column. Sequences: a per-frame sequence CSV
        (sequence, frame, label, handedness, x1..z21), one row per hand of each frame that has
        one, which ``data import`` takes (``--hand`` chooses among two hands)."""
        rows = self.proposals[self.proposals["status"] == "accepted"]
        if self.kind == "sequence":
            labels = dict(zip(rows["sequence"], rows["proposed_label"], strict=True))
            return labelled_windows(self.frames, labels)
        return labelled_hands(rows, rows["proposed_label"])

    @property
    def queue(self) -> pd.DataFrame:
        """The queued hands, most uncertain first (``rank``), then the audit sample of the
        accepted ones; ``reason`` says which."""
        queued = self.proposals[self.proposals["status"] == "queued"]
        order = np.argsort(np.asarray(RANKS[self.rank](queued), dtype=np.float64), kind="stable")
        queued = queued.iloc[order].assign(
            reason=np.where(queued.iloc[order]["rejected_by_model"], "rejected", "uncertain")
        )
        audited = self.proposals[self.proposals["audit"]].assign(reason="audit")
        return pd.concat([queued, audited]).reset_index(drop=True)

    def summary(self) -> str:
        counts = self.proposals["status"].value_counts()
        band = int(self.proposals["in_hard_band"].sum()) if len(self.proposals) else 0
        audit = int(self.proposals["audit"].sum()) if len(self.proposals) else 0
        what = "windows" if self.kind == "sequence" else "hands"
        return (
            f"{len(self.proposals)} {what}: {counts.get('accepted', 0)} accepted (confidence "
            f"≥ {self.threshold:g}; {audit} of them queued as well, a sample to check), "
            f"{counts.get('queued', 0)} queued for review ({band} in the "
            f"{HARD_BAND[0]:g}-{HARD_BAND[1]:g} band); {len(self.problems)} problems"
        )


# Where a hand came from, carried into accepted.csv: columns the static readers know.
EXTRA = ("source", "frame", "hand_index", "handedness", "score")
WINDOW_COLUMNS = ("sequence", "frame", LABEL_COLUMN, "source", "hand_index", "handedness")


def labelled_hands(rows: pd.DataFrame, labels) -> pd.DataFrame:
    """Hands with their labels as a landmark CSV the static readers take (accepted.csv, and the
    labeller's labels.csv)."""
    rows = rows.assign(**{LABEL_COLUMN: np.asarray(labels, dtype=object)})
    keep = [c for c in (*LANDMARK_COLUMNS, LABEL_COLUMN, *EXTRA) if c in rows.columns]
    return rows[keep].reset_index(drop=True)


def labelled_windows(frames: pd.DataFrame, labels: dict) -> pd.DataFrame:
    """The windows named in ``labels`` ({sequence: label}) as a per-frame sequence CSV, one row
    per hand of each frame that has one (accepted.csv, and the labeller's labels.csv)."""
    frames = frames[frames["sequence"].isin(labels)]
    frames = frames.assign(**{LABEL_COLUMN: frames["sequence"].map(labels)})
    keep = [c for c in WINDOW_COLUMNS if c in frames.columns] + list(LANDMARK_COLUMNS)
    return frames[keep].reset_index(drop=True)


def prelabel_static(
    predictor,
    inputs,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    every: int = DEFAULT_EVERY,
    rank: str = DEFAULT_RANK,
    audit: float = DEFAULT_AUDIT,
    seed: int = config.SEED,
    progress: bool = True,
) -> Prelabels:
    """Proposals of a static model (``StaticPredictor``) for photos, videos and landmark CSVs
    (files, folders or globs; ``collect_inputs`` and ``*.csv``)."""
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {', '.join(RANKS)}, not {rank!r}")
    if every < 1:
        raise ValueError(f"every must be at least 1 (one frame in every N), not {every}")
    files = _inputs(inputs)
    tables = [f for f in files if f.suffix.lower() in TABLE_SUFFIXES]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    images = [f for f in files if f not in tables and f not in videos]
    parts, problems = [], []
    if images:
        extraction = extract_images(images, progress=progress)
        parts.append(extraction.rows.assign(media="image"))
        problems.append(extraction.problems)
    for video in videos:
        try:
            parts.append(_video_hands(video, every, progress).assign(media="video"))
        except MediaError as exc:
            problems.append(pd.DataFrame([{"source": path_text(video), "problem": exc.reason}]))
    for table in tables:
        loaded = load_landmarks_csv(table, require_label=False, verbose=False)
        rows = loaded.data.copy()
        rows["source"] = rows["source"] if "source" in rows else path_text(table)
        rows["line"] = loaded.lines
        parts.append(rows.drop(columns=[LABEL_COLUMN], errors="ignore").assign(media="table"))
        if len(loaded.rejected):
            problems.append(
                pd.DataFrame(
                    {
                        "source": path_text(table),
                        "problem": [
                            f"line {line}: {reason} (row not used)"
                            for line, reason in zip(
                                loaded.rejected["line"], loaded.rejected["reason"], strict=True
                            )
                        ],
                    }
                )
            )
    hands = pd.concat([p for p in parts if len(p)], ignore_index=True) if parts else pd.DataFrame()
    problems = (
        pd.concat(problems, ignore_index=True)
        if problems
        else pd.DataFrame(columns=["source", "problem"])
    )
    if len(hands) == 0:
        return Prelabels(
            _empty_proposals(), problems, threshold, rank, list(predictor.classes), files
        )
    probabilities, scores = predictor.predict_with_scores(hands)
    kept = np.asarray(predictor.gesture_labels(probabilities, scores)) != "no gesture"
    proposals = _decide(hands, probabilities, predictor.classes, kept, threshold, audit, seed)
    return Prelabels(proposals, problems, threshold, rank, list(predictor.classes), files)


def _decide(items, probabilities, classes, kept, threshold, audit, seed) -> pd.DataFrame:
    """``items`` (one row each) with the proposal, its uncertainty, and what becomes of it."""
    measures = uncertainty(probabilities)
    best = np.asarray(classes, dtype=object)[np.asarray(probabilities).argmax(axis=1)]
    low, high = HARD_BAND
    proposals = pd.concat([items.reset_index(drop=True), measures], axis=1).assign(
        proposed_label=best,
        rejected_by_model=~kept,
        in_hard_band=(measures["confidence"] >= low) & (measures["confidence"] <= high),
        status=np.where(kept & (measures["confidence"] >= threshold), "accepted", "queued"),
    )
    # a seeded share of the accepted ones reviewed as well: a confident model can be
    # confidently wrong, and only a person looking at some of its sure answers finds out
    accepted = np.flatnonzero(proposals["status"] == "accepted")
    picked = np.random.default_rng(seed).permutation(accepted)[
        : int(np.ceil(audit * len(accepted)))
    ]
    proposals["audit"] = False
    proposals.loc[picked, "audit"] = True
    return proposals


def _inputs(inputs) -> list[Path]:
    specs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
            files.append(path)
            continue
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in TABLE_SUFFIXES)
            try:
                files += collect_inputs(path)
            except MediaError:
                if not any(p.suffix.lower() in TABLE_SUFFIXES for p in path.rglob("*")):
                    raise
            continue
        files += collect_inputs(spec)
    return list(dict.fromkeys(files))


def _tracked_hands(path: Path, progress: bool):
    """(frame index, BGR image, hands) of every frame of a video, MediaPipe in video mode with
    up to two hands, each hand once (``distinct_hands``: its tracked copy would be proposed
    twice); MediaError when no frame decodes."""
    cv2 = _cv2()
    count = video_properties(path)[1]
    decoded = 0
    with HandLandmarker(static_image_mode=False, max_num_hands=2) as marker:
        for index, image in tqdm(
            iter_video_frames(path), total=count, desc=path.name, disable=not progress
        ):
            decoded += 1
            yield (
                index,
                image,
                distinct_hands(marker.detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))),
            )
    if not decoded:
        raise MediaError(path, "no frame could be decoded")


def _video_hands(path: Path, every: int, progress: bool) -> pd.DataFrame:
    """The hands of one frame in every ``every``, tracked through all of them (MediaPipe's
    video mode needs consecutive frames), as landmark rows."""
    fps = video_properties(path)[0]
    rows = []
    for index, _, hands in _tracked_hands(path, progress):
        if index % every == 0:
            rows += hand_rows(hands, path_text(path), index)
    return pd.DataFrame(rows, columns=[*LANDMARK_COLUMNS, *EXTRA]).assign(
        time_s=lambda t: t["frame"] / fps
    )


def _empty_proposals() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            *LANDMARK_COLUMNS,
            *EXTRA,
            "media",
            "confidence",
            "margin",
            "entropy",
            "proposed_label",
            "rejected_by_model",
            "in_hard_band",
            "status",
            "audit",
        ]
    )


def write_prelabels(prelabels: Prelabels, out_dir, model: str = "", pictures: bool = True) -> Path:
    """The folder described in the module docstring; the queue's pictures with ``pictures``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prelabels.proposals.to_csv(out / "proposals.csv", index=False)
    accepted = prelabels.accepted
    accepted.to_csv(out / "accepted.csv", index=False)
    queue = prelabels.queue
    if pictures and len(queue):
        draw = _window_pictures if prelabels.kind == "sequence" else _queue_pictures
        queue = queue.assign(picture=draw(queue, out / "queue", prelabels.frames))
    queue.to_csv(out / "queue.csv", index=False)
    if prelabels.kind == "sequence":  # the queued windows' hands, for the labeller
        frames = prelabels.frames[prelabels.frames["sequence"].isin(queue["sequence"])]
        frames.to_csv(out / "queue_frames.csv", index=False)
    prelabels.problems.to_csv(out / "problems.csv", index=False)
    counts = prelabels.proposals["status"].value_counts()
    (out / "prelabel.json").write_text(
        json.dumps(
            {
                "model": model,
                "classes": prelabels.classes,
                "threshold": prelabels.threshold,
                "hard_band": list(HARD_BAND),
                "rank": prelabels.rank,
                "inputs": [path_text(p) for p in prelabels.inputs],
                "hands": int(len(prelabels.proposals)),
                "accepted": int(counts.get("accepted", 0)),
                "queued": int(counts.get("queued", 0)),
                "audit": int(prelabels.proposals["audit"].sum()),
                "problems": int(len(prelabels.problems)),
            },
            indent=2,
        )
        + "\n"
    )
    return out


def _queue_pictures(queue: pd.DataFrame, folder: Path, frames=None) -> list[str]:
    """queue/<rank>.jpg for each queued hand that came from a photo or a video frame: the
    picture with the hand drawn and the proposal written; "" for hands from a table."""
    cv2 = _cv2()
    folder.mkdir(parents=True, exist_ok=True)
    names = [""] * len(queue)
    wanted: dict[str, dict[int, list[int]]] = {}
    for i, row in queue.iterrows():
        if row["media"] == "table":
            continue
        frame = int(row["frame"]) if row["media"] == "video" else 0
        wanted.setdefault(row["source"], {}).setdefault(frame, []).append(i)
    for source, frames in wanted.items():
        if Path(source).suffix.lower() in VIDEO_SUFFIXES:
            pictures = (
                (index, image) for index, image in iter_video_frames(source) if index in frames
            )
        else:
            image, _ = read_image(source)
            pictures = [(0, image)] if image is not None else []
        for index, image in pictures:
            for i in frames[index]:
                row = queue.loc[i]
                hand = row[list(LANDMARK_COLUMNS)].to_numpy(np.float64).reshape(21, 3)
                text = f"#{i + 1} {row['proposed_label']}? {row['confidence']:.2f}"
                name = folder / f"{i + 1:04d}.jpg"
                cv2.imwrite(str(name), draw_hand(image.copy(), hand, text, colour=(0, 200, 255)))
                names[i] = str(Path("queue") / name.name)
    return names


def _window_pictures(queue: pd.DataFrame, folder: Path, frames: pd.DataFrame) -> list[str]:
    """queue/<rank>.jpg for each queued window: four of its frames side by side, each with
    its hands drawn, the proposal written on the first."""
    cv2 = _cv2()
    folder.mkdir(parents=True, exist_ok=True)
    shown: dict[str, dict[int, list[int]]] = {}  # source -> frame -> queue rows
    for i, row in queue.iterrows():
        picks = np.linspace(int(row["start_frame"]), int(row["end_frame"]), 4).round().astype(int)
        for frame in dict.fromkeys(picks.tolist()):
            shown.setdefault(row["source"], {}).setdefault(frame, []).append(i)
    tiles: dict[int, list] = {i: [] for i in range(len(queue))}
    for source, wanted in shown.items():
        for index, image in iter_video_frames(source):
            for i in wanted.get(index, []):
                rows = frames[
                    (frames["sequence"] == queue.at[i, "sequence"]) & (frames["frame"] == index)
                ]
                tile = image.copy()
                for hand in rows[list(LANDMARK_COLUMNS)].to_numpy(np.float64):
                    draw_hand(tile, hand.reshape(21, 3), "", colour=(0, 200, 255))
                height = 240
                tiles[i].append(cv2.resize(tile, (tile.shape[1] * height // tile.shape[0], height)))
    names = []
    for i, row in queue.iterrows():
        name = folder / f"{i + 1:04d}.jpg"
        strip = np.concatenate(tiles[i], axis=1) if tiles[i] else np.zeros((240, 320, 3), np.uint8)
        text = f"#{i + 1} {row['proposed_label']}? {row['confidence']:.2f}"
        cv2.imwrite(str(name), draw_hand(strip, None, text, colour=(0, 200, 255)))
        names.append(str(Path("queue") / name.name))
    return names


SEQUENCE_UNITS = config.PRELABEL_UNITS


def prelabel_sequences(
    predictor,
    inputs,
    *,
    unit: str = SEQUENCE_UNITS[0],
    window: int | None = None,
    stride: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    rank: str = DEFAULT_RANK,
    audit: float = DEFAULT_AUDIT,
    seed: int = config.SEED,
    progress: bool = True,
) -> Prelabels:
    """Proposals of a sequence model (``SequencePredictor``) for videos: each ``window``
    frames (default: how long the model's training gestures lasted; ``stride`` apart, by
    default the window, so that no two accepted sequences share a frame), or each whole video
    with ``unit="clip"``. A window with a hand in less than half its frames is not proposed
    (counted in ``problems``). MediaPipe runs in video mode; the model gets its hands as it
    learnt them (``SequencePredictor.frame_from_hands``)."""
    from gesturelab.datasets.sequences import MIN_SEQUENCE_FRAMES, frame_mask, resample
    from gesturelab.serving.streaming import MIN_HAND_FRACTION, default_window

    if unit not in SEQUENCE_UNITS:
        raise ValueError(f"unit must be one of {', '.join(SEQUENCE_UNITS)}, not {unit!r}")
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {', '.join(RANKS)}, not {rank!r}")
    files = _inputs(inputs)
    stills = [f for f in files if f.suffix.lower() not in VIDEO_SUFFIXES]
    if stills:
        raise MediaError(
            stills[0],
            "a sequence model labels videos (a window or a whole clip each), not photos or "
            "tables; pre-label single hands with a static model",
        )
    items, batch, rows, problems = [], [], [], []
    for video in files:
        try:
            frames, used, fps = _video_frames(predictor, video, progress)
        except MediaError as exc:
            problems.append({"source": path_text(video), "problem": exc.reason})
            continue
        present = frame_mask(frames)
        length = len(frames) if unit == "clip" else (window or default_window(predictor, fps))
        step = stride or length
        for start in range(0, max(1, len(frames) - length + 1), step):
            end = min(len(frames), start + length)
            name = f"{video.stem}@{start}"
            hands = int(present[start:end].sum())
            if hands < MIN_SEQUENCE_FRAMES or hands / (end - start) < MIN_HAND_FRACTION:
                problems.append(
                    {
                        "source": path_text(video),
                        "problem": f"frames {start}-{end - 1}: a hand in {hands} of "
                        f"{end - start} frames (not proposed)",
                    }
                )
                continue
            batch.append(resample(frames[start:end], predictor.frames))
            items.append(
                {
                    "sequence": name,
                    "source": path_text(video),
                    "media": unit,
                    "start_frame": start,
                    "end_frame": end - 1,
                    "start_s": start / fps,
                    "end_s": end / fps,
                    "hand_fraction": hands / (end - start),
                }
            )
            for frame in range(start, end):
                for index, hand in enumerate(used[frame]):
                    rows.append(
                        {
                            "sequence": name,
                            "frame": frame,
                            "source": path_text(video),
                            "hand_index": index,
                            "handedness": hand["handedness"],
                            **dict(
                                zip(LANDMARK_COLUMNS, hand["landmarks"].reshape(-1), strict=True)
                            ),
                        }
                    )
    problems = pd.DataFrame(problems, columns=["source", "problem"])
    classes = list(predictor.classes)
    frames_table = pd.DataFrame(
        rows, columns=["sequence", "frame", "source", "hand_index", "handedness", *LANDMARK_COLUMNS]
    )
    if not items:
        empty = _empty_proposals().drop(columns=list(LANDMARK_COLUMNS))
        return Prelabels(
            empty, problems, threshold, rank, classes, files, kind="sequence", frames=frames_table
        )
    probabilities = predictor.predict_fixed(np.stack(batch))
    proposals = _decide(
        pd.DataFrame(items),
        probabilities,
        classes,
        np.ones(len(items), bool),
        threshold,
        audit,
        seed,
    )
    return Prelabels(
        proposals, problems, threshold, rank, classes, files, kind="sequence", frames=frames_table
    )


def _video_frames(predictor, path: Path, progress: bool):
    """(frames as the model takes them (n, 21 or 42, 3), NaN where no hand; the hands used in
    each frame, as recorded; fps) of one video."""
    fps = video_properties(path)[0]
    frames, used = [], []
    for _, image, hands in _tracked_hands(path, progress):
        frame, hand = predictor.frame_from_hands(hands, image.shape[1])
        frames.append(frame)
        if predictor.hands > 1:  # one hand of each side, the most confident
            sides = {}
            for h in sorted(hands, key=lambda h: -h["score"]):
                sides.setdefault(h["handedness"], h)
            used.append(list(sides.values()))
        else:
            used.append([hand] if hand is not None else [])
    return np.asarray(frames, dtype=np.float64), used, float(fps)
