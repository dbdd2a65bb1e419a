"""Sequence experiments end to end: what ``train-seq``, ``evaluate-seq`` and notebook 03 call.

Validation is always by subject: the subjects whose sequences score a model never trained it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.evaluation import evaluation_report
from gesturelab.sequences import SequenceSet, subject_split


def dataset_info(data: SequenceSet, path=None) -> dict:
    from gesturelab.loading import file_fingerprint

    info = {
        "source": str(path or data.source),
        "n_sequences": len(data),
        "n_subjects": len(np.unique(data.subjects)),
        "n_classes": len(data.classes),
    }
    if path is not None and Path(path).exists():
        info["sha256"] = file_fingerprint(path)
    return info


def evaluate_sequences(
    model,
    data: SequenceSet,
    frames: int,
    n_bootstrap: int = config.N_BOOTSTRAP,
    seed: int = 0,
    return_scores: bool = False,
):
    """The full evaluation report of ``model`` on ``data``, sliced by subject and by finger."""
    from gesturelab.seq_training import predict_proba

    start = time.perf_counter()
    scores = predict_proba(model, data, frames)
    seconds = time.perf_counter() - start
    classes = np.asarray(data.classes, dtype=object)
    slices = {"subject": data.subjects.astype(str)}
    if "finger" in data.meta:
        slices["finger"] = np.where(np.asarray(data.meta["finger"]) == 1, "one", "whole_hand")
    report = evaluation_report(
        classes[data.labels],
        classes[scores.argmax(axis=1)],
        scores=scores,
        classes=list(classes),
        slices=slices,
        row_ids=[f"seq{i}_subject{s}" for i, s in enumerate(data.subjects)],
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    report["predict_ms_per_sequence"] = 1000 * seconds / max(len(data), 1)
    report["data"] = {"source": data.source, "n_sequences": len(data)}
    return (report, scores) if return_scores else report


def train_and_log(
    data: SequenceSet,
    train_config,
    *,
    validation_fraction: float = config.VALIDATION_FRACTION,
    split_seed: int = 0,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    run_name: str | None = None,
    refit: bool = False,
    register_as: str | None = None,
    data_path=None,
    tags: dict | None = None,
    log: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
    verbose: int = 0,
) -> dict:
    """Fit on some subjects, validate on the others, log; optionally refit on every subject.

    With ``refit`` the final model is trained on all subjects for the number of epochs that
    was best on validation, logged as its own run, and registered when ``register_as`` is set.
    """
    import keras

    from gesturelab.seq_training import fit

    if log and register_as:
        _check_registration(register_as, data, data_path)
    run_name = run_name or f"{train_config.arch} {len(data.classes)}-class"
    train_mask, val_mask = subject_split(data.subjects, validation_fraction, seed=split_seed)
    train, val = data.subset(train_mask), data.subset(val_mask)
    board_dir = config.TENSORBOARD_DIR / f"{run_name.replace(' ', '_')}-{time.strftime('%H%M%S')}"
    callbacks = [keras.callbacks.TensorBoard(str(board_dir), histogram_freq=0)] if log else []
    result = fit(train, train_config, val, callbacks=callbacks, verbose=verbose)
    report, scores = evaluate_sequences(
        result.model, val, train_config.frames, n_bootstrap, return_scores=True
    )
    info = dataset_info(data, data_path)
    info.update(
        subjects_train=" ".join(map(str, np.unique(train.subjects))),
        subjects_validation=" ".join(map(str, np.unique(val.subjects))),
    )
    out = _validated(result, report, scores, val)
    if log:
        import train_with_mlflow as tracking

        out["validation_run"] = tracking.log_sequence_run(
            result,
            report=report,
            experiment=experiment,
            run_name=run_name,
            dataset=info,
            tags={"validation": "by subject", **(tags or {})},
            tensorboard_dir=board_dir,
            log_model_artifact=not refit,
        )
    out["model"] = result.model
    if refit:
        out.update(
            refit_all_subjects(
                data,
                train_config,
                best_epochs(result),
                report,
                validation_run=out["validation_run"],
                experiment=experiment,
                run_name=run_name,
                register_as=register_as,
                data_path=data_path,
                tags=tags,
                log=log,
                verbose=verbose,
            )
        )
    elif log and register_as:
        sha256 = info.get("sha256")
        out.update(
            _register(out["validation_run"], register_as, train_config, report, data, sha256)
        )
    return out


def refit_all_subjects(
    data: SequenceSet,
    train_config,
    epochs,
    report: dict,
    *,
    validation_run: dict | None,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    run_name: str = "",
    register_as: str | None = None,
    data_path=None,
    tags: dict | None = None,
    log: bool = True,
    verbose: int = 0,
) -> dict:
    """Train on every subject for the epochs validation chose; log and optionally register.

    ``epochs`` is an int, or for an ensemble one int per member (``member_best_epochs``).

    The validated model saw only some subjects; more people in training is worth more than
    anything else here (see the scaling study), so the model we keep is trained on all of them.
    """
    from gesturelab.seq_training import fit

    if log and register_as:
        _check_registration(register_as, data, data_path)
    if train_config.arch == "ensemble":
        final_config = replace(train_config, member_epochs=tuple(epochs))
    else:
        final_config = replace(train_config, epochs=int(epochs))
    final = fit(data, final_config, None, verbose=verbose)
    out = {"final_result": final, "model": final.model, "final_run": None}
    if not log:
        return out
    import train_with_mlflow as tracking

    info = dataset_info(data, data_path)
    out["final_run"] = tracking.log_sequence_run(
        final,
        report={},
        experiment=experiment,
        run_name=f"{run_name or train_config.arch} (all subjects)",
        dataset={**info, "epochs_from_validation": str(epochs)},
        tags={
            "run_kind": "final",
            "validated_by_run": (validation_run or {}).get("run_id", ""),
            **(tags or {}),
        },
        extra_metrics={
            f"selection_val_{k}": report["metrics"][k]
            for k in ("accuracy", "f1_macro")
            if k in report.get("metrics", {})
        },
    )
    if register_as:
        sha256 = info.get("sha256")
        out.update(_register(out["final_run"], register_as, train_config, report, data, sha256))
    return out


def _validated(result, report: dict, scores, val: SequenceSet) -> dict:
    """What every validated model hands on: the fit, its report and its held-out scores."""
    return {
        "result": result,
        "report": report,
        "validation_subjects": [int(s) for s in np.unique(val.subjects)],
        "val_scores": scores,
        "val_labels": val.labels,
        "validation_run": None,
        "final_run": None,
    }


def default_epochs(train_config, n_classes: int):
    """The tuned epochs of ``train_config`` (for an ensemble, of each member)."""
    from gesturelab.seq_training import member_configs

    if train_config.arch == "ensemble":
        return tuple(c.epochs for c in member_configs(train_config, n_classes))
    return train_config.epochs


def best_epochs(result):
    """What ``refit_all_subjects`` takes: the best epoch, or each ensemble member's."""
    return result.extra.get("member_best_epochs", result.best_epoch)


def _check_registration(name: str, data: SequenceSet, data_path) -> None:
    """Fail before training, not after it, when the registration would be refused."""
    import train_with_mlflow as tracking

    tracking.check_registration(name, data.classes, dataset_info(data, data_path).get("sha256"))


def _register(run: dict, name: str, train_config, report: dict, data, sha256) -> dict:
    import train_with_mlflow as tracking

    tags = {"arch": train_config.arch}
    if report.get("metrics"):
        tags["val_accuracy"] = report["metrics"]["accuracy"]
    version = tracking.register_model(
        run["model_uri"], name, tags=tags, label_set=data.classes, data_sha256=sha256
    )
    return {
        "registered": f"models:/{name}@{config.CHAMPION_ALIAS}",
        "registered_version": version.version,
    }


def evaluate_model_uri(
    model_uri: str,
    data_root=None,
    split: str = "test",
    out=None,
    log: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
) -> dict:
    """Score a logged sequence model on a SHREC'17/DHG split; JSON report and MLflow run."""
    import json

    import train_with_mlflow as tracking
    from gesturelab import shrec
    from gesturelab.errors import ModelLoadError

    model, metadata = tracking.load_keras_model(model_uri)
    classes = tuple(metadata.get("classes") or ())
    frames = int(metadata.get("frames") or model.input_shape[1])
    n_classes = int(model.output_shape[-1])
    data = shrec.load(data_root, split, n_classes)
    if classes and classes != tuple(data.classes):
        raise ModelLoadError(
            f"{model_uri} predicts {len(classes)} classes ({', '.join(classes[:3])}, ...), "
            f"the data has {len(data.classes)} ({', '.join(data.classes[:3])}, ...)"
        )
    report = evaluate_sequences(model, data, frames, n_bootstrap)
    report["model_uri"] = model_uri
    report["split"] = split
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2, default=float))
    if log:
        report["run_id"] = tracking.log_evaluation_report(
            report,
            run_name=f"{model_uri} on {split}",
            tags={"model_uri": model_uri, "data": str(data_root or data.source), "split": split},
        )
    return report


def architecture_leaderboard(
    data: SequenceSet,
    archs=("lstm", "gru", "tcn", "cnn"),
    class_counts=(14, 28),
    epochs: int | None = None,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    validation_fraction: float = config.VALIDATION_FRACTION,
    split_seed: int = 0,
    n_bootstrap: int = config.N_BOOTSTRAP,
    log: bool = True,
    ensemble=None,
):
    """Every architecture on every label set, validated on the same held-out subjects.

    With ``ensemble`` (architecture names, repeated for more seeds), the average of those
    members is scored too, as one more row: members the leaderboard has already validated are
    reused as they are; only the others (a second seed) are trained.
    Returns the leaderboard (one row per model, best first within a label set) and the
    training outputs keyed by (n_classes, arch), for the champion's refit.
    """
    import pandas as pd

    from gesturelab.evaluation import headline_row, paired_comparison
    from gesturelab.seq_training import config_for, member_configs

    # None: the default members of arch "ensemble"; () scores no ensemble.
    ensemble = config_for("ensemble").members if ensemble is None else tuple(ensemble)
    with_ensemble = bool(ensemble)
    # every model of the board is validated the same way, on the same subjects
    common = {
        "validation_fraction": validation_fraction,
        "split_seed": split_seed,
        "experiment": experiment,
        "log": log,
        "n_bootstrap": n_bootstrap,
    }
    rows, outputs = [], {}
    for n_classes in class_counts:
        labelled = data.with_classes(n_classes)
        for arch in (*archs, "ensemble") if with_ensemble else archs:
            if arch == "ensemble":
                members = []
                for member in member_configs(
                    config_for("ensemble", n_classes, members=ensemble, epochs=epochs), n_classes
                ):
                    known = outputs.get((n_classes, member.arch))
                    if known is None or known["result"].config.seed != member.seed:
                        # a member the leaderboard has not trained (another seed of an arch)
                        known = train_and_log(
                            labelled,
                            member,
                            run_name=f"{member.arch} seed {member.seed} {n_classes}-class",
                            tags={"study": "ensemble member", "n_classes": n_classes},
                            **common,
                        )
                    members.append(known)
                out = validate_ensemble(
                    labelled,
                    members,
                    run_name=f"ensemble {n_classes}-class",
                    tags={"study": "leaderboard", "n_classes": n_classes},
                    experiment=experiment,
                    log=log,
                    n_bootstrap=n_bootstrap,
                )
                outputs[(n_classes, arch)] = out
                rows.append(_board_row(n_classes, arch, out, headline_row))
                continue
            out = train_and_log(
                labelled,
                config_for(arch, n_classes, epochs=epochs),
                run_name=f"{arch} {n_classes}-class",
                tags={"study": "leaderboard", "n_classes": n_classes},
                **common,
            )
            outputs[(n_classes, arch)] = out
            rows.append(_board_row(n_classes, arch, out, headline_row))
    board = pd.DataFrame(rows).sort_values(
        ["classes", "val_accuracy"], ascending=[True, False], ignore_index=True
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
                names[a["val_labels"]],
                names[a["val_scores"].argmax(1)],
                names[b["val_scores"].argmax(1)],
                n=n_bootstrap,
            )
            board.loc[first, "vs_next_p_value"] = test["mcnemar_p"]
    return board, outputs


def _board_row(n_classes: int, arch: str, out: dict, headline_row) -> dict:
    report, result = out["report"], out["result"]
    return {
        "classes": n_classes,
        "arch": arch,
        **headline_row(report, "val_"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "seconds_per_epoch": result.seconds_per_epoch,
        "fit_seconds": result.fit_seconds,
        "parameters": result.model.count_params(),
        "run_id": (out["validation_run"] or {}).get("run_id"),
    }


def validate_ensemble(
    data: SequenceSet,
    member_outputs: list[dict],
    *,
    experiment: str = config.SEQUENCE_EXPERIMENT,
    run_name: str = "ensemble",
    tags: dict | None = None,
    log: bool = True,
    n_bootstrap: int = config.N_BOOTSTRAP,
) -> dict:
    """The average of members already validated by ``train_and_log``, scored and logged.

    The ensemble is scored on the members' held-out subjects, which none of them trained on;
    members validated on different subjects are refused (one of them has seen the others').
    """
    from gesturelab.seq_training import combine_results, config_for

    held_out = {tuple(out["validation_subjects"]) for out in member_outputs}
    if len(held_out) != 1:
        raise ValueError(f"ensemble members were validated on different subjects: {held_out}")
    results = [out["result"] for out in member_outputs]
    members = tuple(r.config.arch for r in results)
    frames = results[0].config.frames
    ensemble_config = config_for("ensemble", len(data.classes), members=members, frames=frames)
    result = combine_results(results, ensemble_config)
    val = data.subset(np.isin(data.subjects, held_out.pop()))
    report, scores = evaluate_sequences(
        result.model, val, ensemble_config.frames, n_bootstrap, return_scores=True
    )
    out = _validated(result, report, scores, val)
    out["model"] = result.model
    if log:
        import train_with_mlflow as tracking

        info = dataset_info(data)
        info["subjects_validation"] = " ".join(map(str, np.unique(val.subjects)))
        out["validation_run"] = tracking.log_sequence_run(
            result,
            report=report,
            experiment=experiment,
            run_name=run_name,
            dataset=info,
            tags={"validation": "by subject", "members": " ".join(members), **(tags or {})},
            extra_metrics={f"member_{r.config.arch}_best_epoch": r.best_epoch for r in results},
        )
    return out
