"""A person's pass over a review queue: one key per class, skip, back, save; resumable.

``LabelSession`` is the logic (no widgets): the items of a ``prelabel`` folder's queue (or any
landmark CSV), a decision per item, written after every decision to ``labels.csv`` in the form
the readers take: a landmark CSV with a ``label`` column for hands, a per-frame sequence CSV for
windows of videos. Opening the same ``out`` again continues after the last decision.
``Labeller`` is its JupyterLab view (ipywidgets, keys through ipyevents): the hand drawn as a
skeleton beside its picture when there is one, the proposal, and the keys.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab.datasets.landmarks import HAND_CONNECTIONS, LANDMARK_COLUMNS
from gesturelab.datasets.loading import replace_text
from gesturelab.errors import LandmarkDataError
from gesturelab.serving.prelabel import labelled_hands, labelled_windows

SKIP = "(skipped)"
# Keys that are not classes: back to the previous item, skip it, save now.
ACTIONS = {"ArrowLeft": "back", "b": "back", "ArrowRight": "skip", "n": "skip", "s": "save"}
# Class keys in order: the digits, then letters that are no action.
CLASS_KEYS = tuple("1234567890") + tuple(c for c in "acdefghijklmopqrtuvwxyz" if c not in ACTIONS)
STATE = "labelling.json"


def class_keys(classes) -> dict[str, str]:
    """key -> class for ``classes`` in order (1..9, 0, then letters)."""
    classes = list(classes)
    if len(classes) > len(CLASS_KEYS):
        raise ValueError(f"{len(classes)} classes; keys exist for {len(CLASS_KEYS)}")
    return dict(zip(CLASS_KEYS, classes, strict=False))


class LabelSession:
    """Decisions over the items of ``queue`` (see the module docstring).

    queue: a ``prelabel`` output folder (its ``queue.csv``; windows read their frames from
    ``queue_frames.csv``) or a landmark CSV of hands. classes: the label set (default: the
    folder's model's classes, from ``prelabel.json``). out: the labels file (default
    ``labels.csv`` beside the queue).
    """

    def __init__(self, queue, classes=None, out=None):
        path = Path(queue)
        folder = path if path.is_dir() else path.parent
        table = folder / "queue.csv" if path.is_dir() else path
        if not table.is_file():
            raise LandmarkDataError(table, "no queue to label (run prelabel first)")
        self.folder = folder
        self.items = pd.read_csv(table)
        self.kind = "sequence" if "start_frame" in self.items.columns else "hand"
        self.frames = None
        if self.kind == "sequence":
            self.frames = pd.read_csv(folder / "queue_frames.csv")
        if classes is None:
            meta = folder / "prelabel.json"
            if not meta.is_file():
                raise ValueError("give the classes (no prelabel.json beside the queue)")
            classes = json.loads(meta.read_text())["classes"]
        self.classes = [str(c) for c in classes]
        self.keys = class_keys(self.classes)
        self.out = Path(out) if out is not None else folder / "labels.csv"
        self.ids = [self._id(row) for _, row in self.items.iterrows()]
        self.decisions: dict[str, str] = {}
        state = self.out.with_name(STATE)
        if state.is_file():  # resume: the decisions made so far, in their order
            saved = json.loads(state.read_text())
            self.decisions = {k: v for k, v in saved["decisions"].items() if k in self.ids}
        self.position = self._next_open(0)

    def _id(self, row) -> str:
        if self.kind == "sequence":
            return str(row["sequence"])
        frame = int(row["frame"]) if "frame" in row and pd.notna(row["frame"]) else 0
        hand = int(row["hand_index"]) if "hand_index" in row and pd.notna(row["hand_index"]) else 0
        line = f"#{int(row['line'])}" if "line" in row and pd.notna(row["line"]) else ""
        return f"{row.get('source', '')}{line}@{frame}/{hand}"

    def _next_open(self, start: int) -> int:
        """The first item from ``start`` on without a decision; the end when all have one."""
        for i in range(start, len(self.ids)):
            if self.ids[i] not in self.decisions:
                return i
        return len(self.ids)

    @property
    def done(self) -> bool:
        return self.position >= len(self.ids)

    @property
    def current(self) -> pd.Series | None:
        return None if self.done else self.items.iloc[self.position]

    def progress(self) -> str:
        labelled = sum(v != SKIP for v in self.decisions.values())
        skipped = sum(v == SKIP for v in self.decisions.values())
        return (
            f"{min(self.position + 1, len(self.ids))} of {len(self.ids)}; {labelled} labelled, "
            f"{skipped} skipped"
        )

    def press(self, key: str) -> str:
        """One key: a class key labels the item and moves on, skip moves on, back returns to
        the previous item (its decision can be changed), save writes; what it did, in words."""
        if key in self.keys:
            return self.decide(self.keys[key])
        action = ACTIONS.get(key)
        if action == "skip":
            return self.decide(SKIP)
        if action == "back":
            self.position = max(0, self.position - 1)
            return f"back to {self.position + 1}"
        if action == "save":
            self.save()
            return f"saved {self.out}"
        return f"{key!r} is no key here"

    def decide(self, label: str) -> str:
        if self.done:
            return "every item has a decision"
        if label != SKIP and label not in self.classes:
            raise ValueError(f"{label!r} is not one of the classes")
        item = self.ids[self.position]
        self.decisions[item] = label
        self.save()
        self.position = min(self.position + 1, len(self.ids))
        if not self.done and self.ids[self.position] in self.decisions:
            self.position = self._next_open(self.position)
        return f"{item}: {label}"

    def labelled(self) -> pd.DataFrame:
        """The labels file's rows: hands as a landmark CSV, windows as a sequence CSV."""
        chosen = {k: v for k, v in self.decisions.items() if v != SKIP}
        if self.kind == "sequence":
            return labelled_windows(self.frames, chosen)
        keep = [i for i, item in enumerate(self.ids) if item in chosen]
        return labelled_hands(self.items.iloc[keep], [chosen[self.ids[i]] for i in keep])

    def save(self) -> Path:
        """labels.csv and the session's state, each replaced whole (a crash leaves the last
        complete one)."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        replace_text(self.out, self.labelled().to_csv(index=False))
        state = {"queue": str(self.folder), "classes": self.classes, "decisions": self.decisions}
        replace_text(self.out.with_name(STATE), json.dumps(state, indent=1) + "\n")
        return self.out

    def hand(self, row=None) -> np.ndarray | None:
        """The current item's landmarks: (21, 3) for a hand, (frames, 21, 3) of its first hand
        for a window."""
        row = self.current if row is None else row
        if row is None:
            return None
        if self.kind == "sequence":
            frames = self.frames[self.frames["sequence"] == row["sequence"]]
            first = frames.drop_duplicates("frame")
            return first[list(LANDMARK_COLUMNS)].to_numpy(np.float64).reshape(-1, 21, 3)
        columns = [c for c in LANDMARK_COLUMNS if c in row.index]
        return row[columns].to_numpy(np.float64).reshape(21, -1)


def skeleton_png(hand: np.ndarray, size: int = 320) -> bytes:
    """A hand ((21, 2+) points, or (frames, 21, 2+): its path faded in) drawn as a skeleton."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hands = hand[None] if hand.ndim == 2 else hand
    figure, axis = plt.subplots(figsize=(size / 80, size / 80), dpi=80)
    for k, points in enumerate(hands):
        alpha = 1.0 if k == len(hands) - 1 else 0.15 + 0.5 * k / max(1, len(hands) - 1)
        for a, b in HAND_CONNECTIONS:
            axis.plot(points[[a, b], 0], points[[a, b], 1], color="tab:orange", alpha=alpha)
    axis.invert_yaxis()
    axis.set_aspect("equal")
    axis.axis("off")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


class Labeller:
    """The JupyterLab view of a ``LabelSession``: click it, then press keys (see ``ACTIONS``
    and the class keys it lists). ``Labeller(queue).show()`` in a notebook cell."""

    def __init__(self, queue, classes=None, out=None):
        import ipywidgets as widgets
        from ipyevents import Event

        self.session = LabelSession(queue, classes, out)
        # fixed sizes: the view does not move under the mouse from one item to the next
        self.skeleton = widgets.Image(
            format="png", layout=widgets.Layout(width="320px", height="320px")
        )
        self.picture = widgets.Image(
            format="jpg", layout=widgets.Layout(width="480px", height="320px", object_fit="contain")
        )
        self.caption = widgets.HTML()
        self.status = widgets.HTML()
        keys = ", ".join(f"<b>{k}</b> {c}" for k, c in self.session.keys.items())
        self.help = widgets.HTML(
            f"Keys: {keys}; <b>←</b>/<b>b</b> back, <b>→</b>/<b>n</b> skip, <b>s</b> save. "
            f"Labels go to <code>{self.session.out}</code>."
        )
        self.box = widgets.VBox(
            [self.caption, widgets.HBox([self.skeleton, self.picture]), self.status, self.help],
            layout=widgets.Layout(border="1px solid #bbb", padding="6px"),
        )
        self.box.add_class("gesturelab-labeller")
        self.events = Event(source=self.box, watched_events=["keydown"])
        self.events.on_dom_event(self._key)
        self.refresh()

    def _key(self, event: dict) -> None:
        said = self.session.press(event.get("key", ""))
        self.refresh(said)

    def refresh(self, said: str = "") -> None:
        session = self.session
        row = session.current
        self.status.value = f"<span class='labeller-status'>{session.progress()}</span> {said}"
        if row is None:
            self.caption.value = (
                "<b class='labeller-done'>Done</b>: every item has a decision; labels in "
                f"<code>{session.out}</code>"
            )
            return
        proposed = row.get("proposed_label", "")
        confidence = row.get("confidence", float("nan"))
        self.caption.value = (
            f"<b>#{session.position + 1}</b> proposed <b class='labeller-proposal'>{proposed}"
            f"</b> ({confidence:.2f}); {row.get('source', '')}"
        )
        self.skeleton.value = skeleton_png(session.hand(row))
        picture = row.get("picture")
        path = session.folder / str(picture) if isinstance(picture, str) and picture else None
        shown = path is not None and path.is_file()
        self.picture.value = path.read_bytes() if shown else b""
        self.picture.layout.display = None if shown else "none"  # no broken-image icon

    def show(self):
        from IPython.display import display

        display(self.box)
        return self
