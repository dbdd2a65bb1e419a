"""Benchmark: SHREC'17 through every generic sequence layout scores as the dedicated SHREC path.

    .venv/bin/python benchmarks/sequence_formats.py [--arch ddnet] [--out build/bench/...]

The shipped SHREC'17 training split (1,960 sequences, 20 subjects) is written in each layout a
researcher might bring (``gesturelab.datasets.seq_writers``): a per-frame CSV, the frame-per-
file ``.npy`` layout with 63-value frames and with 1,662-value MediaPipe Holistic frames built
around the hand block (pose and face random, the left-hand block zeros), and an ``.npz``
bundle, each with a ``subjects.csv`` or subject column. Each is read back by the generic
reader (``read_sequences``, classes in SHREC's order as a label file would give them) and the
same architecture is trained with the same settings and validated on the same held-out
subjects as the SHREC path; the table gives the validation accuracy of each and its gap to the
SHREC path. A last row trains the CSV copy with the defaults ``train-seq --data`` uses for a
new dataset (frames = median length, no SHREC-tuned choices). Nothing is logged to MLflow.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gesturelab import config  # noqa: E402
from gesturelab.datasets import (
    seq_writers,  # noqa: E402
    shrec,
)
from gesturelab.datasets.sequence_formats import read_sequences  # noqa: E402
from gesturelab.training.seq_defaults import frames_for
from gesturelab.training.seq_experiment import train_and_log  # noqa: E402
from gesturelab.training.seq_training import config_for  # noqa: E402


def validated_accuracy(data, train_config, epochs=None) -> tuple[float, list, float]:
    start = time.perf_counter()
    out = train_and_log(data, train_config, log=False, n_bootstrap=200)
    return out.report["metrics"]["accuracy"], out.validation_subjects, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ddnet")
    parser.add_argument("--epochs", type=int, help="default: the architecture's tuned epochs")
    parser.add_argument("--work", default=str(config.REPO_ROOT / "build" / "bench" / "layouts"))
    parser.add_argument(
        "--out", default=str(config.REPO_ROOT / "build" / "bench" / "sequence_formats.csv")
    )
    parser.add_argument("--keep", action="store_true", help="keep the written layouts")
    args = parser.parse_args()

    data = shrec.load_compact()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    writers = {
        "sequence-csv": lambda: seq_writers.write_sequence_csv(data, work / "frames.csv"),
        "npy-frames (63)": lambda: seq_writers.write_npy_frames(data, work / "npy63"),
        "npy-frames (1662 Holistic)": lambda: seq_writers.write_npy_frames(
            data, work / "holistic", holistic=True
        ),
        "sequence-npz": lambda: seq_writers.write_npz(data, work / "bundle.npz"),
    }
    train_config = config_for(args.arch, 14, epochs=args.epochs)
    rows = []
    accuracy, subjects, seconds = validated_accuracy(data, train_config)
    print(f"shrec path: {accuracy:.4f} on subjects {subjects} ({seconds:.0f} s)", flush=True)
    rows.append(
        {
            "layout": "shrec (dedicated path)",
            "sequences": len(data),
            "write_s": 0.0,
            "read_s": 0.0,
            "val_accuracy": accuracy,
            "gap": 0.0,
            "validation_subjects": " ".join(map(str, subjects)),
        }
    )
    copies = {}
    for layout, write in writers.items():
        start = time.perf_counter()
        path = write()
        written = time.perf_counter() - start
        start = time.perf_counter()
        loaded = read_sequences(path, classes=list(shrec.GESTURES_14), quarantine_dir=work / "q")
        read = time.perf_counter() - start
        copies[layout] = loaded.data
        same = all(
            np.allclose(a, b, atol=1e-5, equal_nan=True)
            for a, b in zip(
                sorted(data.sequences, key=lambda s: (len(s), float(s[0, 0, 0]))),
                sorted(loaded.data.sequences, key=lambda s: (len(s), float(s[0, 0, 0]))),
            )
        )
        acc, subjects, seconds = validated_accuracy(loaded.data, train_config)
        print(
            f"{layout}: written {written:.1f} s, read {read:.1f} s, same landmarks {same}; "
            f"{acc:.4f} (gap {acc - accuracy:+.4f}) on {subjects} ({seconds:.0f} s)",
            flush=True,
        )
        rows.append(
            {
                "layout": layout,
                "sequences": len(loaded.data),
                "write_s": round(written, 1),
                "read_s": round(read, 1),
                "val_accuracy": acc,
                "gap": acc - accuracy,
                "validation_subjects": " ".join(map(str, subjects)),
                "same_landmarks": same,
            }
        )
    csv_data = copies["sequence-csv"]
    generic = config_for(
        args.arch,
        len(csv_data.classes),
        tuned_on="frames",
        epochs=args.epochs,
        frames=frames_for(csv_data),
    )
    acc, subjects, seconds = validated_accuracy(csv_data, generic)
    print(f"sequence-csv with train-seq --data defaults (frames {generic.frames}): {acc:.4f}")
    rows.append(
        {
            "layout": f"sequence-csv, train-seq --data defaults ({generic.frames} frames)",
            "sequences": len(csv_data),
            "val_accuracy": acc,
            "gap": acc - accuracy,
            "validation_subjects": " ".join(map(str, subjects)),
        }
    )
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"written to {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
