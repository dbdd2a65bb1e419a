"""``predict`` with a live detector (a per-frame model with a learned "no gesture"): segments
of a video or a camera, each printed with when it fired."""

from __future__ import annotations

import sys

import pandas as pd

from gesturelab.cli.common import write_problems


def predict_live(detector, args) -> int:
    from pathlib import Path

    from gesturelab.datasets.extraction import collect_inputs
    from gesturelab.errors import MediaError
    from gesturelab.serving.inference import detect_video, is_video

    if args.camera is not None:
        sources = [args.camera]
    elif args.input:
        sources = collect_inputs(args.input)
    else:
        print("error: give --input (a video or a folder of videos) or --camera N", file=sys.stderr)
        return 2
    stills = [p for p in sources if not isinstance(p, int) and not is_video(p)]
    if stills:
        print(
            f"error: {args.model} is a live detector: it reads a stream of frames (a video, or "
            f"--camera 0), and {stills[0]} is no video",
            file=sys.stderr,
        )
        return 2
    problems = []
    for source in sources:

        def echo(segment, fps):
            print(
                f"  {segment.detected_at / fps:7.2f}s  {segment.label} ({segment.confidence:.2f}),"
                f" began {segment.start_frame / fps:.2f}s"
            )

        print(f"{source}: recognising gestures (live detector, learned no gesture)")
        try:
            segments, frames = detect_video(
                detector,
                source,
                args.out,
                max_seconds=args.max_seconds,
                progress=not args.no_progress,
                echo=echo if args.camera is not None else None,
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
        if a.get("problem"):
            print(f"  {a['problem']}")
            problems.append(pd.DataFrame([{"source": str(source), "problem": a["problem"]}]))
        if segments.empty:
            print("  no gesture segment")
        for row in segments.itertuples():
            print(
                f"  segment {row.start_s:6.2f}-{row.end_s:6.2f} s  {row.label}  "
                f"{row.confidence:.2f}  (fired at {row.detected_s:.2f} s)"
            )
        if args.out:
            print(f"  annotated video, per-frame and segments CSV in {args.out}")
    path = Path(args.out) / "problems.csv" if args.out else None
    write_problems(problems, path, echo=False)
    return 2 if len(problems) >= len(sources) else 0
