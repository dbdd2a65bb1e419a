"""Hard examples from live recognition: the windows a streaming recognizer is unsure of, kept
as a review queue (``prelabel``'s layout) that the labeller opens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.errors import path_text
from gesturelab.serving.prelabel import HARD_BAND

QUEUE_COLUMNS = ["sequence", "source", "media", "start_frame", "end_frame", "start_s", "end_s",
                 "hand_fraction", "proposed_label", "confidence", "margin", "in_hard_band",
                 "reason"]  # fmt: skip


class HardExamples:
    """The deployment workflow's hard examples from a streaming recognizer (its ``on_window``):
    every window whose top probability falls in ``band`` (0.4-0.6) kept with the frames the
    model saw, as a queue the labeller opens (``queue.csv``, ``queue_frames.csv``,
    ``prelabel.json``). ``save()`` adds them to the folder's queue, so that several sessions
    (a camera today, a video tomorrow) fill one queue."""

    def __init__(self, folder, predictor, source="stream", band=HARD_BAND, model: str = ""):
        self.folder, self.band, self.model = Path(folder), tuple(band), model
        self.classes, self.hands = list(predictor.classes), int(predictor.hands)
        self.source = path_text(source)
        self.items: list[dict] = []
        self.rows: list[dict] = []

    def __call__(self, record: dict, frames: np.ndarray) -> None:
        low, high = self.band
        if not low <= record["confidence"] <= high:
            return
        name = f"{Path(self.source).stem or 'stream'}@{record['start_frame']}"
        self.items.append(
            {
                "sequence": name,
                "source": self.source,
                "media": "window",
                "start_frame": record["start_frame"],
                "end_frame": record["end_frame"],
                "start_s": record["start_s"],
                "end_s": record["end_s"],
                "hand_fraction": record["hand_fraction"],
                "proposed_label": record["best"],
                "confidence": record["confidence"],
                "margin": record.get("margin", np.nan),
                "in_hard_band": True,
                "reason": "hard",
            }
        )
        for offset, frame in enumerate(np.asarray(frames, dtype=np.float64)):
            for slot in range(self.hands):
                hand = frame[slot * 21 : (slot + 1) * 21]
                if not np.isfinite(hand).all():
                    continue  # no hand in this frame (or not this side)
                row = {"sequence": name, "frame": record["start_frame"] + offset,
                       "source": self.source, "hand_index": slot}  # fmt: skip
                if self.hands > 1:  # two-hand models: the slots are the sides
                    row["handedness"] = ("Right", "Left")[slot]
                row.update(zip(LANDMARK_COLUMNS, hand.reshape(-1), strict=True))
                self.rows.append(row)

    def save(self) -> Path:
        """The folder's queue with these windows added (a window already there is kept once)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # the columns even when no window was hard: an empty queue still opens in the labeller
        frame_columns = ["sequence", "frame", "source", "hand_index"]
        frame_columns += (["handedness"] if self.hands > 1 else []) + list(LANDMARK_COLUMNS)
        queue = pd.DataFrame(self.items, columns=QUEUE_COLUMNS)
        frames = pd.DataFrame(self.rows, columns=frame_columns)
        if (self.folder / "queue.csv").is_file():
            queue = pd.concat([pd.read_csv(self.folder / "queue.csv"), queue], ignore_index=True)
            frames = pd.concat(
                [pd.read_csv(self.folder / "queue_frames.csv"), frames], ignore_index=True
            )
        queue = queue.drop_duplicates("sequence", keep="first") if len(queue) else queue
        if len(frames):
            frames = frames.drop_duplicates(["sequence", "frame", "hand_index"], keep="first")
        queue.to_csv(self.folder / "queue.csv", index=False)
        frames.to_csv(self.folder / "queue_frames.csv", index=False)
        (self.folder / "prelabel.json").write_text(
            json.dumps(
                {
                    "model": self.model,
                    "classes": self.classes,
                    "hard_band": list(self.band),
                    "kind": "sequence",
                    "queued": int(len(queue)),
                },
                indent=2,
            )
            + "\n"
        )
        return self.folder
