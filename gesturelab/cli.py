"""Command line: ``python -m gesturelab --help``."""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from gesturelab import config

LEADERBOARD_COLUMNS = [
    "family",
    "run_name",
    "val_accuracy",
    "val_f1_macro",
    "test_accuracy",
    "test_f1_macro",
    "transfer_f1_macro",
    "fit_time_s",
]


def _print_board(board: pd.DataFrame) -> None:
    if board.empty:
        print("(no leaderboard)")
        return
    columns = [c for c in LEADERBOARD_COLUMNS if c in board.columns]
    print(board[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cmd_reproduce(args) -> int:
    from gesturelab.runner import ReproduceError, reproduce

    start = time.perf_counter()
    try:
        board = reproduce(quick=args.quick, data=args.data, work_dir=args.work_dir)
    except ReproduceError as exc:
        print(f"reproduce stopped: {exc}", file=sys.stderr)
        return 1
    print("\nLeaderboard (best per family; selected on validation, scored on test):")
    _print_board(board)
    print(f"\nreproduce finished in {time.perf_counter() - start:.0f} s")
    return 0


def cmd_sweep(args) -> int:
    from gesturelab.static_data import prepare
    from gesturelab.sweep import run_sweep

    prepared = prepare(args.data, block_size=args.block_size, seed=args.seed)
    result = run_sweep(
        prepared,
        quick=args.quick,
        experiment=args.experiment,
        register_as=None if args.no_register else args.model_name,
        figures_dir=args.figures_dir,
        seed=args.seed,
    )
    print("\nBest per family (selected on validation, scored on test):")
    _print_board(result.best)
    champion = result.champion
    print(
        f"\nchampion: {champion['run_name']} -> {champion.get('registered', champion['model_uri'])}"
    )
    return 0


def cmd_evaluate(args) -> int:
    from gesturelab.evaluate import evaluate_model

    evaluate_model(args.model, args.data, args.out, quarantine_dir=args.quarantine_dir)
    return 0


def cmd_validate(args) -> int:
    from gesturelab.landmarks import HAGRID_CLASSES
    from gesturelab.loading import load_landmarks_csv

    classes = None if args.any_label else HAGRID_CLASSES
    loaded = load_landmarks_csv(args.data, classes=classes, quarantine_dir=args.quarantine_dir)
    if len(loaded.rejected):
        reasons = loaded.rejected["reason"].str.replace(r"line \d+", "line N", regex=True)
        print(reasons.value_counts().head(10).to_string())
    return 0


def cmd_leaderboard(args) -> int:
    import train_with_mlflow as tracking

    board = tracking.leaderboard(args.experiment)
    if board.empty:
        print(f"no runs in experiment {args.experiment!r} at {tracking.tracking_uri()}")
        return 1
    print(board.head(args.top).to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gesturelab",
        description="Hand-gesture recognition from MediaPipe landmarks.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("reproduce", help="run every notebook headless through papermill")
    p.add_argument("--quick", action="store_true", help="small grids, for tests (a minute)")
    p.add_argument("--data", help="landmark CSV to use instead of the shipped HaGRID sample")
    p.add_argument(
        "--work-dir",
        help="write processed data, figures, reports and executed "
        "notebooks here instead of the repository",
    )
    p.set_defaults(func=cmd_reproduce)

    p = commands.add_parser("sweep", help="the classical SVM/RF/KNN/LogReg sweep into MLflow")
    p.add_argument("--data", default=str(config.HAGRID_SAMPLE_CSV), help="landmark CSV")
    p.add_argument("--quick", action="store_true", help="a handful of configurations")
    p.add_argument("--experiment", default=config.STATIC_EXPERIMENT)
    p.add_argument("--model-name", default=config.STATIC_MODEL_NAME)
    p.add_argument("--no-register", action="store_true", help="do not register the champion")
    p.add_argument("--figures-dir", default=str(config.FIGURES_DIR))
    p.add_argument("--block-size", type=int, default=10, help="rows per group without ids")
    p.add_argument("--seed", type=int, default=config.SEED)
    p.set_defaults(func=cmd_sweep)

    p = commands.add_parser("evaluate", help="score a logged/registered model on a labelled CSV")
    p.add_argument("--model", required=True, help="e.g. models:/hagrid-static-gesture@champion")
    p.add_argument("--data", required=True, help="labelled landmark CSV (HaGRID format)")
    p.add_argument("--out", help="write the JSON report here")
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("validate", help="check a landmark CSV, quarantining bad rows")
    p.add_argument("--data", required=True)
    p.add_argument("--any-label", action="store_true", help="accept labels beyond HaGRID's 18")
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))
    p.set_defaults(func=cmd_validate)

    p = commands.add_parser("leaderboard", help="print the runs of an experiment, best first")
    p.add_argument("--experiment", default=config.STATIC_EXPERIMENT)
    p.add_argument("--top", type=int, default=20)
    p.set_defaults(func=cmd_leaderboard)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from gesturelab.loading import LandmarkDataError

    try:
        return args.func(args)
    except LandmarkDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
