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
model, the settings, the counts).
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
from gesturelab.errors import LandmarkDataError, MediaError, path_text

DEFAULT_THRESHOLD = config.PRELABEL_THRESHOLD
HARD_BAND = config.HARD_BAND
DEFAULT_EVERY = config.PRELABEL_EVERY
DEFAULT_AUDIT = config.PRELABEL_AUDIT
TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".gz"}


def uncertainty(probabilities: np.ndarray) -> pd.DataFrame:
    """confidence (top probability), margin (top minus second) and entropy (over log K, so 1
    is a uniform guess) of each row of class probabilities."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    ordered = -np.sort(-p, axis=1)
    second = ordered[:, 1] if p.shape[1] > 1 else np.zeros(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return pd.DataFrame(
        {
            "confidence": ordered[:, 0],
            "margin": ordered[:, 0] - second,
            "entropy": entropy / np.log(p.shape[1]) if p.shape[1] > 1 else 0.0,
        }
    )


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

    @property
    def accepted(self) -> pd.DataFrame:
        rows = self.proposals[self.proposals["status"] == "accepted"]
        rows = rows.assign(**{LABEL_COLUMN: rows["proposed_label"]})
        return rows[[c for c in (*LANDMARK_COLUMNS, LABEL_COLUMN, *EXTRA) if c in rows.columns]]

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
        return (
            f"{len(self.proposals)} hands: {counts.get('accepted', 0)} accepted (confidence "
            f"≥ {self.threshold:g}; {audit} of them queued as well, a sample to check), "
            f"{counts.get('queued', 0)} queued for review ({band} in the "
            f"{HARD_BAND[0]:g}-{HARD_BAND[1]:g} band); {len(self.problems)} problems"
        )


# Where a hand came from, carried into accepted.csv: columns the static readers know.
EXTRA = ("source", "frame", "hand_index", "handedness", "score")


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
    measures = uncertainty(probabilities)
    best = np.asarray(predictor.classes, dtype=object)[probabilities.argmax(axis=1)]
    low, high = HARD_BAND
    proposals = pd.concat([hands.reset_index(drop=True), measures], axis=1).assign(
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
    return Prelabels(proposals, problems, threshold, rank, list(predictor.classes), files)


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


def _video_hands(path: Path, every: int, progress: bool) -> pd.DataFrame:
    """The hands of one frame in every ``every``, tracked through all of them (MediaPipe's
    video mode needs consecutive frames), as landmark rows."""
    cv2 = _cv2()
    fps, count, _ = video_properties(path)
    rows, decoded = [], 0
    with HandLandmarker(static_image_mode=False, max_num_hands=2) as marker:
        for index, frame in tqdm(
            iter_video_frames(path), total=count, desc=path.name, disable=not progress
        ):
            decoded += 1
            hands = marker.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if index % every == 0:  # one hand found twice would be labelled twice
                rows += hand_rows(distinct_hands(hands), path_text(path), index)
    if not decoded:
        raise MediaError(path, "no frame could be decoded")
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
        queue = queue.assign(picture=_queue_pictures(queue, out / "queue"))
    queue.to_csv(out / "queue.csv", index=False)
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


def _queue_pictures(queue: pd.DataFrame, folder: Path) -> list[str]:
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


def read_accepted(out_dir):
    """The accepted hands as the static readers load them (a check that they import)."""
    path = Path(out_dir) / "accepted.csv"
    if not path.is_file():
        raise LandmarkDataError(path, "no accepted.csv: run prelabel first")
    return load_landmarks_csv(path, verbose=False, quarantine_dir=None)
