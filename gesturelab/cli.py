"""Command line: ``python -m gesturelab --help``."""

from __future__ import annotations

import argparse
import os
import sys
import time

import pandas as pd

from gesturelab import config
from gesturelab.engine import BACKENDS, DEFAULT_BACKEND
from gesturelab.export import FORMATS as EXPORT_FORMATS

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


def _print_board(board: pd.DataFrame) -> None:
    if board.empty:
        print("(no leaderboard)")
        return
    columns = [c for c in LEADERBOARD_COLUMNS if c in board.columns]
    print(board[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cmd_reproduce(args) -> int:
    from gesturelab.runner import ReproduceError, pending, reproduce

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
    _print_board(board)
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
    from gesturelab.engine import Engine
    from gesturelab.static_data import prepare
    from gesturelab.sweep import default_experiment, default_model_name, run_sweep

    prepared = prepare(
        args.data,
        classes=args.classes,
        block_size=args.block_size,
        seed=args.seed,
        read_options=_read_options(args),
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
        experiment=experiment,
        register_as=register_as,
        register_alias=_register_alias(args),
        figures_dir=figures_dir,
        seed=args.seed,
        families=args.families,
        fresh=args.fresh,
        engine=engine,
        selection_rows=args.selection_rows,
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
    _print_board(result.best)
    champion = result.champion
    print(
        f"\nchampion: {champion['run_name']} -> {champion.get('registered', champion['model_uri'])}"
    )
    if result.links:
        print(f"leaderboard in the MLflow UI (make mlflow-ui): {result.links['view']}")
    return 0


def cmd_evaluate(args) -> int:
    from gesturelab.evaluate import evaluate_model

    evaluate_model(
        args.model,
        args.data,
        args.out,
        quarantine_dir=args.quarantine_dir,
        log=not args.no_log,
        n_bootstrap=args.bootstrap,
        read_options=_read_options(args),
    )
    return 0


def _read_options(args) -> dict:
    options = {"format": args.format}
    if args.labels:
        options["labels"] = args.labels
    if args.label_column:
        options["label_column"] = args.label_column
    return options


def cmd_validate(args) -> int:
    from gesturelab import datasets

    loaded = datasets.read(
        args.data, classes=args.classes, quarantine_dir=args.quarantine_dir, **_read_options(args)
    )
    print(f"classes ({len(loaded.classes)}): {', '.join(loaded.classes)}")
    if len(loaded.rejected):
        reasons = loaded.rejected["reason"].str.replace(r"line \d+", "line N", regex=True)
        print(reasons.value_counts().head(10).to_string())
    return 0


def _inspected(args):
    """The dataset ``args.path``, read and described on the terminal."""
    from gesturelab import datasets
    from gesturelab.datasets import sequence_formats as seq
    from gesturelab.datasets.importing import describe, print_description

    data_dir = getattr(args, "data_dir", None)
    if args.format in seq.SEQUENCE_FORMATS or (
        args.format is None and seq.is_sequence_dataset(args.path, data_dir)
    ):
        loaded = seq.read_sequences(
            args.path,
            format=args.format,
            classes=args.classes,
            quarantine_dir=args.quarantine_dir,
            verbose=False,
            data_dir=data_dir,
        )
        seq.print_sequence_description(seq.describe_sequences(loaded))
        return loaded

    loaded = datasets.read(
        args.path,
        classes=args.classes,
        quarantine_dir=args.quarantine_dir,
        verbose=False,
        data_dir=getattr(args, "data_dir", None),
        **_read_options(args),
    )
    print_description(describe(loaded))
    return loaded


def cmd_data_inspect(args) -> int:
    _inspected(args)
    return 0


def cmd_data_import(args) -> int:
    import shlex

    from gesturelab.datasets.importing import import_dataset
    from gesturelab.datasets.seq_common import LoadedSequences
    from gesturelab.datasets.sequence_formats import import_sequences

    loaded = _inspected(args)
    command = "python -m gesturelab " + shlex.join(args.argv)
    if isinstance(loaded, LoadedSequences):
        folder = import_sequences(loaded, args.name, data_dir=args.data_dir, command=command)
        print(f"imported as {args.name!r}: {folder} (datasheet.md, datasheet.json, sequences.npz)")
        print(f"train on it with: python -m gesturelab train-seq --data {args.name}")
        return 0
    folder = import_dataset(loaded, args.name, data_dir=args.data_dir, command=command)
    print(f"imported as {args.name!r}: {folder} (datasheet.md, datasheet.json, landmarks.csv)")
    print(f"sweep it with: python -m gesturelab sweep --data {args.name}")
    return 0


def _write_problems(problems: list, path=None, echo: bool = True) -> pd.DataFrame:
    """All problems as one table, printed, and written where the user looks (``path``)."""
    from pathlib import Path

    from gesturelab.extraction import PROBLEM_COLUMNS

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


def cmd_extract(args) -> int:
    from pathlib import Path

    from gesturelab.errors import MediaError
    from gesturelab.extraction import collect_inputs, extract_images, extract_video, unreadable
    from gesturelab.inference import is_video

    inputs = collect_inputs(args.input)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    videos = [p for p in inputs if is_video(p)]
    images = [p for p in inputs if not is_video(p)]
    tables, problems = [], []
    if images:
        result = extract_images(
            images, label_from_folder=args.label_from_folder, progress=not args.no_progress
        )
        print(result.summary())
        tables.append(result.rows)
        problems.append(result.problems)
    for video in videos:
        try:
            result = extract_video(video, progress=not args.no_progress)
        except MediaError as exc:
            # One bad video must not cost the landmarks of every other file.
            problems.append(pd.DataFrame([{"source": str(video), "problem": exc.reason}]))
            continue
        print(f"{video}: {result.summary()}")
        if result.problem:
            problems.append(pd.DataFrame([{"source": str(video), "problem": result.problem}]))
        if args.label_from_folder:
            result.rows["label"] = Path(video).parent.name
        tables.append(result.rows)
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    rows.to_csv(out, index=False)
    print(f"{len(rows)} landmark rows written to {out}")
    problems = _write_problems(problems, out.with_name(out.stem + ".problems.csv"))
    if unreadable(problems).sum() >= len(inputs):
        print(f"error: none of the {len(inputs)} input(s) could be read", file=sys.stderr)
        return 2
    return 0


def cmd_predict(args) -> int:
    from pathlib import Path

    from gesturelab.errors import MediaError
    from gesturelab.extraction import collect_inputs, partial, unreadable
    from gesturelab.inference import is_video, label_segments, predict_images, predict_video
    from gesturelab.predictor import SequencePredictor, load_predictor

    predictor = load_predictor(args.model)
    if isinstance(predictor, SequencePredictor):
        return _predict_gestures(predictor, args)
    if args.camera is not None:
        print(
            "error: --camera runs a sequence model live; this is a static model of single "
            "hands (give it photos or a video with --input)",
            file=sys.stderr,
        )
        return 2
    if not args.input:
        print("error: give --input (an image, a video, a folder or a glob)", file=sys.stderr)
        return 2
    inputs = collect_inputs(args.input)
    images = [p for p in inputs if not is_video(p)]
    problems = []
    if images:
        rows, image_problems = predict_images(predictor, images, progress=not args.no_progress)
        partly = set(image_problems.loc[partial(image_problems), "source"])
        for _, row in rows.iterrows():
            warning = "\t(partly decoded image)" if row["source"] in partly else ""
            print(
                f"{row['source']}\thand {row['hand_index']} ({row['handedness']})\t"
                f"{row['label']}\t{row['confidence']:.3f}\ttop-3: {row['top3']}{warning}"
            )
        for _, problem in image_problems.iterrows():
            print(f"{problem['source']}\t{problem['problem']}")
        problems.append(image_problems)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            rows.to_csv(Path(args.out) / "predictions.csv", index=False)
    for video in (p for p in inputs if is_video(p)):
        try:
            table = predict_video(
                predictor, video, args.out, window=args.window, progress=not args.no_progress
            )
        except MediaError as exc:
            print(exc)
            problems.append(pd.DataFrame([{"source": str(video), "problem": exc.reason}]))
            continue
        print(f"{video}: {len(table)} frames, a hand in {int(table['hand'].sum())}")
        if table.attrs.get("problem"):
            print(f"  {table.attrs['problem']}")
            problems.append(
                pd.DataFrame([{"source": str(video), "problem": table.attrs["problem"]}])
            )
        for first, last, label in label_segments(table):
            print(f"  frames {first:4d}-{last:4d}  {label}")
        if args.out:
            print(f"  annotated video and per-frame CSV in {args.out}")
    path = Path(args.out) / "problems.csv" if args.out else None
    problems = _write_problems(problems, path, echo=False)  # printed line by line above
    unread = problems[unreadable(problems)]
    if len(unread) >= len(inputs):
        one = f"{inputs[0]}: {unread['problem'].iat[0]}"
        many = f"none of the {len(inputs)} inputs could be read"
        print(f"error: {one if len(inputs) == 1 else many}", file=sys.stderr)
        return 2
    return 0


def _predict_gestures(predictor, args) -> int:
    """A sequence model over videos or a camera: gesture segments, not frame labels."""
    from pathlib import Path

    from gesturelab.errors import MediaError
    from gesturelab.extraction import collect_inputs
    from gesturelab.inference import is_video, stream_video

    if args.camera is not None:
        sources = [args.camera]
    elif args.input:
        sources = collect_inputs(args.input)
    else:
        print("error: give --input (a video or a folder of videos) or --camera N", file=sys.stderr)
        return 2
    stills = [p for p in sources if not isinstance(p, int) and not is_video(p)]
    if stills:
        from gesturelab.extraction import IMAGE_SUFFIXES

        what = (
            "is a single image"
            if stills[0].suffix.lower() in IMAGE_SUFFIXES
            else "is no video (a table of landmarks? `evaluate-seq --data` scores a sequence "
            "dataset; a CSV of single hands needs a static model)"
        )
        print(
            f"error: {args.model} is a sequence model ({predictor.frames} frames per gesture): "
            f"it needs a sequence (a video, or --camera 0), and {stills[0]} {what}",
            file=sys.stderr,
        )
        return 2
    problems = []
    for source in sources:

        def echo(segment, source=source):
            print(f"  {segment.start_s:7.2f}s  {segment.label} ({segment.confidence:.2f})")

        print(f"{source}: recognising gestures (window, stride and threshold below)")
        try:
            segments, windows = stream_video(
                predictor,
                source,
                args.out,
                window=args.seq_window,
                stride=args.stride,
                window_s=args.window_s,
                stride_s=args.stride_s,
                threshold=args.threshold,
                max_seconds=args.max_seconds,
                progress=not args.no_progress,
                echo=echo if args.camera is not None else None,
            )
        except MediaError as exc:
            print(exc)
            problems.append(pd.DataFrame([{"source": str(source), "problem": exc.reason}]))
            continue
        a = segments.attrs
        print(
            f"  {a['frames']} frames at {a['fps']:.1f} fps; window {a['window']} frames, "
            f"stride {a['stride']}, threshold {a['threshold']:.3f}; {len(windows)} windows, "
            f"{int((windows['label'] != 'no gesture').sum())} with a gesture"
        )
        if a.get("problem"):
            print(f"  {a['problem']}")
            problems.append(pd.DataFrame([{"source": str(source), "problem": a["problem"]}]))
        if segments.empty:
            print("  no gesture segment")
        for row in segments.itertuples():
            print(
                f"  segment {row.start_s:6.2f}-{row.end_s:6.2f} s  {row.label}  "
                f"{row.confidence:.2f}  ({row.windows} windows)"
            )
        if args.out:
            print(f"  annotated video, windows and segments CSV in {args.out}")
    path = Path(args.out) / "problems.csv" if args.out else None
    _write_problems(problems, path, echo=False)
    return 2 if len(problems) >= len(sources) else 0


def _sequence_data(args):
    """The sequences ``train-seq`` trains on and how to name what it makes: (data, names).

    SHREC'17 (the shipped split, ``--data-root`` in its layout, or a ``--data`` that is one)
    keeps its label sets (``--classes``), experiment and registered names; any other dataset
    takes its label set from the data and names the experiment and model after itself.
    """
    import numpy as np

    from gesturelab import shrec
    from gesturelab.datasets.sequence_formats import read_sequences
    from gesturelab.seq_experiment import sequence_experiment, sequence_model_name

    n_classes = args.classes or 14
    if args.data is None:
        data = shrec.load(args.data_root, args.split, n_classes, progress=True)
        path = args.data_root or config.SHREC_TRAIN_NPZ
        return data, {"shrec": True, "path": path, "name": "shrec17", "n_classes": n_classes}
    loaded = read_sequences(
        args.data, format=args.format, quarantine_dir=args.quarantine_dir, split=args.split
    )
    for note in loaded.notes:
        print(f"  read as: {note}")
    if loaded.format == "shrec":
        return loaded.data.with_classes(n_classes), {
            "shrec": True,
            "path": loaded.path,
            "name": "shrec17",
            "n_classes": n_classes,
        }
    if args.classes:
        from gesturelab.errors import GestureLabError

        raise GestureLabError(
            "--classes 14|28 chooses a SHREC'17 label set; the label set of --data "
            f"{args.data} is the one its labels make ({len(loaded.classes)} classes)"
        )
    data = loaded.data
    print(f"validation groups: {loaded.group_by} ({len(np.unique(data.subjects))})")
    return data, {
        "shrec": False,
        "path": loaded.path,
        "name": loaded.name,
        "n_classes": len(data.classes),
        "experiment": sequence_experiment(loaded.name),
        "model_name": sequence_model_name(data.classes, loaded.name),
        "group_by": loaded.group_by,
    }


def cmd_train_seq(args) -> int:
    from gesturelab.seq_experiment import default_architecture, frames_for, train_champion
    from gesturelab.seq_models import architecture
    from gesturelab.seq_training import config_for

    data, names = _sequence_data(args)
    n_classes = names["n_classes"]
    board_classes = n_classes if names["shrec"] else 14
    arch = architecture(args.arch).name if args.arch else default_architecture(board_classes)
    print(f"{data.source}: {data.summary()}")
    print(
        f"architecture: {arch}"
        + ("" if args.arch else f" (the best on SHREC'17's {board_classes} classes)")
    )
    frames = args.frames
    if frames is None and not names["shrec"]:
        frames = frames_for(data)
        print(f"frames per sequence: {frames} (the median length; --frames to change)")
    train_config = config_for(
        arch,
        n_classes,
        tuned_on="shrec17" if names["shrec"] else names["name"],
        epochs=args.epochs,
        frames=frames,
        features=args.features,
        seed=args.seed,
    )
    register_as = None
    if args.register:
        register_as = (
            config.SEQUENCE_MODEL_NAMES[n_classes] if names["shrec"] else names["model_name"]
        )
    experiment = args.experiment or (
        config.SEQUENCE_EXPERIMENT if names["shrec"] else names["experiment"]
    )
    print(f"experiment: {experiment}" + (f"; registering as {register_as}" if register_as else ""))
    champion = train_champion(
        data,
        train_config,
        validation_fraction=args.validation_fraction,
        refit=not args.no_refit,
        register_as=register_as,
        register_alias=_register_alias(args),
        experiment=experiment,
        data_path=names["path"],
        verbose=2 if args.verbose else 0,
    )
    validated = champion.validated
    if validated is not None:
        result, report = validated.result, validated.report
        metrics, interval = report["metrics"], report["intervals"]["accuracy"]
        held = validated.validation_subjects
        held = (
            f"subjects {held}"
            if names.get("group_by", "subject") == "subject"
            else (f"source files {_shown_groups(held)}")
        )
        print(
            f"validation {held}: "
            f"accuracy {metrics['accuracy']:.4f} [{interval['low']:.3f}, {interval['high']:.3f}], "
            f"macro-F1 {metrics['f1_macro']:.4f}; best epoch {result.best_epoch}/"
            f"{result.epochs_run}, {result.seconds_per_epoch:.2f} s/epoch"
        )
    final = champion.final
    if validated is None:
        epochs = final.extra.get("member_epochs_run") or final.epochs_run
        print(
            f"trained on all {len(data)} sequences for {epochs} epochs "
            f"(no subjects held out): {final.fit_seconds:.0f} s"
        )
    elif final is not validated.result:
        seconds = final.fit_seconds
        print(f"refit on all {len(data)} sequences: {final.epochs_run} epochs, {seconds:.0f} s")
    print(f"model: {champion.run.model_uri}")
    if champion.registered:
        print(f"registered: {champion.registered} (version {champion.registered_version})")
    return 0


def _shown_groups(groups, most: int = 8) -> str:
    groups = [str(g) for g in groups]
    return ", ".join(groups[:most]) + (
        f", ... ({len(groups)} in all)" if len(groups) > most else ""
    )


def cmd_gesto_study(args) -> int:
    from gesturelab import shrec
    from gesturelab.seq_studies import gesto_study

    table, info = gesto_study(shrec.load_compact(), epochs=args.epochs, seed=args.seed)
    print(f"training subjects {info['training_subjects']}, held out {info['held_out_subjects']}")
    columns = [
        "condition",
        "epochs_run",
        "final_train_accuracy",
        "final_train_loss",
        "max_val_loss",
        "final_val_accuracy",
        "held_out_subjects_accuracy",
    ]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        table.to_csv(args.out, index=False)
        print(f"written to {args.out}")
    return 0


def cmd_evaluate_seq(args) -> int:
    from gesturelab.seq_experiment import evaluate_model_uri

    report = evaluate_model_uri(
        args.model,
        args.data_root,
        args.split,
        out=args.out,
        log=not args.no_log,
        n_bootstrap=args.bootstrap,
        data=args.data,
    )
    split = report["split"]
    print(f"{report['data']['n_sequences']} sequences of {split} ({report['data']['source']})")
    for name in ("accuracy", "f1_macro"):
        interval = report["intervals"][name]
        print(
            f"{name:9s} {report['metrics'][name]:.4f}  "
            f"[{interval['low']:.4f}, {interval['high']:.4f}]"
        )
    for pair in report["confused_pairs"][:5]:
        share = f"{pair['count']} ({pair['rate']:.0%})"
        print(f"  {pair['true']} taken for {pair['predicted']}: {share}")
    return 0


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


def _register_alias(args) -> str:
    from gesturelab.promotion import CHALLENGER

    return CHALLENGER if getattr(args, "challenger", False) else config.CHAMPION_ALIAS


def _challenger_option(p) -> None:
    p.add_argument(
        "--challenger",
        action="store_true",
        help="with --register: register the new version as the 'challenger'; `promote` "
        "moves 'champion' to it only if it is not worse on held-out data",
    )


def _print_comparison(name: str, decision: dict) -> None:
    if decision.get("data") is None:
        print(
            f"{name}: no champion yet; the challenger (version {decision['challenger']}) "
            "is the first"
        )
        return
    print(
        f"{name}: challenger version {decision['challenger']} against champion version "
        f"{decision['champion']} on {decision['data']}:\n"
        f"  accuracy {decision['accuracy_a']:.4f} against {decision['accuracy_b']:.4f} "
        f"(difference {decision['difference']:+.4f}, 95 % interval "
        f"[{decision['difference_low']:+.4f}, {decision['difference_high']:+.4f}]; "
        f"only the challenger right on {decision['only_a_right']} rows, only the champion on "
        f"{decision['only_b_right']}; McNemar p = {decision['mcnemar_p']:.3g})"
    )


def cmd_promote(args) -> int:
    from gesturelab.promotion import promote

    decision = promote(
        args.model_name,
        args.data,
        args.split,
        force=args.force,
        reason=args.reason,
        quarantine_dir=args.quarantine_dir,
    )
    _print_comparison(args.model_name, decision)
    if not decision["promoted"]:
        print(
            f"refused: the challenger is worse on these rows; champion stays version "
            f"{decision['champion']} (--force to promote anyway)",
            file=sys.stderr,
        )
        return 1
    forced = " (forced: it is worse on these rows)" if decision["forced"] else ""
    print(
        f"promoted: models:/{args.model_name}@champion is version {decision['challenger']}"
        f"{forced}; `rollback --model-name {args.model_name}` undoes it"
    )
    return 0


def cmd_rollback(args) -> int:
    from gesturelab.promotion import rollback

    moved = rollback(args.model_name, reason=args.reason)
    print(
        f"rolled back: models:/{args.model_name}@champion is version {moved['champion']} "
        f"again (version {moved['rolled_back']} was champion)"
    )
    return 0


def cmd_calibrate(args) -> int:
    from gesturelab.calibration import calibrate_model

    settings = {
        k: v
        for k, v in {
            "learning_rate": args.learning_rate,
            "epochs": args.epochs,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    outcome = calibrate_model(
        args.model,
        args.data,
        strategy=args.strategy,
        samples_per_class=args.samples_per_class,
        subject=args.subject,
        user=args.user,
        register=not args.no_register,
        split=args.split,
        settings=settings,
    )
    result = outcome["result"]
    print(
        f"{args.model}, {result['strategy']}: {result['n_calibration']} samples to calibrate, "
        f"{result['n_holdout']} held back; trained layers: {', '.join(result['trainable_layers'])}"
    )
    print(result["message"])
    if "remaining" in outcome:
        rest = outcome["remaining"]
        print(
            f"on the user's {rest['sequences']} remaining samples: accuracy "
            f"{rest['before']:.4f} (original) -> {rest['after']:.4f} (the model to use)"
        )
    print(f"run: {outcome['run_id']}")
    if outcome.get("registered"):
        print(f"registered: {outcome['registered']} (version {outcome['version']})")
    elif result["success"]:
        print(f"logged: {outcome['logged_model']} (not registered)")
    return 0


def cmd_export(args) -> int:
    from gesturelab.export import FORMATS, export_model, table_text

    formats = args.format or list(FORMATS)
    result = export_model(
        args.model,
        formats,
        data=args.data,
        split=args.split,
        out=args.out,
        log=not args.no_log,
        repeats=args.repeats,
    )
    print(f"{args.model} checked on {result['checked_on']}; files in {result['folder']}")
    print(table_text(result["rows"]))
    print(
        "latency in milliseconds, one thread: one sample, and a batch of 64; a format that "
        f"loses more than {result['max_accuracy_loss']:.0%} accuracy is FAILED"
    )
    if result.get("logged_to_run"):
        print(f"logged to run {result['logged_to_run']} (export/)")
    if result["failed"]:
        print(f"failed: {', '.join(result['failed'])} (not shipped)", file=sys.stderr)
        return 1
    return 0


def cmd_model_info(args) -> int:
    import json

    import train_with_mlflow as tracking
    from gesturelab.model_card import build_card, log_card, to_markdown

    info = tracking.model_version_info(args.model)
    if "version" not in info:
        from gesturelab.errors import RegistryError

        raise RegistryError(
            f"{args.model}: a model card is kept per registered version "
            "(models:/NAME/VERSION or models:/NAME@ALIAS)"
        )
    card = (log_card if args.log else build_card)(info["name"], info["version"])
    print(json.dumps(card, indent=2, default=str) if args.json else to_markdown(card))
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


def _dataset_options(p) -> None:
    p.add_argument(
        "--classes",
        help="'hagrid' (HaGRID's 18) or a label file: the allowed labels, in order; rows of "
        "other labels are quarantined (default: every label the data holds)",
    )
    _read_arguments(p)
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))


def _read_arguments(p) -> None:
    """How to read a file when detection is not enough (see ``gesturelab.datasets``)."""
    from gesturelab.datasets import FORMATS
    from gesturelab.datasets.sequence_formats import SEQUENCE_FORMATS

    p.add_argument("--format", choices=[*FORMATS, *SEQUENCE_FORMATS], help="skip format detection")
    p.add_argument("--labels", help="keypoint CSV: the label file naming class indices")
    p.add_argument(
        "--label-column", choices=("first", "last"), help="keypoint CSV: where the label is"
    )


DATA_PATH_HELP = (
    "hands: a landmark or keypoint CSV, an image folder ROOT/<label>/*.jpg; sequences: a "
    "per-frame CSV with a sequence column, ROOT/<action>/<sequence>/<frame>.npy, an .npz "
    "bundle, a clip folder ROOT/<label>/*.mp4, SHREC'17"
)


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

    from gesturelab.models import FAMILIES

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
    _read_arguments(p)
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
        "--workers", type=int, help="local processes or LocalCluster workers (default: the cores)"
    )
    p.add_argument(
        "--scheduler", help="a Dask scheduler's address (tcp://host:8786), with --backend dask"
    )
    p.add_argument(
        "--families",
        nargs="+",
        choices=FAMILIES,
        default=list(FAMILIES),
        help="model families to sweep (default: every family of gesturelab.models.REGISTRY)",
    )
    p.add_argument(
        "--experiment",
        help=f"default: {config.STATIC_EXPERIMENT} for HaGRID's 18 classes, else "
        "<dataset>-classical-sweep",
    )
    p.add_argument(
        "--register",
        action="store_true",
        help="register the champion and point its 'champion' alias at it (never with --quick; "
        "never over a model of other classes or data)",
    )
    _challenger_option(p)
    p.add_argument(
        "--model-name",
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
    p.set_defaults(func=cmd_sweep)

    p = commands.add_parser("evaluate", help="score a logged/registered model on a labelled CSV")
    p.add_argument("--model", required=True, help="e.g. models:/hagrid-static-gesture@champion")
    p.add_argument(
        "--data", required=True, help="labelled data: a file, an image folder or a dataset name"
    )
    _read_arguments(p)
    p.add_argument("--out", help="write the JSON report here")
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))
    p.add_argument(
        "--bootstrap", type=int, default=config.N_BOOTSTRAP, help="resamples for the intervals"
    )
    p.add_argument("--no-log", action="store_true", help="do not log an evaluation run")
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("validate", help="check a dataset, quarantining bad rows")
    p.add_argument("--data", required=True, help="a file, an image folder or a dataset name")
    _dataset_options(p)
    # Every label is accepted by default now; kept so that older scripts still run.
    p.add_argument("--any-label", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_validate)

    data = commands.add_parser("data", help="inspect or import a dataset of your own gestures")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data_commands.add_parser(
        "inspect", help="detect the format; print rows, classes, rows per class, groups, problems"
    )
    p.add_argument("path", help=DATA_PATH_HELP)
    _dataset_options(p)
    p.set_defaults(func=cmd_data_inspect)
    p = data_commands.add_parser(
        "import", help="write data/NAME/ in the canonical form with a datasheet"
    )
    p.add_argument("path", help=DATA_PATH_HELP)
    p.add_argument("--name", required=True, help="the dataset's name (sweep --data NAME)")
    p.add_argument("--data-dir", default=str(config.DATA_DIR), help="where data/NAME/ goes")
    _dataset_options(p)
    p.set_defaults(func=cmd_data_import)

    p = commands.add_parser("extract", help="MediaPipe landmarks from images, folders or videos")
    p.add_argument("--input", required=True, help="an image, a video, a folder or a glob")
    p.add_argument("--out", required=True, help="CSV to write (HaGRID columns plus metadata)")
    p.add_argument("--label-from-folder", action="store_true", help="data/<label>/*.jpg")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_extract)

    p = commands.add_parser(
        "predict",
        help="gesture labels for hands in images or a video (static model); gesture segments "
        "in a video or from a camera (sequence model)",
    )
    p.add_argument("--model", required=True, help="e.g. models:/hagrid-static-gesture@champion")
    p.add_argument("--input", help="an image, a video, a folder or a glob")
    p.add_argument(
        "--camera", type=int, help="sequence models: a webcam's index (e.g. 0) instead of --input"
    )
    p.add_argument("--out", help="folder for predictions.csv, annotated videos, frame CSVs")
    p.add_argument(
        "--window",
        type=int,
        default=config.SMOOTHING_WINDOW,
        help="static models: frames of label smoothing in videos",
    )
    p.add_argument(
        "--seq-window",
        type=int,
        help="sequence models: frames per window (default: the training gestures' median "
        "duration, else the model's frames)",
    )
    p.add_argument("--window-s", type=float, help="sequence models: the window in seconds")
    p.add_argument("--stride", type=int, help="sequence models: frames between windows")
    p.add_argument("--stride-s", type=float, help="sequence models: the stride in seconds")
    p.add_argument(
        "--threshold",
        type=float,
        help="sequence models: confidence below which a window is 'no gesture' (default: the "
        "model's, chosen on its validation subjects)",
    )
    p.add_argument("--max-seconds", type=float, help="--camera: stop after this many seconds")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = commands.add_parser(
        "train-seq", help="train a sequence model on SHREC'17 or any sequence dataset"
    )
    p.add_argument(
        "--arch",
        help="an architecture of gesturelab.seq_models.ARCHITECTURES (an unknown name is "
        "refused with the list); default: the best on --classes in notebook 03's leaderboard",
    )
    p.add_argument(
        "--data-root",
        help="folder in the original SHREC'17 layout (default: the shipped training split)",
    )
    p.add_argument(
        "--data",
        help="any sequence dataset: an imported one's name, a per-frame CSV, ROOT/<action>/"
        "<sequence>/<frame>.npy, an .npz bundle, a clip folder ROOT/<label>/*.mp4",
    )
    p.add_argument("--format", help="--data's sequence format, when detection is not enough")
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))
    p.add_argument("--split", default="train", help="which <split>_gestures.txt to train on")
    p.add_argument(
        "--classes", type=int, choices=(14, 28), help="SHREC'17's label set (default 14)"
    )
    p.add_argument("--epochs", type=int, help="maximum epochs (default: tuned per architecture)")
    p.add_argument("--frames", type=int, help="frames each sequence is resampled to")
    p.add_argument("--features", help="feature set: raw, positions, positions+velocities, full")
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=config.VALIDATION_FRACTION,
        help="share of subjects held out for early stopping and the validation report; "
        "0 trains once on every subject for the tuned epochs",
    )
    p.add_argument(
        "--no-refit",
        action="store_true",
        help="keep the early-stopped model instead of refitting on every subject",
    )
    p.add_argument("--register", action="store_true", help="register the model as champion")
    _challenger_option(p)
    p.add_argument(
        "--experiment",
        help=f"default: {config.SEQUENCE_EXPERIMENT} for SHREC'17, <dataset>-sequence-models else",
    )
    p.add_argument("--seed", type=int, default=config.SEQUENCE_SEED)
    p.add_argument("--verbose", action="store_true", help="print every epoch")
    p.set_defaults(func=cmd_train_seq)

    p = commands.add_parser(
        "gesto-study", help="the GESTO LSTM failure and its fixes on real SHREC'17 sequences"
    )
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--seed", type=int, default=config.SEQUENCE_SEED)
    p.add_argument("--out", help="write the table as CSV")
    p.set_defaults(func=cmd_gesto_study)

    p = commands.add_parser(
        "evaluate-seq", help="score a sequence model on a SHREC'17 split or any sequence dataset"
    )
    p.add_argument("--model", required=True, help="models:/..., runs:/... or a model URI")
    p.add_argument("--data-root", help="folder in the original SHREC'17 layout")
    p.add_argument(
        "--data",
        help="any sequence dataset (as train-seq --data); labels the model lacks are set aside",
    )
    p.add_argument("--split", default="test", help="which <split>_gestures.txt to score")
    p.add_argument("--out", help="write the JSON report here")
    p.add_argument(
        "--bootstrap", type=int, default=config.N_BOOTSTRAP, help="resamples for the intervals"
    )
    p.add_argument("--no-log", action="store_true", help="do not log an evaluation run")
    p.set_defaults(func=cmd_evaluate_seq)

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

    p = commands.add_parser(
        "calibrate", help="fine-tune a sequence model to one user; keeps the original if no better"
    )
    p.add_argument("--model", required=True, help="models:/NAME@champion, models:/NAME/3, ...")
    p.add_argument("--data", required=True, help="the user's sequences (any sequence dataset)")
    p.add_argument("--strategy", default="last_block", choices=["head_only", "last_block", "half"])
    p.add_argument("--subject", help="use only this subject's sequences of --data")
    p.add_argument(
        "--samples-per-class",
        type=int,
        help="calibrate on this many per class and score on the rest (default: all)",
    )
    p.add_argument("--user", help="name of the user (alias user-<name>; default subject-<id>)")
    p.add_argument("--learning-rate", type=float, help="default 1e-5 (the guide's)")
    p.add_argument("--epochs", type=int, help="default 20, with early stopping")
    p.add_argument("--seed", type=int)
    p.add_argument("--split", default="train", help="a SHREC'17 split, for --data in its layout")
    p.add_argument("--no-register", action="store_true", help="log the run and model only")
    p.set_defaults(func=cmd_calibrate)

    p = commands.add_parser(
        "export", help="export a model (TFLite, ONNX, .keras) and check every file on held-out data"
    )
    p.add_argument("--model", required=True)
    p.add_argument(
        "--format",
        nargs="+",
        choices=EXPORT_FORMATS,
        help="default: every format",
    )
    p.add_argument(
        "--data",
        help="held-out data (static models: a landmark CSV, checked on its --split rows; "
        "sequence models: default the SHREC'17 subjects the model's run held out)",
    )
    p.add_argument("--split", default="test")
    p.add_argument("--out", help="folder for the files (default build/export/NAME-vN)")
    p.add_argument("--repeats", type=int, default=200, help="timed calls per latency")
    p.add_argument("--no-log", action="store_true")
    p.set_defaults(func=cmd_export)

    model = commands.add_parser("model", help="registered model versions")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    p = model_commands.add_parser("info", help="a version's model card")
    p.add_argument("model", help="models:/NAME/VERSION or models:/NAME@ALIAS")
    p.add_argument("--json", action="store_true", help="the card as JSON")
    p.add_argument("--log", action="store_true", help="also log the card with the version")
    p.set_defaults(func=cmd_model_info)

    p = commands.add_parser(
        "promote", help="move 'champion' to the challenger if it is not worse on held-out data"
    )
    p.add_argument("--model-name", required=True, help="the registered model")
    p.add_argument(
        "--data",
        help="held-out data both versions are scored on (static models: required; "
        "sequence models: any sequence dataset, default the shipped SHREC'17 split)",
    )
    p.add_argument("--split", default="test", help="a SHREC'17 split, for --data in its layout")
    p.add_argument("--force", action="store_true", help="promote even a worse challenger")
    p.add_argument("--reason", default="", help="recorded on the version")
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))
    p.set_defaults(func=cmd_promote)

    p = commands.add_parser(
        "rollback", help="point 'champion' back at the version the last promotion replaced"
    )
    p.add_argument("--model-name", required=True, help="the registered model")
    p.add_argument("--reason", default="", help="recorded on the versions")
    p.set_defaults(func=cmd_rollback)
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
