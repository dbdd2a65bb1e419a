"""``predict`` with a live detector (a per-frame model with a learned "no gesture"): segments
of a video or a camera, each printed with when it fired."""

from __future__ import annotations

import sys

import pandas as pd

from gesturelab.cli.common import list_segments, stream_sources, write_problems


def early_naming(uri: str, detector) -> object:
    """The early namer at ``uri`` with the rules its study chose for ``detector``'s runs
    (``EARLY_RULES_TAG`` on the namer's run), as ``LiveRecognizer`` takes it; an error that
    says why when it is not one, or its rules were chosen for another detector."""
    import train_with_mlflow as tracking
    from gesturelab.errors import ModelLoadError
    from gesturelab.models.predictor import SequencePredictor, load_predictor
    from gesturelab.serving.frame_segments import EARLY_RULES_TAG, EarlyNaming

    namer = load_predictor(uri)
    run_id = tracking.run_of_model(uri)
    if run_id is None:
        raise ModelLoadError(
            f"--namer {uri}: give the early namer's run (runs:/<run id>/model or a registered "
            "version): its rules are kept on that run, and a folder has none"
        )
    tags = tracking.get_run(run_id).tags
    if not isinstance(namer, SequencePredictor) or EARLY_RULES_TAG not in tags:
        raise ModelLoadError(
            f"--namer {uri}: not an early namer (a sequence model whose run carries the "
            f"'{EARLY_RULES_TAG}' tag that notebook 07's study sets when it chooses its rules)"
        )
    try:
        naming = EarlyNaming.from_tags(namer, tags)
        chosen_for = EarlyNaming.detector_of(tags)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(
            f"--namer {uri}: its '{EARLY_RULES_TAG}' tag cannot be read ({exc}); run notebook "
            "07 again to choose and tag its rules"
        ) from None
    detector_uri = detector.info.get("model_uri")
    detector_run = tracking.run_of_model(detector_uri) if detector_uri else None
    if chosen_for and detector_run and chosen_for != detector_run:
        raise ModelLoadError(
            f"--namer {uri}: its rules were chosen on the runs of detector run {chosen_for}, "
            f"not on those of the --model detector (run {detector_run})"
        )
    if [str(c) for c in namer.classes] != [str(c) for c in detector.classes]:
        raise ModelLoadError(
            f"--namer {uri}: its classes {list(namer.classes)} are not the detector's "
            f"{list(detector.classes)}"
        )
    return naming


def predict_live(detector, args) -> int:
    from pathlib import Path

    from gesturelab.errors import MediaError, ModelLoadError
    from gesturelab.serving.inference import detect_video

    sources = stream_sources(
        args, "a live detector", "a table of landmarks? it reads the frames of a video"
    )
    if sources is None:
        return 2
    early = None
    if getattr(args, "namer", None):
        try:
            early = early_naming(args.namer, detector)
        except ModelLoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    problems = []
    for source in sources:

        def echo(segment, fps):
            print(
                f"  {segment.detected_at / fps:7.2f}s  {segment.label} ({segment.confidence:.2f}),"
                f" began {segment.start_frame / fps:.2f}s"
            )

        namer = (
            f", early namer (fires {early.rules.min_frames}+ frames into a run at confidence "
            f"{early.rules.confidence})"
            if early
            else ""
        )
        print(f"{source}: recognising gestures (live detector, learned no gesture{namer})")
        try:
            segments, frames = detect_video(
                detector,
                source,
                args.out,
                max_seconds=args.max_seconds,
                progress=not args.no_progress,
                echo=echo if args.camera is not None else None,
                early=early,
            )
        except MediaError as exc:
            print(exc)
            problems.append(pd.DataFrame([{"source": str(source), "problem": exc.reason}]))
            continue
        a = segments.attrs
        rules = ", ".join(f"{k} {v}" for k, v in a["rules"].items())
        on = float(a["rules"]["on"])  # the segmenter's own line between gesture and none
        moving = int((frames["no_gesture"] <= 1.0 - on).sum()) if len(frames) else 0
        print(
            f"  {a['frames']} frames at {a['fps']:.1f} fps; {moving} frames read as a gesture "
            f"under way; segment rules: {rules}"
        )
        list_segments(segments, source, problems, lambda row: f"fired at {row.detected_s:.2f} s")
        if args.out:
            print(f"  annotated video, per-frame and segments CSV in {args.out}")
    path = Path(args.out) / "problems.csv" if args.out else None
    write_problems(problems, path, echo=False)
    return 2 if len(problems) >= len(sources) else 0
