"""MediaPipe Hands landmark extraction from images, folders, globs and videos.

Uses the legacy ``mediapipe.solutions.hands`` of mediapipe 0.10.21, whose palm and landmark
models ship inside the wheel: nothing is downloaded. Rows follow the HaGRID CSV convention (x and
y in pixels of the source image, z as MediaPipe gives it), so extracted rows and the HaGRID CSV
are interchangeable, plus source, frame, hand_index, handedness and score.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gesturelab.datasets.landmarks import (
    HAND_CONNECTIONS,
    INPUT_SHAPE,
    LABEL_COLUMN,
    LANDMARK_COLUMNS,
)
from gesturelab.errors import MediaError, path_text

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
ROW_COLUMNS = ("source", "frame", "hand_index", "handedness", "score")
PROBLEM_COLUMNS = ("source", "problem")
NO_HAND = "no hand found"
PARTLY_DECODED = "partly decoded"


def partial(problems: pd.DataFrame) -> pd.Series:
    """Problems of files that were read in part (their rows are kept)."""
    return problems["problem"].astype(str).str.startswith(PARTLY_DECODED)


def unreadable(problems: pd.DataFrame) -> pd.Series:
    """Problems of files nothing could be read from (not "no hand", not a partial decode)."""
    return problems["problem"].notna() & (problems["problem"] != NO_HAND) & ~partial(problems)


def _cv2():
    import cv2  # opencv ships with mediapipe; imported late to keep `import gesturelab` light

    return cv2


@contextmanager
def _native_logs_silenced():
    """MediaPipe's C++ code writes its setup ("Created TensorFlow Lite XNNPACK delegate", absl's
    W0000 lines) straight to file descriptor 2, past Python and past GLOG_minloglevel: on a
    terminal that is noise under every progress bar. Descriptor 2 points at /dev/null while the
    graph is built and runs its first image; Python's own errors surface after, as exceptions."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a detached process): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class HandLandmarker:
    """MediaPipe Hands on RGB frames, landmarks in pixels.

    static_image_mode: True for unrelated photos, False for video (tracking between frames).
    mirrored_input: MediaPipe labels handedness as if the image were a selfie (mirrored); for
        ordinary photos and videos (False) the label is swapped to name the real hand.
    second_pass: on stills, look again with the found hands painted out, which recovers a hand
        that overlaps another (the palm detector merges them otherwise).
    """

    def __init__(
        self,
        static_image_mode: bool = True,
        max_num_hands: int = 2,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        model_complexity: int = 1,
        mirrored_input: bool = False,
        second_pass: bool = True,
    ):
        import mediapipe as mp

        self.max_num_hands = max_num_hands
        self.mirrored_input = mirrored_input
        self.second_pass = second_pass and static_image_mode
        # What a landmark cache keys its entries by (gesturelab.datasets.image_folder).
        self.settings = {
            "static_image_mode": static_image_mode,
            "max_num_hands": max_num_hands,
            "min_detection_confidence": min_detection_confidence,
            "model_complexity": model_complexity,
            "mirrored_input": mirrored_input,
            "second_pass": self.second_pass,
        }
        with _native_logs_silenced():
            self._hands = mp.solutions.hands.Hands(
                static_image_mode=static_image_mode,
                max_num_hands=max_num_hands,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
                model_complexity=model_complexity,
            )
            # The graph opens its models on threads of its own, after the constructor returns:
            # one blank image waits for them, inside the silenced window.
            self._hands.process(np.zeros((64, 64, 3), np.uint8))
        self._first = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._hands.close()

    def detect(self, rgb: np.ndarray) -> list[dict]:
        """Hands in one RGB image: [{"landmarks": (21, 3) pixels, "handedness", "score"}]."""
        hands = self._process(rgb)
        if self.second_pass and 0 < len(hands) < self.max_num_hands:
            painted = rgb.copy()
            fill = tuple(int(v) for v in rgb.reshape(-1, 3).mean(axis=0))
            cv2 = _cv2()
            for hand in hands:
                hull = cv2.convexHull(hand["landmarks"][:, :2].astype(np.int32))
                cv2.fillConvexPoly(painted, hull, fill)
            for extra in self._process(painted):
                if all(_overlap(extra, hand) < 0.3 for hand in hands):
                    hands.append(extra)
                if len(hands) >= self.max_num_hands:
                    break
        return hands

    def _process(self, rgb: np.ndarray) -> list[dict]:
        height, width = rgb.shape[:2]
        if self._first:  # MediaPipe's C++ logs its setup at the first image
            self._first = False
            with _native_logs_silenced():
                result = self._hands.process(np.ascontiguousarray(rgb))
        else:
            result = self._hands.process(np.ascontiguousarray(rgb))
        hands = []
        for landmarks, handedness in zip(
            result.multi_hand_landmarks or [], result.multi_handedness or [], strict=True
        ):
            points = np.array([(p.x * width, p.y * height, p.z) for p in landmarks.landmark])
            label = handedness.classification[0].label
            if not self.mirrored_input:
                label = {"Left": "Right", "Right": "Left"}.get(label, label)
            hands.append(
                {
                    "landmarks": points,
                    "handedness": label,
                    "score": float(handedness.classification[0].score),
                }
            )
        return hands


def distinct_hands(hands: list[dict]) -> list[dict]:
    """``hands`` without the copies MediaPipe's video mode returns of one hand, the tracked one
    beside a fresh detection (on a real video: the same handedness, boxes overlapping by 0.4 to
    0.85, centres 0.01 to 0.15 hand sizes apart): the more confident copy stays."""
    kept: list[dict] = []
    for hand in sorted(hands, key=lambda h: -h["score"]):
        if not any(_same_hand(hand, other) for other in kept):
            kept.append(hand)
    return kept


def _same_hand(a: dict, b: dict) -> bool:
    if a["handedness"] != b["handedness"]:
        return False
    points_a, points_b = a["landmarks"][:, :2], b["landmarks"][:, :2]
    size = np.linalg.norm(points_a[9] - points_a[0])  # wrist to middle-finger base
    apart = np.linalg.norm(points_a.mean(axis=0) - points_b.mean(axis=0))
    return _overlap(a, b) > 0.3 or apart < 0.5 * size


def _overlap(a: dict, b: dict) -> float:
    """Intersection over union of two hands' landmark bounding boxes."""
    (ax0, ay0), (ax1, ay1) = a["landmarks"][:, :2].min(0), a["landmarks"][:, :2].max(0)
    (bx0, by0), (bx1, by1) = b["landmarks"][:, :2].min(0), b["landmarks"][:, :2].max(0)
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def hand_rows(hands: list[dict], source: str, frame: int = 0) -> list[dict]:
    rows = []
    for index, hand in enumerate(hands):
        row = dict(zip(LANDMARK_COLUMNS, hand["landmarks"].reshape(-1), strict=True))
        row.update(
            source=source,
            frame=frame,
            hand_index=index,
            handedness=hand["handedness"],
            score=hand["score"],
        )
        rows.append(row)
    return rows


def collect_inputs(spec) -> list[Path]:
    """An image or video file, a folder (searched recursively) or a glob pattern."""
    spec = str(spec)
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file())
        files = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
        videos = [p for p in found if p.suffix.lower() in VIDEO_SUFFIXES]
        if not files and not videos:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
            raise MediaError(spec, f"a folder with no images or videos ({kinds})")
        return files + videos
    if path.is_file():
        return [path]
    matches = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
    if not matches:
        raise FileNotFoundError(f"{spec}: no such file, folder or matching files")
    return matches


def truncated_image(path) -> str | None:
    """Why an image that OpenCV decodes anyway is incomplete, or None.

    OpenCV decodes a truncated JPEG without a word, filling the missing part with grey, and
    MediaPipe finds hands in what is left. Pillow's reduced-size decode reads the whole
    entropy-coded stream at an eighth of the cost and says when it ends early.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.format not in ("JPEG", "MPO"):  # MPO: a phone's multi-picture JPEG
                return None  # OpenCV refuses truncated PNG, WebP and TIFF files itself
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except OSError as exc:
        return f"{PARTLY_DECODED}: the file is truncated or damaged ({exc})"
    except Exception:  # noqa: BLE001  Pillow cannot read it; OpenCV decides on its own
        return None
    return None


def read_image(path):
    """(BGR image or None, problem or None): what extraction and prediction read a photo with."""
    cv2 = _cv2()
    path = Path(path)
    if not path.exists():
        return None, "file not found"
    if not path.is_file():
        return None, "not a file"
    with opencv_path(path) as name:  # a name that is not UTF-8 crashed OpenCV
        image = cv2.imread(name, cv2.IMREAD_COLOR)
    if image is None:
        return None, "unreadable or corrupt image"
    return image, truncated_image(path)


@dataclass
class ImageExtraction:
    rows: pd.DataFrame  # one row per hand found
    problems: pd.DataFrame  # source, problem: unreadable or partial files, images without a hand

    def summary(self) -> str:
        no_hand = (self.problems["problem"] == NO_HAND).sum()
        sources = self.rows["source"].nunique() if len(self.rows) else 0
        return (
            f"{len(self.rows)} hands in {sources} images; {no_hand} images without a hand; "
            f"{unreadable(self.problems).sum()} files unreadable; "
            f"{partial(self.problems).sum()} partly decoded"
        )


def hands_in_image(path, landmarker: HandLandmarker) -> tuple[list[dict], list[str]]:
    """The hands MediaPipe finds in one image file, and what went wrong: unreadable, partly
    decoded (its hands are kept), or no hand found."""
    cv2 = _cv2()
    image, problem = read_image(path)
    problems = [problem] if problem is not None else []
    if image is None:
        return [], problems
    hands = landmarker.detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not hands:
        problems.append(NO_HAND)
    return hands, problems


def extract_images(
    paths, landmarker: HandLandmarker | None = None, label_from_folder=False, progress=True
) -> ImageExtraction:
    """Landmark rows for every hand in every image; problems are reported, never dropped.

    A partly decoded image keeps its hands (they may be wrong) and is listed as a problem.
    """
    own = landmarker is None
    landmarker = landmarker or HandLandmarker(static_image_mode=True)
    rows, problems = [], []
    try:
        for path in tqdm(list(paths), desc="images", unit="img", disable=not progress):
            path = Path(path)
            hands, found_problems = hands_in_image(path, landmarker)
            problems += [{"source": path_text(path), "problem": p} for p in found_problems]
            found = hand_rows(hands, path_text(path))
            if label_from_folder:
                for row in found:
                    row[LABEL_COLUMN] = path_text(path.parent.name)
            rows += found
    finally:
        if own:
            landmarker.close()
    columns = [*LANDMARK_COLUMNS, *ROW_COLUMNS] + ([LABEL_COLUMN] if label_from_folder else [])
    return ImageExtraction(
        rows=pd.DataFrame(rows, columns=columns),
        problems=pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS)),
    )


@dataclass
class VideoExtraction:
    rows: pd.DataFrame  # one row per hand per frame (every hand found, up to max_num_hands)
    sequence: np.ndarray  # (n_frames, 21, 3): the first hand of each frame, zeros if none
    mask: np.ndarray  # (n_frames,) True where a hand was found
    fps: float
    size: tuple[int, int]  # width, height
    frames_expected: int = 0  # what the container says; more than len(mask) when truncated

    def summary(self) -> str:
        return (
            f"{len(self.mask)} frames at {self.fps:.1f} fps, a hand in {int(self.mask.sum())}; "
            f"{int((~self.mask).sum())} frames without a hand (masked)"
        )

    @property
    def problem(self) -> str | None:
        """A partial decode, said as the problems file says it; None for a whole video."""
        return partial_video(len(self.mask), self.frames_expected)


def partial_video(decoded: int, announced: int) -> str | None:
    if announced > decoded:
        return (
            f"{PARTLY_DECODED}: {decoded} of the {announced} frames its header announces "
            "(truncated or damaged file)"
        )
    return None


@contextmanager
def opencv_path(path):
    """A name of ``path`` that OpenCV can open: the path itself, or for a name that is not valid
    UTF-8 (which OpenCV cannot take: the process crashed), a link to it with a plain name."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        with tempfile.TemporaryDirectory(prefix="gesturelab-") as folder:
            suffix = Path(text).suffix.encode("utf-8", "surrogateescape").decode("ascii", "ignore")
            link = os.path.join(folder, "media" + suffix)
            os.symlink(os.path.abspath(os.fsencode(text)), link)
            yield link
        return
    yield text


def iter_video_frames(path):
    """(index, BGR frame) of a video; raises MediaError if it cannot be opened."""
    cv2 = _cv2()
    if not Path(path).is_file():
        raise MediaError(path, "no such video file")
    with opencv_path(path) as name:
        capture = cv2.VideoCapture(name)  # opened: the link may go once it is
    if not capture.isOpened():
        capture.release()
        raise MediaError(path, "cannot open video (empty, damaged or not a video)")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield index, frame
            index += 1
    finally:
        capture.release()


def video_properties(path) -> tuple[float, int, tuple[int, int]]:
    """(fps, frame count the header announces, (width, height)); MediaError if unopenable."""
    cv2 = _cv2()
    with opencv_path(path) as name:
        capture = cv2.VideoCapture(name)
    try:
        if not capture.isOpened():
            raise MediaError(path, "cannot open video (empty, damaged or not a video)")
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        size = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    return fps, count, size


def extract_video(path, max_num_hands: int = 1, progress=True, **options) -> VideoExtraction:
    """Per-frame landmarks of a video, tracked between frames, with a mask of missing hands."""
    cv2 = _cv2()
    fps, count, size = video_properties(path)
    rows, frames, mask = [], [], []
    with HandLandmarker(static_image_mode=False, max_num_hands=max_num_hands, **options) as marker:
        frames_iter = iter_video_frames(path)
        for index, frame in tqdm(
            frames_iter,
            total=count,
            desc=path_text(Path(path).name),
            unit="frame",
            disable=not progress,
        ):
            hands = marker.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            rows += hand_rows(hands, path_text(path), index)
            mask.append(bool(hands))
            frames.append(hands[0]["landmarks"] if hands else np.zeros(INPUT_SHAPE))
    if not mask:
        raise MediaError(path, "no frame could be decoded")
    return VideoExtraction(
        rows=pd.DataFrame(rows, columns=[*LANDMARK_COLUMNS, *ROW_COLUMNS]),
        sequence=np.asarray(frames, dtype=np.float64).reshape(-1, *INPUT_SHAPE),
        mask=np.asarray(mask, dtype=bool),
        fps=float(fps),
        size=size,
        frames_expected=count,
    )


def camera_frames(index: int, max_seconds: float | None = None):
    """(fps, iterator of (index, BGR frame)) from a webcam; stops after ``max_seconds``, on
    Ctrl-C, or when the camera stops giving frames."""
    import time

    cv2 = _cv2()
    # OpenCV's backends log each camera they fail to open ("can't open camera by index"), past
    # Python; the error below says it in one line
    with _native_logs_silenced():
        capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        capture.release()
        raise MediaError(f"camera {index}", "cannot open the camera (none there, or in use)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0

    def frames():
        start, count = time.monotonic(), 0
        try:
            while max_seconds is None or time.monotonic() - start < max_seconds:
                ok, frame = capture.read()
                if not ok:
                    break
                yield count, frame
                count += 1
        except KeyboardInterrupt:
            return
        finally:
            capture.release()

    return float(fps), frames()


def draw_hand(frame, hand, text: str, colour=(40, 220, 40)):
    """``frame`` (BGR) with ``hand``'s skeleton ((21, 2+) pixels, or None) and a caption bar."""
    cv2 = _cv2()
    if hand is not None:
        points = hand[:, :2].astype(int)
        for a, b in HAND_CONNECTIONS:
            cv2.line(frame, tuple(points[a]), tuple(points[b]), colour, 2, cv2.LINE_AA)
        for point in points:
            cv2.circle(frame, tuple(point), 3, (255, 255, 255), -1, cv2.LINE_AA)
    scale = max(frame.shape[1] / 900, 0.6)
    cv2.rectangle(frame, (0, 0), (frame.shape[1], int(44 * scale)), (0, 0, 0), -1)
    cv2.putText(
        frame,
        text,
        (10, int(32 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    return frame
