"""Commands on data: validate, data inspect / import, extract (MediaPipe), predict."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from gesturelab import config
from gesturelab.cli.common import (
    DATA_PATH_HELP,
    dataset_options,
    hand_option,
    list_segments,
    name_of,
    positive,
    probability,
    read_options,
    stream_sources,
    write_problems,
)


def cmd_validate(args) -> int:
    from gesturelab import datasets

    loaded = datasets.read(
        args.data, classes=args.classes, quarantine_dir=args.quarantine_dir, **read_options(args)
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
            hand=getattr(args, "hand", None),
        )
        seq.print_sequence_description(seq.describe_sequences(loaded))
        return loaded

    if getattr(args, "hand", None):
        from gesturelab.errors import GestureLabError

        raise GestureLabError(
            f"{args.path}: --hand chooses a hand in sequence datasets; a table of single hands "
            "with a handedness column has its left hands mirrored by the model's features"
        )
    loaded = datasets.read(
        args.path,
        classes=args.classes,
        quarantine_dir=args.quarantine_dir,
        verbose=False,
        data_dir=getattr(args, "data_dir", None),
        **read_options(args),
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


def cmd_extract(args) -> int:
    from pathlib import Path

    from gesturelab.datasets.extraction import (
        collect_inputs,
        extract_images,
        extract_video,
        unreadable,
    )
    from gesturelab.errors import MediaError
    from gesturelab.serving.inference import is_video

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
    problems = write_problems(problems, out.with_name(out.stem + ".problems.csv"))
    if unreadable(problems).sum() >= len(inputs):
        print(f"error: none of the {len(inputs)} input(s) could be read", file=sys.stderr)
        return 2
    return 0


def cmd_check_labels(args) -> int:
    from pathlib import Path

    from gesturelab.datasets.seq_common import LoadedSequences
    from gesturelab.evaluation.plots import label_issues_figure
    from gesturelab.training import label_check

    loaded = _inspected(args)
    if isinstance(loaded, LoadedSequences):
        if args.model:
            from gesturelab.errors import GestureLabError

            raise GestureLabError(
                "--model takes a static model; for sequences choose an architecture to train "
                "per fold with --arch (e.g. ddnet), or none for the quick model"
            )
        result = label_check.check_sequences(
            loaded.data,
            arch=args.arch,
            n_folds=args.folds,
            flag_by=args.flag_by,
            progress=True,
            epochs=args.epochs,
        )
        name = loaded.name
    else:
        from gesturelab.datasets.static_data import prepare

        prepared = prepare(
            args.path,
            classes=args.classes,
            quarantine_dir=args.quarantine_dir,
            verbose=False,
            read_options=read_options(args),
        )
        model = None
        if args.model:
            from gesturelab.models.predictor import StaticPredictor

            model = StaticPredictor.load(args.model).model
        result = label_check.check_static(
            prepared, model=model, n_folds=args.folds, flag_by=args.flag_by
        )
        name = prepared.loaded.name
    out = Path(args.out or config.REPORTS_DIR / "label-check" / name)
    out.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(out / "label_check.csv", index=False)
    result.per_class.to_csv(out / "label_check_per_class.csv", index_label="class")
    figure = label_issues_figure(result.per_class, f"{name}: labels to look at")
    figure.savefig(out / "label_check.png")
    print(result.summary())
    shown = [c for c in ("rank", "line", "sequence", "source", "label", "suggested", "p_label",
                         "p_suggested") if c in result.table.columns]  # fmt: skip
    if len(result.issues):
        print("the most likely wrong (worst first):")
        print(result.issues[shown].head(args.top).to_string(index=False))
    print(f"every example ranked, with its scores: {out / 'label_check.csv'}")
    print(f"per class: {out / 'label_check_per_class.csv'}; figure: {out / 'label_check.png'}")
    return 0


def cmd_record(args) -> int:
    from pathlib import Path

    from gesturelab.datasets.labels import class_list
    from gesturelab.datasets.recording import record

    gestures = class_list(args.gestures) if Path(args.gestures).is_file() else None
    if gestures is None:
        gestures = [g.strip() for g in args.gestures.split(",")]
    record(
        args.out,
        gestures,
        repetitions=args.repetitions,
        seconds=args.seconds,
        countdown=args.countdown,
        subject=args.subject,
        source=args.video if args.video else args.camera,
        resume=args.resume,
        preview=False if args.no_preview else None,
    )
    return 0


def cmd_predict(args) -> int:
    from pathlib import Path

    from gesturelab.datasets.extraction import collect_inputs, partial, unreadable
    from gesturelab.errors import MediaError
    from gesturelab.models.predictor import SequencePredictor, load_predictor
    from gesturelab.serving.inference import is_video, label_segments, predict_images, predict_video

    predictor = load_predictor(args.model)
    if getattr(predictor, "unit", "") == "frame":  # a live detector (a learned no gesture)
        from gesturelab.cli.live_commands import predict_live

        return predict_live(predictor, args)
    if getattr(args, "namer", None):
        print("error: --namer names a live detector's runs; --model is not one", file=sys.stderr)
        return 2
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
    problems = write_problems(problems, path, echo=False)  # printed line by line above
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
    from gesturelab.serving.inference import stream_video

    sources = stream_sources(args, f"a sequence model ({predictor.frames} frames per gesture)")
    if sources is None:
        return 2
    problems = []
    for source in sources:

        def echo(segment, source=source):
            print(f"  {segment.start_s:7.2f}s  {segment.label} ({segment.confidence:.2f})")

        print(f"{source}: recognising gestures (window, stride and threshold below)")
        hard = None
        if args.hard_examples:
            from gesturelab.serving.hard_examples import HardExamples

            name = f"camera{source}" if isinstance(source, int) else source
            hard = HardExamples(args.hard_examples, predictor, name, model=args.model)
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
                on_window=hard,
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
        list_segments(segments, source, problems, lambda row: f"{row.windows} windows")
        if args.out:
            print(f"  annotated video, windows and segments CSV in {args.out}")
        if hard is not None:
            hard.save()
            print(
                f"  {len(hard.items)} hard windows (confidence {hard.band[0]:g}-{hard.band[1]:g}) "
                f"added to the queue in {args.hard_examples} (label them with the Labeller)"
            )
    path = Path(args.out) / "problems.csv" if args.out else None
    write_problems(problems, path, echo=False)
    return 2 if len(problems) >= len(sources) else 0


def add_parsers(commands) -> None:
    """This group's commands on the command line's subparsers."""
    p = commands.add_parser("validate", help="check a dataset, quarantining bad rows")
    p.add_argument("--data", required=True, help="a file, an image folder or a dataset name")
    dataset_options(p)
    # Every label is accepted by default now; kept so that older scripts still run.
    p.add_argument("--any-label", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_validate)

    data = commands.add_parser("data", help="inspect or import a dataset of your own gestures")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data_commands.add_parser(
        "inspect", help="detect the format; print rows, classes, rows per class, groups, problems"
    )
    p.add_argument("path", help=DATA_PATH_HELP)
    dataset_options(p)
    hand_option(p)
    p.set_defaults(func=cmd_data_inspect)
    p = data_commands.add_parser(
        "check-labels",
        help="rank the labels out-of-fold predictions contradict (confident learning)",
    )
    p.add_argument("path", help=DATA_PATH_HELP)
    dataset_options(p)
    hand_option(p)
    p.add_argument("--model", help="static data: refit this model's configuration per fold")
    p.add_argument(
        "--arch",
        help="sequences: train this architecture per fold (minutes; ddnet, cnn, tcn, gru, lstm)",
    )
    p.add_argument(
        "--epochs",
        type=positive(int),
        default=config.LABEL_CHECK_EPOCHS,
        help="--arch: epochs a fold (the default measured on SHREC'17's 1,960 sequences)",
    )
    p.add_argument("--folds", type=positive(int), default=5, help="grouped folds")
    p.add_argument(
        "--flag-by",
        choices=config.LABEL_FLAG_RULES,
        help="cleanlab's rule for which examples to flag (default: "
        f"{config.LABEL_FLAG_BY['static']} for static rows, "
        f"{config.LABEL_FLAG_BY['sequences']} for sequences; measured in docs/data.md)",
    )
    p.add_argument("--top", type=positive(int), default=15, help="flagged examples printed")
    p.add_argument(
        "--out", help="folder for the ranked CSV and figure (default build/reports/label-check)"
    )
    p.set_defaults(func=cmd_check_labels)
    p = data_commands.add_parser(
        "import", help="write data/NAME/ in the canonical form with a datasheet"
    )
    p.add_argument("path", help=DATA_PATH_HELP)
    p.add_argument(
        "--name",
        required=True,
        type=name_of("dataset"),
        help="the dataset's name (sweep --data NAME)",
    )
    p.add_argument("--data-dir", default=str(config.DATA_DIR), help="where data/NAME/ goes")
    dataset_options(p)
    hand_option(p)
    p.set_defaults(func=cmd_data_import)

    p = commands.add_parser("extract", help="MediaPipe landmarks from images, folders or videos")
    p.add_argument("--input", required=True, help="an image, a video, a folder or a glob")
    p.add_argument("--out", required=True, help="CSV to write (HaGRID columns plus metadata)")
    p.add_argument("--label-from-folder", action="store_true", help="data/<label>/*.jpg")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_extract)

    p = commands.add_parser(
        "record", help="record your own gestures from a camera (or a video) for train-seq"
    )
    p.add_argument(
        "--gestures", required=True, help="gesture names, comma separated, or a label file"
    )
    p.add_argument("--out", required=True, help="the dataset folder (train-seq --data OUT)")
    p.add_argument("--repetitions", type=positive(int), default=5, help="takes per gesture")
    p.add_argument("--seconds", type=positive(float), default=2.0, help="length of a take")
    p.add_argument("--countdown", type=float, default=3.0, help="seconds before each take")
    p.add_argument("--subject", default="me", help="who records (kept apart in validation)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    source.add_argument("--video", help="a video file standing in for the camera")
    p.add_argument("--resume", action="store_true", help="continue a stopped recording")
    p.add_argument("--no-preview", action="store_true", help="no preview window")
    p.set_defaults(func=cmd_record)

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
        type=positive(int),
        help="sequence models: frames per window (default: the training gestures' median "
        "duration, else the model's frames)",
    )
    p.add_argument(
        "--window-s", type=positive(float), help="sequence models: the window in seconds"
    )
    p.add_argument("--stride", type=positive(int), help="sequence models: frames between windows")
    p.add_argument(
        "--stride-s", type=positive(float), help="sequence models: the stride in seconds"
    )
    p.add_argument(
        "--threshold",
        type=probability,
        help="sequence models: confidence below which a window is 'no gesture' (default: the "
        "model's, chosen on its validation subjects)",
    )
    p.add_argument(
        "--namer",
        metavar="URI",
        help="live detectors: an early namer (notebook 07's, runs:/ID/model) names the "
        "detector's runs as soon as it is sure, with the rules chosen for it",
    )
    p.add_argument("--max-seconds", type=float, help="--camera: stop after this many seconds")
    p.add_argument(
        "--hard-examples",
        metavar="DIR",
        help="sequence models: keep the windows of confidence 0.4-0.6 with their landmarks in "
        "DIR's review queue (the Labeller opens it)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)
