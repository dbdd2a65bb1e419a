"""Continuous streams that look like life, built from real segmented gestures.

Nobody ships a continuous recording of SHREC'17 subjects with timed gestures, and a stream of
gestures played back to back with nothing between them is not what a camera sees: between two
gestures a real hand rests in view (it never holds perfectly still: the tracker jitters and the
hand drifts), moves from where one gesture ended to where the next begins, and makes motions that
are no gesture at all. ``build_life_stream`` joins one subject's real gestures with those parts:

- **rest** (``REST_S``): the hand holds the pose the last part ended in, with a still hand's
  jitter (``Jitter``, measured, not assumed: see ``measure_jitter``);
- **transition**: every landmark moves from the last pose to the next part's first pose, as
  long as the wrist's distance takes at the speed the subjects' own gestures move with
  (``transition_speed``), along a smooth path that arrives moving as the gesture begins (or,
  in ``HOLD_SHARE`` of cases, stops and holds a moment first); after a gesture the hand slows
  down over a few frames (**settle**) before it rests;
- **idle**: with probability ``IDLE_SHARE`` a rest holds real non-gesture hand motion, a clip of
  a MediaPipe track of a real video (``video_motion``), placed at the resting hand in its size.

The truth is where each real gesture starts and ends (the SHREC'22 format's ``label;start;end``);
everything else is "no gesture", which is what a detector trained on such streams learns.
Coordinates are the data's, y up (SHREC'17 world metres); a video's image coordinates are turned
y-up when read (``video_motion``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gesturelab.datasets.landmarks import MIDDLE_MCP, WRIST
from gesturelab.datasets.sequences import SequenceSet, frame_mask, hand_size, resample

REST_S = (0.5, 3.0)  # a rest between two parts, uniform in this range
IDLE_SHARE = 0.3  # rests that hold a non-gesture motion clip
IDLE_S = (1.0, 3.0)  # length of that clip
TRANSITION_S = (0.2, 1.5)  # bounds of a transition, whatever the distance
HOLD_SHARE, HOLD_S = 0.3, (0.1, 0.6)  # a pause between arriving and beginning a gesture
DRIFT_PULL = 0.97  # a resting hand's drift is pulled back towards where it rests (AR(1))


@dataclass(frozen=True)
class Jitter:
    """How a still hand shows in a tracker, in hand sizes (wrist to middle knuckle).

    sigma: each coordinate's noise about the hand's smooth path (unbiased residual of a
    quadratic fit per coordinate over ``window`` frames); drift: the wrist's travel per frame in
    those stretches (the slow motion a resting hand still has)."""

    sigma: float
    drift: float
    windows: int
    window: int
    source: str = ""

    def describe(self) -> str:
        return (
            f"still-hand jitter {self.sigma:.4f} hand sizes per coordinate, drift "
            f"{self.drift:.4f} hand sizes per frame ({self.windows} still {self.window}-frame "
            f"stretches of {self.source or 'the data'})"
        )


def measure_jitter(sequences, window: int = 10, share: float = 0.05, source: str = "") -> Jitter:
    """A still hand's jitter, from the stillest stretches of real recordings.

    Every sequence is cut in ``window``-frame stretches (frames with a hand only); the ``share``
    whose wrist travels least are the still ones. In each, every coordinate (in hand sizes) gets
    a quadratic fit over time, the smooth motion; what is left is the tracker's jitter, its
    standard deviation corrected for the three fitted parameters."""
    t = np.arange(window, dtype=np.float64) - (window - 1) / 2
    basis = np.vander(t, 3)
    smooth = basis @ np.linalg.pinv(basis)
    residuals, travels = [], []
    for sequence in sequences:
        frames = np.asarray(sequence, dtype=np.float64)
        frames = frames[frame_mask(frames)]
        if len(frames) < window:
            continue
        values = frames.reshape(len(frames), -1) / hand_size(frames)
        for start in range(0, len(values) - window + 1, window):
            stretch = values[start : start + window]
            rest = stretch - smooth @ stretch
            residuals.append(np.sqrt((rest**2).sum(axis=0) / (window - 3)).mean())
            travels.append(np.linalg.norm(stretch[-1, :3] - stretch[0, :3]))
    if not travels:
        raise ValueError(f"no sequence has {window} frames with a hand to measure jitter on")
    travels, residuals = np.asarray(travels), np.asarray(residuals)
    still = travels <= np.quantile(travels, share)
    return Jitter(
        sigma=float(np.median(residuals[still])),
        drift=float(np.median(travels[still]) / (window - 1)),
        windows=int(still.sum()),
        window=window,
        source=source,
    )


def transition_speed(data: SequenceSet) -> float:
    """The median of the gestures' mean wrist speeds, hand sizes per frame: how fast these
    subjects move their hand, which is the speed a transition between gestures takes."""
    speeds = []
    for sequence in data.sequences:
        frames = np.asarray(sequence, dtype=np.float64)
        frames = frames[frame_mask(frames)]
        if len(frames) > 1:
            steps = np.linalg.norm(np.diff(frames[:, WRIST], axis=0), axis=1)
            speeds.append(steps.mean() / hand_size(frames))
    return float(np.median(speeds))


def camera_to_world(points, width: float = 1.0) -> np.ndarray:
    """MediaPipe landmarks ((..., 3): x, y in pixels or image fractions, z in units of the
    image width) in SHREC'17's axes: y up (an image's grows downwards), z scaled to x's unit and
    kept growing away from the camera, as SHREC'17's depth does (its fingertips have smaller z
    than the wrist of a hand facing the sensor). ``width``: the image's, for pixels; 1 for
    fractions. The one conversion of camera hands, for idle tracks and the live detector."""
    return np.asarray(points, dtype=np.float64) * np.array([1.0, -1.0, float(width)])


def video_motion(path, fps: float = 30.0, cache: bool = True) -> np.ndarray:
    """The hand of a real video as MediaPipe tracks it: the longest stretch of frames with a
    hand, resampled to ``fps``, y up (image y grows downwards) and isotropic (MediaPipe's z is
    in the image's width, like x in pixels). Kept in ``config.EXTRACTION_CACHE_DIR`` by the
    video's bytes and the MediaPipe version: tracking a video takes seconds, reading it back
    none."""
    from importlib import metadata

    from gesturelab import config
    from gesturelab.datasets.loading import file_fingerprint

    version = 2  # of the conversion below: a cached track of another is not read
    key = f"{file_fingerprint(path)[:16]}-mp{metadata.version('mediapipe')}-{fps:g}fps-v{version}"
    cached = config.EXTRACTION_CACHE_DIR / "video_motion" / f"{key}.npy"
    if cache and cached.is_file():
        return np.load(cached)
    track = _video_motion(path, fps)
    if cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, track)
    return track


def _video_motion(path, fps: float) -> np.ndarray:
    from gesturelab.datasets.extraction import extract_video, video_properties

    video_fps, _, (width, _) = video_properties(path)
    extraction = extract_video(path, max_num_hands=1, progress=False)
    mask = extraction.mask
    runs = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    starts, ends = runs[::2], runs[1::2]
    if not len(starts):
        raise ValueError(f"{Path(path).name}: MediaPipe finds no hand in the video")
    longest = int(np.argmax(ends - starts))
    track = extraction.sequence[starts[longest] : ends[longest]].astype(np.float64)
    track = camera_to_world(track, width)
    frames = max(2, round(len(track) * fps / float(video_fps or fps)))
    return resample(track, frames).astype(np.float64)


def image_tracks(data: SequenceSet, min_frames: int = 8, fps: float = 30.0) -> list[np.ndarray]:
    """Hand motion of image-coordinate recordings (MediaPipe's normalised x, y, z: signs, a
    webcam session) as tracks for idle parts: each sequence from its first to its last frame
    with a hand (gaps bridged), at ``fps``, y up; those with fewer than ``min_frames`` hand
    frames are left out. A set without a frame rate is taken to be at ``fps``."""
    tracks = []
    for sequence in data.sequences:
        frames = np.asarray(sequence, dtype=np.float64)
        present = np.flatnonzero(frame_mask(frames))
        if len(present) < min_frames:
            continue
        span = frames[present[0] : present[-1] + 1]
        n = max(2, round(len(span) * fps / float(data.frame_rate or fps)))
        tracks.append(camera_to_world(resample(span, n)))
    return tracks


@dataclass
class LifeStream:
    """frames: (n, 21, 3) with NaN where no hand; truth: one row per real gesture (label,
    start_frame, end_frame inclusive, subject, start_s, end_s); parts: every part of the stream
    (kind: rest, transition, idle or gesture) with its frames."""

    frames: np.ndarray
    truth: pd.DataFrame
    parts: pd.DataFrame
    fps: float
    classes: tuple
    meta: dict = field(default_factory=dict)

    def frame_labels(self) -> np.ndarray:
        """Per frame: the index of the gesture's class in ``classes``, or len(classes) for
        "no gesture"."""
        labels = np.full(len(self.frames), len(self.classes), dtype=np.int64)
        index = {name: i for i, name in enumerate(self.classes)}
        for g in self.truth.itertuples():
            labels[g.start_frame : g.end_frame + 1] = index[g.label]
        return labels

    def minutes(self, kind: str | None = None) -> float:
        """The stream's length in minutes, or of the frames outside gestures (kind="rest")."""
        frames = len(self.frames)
        if kind == "rest":
            frames -= int((self.truth["end_frame"] - self.truth["start_frame"] + 1).sum())
        return frames / self.fps / 60.0


def _min_jerk(n: int) -> np.ndarray:
    tau = np.arange(1, n + 1) / (n + 1)
    return 10 * tau**3 - 15 * tau**4 + 6 * tau**5


class _Builder:
    def __init__(self, jitter: Jitter, speed: float, fps: float, rng: np.random.Generator):
        self.jitter, self.speed, self.fps, self.rng = jitter, speed, fps, rng
        self.pieces: list[np.ndarray] = []
        self.parts: list[dict] = []
        self.at = 0

    def add(self, kind: str, frames: np.ndarray, **extra) -> None:
        if not len(frames):
            return
        self.pieces.append(frames)
        self.parts.append(
            {"kind": kind, "start_frame": self.at, "end_frame": self.at + len(frames) - 1, **extra}
        )
        self.at += len(frames)

    def noise(self, n: int, size: float) -> np.ndarray:
        return self.rng.normal(0.0, self.jitter.sigma * size, (n, 21, 3))

    def rest(self, pose: np.ndarray, seconds: float) -> None:
        n = max(1, round(seconds * self.fps))
        size = _size(pose)
        step = self.jitter.drift * size / np.sqrt(3.0)
        drift, offset = np.zeros((n, 3)), np.zeros(3)
        for i in range(n):
            offset = DRIFT_PULL * offset + self.rng.normal(0.0, step, 3)
            drift[i] = offset
        self.add("rest", pose[None] + drift[:, None, :] + self.noise(n, size))

    def transition(self, start: np.ndarray, end: np.ndarray, arrive=None) -> None:
        """From ``start`` at rest to ``end``; ``arrive``: each point's velocity (per frame) on
        arriving, the next gesture's first motion, so that the hand flows into it: a hand
        that stopped dead on every gesture's first frame would mark where gestures start
        (a detector learnt exactly that cue when transitions ended at rest)."""
        size = (_size(start) + _size(end)) / 2
        distance = np.linalg.norm(end[WRIST] - start[WRIST]) / size
        speed = self.speed * self.rng.uniform(0.75, 1.5)
        seconds = np.clip(distance / speed / self.fps, *TRANSITION_S)
        n = max(1, round(seconds * self.fps))
        if arrive is None:
            path = start[None] + _min_jerk(n)[:, None, None] * (end - start)[None]
        else:  # cubic Hermite: leaves at rest, arrives at ``end`` moving with ``arrive``
            tau = (np.arange(1, n + 1) / (n + 1))[:, None, None]
            h01 = -2 * tau**3 + 3 * tau**2
            h11 = tau**3 - tau**2
            path = start[None] + h01 * (end - start)[None] + h11 * (n + 1) * arrive[None]
        self.add("transition", path + self.noise(n, size))

    def settle(self, gesture: np.ndarray) -> np.ndarray:
        """After a gesture the hand slows down over a few frames instead of freezing at once
        (the other boundary cue); its last pose."""
        leaving = (gesture[-1] - gesture[-min(4, len(gesture))]) / max(1, min(3, len(gesture) - 1))
        n = int(self.rng.integers(4, 11))
        fading = np.cumsum(np.linspace(1.0, 0.0, n + 1)[1:])[:, None, None]
        path = gesture[-1][None] + fading * leaving[None]
        self.add("settle", path + self.noise(n, _size(gesture[-1])))
        return path[-1]

    def absent(self, seconds: float) -> None:
        """The hand out of view (NaN frames), as MediaPipe loses it."""
        n = max(1, round(seconds * self.fps))
        self.add("no hand", np.full((n, 21, 3), np.nan))

    def idle(self, pose: np.ndarray, clip: np.ndarray) -> np.ndarray:
        """A non-gesture motion clip placed at the resting hand, in its size; its last pose."""
        n = min(len(clip), max(2, round(self.rng.uniform(*IDLE_S) * self.fps)))
        first = self.rng.integers(0, len(clip) - n + 1)
        piece = clip[first : first + n]
        if self.rng.random() < 0.5:
            piece = piece[::-1]
        if self.rng.random() < 0.5:  # the other hand
            piece = piece * np.array([-1.0, 1.0, 1.0])
        own = _size(piece[0])
        size = _size(pose)
        placed = (piece - piece[:1, WRIST : WRIST + 1]) / own * size + pose[WRIST]
        self.transition(pose, placed[0])
        self.add("idle", placed + self.noise(len(placed), size))
        return placed[-1]


def _size(pose: np.ndarray) -> float:
    return max(float(np.linalg.norm(pose[MIDDLE_MCP] - pose[WRIST])), 1e-6)


def _clean(sequence) -> np.ndarray:
    """A recorded gesture's frames with a hand, missing ones bridged (a stream has no holes
    inside a gesture that its recording did not have)."""
    frames = np.asarray(sequence, dtype=np.float64)
    present = frame_mask(frames)
    if present.all():
        return frames
    return resample(frames, len(frames)).astype(np.float64)


def build_life_stream(
    data: SequenceSet,
    jitter: Jitter,
    idle_clips=(),
    seed: int = 0,
    speed: float | None = None,
    rest_s: tuple[float, float] = REST_S,
    idle_share: float = IDLE_SHARE,
    fps: float | None = None,
    tempo: tuple[float, float] | None = None,
    no_hand_share: float = 0.0,
) -> LifeStream:
    """One stream of ``data``'s sequences in a seeded random order (module docstring); one
    hand, as SHREC'17 records it. ``idle_clips``: tracks from ``video_motion``; none, no idle
    parts. ``speed``: hand sizes per frame of a transition (default: ``transition_speed``).
    ``tempo``: for training material, each gesture played at a speed drawn from this range
    (1.2: a fifth faster), as people do the same gesture faster or slower; None: as recorded.
    ``no_hand_share``: rests with the hand out of view instead (training material: the
    detector must know a frame without a hand, which is also how a stream's past looks to it
    before the first frame)."""
    if not len(data):
        raise ValueError("a stream needs at least one gesture")
    if data.hands != 1:
        raise ValueError("life-like streams are built from one-hand sequences")
    fps = float(fps or data.frame_rate or 30.0)
    rng = np.random.default_rng(seed)
    builder = _Builder(jitter, speed or transition_speed(data), fps, rng)
    truth = []
    pose = None
    for i in rng.permutation(len(data)):
        gesture = _clean(data.sequences[i])
        if tempo is not None:
            frames = max(4, round(len(gesture) / rng.uniform(*tempo)))
            gesture = resample(gesture, frames).astype(np.float64)
        if pose is None:
            pose = gesture[0]
        if rng.random() < no_hand_share:
            builder.absent(rng.uniform(*rest_s))
        else:
            builder.rest(pose, rng.uniform(*rest_s))
            pose = builder.pieces[-1][-1]
        if len(idle_clips) and rng.random() < idle_share:
            pose = builder.idle(pose, idle_clips[rng.integers(len(idle_clips))])
            builder.rest(pose, rng.uniform(0.3, 1.0))
            pose = builder.pieces[-1][-1]
        if rng.random() < HOLD_SHARE:  # sometimes the hand arrives, pauses, then begins
            builder.transition(pose, gesture[0])
            builder.rest(gesture[0], rng.uniform(*HOLD_S))
        else:
            steps = min(3, len(gesture) - 1)
            builder.transition(pose, gesture[0], (gesture[steps] - gesture[0]) / steps)
        start = builder.at
        builder.add("gesture", gesture, label=data.classes[data.labels[i]])
        truth.append(
            {
                "label": data.classes[data.labels[i]],
                "start_frame": start,
                "end_frame": builder.at - 1,
                "subject": data.subjects[i],
            }
        )
        pose = builder.settle(gesture)
    builder.rest(pose, rest_s[1])
    truth = pd.DataFrame(truth)
    truth["start_s"] = truth["start_frame"] / fps
    truth["end_s"] = (truth["end_frame"] + 1) / fps
    return LifeStream(
        frames=np.concatenate(builder.pieces),
        truth=truth,
        parts=pd.DataFrame(builder.parts),
        fps=fps,
        classes=tuple(data.classes),
        meta={"seed": seed, "jitter": jitter.describe(), "speed": builder.speed},
    )


def life_streams(data: SequenceSet, jitter: Jitter, idle_clips=(), seed: int = 0, **options):
    """One stream per subject of ``data`` (a person in front of a camera makes their own
    gestures), each seeded from ``seed`` and the subject."""
    streams = []
    for k, subject in enumerate(np.unique(data.subjects)):
        own = data.subset(data.subjects == subject)
        streams.append(build_life_stream(own, jitter, idle_clips, seed=seed * 1000 + k, **options))
    return streams
