"""Commands of the labelling loop: prelabel (a model's proposals, the review queue)."""

from __future__ import annotations

import sys

from gesturelab import config
from gesturelab.cli.common import positive, probability


def cmd_prelabel(args) -> int:
    from gesturelab.models.predictor import SequencePredictor, load_predictor
    from gesturelab.serving.prelabel import prelabel_sequences, prelabel_static, write_prelabels

    predictor = load_predictor(args.model)
    common = {
        "threshold": args.threshold,
        "rank": args.rank,
        "audit": args.audit,
        "progress": not args.no_progress,
    }
    if isinstance(predictor, SequencePredictor):
        prelabels = prelabel_sequences(
            predictor, args.input, unit=args.unit, window=args.seq_window, stride=args.stride,
            **common,
        )  # fmt: skip
    else:
        prelabels = prelabel_static(predictor, args.input, every=args.every, **common)
    out = write_prelabels(prelabels, args.out, model=args.model, pictures=not args.no_pictures)
    print(prelabels.summary())
    for i, row in prelabels.queue.head(args.top).iterrows():
        if prelabels.kind == "sequence":
            where = f"{row['source']} frames {row['start_frame']}-{row['end_frame']}"
        elif row["media"] == "video":
            where = f"{row['source']} frame {int(row['frame'])}"
        else:
            where = f"{row['source']}"
        print(
            f"  #{i + 1:<3d} {row['proposed_label']:<16s} confidence {row['confidence']:.2f}  "
            f"margin {row['margin']:.2f}  {row['reason']:<9s} {where}"
        )
    taker = "data import" + (" (a sequence CSV)" if prelabels.kind == "sequence" else "")
    print(
        f"accepted labels in {out / 'accepted.csv'} ({taker} takes it); the queue, ranked by "
        f"{args.rank}, in {out / 'queue.csv'}"
        + (" with a picture of each in queue/" if not args.no_pictures else "")
    )
    if len(prelabels.proposals) == 0:
        print("error: nothing to propose a label for (see problems.csv)", file=sys.stderr)
        return 2
    return 0


def add_parsers(commands) -> None:
    """This group's commands on the command line's subparsers."""
    p = commands.add_parser(
        "prelabel",
        help="a model's proposed labels for unlabelled photos, videos or landmark CSVs (or "
        "windows of videos): the confident ones accepted, the rest queued, most uncertain first",
    )
    p.add_argument(
        "--model", required=True, help="a static or a sequence model, e.g. models:/NAME@champion"
    )
    p.add_argument(
        "--input",
        required=True,
        nargs="+",
        help="photos, videos, landmark CSVs (static models) or videos (sequence models): "
        "files, folders or globs",
    )
    p.add_argument("--out", required=True, help="folder for accepted.csv, queue.csv, queue/")
    p.add_argument(
        "--threshold",
        type=probability,
        default=config.PRELABEL_THRESHOLD,
        help="confidence from which a proposal is accepted (default %(default)s)",
    )
    p.add_argument(
        "--every",
        type=positive(int),
        default=config.PRELABEL_EVERY,
        help="videos: one frame in every N (default %(default)s)",
    )
    p.add_argument(
        "--rank",
        choices=config.PRELABEL_RANKS,
        default=config.PRELABEL_RANKS[0],
        help="how the queue is ordered, most uncertain first (default %(default)s)",
    )
    p.add_argument(
        "--audit",
        type=probability,
        default=config.PRELABEL_AUDIT,
        help="share of the accepted proposals queued as well, to check (default %(default)s)",
    )
    p.add_argument(
        "--unit",
        choices=config.PRELABEL_UNITS,
        default=config.PRELABEL_UNITS[0],
        help="sequence models: propose per window of a video, or per whole video (a clip)",
    )
    p.add_argument(
        "--seq-window",
        type=positive(int),
        help="sequence models: frames per window (default: the training gestures' median)",
    )
    p.add_argument(
        "--stride", type=positive(int), help="sequence models: frames between windows (default: "
        "the window, so no two proposals share a frame)",
    )  # fmt: skip
    p.add_argument("--top", type=positive(int), default=10, help="queued items printed")
    p.add_argument("--no-pictures", action="store_true", help="no pictures in queue/")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_prelabel)
