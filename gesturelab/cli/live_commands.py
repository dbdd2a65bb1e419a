"""``predict`` with a live detector (a per-frame model with a learned "no gesture"): segments
of a video or a camera, each printed with when it fired."""

from __future__ import annotations

import pandas as pd

from gesturelab.cli.common import list_segments, stream_sources, write_problems


def predict_live(detector, args) -> int:
    from pathlib import Path

    from gesturelab.errors import MediaError
    from gesturelab.serving.inference import detect_video

    sources = stream_sources(
        args, "a live detector", "a table of landmarks? it reads the frames of a video"
    )
    if sources is None:
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
        list_segments(segments, source, problems, lambda row: f"fired at {row.detected_s:.2f} s")
        if args.out:
            print(f"  annotated video, per-frame and segments CSV in {args.out}")
    path = Path(args.out) / "problems.csv" if args.out else None
    write_problems(problems, path, echo=False)
    return 2 if len(problems) >= len(sources) else 0
