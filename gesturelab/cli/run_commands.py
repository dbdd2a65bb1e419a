"""Commands that run the notebooks, a sweep, or score a logged model: reproduce, sweep, evaluate."""

from __future__ import annotations

import argparse
import sys
import time

from gesturelab import config
from gesturelab.cli.common import (
    challenger_option,
    name_of,
    positive,
    print_board,
    read_arguments,
    read_options,
    register_alias,
)
from gesturelab.training.engine import BACKENDS, DEFAULT_BACKEND
from gesturelab.training.selection_rules import SELECTION_RULES


def cmd_reproduce(args) -> int:
    from gesturelab.studies.runner import ReproduceError, pending, reproduce

    start = time.perf_counter()
    try:
        if args.dry_run:
            for name, why in pending(args.quick, args.data, args.work_dir, args.only, args.fresh):
                print(f"{name}: {'would run: ' + why if why else 'would be reused'}")
            return 0
        board = reproduce(
            quick=args.quick,
            data=args.data,
            work_dir=args.work_dir,
            notebooks=args.only,
            fresh=args.fresh,
            stream=args.stream,
        )
    except ReproduceError as exc:
        print(f"reproduce stopped: {exc}", file=sys.stderr)
        return 1
    print("\nLeaderboard (best per family; selected on validation, scored on test):")
    print_board(board)
    print(f"\nreproduce finished in {time.perf_counter() - start:.0f} s")
    return 0


def sweep_figures_dir(given, experiment: str):
    """--figures-dir, else build/figures; another label set's figures go into a folder of
    their own so that they never overwrite HaGRID's."""
    from pathlib import Path

    if given:
        return Path(given)
    if experiment == config.STATIC_EXPERIMENT:
        return config.SCRATCH_FIGURES_DIR
    return config.SCRATCH_FIGURES_DIR / experiment.removesuffix("-classical-sweep")


def cmd_sweep(args) -> int:
    from gesturelab.datasets.static_data import prepare
    from gesturelab.training.engine import Engine
    from gesturelab.training.sweep import default_experiment, default_model_name, run_sweep

    prepared = prepare(
        args.data,
        classes=args.classes,
        block_size=args.block_size,
        seed=args.seed,
        read_options=read_options(args),
    )
    print(f"groups: {prepared.group_source}")
    register_as = None
    name = prepared.loaded.name
    if args.register:
        register_as = args.model_name or default_model_name(prepared.classes, name)
    experiment = args.experiment or default_experiment(prepared.classes, name)
    figures_dir = sweep_figures_dir(args.figures_dir, experiment)
    engine = Engine(args.backend, args.workers, args.scheduler)
    print(f"engine: {engine.describe()}")
    print(f"experiment: {experiment}; figures: {figures_dir}")
    result = run_sweep(
        prepared,
        quick=args.quick,
        selection_tolerance=args.selection_tolerance,
        selection_rule=args.selection_rule,
        experiment=experiment,
        register_as=register_as,
        register_alias=register_alias(args),
        figures_dir=figures_dir,
        seed=args.seed,
        families=args.families,
        fresh=args.fresh,
        engine=engine,
        selection_rows=args.selection_rows,
        ensemble=args.ensemble,
    )
    print(
        f"reused {result.reused} of {result.configurations} configuration runs finished by an "
        "earlier sweep with the same key (configuration, data, split, seed, code)"
        + ("" if args.fresh else "; --fresh trains them all again")
    )
    selected, training = result.selected_on
    if selected < training:
        print(
            f"configurations selected on a stratified subsample of {selected} of the "
            f"{training} training rows; each family's best refit on all {training} "
            "(--selection-rows)"
        )
    print("\nBest per family (selected on validation, scored on test):")
    print_board(result.best)
    champion = result.champion
    print(
        f"\nchampion: {champion['run_name']} -> {champion.get('registered', champion['model_uri'])}"
    )
    if champion.get("refused"):
        print(f"not made the champion: {champion['refused']}")
    if result.links:
        print(f"leaderboard in the MLflow UI (make mlflow-ui): {result.links['view']}")
    return 0


def cmd_evaluate(args) -> int:
    from gesturelab.evaluation.scoring import evaluate_model

    evaluate_model(
        args.model,
        args.data,
        args.out,
        quarantine_dir=args.quarantine_dir,
        log=not args.no_log,
        n_bootstrap=args.bootstrap,
        read_options=read_options(args),
    )
    return 0


def add_parsers(commands) -> None:
    """This group's commands on the command line's subparsers."""
    p = commands.add_parser("reproduce", help="run every notebook headless through papermill")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small grids, a few epochs, the 14-gesture sequence leaderboard only: every cell "
        "of every notebook in about 4 minutes on 2 cores (tests)",
    )
    p.add_argument("--data", help="landmark CSV to use instead of the shipped HaGRID sample")
    p.add_argument(
        "--work-dir",
        help="write processed data, figures, reports and executed "
        "notebooks here instead of the repository",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NN",
        help="run only these notebooks, by number (e.g. --only 03); earlier notebooks' "
        "outputs must already exist",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="run every notebook again, even one unchanged since it last finished (same "
        "notebook, parameters, code, data and store; its files and runs still there)",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="also print what the notebooks print and log (always kept in build/logs/)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="run nothing: say which notebooks would run, and why, and which would be reused",
    )
    p.set_defaults(func=cmd_reproduce)

    from gesturelab.models.static_families import FAMILIES

    p = commands.add_parser(
        "sweep", help=f"the classical sweep into MLflow (families: {', '.join(FAMILIES)})"
    )
    p.add_argument(
        "--data",
        default=str(config.HAGRID_SAMPLE_CSV),
        help="a landmark or keypoint CSV, an image folder, or an imported dataset's name",
    )
    p.add_argument(
        "--classes",
        help="'hagrid' or a label file (one name per line): restricts and orders the label "
        "set, other labels are quarantined (default: the labels the data holds)",
    )
    read_arguments(p)
    p.add_argument("--quick", action="store_true", help="a handful of configurations")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="train every configuration again instead of reusing finished runs with its key",
    )
    p.add_argument(
        "--selection-rows",
        type=int,
        default=config.SELECTION_ROWS,
        metavar="N",
        help="with more training rows than N, select configurations on a stratified subsample "
        f"of N and refit each family's best on all of them (default {config.SELECTION_ROWS}; "
        "0: every row)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=DEFAULT_BACKEND,
        help="where configurations train: joblib (local processes, default), dask (a "
        "LocalCluster, or --scheduler), serial (this process); runs are logged by this process",
    )
    p.add_argument(
        "--workers",
        type=positive(int),
        help="local processes or LocalCluster workers (default: the cores)",
    )
    p.add_argument(
        "--scheduler", help="a Dask scheduler's address (tcp://host:8786), with --backend dask"
    )
    p.add_argument(
        "--families",
        nargs="+",
        choices=FAMILIES,
        default=list(FAMILIES),
        help="model families to sweep (default: every family of the families' REGISTRY)",
    )
    p.add_argument(
        "--experiment",
        type=name_of("experiment"),
        help=f"default: {config.STATIC_EXPERIMENT} for HaGRID's 18 classes, else "
        "<dataset>-classical-sweep",
    )
    p.add_argument(
        "--register",
        action="store_true",
        help="register the champion and point its 'champion' alias at it (with --quick only "
        "under a --model-name of its own; never over a model of other classes or data)",
    )
    challenger_option(p)
    p.add_argument(
        "--model-name",
        type=name_of("model"),
        help="registered model name (default: hagrid-static-gesture for HaGRID's 18 classes, "
        "else <dataset>-<N>-gestures)",
    )
    p.add_argument(
        "--figures-dir",
        help="where the figures go (default build/figures, build/figures/<dataset> for other "
        "label sets; only reproduce writes figures/)",
    )
    p.add_argument(
        "--block-size", type=int, default=config.BLOCK_SIZE, help="rows per group without ids"
    )
    p.add_argument("--seed", type=int, default=config.SEED)
    p.add_argument(
        "--selection-tolerance",
        type=float,
        default=config.SELECTION_TOLERANCE,
        help="macro-F1 gap below which configurations count as tied (then the most "
        "viewpoint-robust wins)",
    )
    p.add_argument(
        "--selection-rule",
        choices=list(SELECTION_RULES),
        default=config.SELECTION_RULE,
        help="how the champion is chosen among the families' bests: "
        + "; ".join(f"{r.name}: {r.describe}" for r in SELECTION_RULES.values())
        + " (default: %(default)s, the rule notebook 02 found best on held-out sources)",
    )
    p.add_argument(
        "--ensemble",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="offer a soft-voting ensemble of the families' bests to the selection rule as one "
        "more candidate (default: in a full sweep of two or more families, not with --quick)",
    )
    p.set_defaults(func=cmd_sweep)

    p = commands.add_parser("evaluate", help="score a logged/registered model on a labelled CSV")
    p.add_argument("--model", required=True, help="e.g. models:/hagrid-static-gesture@champion")
    p.add_argument(
        "--data", required=True, help="labelled data: a file, an image folder or a dataset name"
    )
    read_arguments(p)
    p.add_argument("--out", help="write the JSON report here")
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))
    p.add_argument(
        "--bootstrap", type=int, default=config.N_BOOTSTRAP, help="resamples for the intervals"
    )
    p.add_argument("--no-log", action="store_true", help="do not log an evaluation run")
    p.set_defaults(func=cmd_evaluate)
