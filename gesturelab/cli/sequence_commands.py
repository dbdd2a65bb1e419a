"""Commands on sequence models: train-seq, gesto-study, evaluate-seq."""

from __future__ import annotations

from gesturelab import config
from gesturelab.cli.common import (
    challenger_option,
    hand_option,
    name_of,
    positive,
    register_alias,
    shown_groups,
)


def _sequence_data(args):
    """The sequences ``train-seq`` trains on and how to name what it makes: (data, names).

    SHREC'17 (the shipped split, ``--data-root`` in its layout, or a ``--data`` that is one)
    keeps its label sets (``--classes``), experiment and registered names; any other dataset
    takes its label set from the data and names the experiment and model after itself.
    """
    import numpy as np

    from gesturelab.datasets import shrec
    from gesturelab.datasets.sequence_formats import read_sequences
    from gesturelab.training.seq_defaults import sequence_experiment, sequence_model_name

    n_classes = args.classes or 14
    if args.data is None:
        data = shrec.load(args.data_root, args.split, n_classes, progress=True)
        path = args.data_root or config.SHREC_TRAIN_NPZ
        return data, {"shrec": True, "path": path, "name": "shrec17", "n_classes": n_classes}
    loaded = read_sequences(
        args.data,
        format=args.format,
        quarantine_dir=args.quarantine_dir,
        split=args.split,
        hand=args.hand,
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
    from gesturelab.models.seq_models import architecture
    from gesturelab.training.seq_defaults import default_architecture, frames_for
    from gesturelab.training.seq_experiment import train_champion
    from gesturelab.training.seq_training import config_for

    data, names = _sequence_data(args)
    n_classes = names["n_classes"]
    board_classes = n_classes if names["shrec"] else 14
    arch, why = (
        (architecture(args.arch).name, "") if args.arch else default_architecture(board_classes)
    )
    print(f"{data.source}: {data.summary()}")
    print(f"architecture: {arch}" + (f" ({why})" if why else ""))
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
        register_alias=register_alias(args),
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
            else (f"source files {shown_groups(held)}")
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


def cmd_gesto_study(args) -> int:
    from gesturelab.datasets import shrec
    from gesturelab.studies.seq_studies import gesto_study

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
    from gesturelab.training.seq_scoring import evaluate_model_uri

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


def cmd_stream_eval(args) -> int:
    from pathlib import Path

    import pandas as pd

    from gesturelab.datasets.labels import class_list
    from gesturelab.evaluation.online_protocol import (
        SHREC22_CLASSES,
        evaluate,
        read_detections,
        read_truth,
    )

    truth = read_truth(args.truth)
    classes = (
        list(SHREC22_CLASSES) if args.classes == "shrec22" else class_list(args.classes or None)
    )
    shown = ["detection_rate", "false_positive_rate", "jaccard", "delay"]
    means = {}
    for detections in args.detections:
        table = evaluate(truth, read_detections(detections), classes)
        name = Path(detections).stem
        means[name] = table.loc["mean", shown]
        if args.per_class:
            print(f"{name}:")
            print(table[["total", "correct", "missed", "fp", *shown]].round(3).to_string())
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            table.to_csv(out / f"{name}.csv", index_label="class")
    board = pd.DataFrame(means).T.sort_values("jaccard", ascending=False)
    print(f"SHREC'22 protocol on {args.truth} (mean over {len(classes or board)} classes):")
    board = board.rename(columns={"detection_rate": "DR", "false_positive_rate": "FP"})
    print(board.rename(columns={"jaccard": "JI"}).to_string(float_format="{:.3f}".format))
    return 0


def add_parsers(commands) -> None:
    """This group's commands on the command line's subparsers."""
    p = commands.add_parser(
        "train-seq", help="train a sequence model on SHREC'17 or any sequence dataset"
    )
    p.add_argument(
        "--arch",
        help="an architecture of gesturelab.models.seq_models.ARCHITECTURES (an unknown name is "
        "refused with the list); default: that of the registered champion of --classes, else "
        "config.SEQUENCE_ARCHITECTURES",
    )
    p.add_argument(
        "--data-root",
        help="folder in the original SHREC'17 layout (default: the shipped training split)",
    )
    p.add_argument(
        "--data",
        help="any sequence dataset: an imported one's name, a per-frame CSV, ROOT/<action>/"
        "<sequence>/<frame>.npy, an .npz bundle, a clip folder ROOT/<label>/*.mp4, a long "
        "landmark table or a folder of them with train.csv (the Kaggle ISLR layout)",
    )
    p.add_argument("--format", help="--data's sequence format, when detection is not enough")
    hand_option(p)
    p.add_argument("--quarantine-dir", default=str(config.QUARANTINE_DIR))
    p.add_argument("--split", default="train", help="which <split>_gestures.txt to train on")
    p.add_argument(
        "--classes", type=int, choices=(14, 28), help="SHREC'17's label set (default 14)"
    )
    p.add_argument(
        "--epochs", type=positive(int), help="maximum epochs (default: tuned per architecture)"
    )
    p.add_argument("--frames", type=positive(int), help="frames each sequence is resampled to")
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
    challenger_option(p)
    p.add_argument(
        "--experiment",
        type=name_of("experiment"),
        help=f"default: {config.SEQUENCE_EXPERIMENT} for SHREC'17, <dataset>-sequence-models else",
    )
    p.add_argument("--seed", type=int, default=config.SEQUENCE_SEED)
    p.add_argument("--verbose", action="store_true", help="print every epoch")
    p.set_defaults(func=cmd_train_seq)

    p = commands.add_parser(
        "gesto-study", help="the GESTO LSTM failure and its fixes on real SHREC'17 sequences"
    )
    p.add_argument("--epochs", type=positive(int), default=500)
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
        "stream-eval",
        help="score online detections with the SHREC'22 protocol (DR, FP, Jaccard, delay)",
    )
    p.add_argument("--truth", required=True, help="ground truth: id;LABEL;start;end;... a line")
    p.add_argument(
        "--detections",
        required=True,
        nargs="+",
        help="detection files: id;LABEL;start;end;detected_at;... a line",
    )
    p.add_argument(
        "--classes",
        help="the classes the means run over: 'shrec22' (the track's 16) or a label file "
        "(default: the labels of the ground truth)",
    )
    p.add_argument("--per-class", action="store_true", help="print each file's per-class table")
    p.add_argument("--out", help="a folder for each file's per-class table (CSV)")
    p.set_defaults(func=cmd_stream_eval)
