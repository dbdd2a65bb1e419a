"""Command line: ``python -m gesturelab --help``; one module per command group."""

from __future__ import annotations

import argparse
import os
import sys

from gesturelab.cli import (
    data_commands,
    labelling_commands,
    model_commands,
    run_commands,
    sequence_commands,
    store_commands,
)
from gesturelab.cli.run_commands import sweep_figures_dir
from gesturelab.cli.store_commands import terminal_board

__all__ = ["build_parser", "main", "sweep_figures_dir", "terminal_board"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gesturelab",
        description="Hand-gesture recognition from MediaPipe landmarks.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument(
        "--tracking-uri",
        help="the MLflow store for every run, model and registry call (an http:// tracking "
        "server, a database URI); default: MLFLOW_TRACKING_URI, else mlruns/mlflow.db",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # in the order --help lists them
    run_commands.add_parsers(commands)
    data_commands.add_parsers(commands)
    labelling_commands.add_parsers(commands)
    sequence_commands.add_parsers(commands)
    store_commands.add_parsers(commands)
    model_commands.add_parsers(commands)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what a datasheet records as the command that made it
    if args.tracking_uri:
        # Through the environment, so notebooks run by `reproduce` follow it too.
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    from gesturelab.errors import GestureLabError

    try:
        return args.func(args)
    except (GestureLabError, FileNotFoundError, IsADirectoryError) as exc:
        # A user's mistake: one line they can act on; --debug keeps the traceback for us.
        if args.debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:
        # A tracking server's refusal (credentials, permissions, gone) is the user's to fix.
        door = sys.modules.get("train_with_mlflow")
        message = None if args.debug or door is None else door.access_refusal(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
