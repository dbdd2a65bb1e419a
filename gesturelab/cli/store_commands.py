"""Commands that read the MLflow store: leaderboard, ui-links."""

from __future__ import annotations

import sys

import pandas as pd

from gesturelab import config

# What a terminal shows of a leaderboard: (column, heading), selection metrics first.
TERMINAL_BOARD = [
    ("family", "family"),
    ("configuration", "configuration"),
    ("val_f1_macro", "cv F1"),
    ("val_accuracy", "cv acc"),
    ("val_perturbed_f1_macro", "perturbed F1"),
    ("test_f1_macro", "test F1"),
    ("transfer_f1_macro", "transfer F1"),
]


_NOT_CONFIGURATION = {"seed"}


def configuration_text(params_json: str) -> str:
    """A run's parameters as ``k=v`` words (the seed, the same for every run, left out)."""
    import json

    params = json.loads(params_json) if params_json else {}
    return " ".join(f"{k}={v}" for k, v in params.items() if k not in _NOT_CONFIGURATION)


def terminal_board(board: pd.DataFrame, width: int = 120) -> str:
    """The leaderboard in at most ``width`` columns: family, configuration (shortened with an
    ellipsis when the line would be longer) and the selection, test and transfer scores."""
    table = board.assign(configuration=board["params"].map(configuration_text))
    shown = [(c, h) for c, h in TERMINAL_BOARD if c in table.columns]
    table = table[[c for c, _ in shown]].rename(columns=dict(shown))

    def render(frame: pd.DataFrame) -> str:
        frame = frame.copy()
        for column in ("family", "configuration"):  # words read from the left
            if column in frame.columns:
                frame[column] = frame[column].str.ljust(frame[column].str.len().max())
        text = frame.to_string(
            index=False, float_format=lambda v: f"{v:.4f}", na_rep="-", justify="left"
        )
        return "\n".join(line.rstrip() for line in text.splitlines())

    text = render(table)
    longest = max(len(line) for line in text.splitlines())
    if longest > width and "configuration" in table.columns:
        room = max(len("configuration"), table["configuration"].str.len().max() - (longest - width))
        table["configuration"] = [
            c if len(c) <= room else c[: room - 1] + "…" for c in table["configuration"]
        ]
        text = render(table)
    return text


def cmd_leaderboard(args) -> int:
    import train_with_mlflow as tracking

    board = tracking.leaderboard(args.experiment)
    left_out = board.attrs.get("left_out") or {}
    if left_out and not args.csv:
        counts = ", ".join(f"{n} {status}" for status, n in left_out.items())
        print(f"left out: {counts}")
    if board.empty:
        print(
            f"no finished runs in experiment {args.experiment!r} at {tracking.tracking_uri()}",
            file=sys.stderr if args.csv else sys.stdout,
        )
        return 1
    top = board.head(args.top)
    if args.csv:
        top.to_csv(sys.stdout, index=False)
    elif args.wide:
        print(top.to_string(index=False))
    else:
        print(terminal_board(top))
        print(f"({len(top)} of {len(board)} runs; --wide or --csv for every column)")
    return 0


def cmd_ui_links(args) -> int:
    import train_with_mlflow as tracking

    pages = tracking.ui_pages(args.base)
    print(f"MLflow store: {tracking.tracking_uri()}")
    if not tracking.store_exists():
        print("no MLflow store there yet: run a sweep or `make reproduce` first")
    elif not pages:
        print("no experiments yet: run a sweep or `make reproduce` first")
    for page in pages:
        print(f"{page['experiment']} ({page['runs']} runs)")
        print(f"  runs:        {page['url']}")
        if page["leaderboard"]:
            print(f"  leaderboard: {page['leaderboard']}")
    return 0


def add_parsers(commands) -> None:
    """This group's commands on the command line's subparsers."""
    p = commands.add_parser(
        "leaderboard", help="the runs of an experiment's newest complete sweep, best first"
    )
    p.add_argument("--experiment", default=config.STATIC_EXPERIMENT)
    p.add_argument("--top", type=int, default=20)
    shape = p.add_mutually_exclusive_group()
    shape.add_argument(
        "--wide", action="store_true", help="every column (params, every metric), however wide"
    )
    shape.add_argument("--csv", action="store_true", help="every column as CSV on standard output")
    p.set_defaults(func=cmd_leaderboard)

    p = commands.add_parser(
        "ui-links", help="links into the MLflow UI: each experiment's runs and leaderboard view"
    )
    p.add_argument("--base", help="where the UI runs (default http://127.0.0.1:5000)")
    p.set_defaults(func=cmd_ui_links)
