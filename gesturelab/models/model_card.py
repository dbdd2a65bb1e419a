"""A model card per registered version: what the model is, what it was trained and measured
on, and every file that ships it, as JSON and as readable markdown.

Built from what the store already holds (the version's tags, its run's params, metrics and
tags, the model's MLmodel metadata, the export check the ``export`` command logged), so a card
can be rebuilt at any time and never says more than was measured.
"""

from __future__ import annotations

import json

COORDINATES = (
    "MediaPipe hand landmarks in MediaPipe's order (wrist, thumb CMC ... pinky tip); x and y "
    "as the data gave them (pixels or image fractions), z MediaPipe's relative depth; every "
    "model normalises inside itself, so raw landmarks go in"
)


def _metric_block(metrics: dict, prefix: str) -> dict:
    out = {}
    for key, value in sorted(metrics.items()):
        if not key.startswith(prefix) or key.endswith(("_ci_low", "_ci_high")):
            continue
        if any(part in key for part in ("confusion", "epoch_", "system/")):
            continue
        entry = {"value": value}
        low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
        if low is not None and high is not None:
            entry["interval_95"] = [low, high]
        out[key] = entry
    return out


def build_card(name: str, version) -> dict:
    """The card of ``models:/name/version`` from the store."""
    import train_with_mlflow as tracking
    from gesturelab.models.predictor import open_model

    uri = f"models:/{name}/{version}"
    info = tracking.model_version_info(uri)
    tags = tracking.version_tags(name, version)
    run = tracking.get_run(info["run_id"]) if info.get("run_id") else None
    loaded = open_model(uri)
    meta = loaded.metadata
    if loaded.kind == "sequence":
        model = loaded.model
        classes = [str(c) for c in meta.get("classes") or []]
        frames = int(meta.get("frames") or model.input_shape[1])
        input_shape = [frames, int(model.input_shape[-1]) // 3, 3]  # 42 points: two hands
        from gesturelab.models.seq_models import model_features

        preprocessing = {
            "inside_the_model": "SequenceFeatures layer (gesturelab.models.seq_models)",
            "features": model_features(model),
            "resampling": f"each sequence resampled to {frames} frames over the frames with a "
            "hand (gesturelab.datasets.sequences.resample); all-zero frames are padding",
        }
        if meta.get("hand") == "both":
            preprocessing["hand"] = (
                "--hand both: the right hand's 21 points, then the left's, as recorded (not "
                "mirrored); a hand missing in a frame is zeros there"
            )
        elif meta.get("hand"):
            preprocessing["hand"] = (
                f"--hand {meta['hand']}: a hand MediaPipe calls Left is mirrored into the "
                "right hand's frame (x -> 1 - x)"
                + ("" if meta["hand"] == "dominant" else f"; only {meta['hand']} hands are used")
            )
        task = "dynamic gesture (sequence) classification"
        architecture = model.name
        parameters = int(model.count_params())
    else:
        pipeline = loaded.model
        classes = [str(c) for c in pipeline.classes_]
        steps = getattr(pipeline, "named_steps", {})
        normalizer = steps.get("landmarks")
        dims = int(getattr(normalizer, "input_dims_", getattr(pipeline, "input_dims_", 3)))
        input_shape = [21, dims]
        preprocessing = {
            "inside_the_model": "LandmarkNormalizer then StandardScaler (scikit-learn pipeline)",
            "features": normalizer.get_params() if normalizer is not None else None,
        }
        task = "static gesture (single hand) classification"
        architecture = type(steps.get("clf", pipeline)).__name__
        if hasattr(pipeline, "members_"):  # an ensemble: each member a whole pipeline
            architecture += " of " + " + ".join(
                type(member.named_steps["clf"]).__name__ for _, member in pipeline.members_
            )
            preprocessing["features"] = {
                name: member.named_steps["landmarks"].get_params()
                for name, member in pipeline.members_
            }
        parameters = None
    params = run.params if run else {}
    metrics = run.metrics if run else {}
    run_tags = run.tags if run else {}
    card = {
        "name": name,
        "version": str(version),
        "model_uri": uri,
        "task": task,
        "architecture": architecture,
        "parameters": parameters,
        "classes": classes,
        "input_shape": input_shape,
        "coordinates": COORDINATES,
        "preprocessing": preprocessing,
        "training_data": {
            "file": params.get("data_source") or tags.get("data_file"),
            "sha256": tags.get("data_sha256") or params.get("data_sha256"),
            "sequences": params.get("data_n_sequences"),
            "subjects_train": params.get("data_subjects_train"),
            "subjects_validation": params.get("data_subjects_validation"),
            "trained_on": params.get("trained_on"),
        },
        # a static champion refit on every row has no scores of its own: the configuration it
        # was selected as (its grouped CV, test split and transfer estimate) scored it
        "metrics": _metric_block(metrics, "val_")
        | _metric_block(metrics, "test_")
        | _metric_block(metrics, "selection_"),
        "training_config": {
            k: v for k, v in params.items() if not k.startswith(("data_", "calibration_"))
        },
        "made_by": {
            "run_id": info.get("run_id"),
            "command": run_tags.get("command") or run_tags.get("mlflow.source.name"),
            "git_commit": run_tags.get("git_commit"),
            "host": run_tags.get("host"),
        },
        "lineage": {
            k: tags[k]
            for k in ("parent_version", "calibrated_from", "calibration_user", "previous_champion")
            if tags.get(k)
        },
        "exports": [],
        "checksums": {},
    }
    check = tracking.run_json(info["run_id"], "export/check.json") if info.get("run_id") else None
    if check:
        card["exports_checked_on"] = check.get("checked_on")
        for row in check.get("rows", []):
            entry = {
                k: row.get(k)
                for k in (
                    "format",
                    "accuracy",
                    "f1_macro",
                    "agreement",
                    "size_kb",
                    "one_p50_ms",
                    "one_p95_ms",
                    "one_p99_ms",
                    "batch_p50_ms",
                    "passed",
                    "error",
                )
                if k in row
            }
            entry["quantisation"] = _quantisation(row.get("format", ""))
            card["exports"].append(entry)
            if row.get("sha256"):
                card["checksums"][row["file"]] = row["sha256"]
    card["checksums"].update(tracking.model_checksums(uri))
    return card


def _quantisation(fmt: str) -> str:
    return {
        "tflite-f16": "float16 weights",
        "tflite-dynamic": "int8 weights, float activations (dynamic range)",
        "tflite-int8": "int8 weights and activations (representative training samples), "
        "float32 input and output",
    }.get(fmt, "none (float32)")


def to_markdown(card: dict) -> str:
    lines = [
        f"# {card['name']} version {card['version']}",
        "",
        f"- **Task**: {card['task']}; **architecture**: {card['architecture']}"
        + (f" ({card['parameters']:,} parameters)" if card.get("parameters") else ""),
        f"- **Classes** ({len(card['classes'])}): {', '.join(card['classes'])}",
        f"- **Input**: {card['input_shape']} raw landmarks. {card['coordinates']}.",
        f"- **Preprocessing** (inside the model): {card['preprocessing']['inside_the_model']}",
    ]
    if card["preprocessing"].get("hand"):
        lines.append(f"- **Which hand**: {card['preprocessing']['hand']}")
    data = card["training_data"]
    lines.append(
        f"- **Training data**: {data.get('file')} (SHA-256 {str(data.get('sha256'))[:16]}…)"
        + (f"; trained on subjects {data['subjects_train']}" if data.get("subjects_train") else "")
        + (
            f", validated on held-out subjects {data['subjects_validation']}"
            if data.get("subjects_validation")
            else ""
        )
        + (f"; trained on {data['trained_on']}" if data.get("trained_on") else "")
    )
    made = card["made_by"]
    lines.append(
        f"- **Made by**: run {made.get('run_id')}, commit {made.get('git_commit')}, "
        f"command `{made.get('command')}`"
    )
    if card["lineage"]:
        lines.append(f"- **Lineage**: {json.dumps(card['lineage'])}")
    lines += ["", "## Metrics", "", "| metric | value | 95 % interval |", "| --- | --- | --- |"]
    for key, entry in card["metrics"].items():
        interval = entry.get("interval_95")
        shown = f"{interval[0]:.4f}–{interval[1]:.4f}" if interval else ""
        lines.append(f"| {key} | {entry['value']:.4f} | {shown} |")
    lines += ["", "## Formats", ""]
    if card["exports"]:
        lines += [
            f"Checked on {card.get('exports_checked_on')} (one thread each).",
            "",
            "| format | quantisation | accuracy | macro-F1 | agreement | size KB | "
            "latency one sample p50 / p95 / p99 ms | shipped |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in card["exports"]:
            if e.get("accuracy") is None:
                lines.append(f"| {e['format']} | | failed: {e.get('error')} | | | | | no |")
                continue
            size = "" if e["format"] == "original" else f"{e['size_kb']:.0f}"
            lines.append(
                f"| {e['format']} | {e['quantisation']} | {e['accuracy']:.4f} | "
                f"{e['f1_macro']:.4f} | {e['agreement']:.3f} | {size} | "
                f"{e['one_p50_ms']:.3f} / {e['one_p95_ms']:.3f} / {e['one_p99_ms']:.3f} | "
                f"{'yes' if e['passed'] else 'no (lost > 1 point)'} |"
            )
    else:
        lines.append("Not exported yet (`python -m gesturelab export --model ...`).")
    lines += ["", "## Checksums (SHA-256)", ""]
    lines += [f"- `{file}`: {digest}" for file, digest in card["checksums"].items()]
    return "\n".join(lines) + "\n"


def log_card(name: str, version) -> dict:
    """Build the card, log it to the version's run (``model_card/``) and tag the version."""
    import train_with_mlflow as tracking

    card = build_card(name, version)
    run_id = card["made_by"]["run_id"]
    if run_id:
        run = tracking.open_run(run_id)
        stem = f"model_card/{name}-v{version}"
        run.log_dicts({f"{stem}.json": card})
        run.log_text(to_markdown(card), f"{stem}.md")
        tracking.tag_version(name, version, {"model_card": f"runs:/{run_id}/{stem}.md"})
    return card
