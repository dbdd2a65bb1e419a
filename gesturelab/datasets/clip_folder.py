"""Folders of gesture clips: ``ROOT/<label>/*.mp4|avi|mov``, one clip = one gesture.

Each clip goes through MediaPipe Hands in video mode (tracking between frames, the mode
streaming recognition uses), one hand per frame; frames without a hand are masked. Landmarks are
cached by the clip's content and the extraction settings under ``build/cache/landmarks/``, so a
second import extracts only new or changed clips. A clip that cannot be decoded, a partly
decoded one and a label folder without clips are listed in the quarantine file. Clips in a
subfolder ``ROOT/<label>/<subject>/`` take the subfolder's name as their subject.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from gesturelab import config
from gesturelab.datasets.loading import file_fingerprint
from gesturelab.datasets.seq_common import SequenceCollector, choose_hand
from gesturelab.errors import LandmarkDataError, MediaError

CLIP_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
SETTINGS = {
    "static_image_mode": False,
    "max_num_hands": 1,
    "min_detection_confidence": 0.5,
    "model_complexity": 1,
    "mirrored_input": False,
}
# What a cache entry holds: bumped when it changes, so that old entries are not read.
CACHE_LAYOUT = "sequence+handedness+width"


def class_clips(root: Path) -> dict[str, list[Path]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {
        f.name: sorted(
            p
            for p in f.rglob("*")
            if p.is_file() and p.suffix.lower() in CLIP_SUFFIXES and not p.name.startswith(".")
        )
        for f in folders
    }


def sniff(path: Path) -> bool:
    return path.is_dir() and any(class_clips(path).values())


def _cache_file(cache_dir: Path, clip: Path) -> Path:
    from importlib.metadata import version

    settings = json.dumps(
        {**SETTINGS, "mediapipe": version("mediapipe"), "stored": CACHE_LAYOUT}, sort_keys=True
    )
    folder = hashlib.sha256(settings.encode()).hexdigest()[:12]
    key = hashlib.sha256(clip.read_bytes()).hexdigest()
    return Path(cache_dir) / f"clips-{folder}" / key[:2] / f"{key}.npz"


def extract_clip(clip: Path, cache_dir=config.EXTRACTION_CACHE_DIR) -> dict:
    """{"sequence": (T, 21, 3) pixels, NaN where no hand, "sides": (T,) MediaPipe's handedness
    of each frame's hand ("Left"/"Right", "" for none), "width" (pixels), "fps", "problem"};
    cached by content."""
    from gesturelab.datasets.extraction import extract_video

    file = _cache_file(cache_dir, clip) if cache_dir is not None else None
    if file is not None and file.is_file():
        try:
            with np.load(file, allow_pickle=False) as stored:
                return {
                    "sequence": stored["sequence"],
                    "sides": stored["sides"].astype(str),
                    "width": float(stored["width"]),
                    "fps": float(stored["fps"]),
                    "problem": str(stored["problem"]) or None,
                    "cached": True,
                }
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry is extracted again
    video = extract_video(clip, max_num_hands=SETTINGS["max_num_hands"], progress=False)
    sequence = np.where(video.mask[:, None, None], video.sequence, np.nan).astype(np.float32)
    sides = np.full(len(sequence), "", dtype="<U5")
    first = video.rows.drop_duplicates("frame")  # the hand the sequence holds in each frame
    sides[first["frame"].to_numpy(dtype=int)] = first["handedness"].astype(str).to_numpy()
    out = {
        "sequence": sequence,
        "sides": sides,
        "width": float(video.size[0]),
        "fps": video.fps,
        "problem": video.problem,
        "cached": False,
    }
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            sequence=sequence,
            sides=sides,
            width=float(video.size[0]),
            fps=video.fps,
            problem=video.problem or "",
        )
        tmp.replace(file)
    return out


def read(
    path,
    *,
    classes=None,
    quarantine_dir=None,
    verbose=True,
    frame_rate=None,
    cache_dir=config.EXTRACTION_CACHE_DIR,
    progress=True,
    hand: str = config.DEFAULT_HAND,
    **_,
):
    root = Path(path)
    if hand == "both":
        raise LandmarkDataError(
            root,
            "--hand both: clip folders are tracked one hand a clip (the hand MediaPipe finds "
            "first); record both hands with `record`, or export them as .npy frames, a long "
            "table or MediaPipe JSON",
        )
    collector = SequenceCollector(root, "clip-folder", classes)
    clips = class_clips(root)
    fps_seen, extracted, cached, no_hand_frames, frames_total = [], 0, 0, 0, 0
    every = [(label, clip) for label, files in clips.items() for clip in files]
    for label, files in clips.items():
        if not files:
            kinds = ", ".join(sorted(CLIP_SUFFIXES))
            collector.problem(root / label, f"a label folder with no clips ({kinds})", kind="file")
    for label, clip in tqdm(every, desc=root.name, unit="clip", disable=not progress):
        try:
            out = extract_clip(clip, cache_dir)
        except MediaError as exc:
            collector.set_aside(clip, exc.reason, clip.name)
            continue
        cached += out["cached"]
        extracted += not out["cached"]
        if out["problem"]:
            collector.problem(
                clip,
                out["problem"] + " (the decoded frames are used)",
                clip.name,
                frame=len(out["sequence"]),
            )
        fps_seen.append(out["fps"])
        mask = np.isfinite(out["sequence"]).all(axis=(1, 2))
        frames_total += len(mask)
        no_hand_frames += int((~mask).sum())
        inside = clip.relative_to(root / label).parts
        subject = inside[0] if len(inside) > 1 else None  # ROOT/<label>/<subject>/.../clip
        # One hand is tracked through a clip; MediaPipe's handedness of most of its frames
        # says which (a frame's label can flip while the tracker keeps the same hand).
        sides = out["sides"]
        left = int((sides == "Left").sum()) > int((sides == "Right").sum())
        sequence, side = choose_hand(
            out["sequence"] if left else None,
            None if left else out["sequence"],
            hand,
            width=out["width"],  # pixels: mirrored about the image's own width
        )
        if sequence is None:
            collector.set_aside(clip, f"no {side} hand in the clip (--hand {hand})", clip.name)
            continue
        collector.add(
            sequence, label, source=clip, sequence_id=clip.name, subject=subject, hand=side
        )
    rate = frame_rate or (float(np.median(fps_seen)) if fps_seen else None)
    notes = [
        f"{len(every)} clips through MediaPipe Hands in video mode: {extracted} extracted, "
        f"{cached} from the cache; {no_hand_frames} of {frames_total} frames without a hand "
        "(masked)"
    ]
    if fps_seen and max(fps_seen) - min(fps_seen) > 0.5:
        notes.append(f"clips at {min(fps_seen):.1f}-{max(fps_seen):.1f} fps (median {rate:.1f})")
    loaded = collector.finish(
        file_fingerprint(root),
        frame_rate=rate,
        notes=notes,
        quarantine_dir=quarantine_dir,
        verbose=verbose,
        hand=hand,
    )
    loaded.counts.update(
        {"clips": len(every), "frames": frames_total, "frames_without_hand": no_hand_frames}
    )
    return loaded
