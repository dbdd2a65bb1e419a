"""What several command groups share: option sets, printing, problem files."""

from __future__ import annotations

import argparse
import math

import pandas as pd

from gesturelab import config
from gesturelab.errors import UnsafeNameError, check_name

LEADERBOARD_COLUMNS = [
    "family",
    "run_name",
    "val_accuracy",
    "val_f1_macro",
    "val_perturbed_f1_macro",
    "test_accuracy",
    "test_f1_macro",
    "transfer_f1_macro",
    "fit_time_s",
]


def print_board(board: pd.DataFrame) -> None:
    if board.empty:
        print("(no leaderboard)")
        return
    columns = [c for c in LEADERBOARD_COLUMNS if c in board.columns]
    print(board[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def read_options(args) -> dict:
    options = {"format": args.format}
    if args.labels:
        options["labels"] = args.labels
    if args.label_column:
        options["label_column"] = args.label_column
    return options


def write_problems(problems: list, path=None, echo: bool = True) -> pd.DataFrame:
    """All problems as one table, printed, and written where the user looks (``path``)."""
    from pathlib import Path

    from gesturelab.datasets.extraction import PROBLEM_COLUMNS

    problems = pd.concat(problems, ignore_index=True) if problems else pd.DataFrame()
    problems = problems.reindex(columns=list(PROBLEM_COLUMNS))
    for _, problem in problems.iterrows() if echo else ():
        print(f"  {problem['source']}: {problem['problem']}")
    if path is None:
        return problems
    path = Path(path)
    if len(problems):
        path.parent.mkdir(parents=True, exist_ok=True)
        problems.to_csv(path, index=False)
        print(f"{len(problems)} problem(s) written to {path}")
    else:
        path.unlink(missing_ok=True)  # a clean rerun must not leave the last problems behind
    return problems


def shown_groups(groups, most: int = 8) -> str:
    groups = [str(g) for g in groups]
    return ", ".join(groups[:most]) + (
        f", ... ({len(groups)} in all)" if len(groups) > most else ""
    )


def dataset_options(p) -> None:
    p.add_argument(
        "--classes",
        help="'hagrid' (HaGRID's 18) or a label file: the allowed labels, in order; rows of "
        "other labels are quarantined (default: every label the data holds)",
    )
    read_arguments(p)
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))


def read_arguments(p) -> None:
    """How to read a file when detection is not enough (see ``gesturelab.datasets``)."""
    from gesturelab.datasets import FORMATS
    from gesturelab.datasets.sequence_formats import SEQUENCE_FORMATS

    p.add_argument("--format", choices=[*FORMATS, *SEQUENCE_FORMATS], help="skip format detection")
    p.add_argument("--labels", help="keypoint CSV: the label file naming class indices")
    p.add_argument(
        "--label-column", choices=("first", "last"), help="keypoint CSV: where the label is"
    )


def hand_option(p) -> None:
    p.add_argument(
        "--hand",
        choices=config.HAND_CHOICES,
        help="sequences whose files name the hands (long tables, JSON dumps, .npy vectors of "
        f"two hands, clip folders): which one each sequence uses (default "
        f"{config.DEFAULT_HAND}: the one present in more frames); a left hand is mirrored into "
        "the right hand's frame; both: the two hands as recorded, 42 points a frame (not for "
        "clip folders, which track one hand)",
    )


DATA_PATH_HELP = (
    "hands: a landmark or keypoint CSV, an image folder ROOT/<label>/*.jpg; sequences: a "
    "per-frame CSV with a sequence column, ROOT/<action>/<sequence>/<frame>.npy, an .npz "
    "bundle, a clip folder ROOT/<label>/*.mp4, SHREC'17"
)


def register_alias(args) -> str:
    from gesturelab.serving.promotion import CHALLENGER

    return CHALLENGER if getattr(args, "challenger", False) else config.CHAMPION_ALIAS


def challenger_option(p) -> None:
    p.add_argument(
        "--challenger",
        action="store_true",
        help="with --register: register the new version as the 'challenger'; `promote` "
        "moves 'champion' to it only if it is not worse on held-out data",
    )


def name_of(what: str):
    """An argparse ``type`` that takes a ``what`` name only if it is safe as a folder name."""

    def checked(value: str) -> str:
        try:
            return check_name(value, what)
        except UnsafeNameError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


def positive(kind=int):
    """An argparse ``type``: a number above zero (0, negatives, nan and inf fell back silently
    to a default or failed later with a traceback)."""

    def checked(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
        return value

    checked.__name__ = kind.__name__  # what argparse names in "invalid int value"
    return checked


def probability(text: str) -> float:
    """An argparse ``type``: a number from 0 to 1 (``nan`` was accepted and rejected nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also false for nan
        raise argparse.ArgumentTypeError(f"{text!r}: give a number from 0 to 1")
    return value


TABLE_HINT = (
    "a table of landmarks? `evaluate-seq --data` scores a sequence dataset; a CSV of single "
    "hands needs a static model"
)


def stream_sources(args, what_model: str, table_hint: str = TABLE_HINT):
    """The videos (or the camera) a streaming command reads: a list of sources, or None after
    saying on stderr why there is none or what is not a video. ``what_model``: how the refusal
    names the model ("a sequence model (32 frames per gesture)", "a live detector");
    ``table_hint``: what to say of a file that is no video."""
    import sys

    from gesturelab.datasets.extraction import IMAGE_SUFFIXES, collect_inputs
    from gesturelab.serving.inference import is_video

    if args.camera is not None:
        return [args.camera]
    if not args.input:
        print("error: give --input (a video or a folder of videos) or --camera N", file=sys.stderr)
        return None
    sources = collect_inputs(args.input)
    stills = [p for p in sources if not is_video(p)]
    if not stills:
        return sources
    what = (
        "is a single image"
        if stills[0].suffix.lower() in IMAGE_SUFFIXES
        else f"is no video ({table_hint})"
    )
    print(
        f"error: {args.model} is {what_model}: it needs a sequence (a video, or --camera 0), "
        f"and {stills[0]} {what}",
        file=sys.stderr,
    )
    return None


def list_segments(segments: pd.DataFrame, source, problems: list, detail) -> None:
    """A streaming command's findings for one source: a partly decoded file (also kept in
    ``problems``), then each segment with ``detail(row)`` after it, or that there was none."""
    problem = segments.attrs.get("problem")
    if problem:
        print(f"  {problem}")
        problems.append(pd.DataFrame([{"source": str(source), "problem": problem}]))
    if segments.empty:
        print("  no gesture segment")
    for row in segments.itertuples():
        print(
            f"  segment {row.start_s:6.2f}-{row.end_s:6.2f} s  {row.label}  "
            f"{row.confidence:.2f}  ({detail(row)})"
        )
