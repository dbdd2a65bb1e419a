"""Commands on registered models: calibrate, export, model info, promote, rollback."""

from __future__ import annotations

import sys

from gesturelab import config
from gesturelab.cli.common import name_of, positive
from gesturelab.serving.export import FORMATS as EXPORT_FORMATS


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
        f"{decision['only_b_right']}; McNemar p = {decision['mcnemar_p']:.3g})\n"
        f"  transfer estimate {decision['transfer_a']} against {decision['transfer_b']}"
    )


def cmd_promote(args) -> int:
    from gesturelab.serving.promotion import promote

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
            f"refused: {decision['refusal']}; champion stays version "
            f"{decision['champion']} (--force to promote anyway)",
            file=sys.stderr,
        )
        return 1
    forced = f" (forced: {decision['refusal']})" if decision["forced"] else ""
    print(
        f"promoted: models:/{args.model_name}@champion is version {decision['challenger']}"
        f"{forced}; `rollback --model-name {args.model_name}` undoes it"
    )
    return 0


def cmd_rollback(args) -> int:
    from gesturelab.serving.promotion import rollback

    moved = rollback(args.model_name, reason=args.reason)
    print(
        f"rolled back: models:/{args.model_name}@champion is version {moved['champion']} "
        f"again (version {moved['rolled_back']} was champion)"
    )
    return 0


def cmd_calibrate(args) -> int:
    from gesturelab.training.calibration import calibrate_model

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
    from gesturelab.serving.export import FORMATS, export_model, table_text

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
    from gesturelab.errors import RegistryError
    from gesturelab.models.model_card import build_card, log_card, to_markdown

    try:
        info = tracking.model_version_info(args.model)
    except tracking.TrackingError as exc:  # no such model, version or alias: one line
        message = str(exc.message).splitlines()[0]
        raise RegistryError(f"{args.model}: {message}") from None
    if "version" not in info:
        raise RegistryError(
            f"{args.model}: a model card is kept per registered version "
            "(models:/NAME/VERSION or models:/NAME@ALIAS)"
        )
    card = (log_card if args.log else build_card)(info["name"], info["version"])
    print(json.dumps(card, indent=2, default=str) if args.json else to_markdown(card))
    return 0


def add_parsers(commands) -> None:
    """This group's commands on the command line's subparsers."""
    p = commands.add_parser(
        "calibrate", help="fine-tune a sequence model to one user; keeps the original if no better"
    )
    p.add_argument("--model", required=True, help="models:/NAME@champion, models:/NAME/3, ...")
    p.add_argument("--data", required=True, help="the user's sequences (any sequence dataset)")
    p.add_argument("--strategy", default="last_block", choices=["head_only", "last_block", "half"])
    p.add_argument("--subject", help="use only this subject's sequences of --data")
    p.add_argument(
        "--samples-per-class",
        type=positive(int),
        help="calibrate on this many per class and score on the rest (default: all)",
    )
    p.add_argument(
        "--user",
        type=name_of("user"),
        help="name of the user (alias user-<name>; default subject-<id>)",
    )
    p.add_argument("--learning-rate", type=float, help="default 1e-5 (the guide's)")
    p.add_argument("--epochs", type=positive(int), help="default 20, with early stopping")
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
    p.add_argument("--repeats", type=positive(int), default=200, help="timed calls per latency")
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
    p.add_argument(
        "--model-name", required=True, type=name_of("model"), help="the registered model"
    )
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
    p.add_argument(
        "--model-name", required=True, type=name_of("model"), help="the registered model"
    )
    p.add_argument("--reason", default="", help="recorded on the versions")
    p.set_defaults(func=cmd_rollback)
