"""The sequence leaderboard: every architecture on every label set, validated on the same held-out
subjects, reused by run key, ranked, and shown in the MLflow UI.
"""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet, subject_split
from gesturelab.training import seq_runs
from gesturelab.training.seq_defaults import dataset_info
from gesturelab.training.seq_experiment import (
    ValidatedModel,
    log_validation,
    training_run,
    validate_trained,
    validated_model,
)
from gesturelab.training.seq_runs import SeqTask, tensorboard_dir, tracking
from gesturelab.training.seq_training import (
    combine_results,
    member_configs,
)


def architecture_leaderboard(
    data: SequenceSet,
    archs=("lstm", "gru", "tcn", "cnn"),
    class_counts=(14, 28),
    epochs: int | None = None,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    validation_fraction: float = config.VALIDATION_FRACTION,
    seed: int = config.SEQUENCE_SEED,
    n_bootstrap: int = config.N_BOOTSTRAP,
    log: bool = True,
    ensemble=None,
    engine=None,
    fresh: bool = False,
    publish: bool = True,
):
    """Every architecture on every label set, validated on the same held-out subjects.

    ``seed`` picks the held-out subjects and initialises every model (an ensemble's repeated
    architecture gets the next seeds), so the champions refit from this board carry it too.

    With ``ensemble`` (architecture names, repeated for more seeds), the average of those
    members is scored too, as one more row: members the leaderboard has already validated are
    reused as they are; only the others (a second seed) are trained.

    Every training has a run key (``seq_runs.run_key``): a finished run of the experiment with
    the same key is reused (its model loaded and scored again on the held-out subjects) instead
    of trained, unless ``fresh``. The others are tasks of ``engine`` (``training.engine``;
    None: this process), one TensorFlow process per task; this process scores and logs them.
    publish: show it as the experiment's leaderboard page in the MLflow UI (when logged).
    Returns the leaderboard (one row per model, best first within a label set) and the
    training outputs keyed by (n_classes, arch), for the champion's refit; the board's
    ``attrs`` say how many trainings were reused.
    """
    from gesturelab.training.seq_training import config_for

    # None: the default members of arch "ensemble"; () scores no ensemble.
    ensemble = config_for("ensemble").members if ensemble is None else tuple(ensemble)
    # every model of the board is validated the same way, on the same subjects
    common = {
        "validation_fraction": validation_fraction,
        "seed": seed,
        "experiment": experiment,
        "log": log,
        "n_bootstrap": n_bootstrap,
        "fresh": fresh,
    }
    board_id = uuid.uuid4().hex[:12]
    plan = _plan_board(data, archs, class_counts, epochs, ensemble, common)
    # every run of this leaderboard carries its id: the saved runs view shows this one only
    tagging = tracking().tagging(leaderboard_id=board_id) if log else nullcontext()
    with tagging:
        rows, outputs = _train_board(plan, common, engine)
    board = _rank_board(data, rows, outputs, n_bootstrap)
    board.attrs["trainings"] = len(plan.tasks)
    board.attrs["reused"] = sum(task.found is not None for task in plan.tasks)
    print(
        f"sequence leaderboard: {board.attrs['reused']} of {len(plan.tasks)} trainings reused "
        "from finished runs with the same key"
        + ("" if fresh else " (fresh=True trains them all again)")
    )
    if log and publish:
        publish_sequence_leaderboard(board, data, experiment, board_id, validation_fraction)
    return board, outputs


@dataclass
class _BoardPlan:
    splits: dict  # {n_classes: (labelled set, training subjects, held-out subjects)}
    tasks: list  # SeqTask, in the order the board trains them
    ensembles: dict  # {n_classes: the ensemble's member tasks}


def _plan_board(data, archs, class_counts, epochs, ensemble, common) -> _BoardPlan:
    """Every training of the board, its run key, and the finished run that answers it."""
    from gesturelab.training.seq_training import config_for

    log, experiment = common["log"], common["experiment"]
    plan = _BoardPlan({}, [], {})
    for n_classes in class_counts:
        labelled = data.with_classes(n_classes)
        train_mask, val_mask = subject_split(
            labelled.subjects, common["validation_fraction"], seed=common["seed"]
        )
        train, val = labelled.subset(train_mask), labelled.subset(val_mask)
        plan.splits[n_classes] = (labelled, train, val)
        digests = (seq_runs.data_digest(train), seq_runs.data_digest(val))

        def task(train_config, run_name, study, n_classes=n_classes, digests=digests):
            key = seq_runs.run_key(train_config, *digests, "validation")
            found = seq_runs.find_finished(experiment, key, common["fresh"]) if log else None
            task = SeqTask(
                n_classes,
                train_config,
                run_name,
                {"validation": "by subject", "study": study, "n_classes": n_classes},
                key,
                board_dir=tensorboard_dir(run_name) if log else None,
                found=found,
            )
            plan.tasks.append(task)
            return task

        singles = {
            arch: task(
                config_for(arch, n_classes, epochs=epochs, seed=common["seed"]),
                f"{arch} {n_classes}-class",
                "leaderboard",
            )
            for arch in archs
        }
        if not ensemble:
            continue
        members = []
        for member in member_configs(
            config_for("ensemble", n_classes, members=ensemble, epochs=epochs, seed=common["seed"]),
            n_classes,
        ):
            known = singles.get(member.arch)
            if known is None or known.config.seed != member.seed:
                # a member the leaderboard has not trained (another seed of an arch)
                name = f"{member.arch} seed {member.seed} {n_classes}-class"
                known = task(member, name, "ensemble member")
            members.append(known)
        plan.ensembles[n_classes] = members
    return plan


def _train_board(plan: _BoardPlan, common, engine):
    """Validate every task of the plan (trained on the engine, or reused), then the ensembles
    (``architecture_leaderboard``). Returns the board's rows and outputs."""
    from gesturelab.evaluation.full_report import headline_row
    from gesturelab.training.engine import Engine

    experiment, log, n_bootstrap = common["experiment"], common["log"], common["n_bootstrap"]
    pending = [task for task in plan.tasks if task.found is None]
    engine = engine if engine is not None and pending else Engine("serial")
    shared = {n: (train, val) for n, (_, train, val) in plan.splits.items()}
    validated = {}
    with engine.open(shared) as pool:
        # Serial: each fit runs when it is asked for, inside its open run (system metrics).
        trained = pool.map(seq_runs.fit_task, pending)
        for task in plan.tasks:
            labelled, train, val = plan.splits[task.n_classes]
            if task.found is not None:
                result = seq_runs.reused_result(task.found, task.config, labelled.classes)
                tracking().adopt_run(task.found.run_id)
                out = validated_model(result, val, n_bootstrap)
                out.run = task.found
            else:
                arch, classes = task.config.arch, labelled.classes
                tags = task.train_tags
                with training_run(log, experiment, task.run_name, arch, classes, tags) as run:
                    out = validate_trained(
                        next(trained),
                        labelled,
                        train,
                        val,
                        run=run,
                        experiment=experiment,
                        run_name=task.run_name,
                        tags=tags,
                        board_dir=task.board_dir,
                        log=log,
                        n_bootstrap=n_bootstrap,
                    )
            validated[id(task)] = out
    rows, outputs = [], {}
    for n_classes, (labelled, _, _) in plan.splits.items():
        for task in plan.tasks:
            if task.n_classes == n_classes and task.tags["study"] == "leaderboard":
                out = validated[id(task)]
                outputs[(n_classes, task.config.arch)] = out
                rows.append(_board_row(n_classes, task.config.arch, out, headline_row))
        members = plan.ensembles.get(n_classes)
        if not members:
            continue
        key = seq_runs.ensemble_key([member.key for member in members])
        found = seq_runs.find_finished(experiment, key, common["fresh"]) if log else None
        out = validate_ensemble(
            labelled,
            [validated[id(member)] for member in members],
            run_name=f"ensemble {n_classes}-class",
            tags={"study": "leaderboard", "n_classes": n_classes, "run_key": key},
            experiment=experiment,
            log=log and found is None,
            n_bootstrap=n_bootstrap,
        )
        if found is not None:
            tracking().adopt_run(found.run_id)
            out.run = found
        outputs[(n_classes, "ensemble")] = out
        rows.append(_board_row(n_classes, "ensemble", out, headline_row))
    return rows, outputs


def _rank_board(data, rows, outputs, n_bootstrap):
    """The leaderboard best first per label set, each row tested against the next."""
    import pandas as pd

    from gesturelab.evaluation.full_report import paired_comparison

    # Best first; a tie goes to the smaller model (on 28 classes DD-Net and its ensemble with
    # the 1D-CNN both scored 0.916).
    board = pd.DataFrame(rows).sort_values(
        ["classes", "val_accuracy", "parameters"],
        ascending=[True, False, True],
        ignore_index=True,
        kind="stable",
    )
    # Is the winner really better than the runner-up on these subjects? A paired test says.
    board["vs_next_p_value"] = np.nan
    for n_classes, rows_n in board.groupby("classes"):
        ranked = rows_n.index.tolist()
        for first, second in zip(ranked, ranked[1:]):
            a = outputs[(n_classes, board.loc[first, "arch"])]
            b = outputs[(n_classes, board.loc[second, "arch"])]
            names = np.asarray(data.with_classes(n_classes).classes, dtype=object)
            test = paired_comparison(
                names[a.labels],
                names[a.scores.argmax(1)],
                names[b.scores.argmax(1)],
                n=n_bootstrap,
            )
            board.loc[first, "vs_next_p_value"] = test["mcnemar_p"]
    return board


SEQUENCE_BOARD_METRICS = [
    "val_accuracy",
    "val_f1_macro",
    "val_top3_accuracy",
    "val_ece",
    "n_parameters",
    "seconds_per_epoch",
    "fit_time_s",
]


def publish_sequence_leaderboard(board, data, experiment, board_id, validation_fraction):
    """The sequence leaderboard in the MLflow UI (``gesturelab.tracking.leaderboard_page``)."""
    from gesturelab.evaluation.plots import interval_bars_figure
    from gesturelab.tracking import leaderboard_page

    shown = board.copy()
    shown["run_page"] = [tracking().run_link(r) if r else None for r in shown["run_id"]]
    shown["val_accuracy_interval"] = [
        f"{lo:.3f}–{hi:.3f}"
        for lo, hi in zip(shown["val_accuracy_low"], shown["val_accuracy_high"])
    ]
    subjects = len(np.unique(data.subjects))
    label_sets = ", ".join(map(str, sorted(shown["classes"].unique())))
    summary = (
        f"deep sequence models on `{Path(str(data.source)).name}` ({len(data)} sequences, "
        f"{subjects} subjects; label sets: {label_sets} classes). Every model is validated "
        "on the same held-out subjects "
        f"({validation_fraction:.0%} of them, never trained on), with 95% bootstrap intervals; "
        "`vs next`: McNemar p-value against the row below it."
    )
    table = leaderboard_page.markdown_table(
        shown,
        {
            "classes": "classes",
            "arch": "model",
            "val_accuracy": "accuracy",
            "val_accuracy_interval": "95% interval",
            "val_f1_macro": "macro-F1",
            "parameters": "parameters",
            "vs_next_p_value": "vs next",
        },
        links={"arch": "run_page"},
    )
    figure = interval_bars_figure(
        board, "val_accuracy", "val_accuracy_low", "val_accuracy_high", "arch", "classes"
    )
    return leaderboard_page.publish(
        experiment,
        board,
        title=experiment,
        summary=summary,
        table=table,
        sort_by="val_accuracy",
        metrics=SEQUENCE_BOARD_METRICS,
        tags=["model_family", "n_classes"],
        where={"leaderboard_id": board_id, "study": "leaderboard"},
        figure=figure,
        label_set=None,
        footer="Champions (refit on every subject) are the runs tagged `study = champion`.",
    )


def _board_row(n_classes: int, arch: str, out: ValidatedModel, headline_row) -> dict:
    report, result = out.report, out.result
    return {
        "classes": n_classes,
        "arch": arch,
        **headline_row(report, "val_"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "seconds_per_epoch": result.seconds_per_epoch,
        "fit_seconds": result.fit_seconds,
        "parameters": result.model.count_params(),
        "run_id": out.run.run_id if out.run else None,
    }


def validate_ensemble(
    data: SequenceSet,
    members: list[ValidatedModel],
    *,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    run_name: str = "ensemble",
    tags: dict | None = None,
    log: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
) -> ValidatedModel:
    """The average of members already validated by ``train_and_log``, scored and logged.

    The ensemble is scored on the members' held-out subjects, which none of them trained on;
    members validated on different subjects are refused (one of them has seen the others').
    """
    from gesturelab.training.seq_training import config_for

    held_out = {tuple(member.validation_subjects) for member in members}
    if len(held_out) != 1:
        raise ValueError(f"ensemble members were validated on different subjects: {held_out}")
    results = [member.result for member in members]
    archs = tuple(r.config.arch for r in results)
    frames = results[0].config.frames
    ensemble_config = config_for("ensemble", len(data.classes), members=archs, frames=frames)
    result = combine_results(results, ensemble_config)
    val = data.subset(np.isin(data.subjects, held_out.pop()))
    validated = validated_model(result, val, n_bootstrap)
    if log:
        log_validation(
            validated,
            dataset_info(data),
            experiment,
            run_name,
            {"validation": "by subject", "members": " ".join(archs), **(tags or {})},
            extra_metrics={f"member_{r.config.arch}_best_epoch": r.best_epoch for r in results},
        )
    return validated


def board_champion(
    board, outputs, data: SequenceSet, n_classes: int, rule: str = config.SEQUENCE_SELECTION_RULE
) -> tuple[str, ValidatedModel, dict]:
    """The model ``rule`` (``seq_rules.SEQUENCE_RULES``) names from a leaderboard's label set:
    its name, its validated model (for the refit) and its validation numbers. A rule naming
    several architectures gets their average, validated on the same held-out subjects."""
    from gesturelab.training.seq_rules import champion_pick

    members = champion_pick(board, n_classes, rule)
    rows = board[board["classes"] == n_classes].set_index("arch")
    if len(members) == 1:
        row = rows.loc[members[0]]
        numbers = {k: float(row[k]) for k in ("val_accuracy", "val_f1_macro", "fit_seconds")}
        return members[0], outputs[(n_classes, members[0])], numbers
    validated = validate_ensemble(
        data.with_classes(n_classes), [outputs[(n_classes, a)] for a in members], log=False
    )
    metrics = validated.report["metrics"]
    numbers = {
        "val_accuracy": float(metrics["accuracy"]),
        "val_f1_macro": float(metrics["f1_macro"]),
        "fit_seconds": float(sum(rows.loc[a, "fit_seconds"] for a in members)),
    }
    return "+".join(members), validated, numbers
