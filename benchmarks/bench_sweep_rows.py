"""Benchmark: what the classical sweep costs against the number of rows, per family.

    .venv/bin/python benchmarks/bench_sweep_rows.py [--rows 1000 5000 25000 100000]

The files are built from the 708 real rows of the shipped HaGRID sample by jittered copies
(``benchmarks/jittered_rows.py``): they measure cost at a size, not accuracy. At each size every
family's probe configurations (cheap to expensive corners of its grid) are fitted once on the
training split and predict a fifth of it, one after another in this process (one core). A
configuration of the sweep is five fold fits on 4/5 of the rows and one on all of them, so a
family's grid costs ``configurations x (5 x 0.8^k + 1) x`` its probes' mean at that size. The
MLP is timed for 2 and for 12 epochs: a fixed cost plus 150 times the cost of an epoch is its
fit in the grid (linear in epochs at a fixed batch size; each is warmed up on 500 rows first).

Prints, per family, seconds per probe fit at each size, the growth exponent k of a fit
``seconds ~ rows^k`` on the measured sizes, and the grid's estimated CPU time on every row and
with the sweep's selection subsample (``--selection-rows``, default ``config.SELECTION_ROWS``:
the grid at that size plus one refit of the best at full size); then how many one-core
workers would finish the full grid in 20 minutes. A probe whose growth between the two largest
sizes so far predicts more than ``--max-probe-s`` seconds is not run and is reported as
extrapolated (marked ``~``).
Asserts nothing; writes build/reports/bench_sweep_rows.csv.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROBES = {
    "svm": [
        {"kernel": "linear", "C": 1.0},
        {"kernel": "rbf", "C": 10.0, "gamma": "scale"},
        {"kernel": "poly", "C": 100.0, "gamma": "scale", "degree": 2},
        {"kernel": "rbf", "C": 1000.0, "gamma": 0.1},
    ],
    "random_forest": [
        {"n_estimators": 100, "max_depth": 10, "max_features": "log2"},
        {"n_estimators": 200, "max_depth": 30, "max_features": "sqrt"},
        {"n_estimators": 400, "max_depth": None, "max_features": "sqrt"},
    ],
    "knn": [
        {"n_neighbors": 3, "weights": "uniform", "p": 2},
        {"n_neighbors": 15, "weights": "distance", "p": 1},
    ],
    "mlp": [
        {"hidden": "128,64", "dropout": 0.2},
        {"hidden": "256,128", "dropout": 0.4},
    ],
    "logreg": [{"C": 1.0}, {"C": 1000.0, "features": "xy+dist+angles"}],
}
MLP_EPOCHS = 150  # the grid's
TARGET_S = 20 * 60


def fit_seconds(family, configuration, X, y) -> float:
    from gesturelab.models.static_families import FEATURE_SETS, build_pipeline
    from gesturelab.training.sweep import split_configuration

    params, features = split_configuration(configuration)
    pipeline = build_pipeline(family, params, FEATURE_SETS[features])
    start = time.perf_counter()
    pipeline.fit(X, y)
    pipeline.predict(X.iloc[: len(X) // 5])
    return time.perf_counter() - start


def probe_seconds(family, configuration, X, y) -> float:
    if family != "mlp":
        return fit_seconds(family, configuration, X, y)
    every = max(1, len(y) // 500)  # a warm-up on 500 rows of every class
    fit_seconds(family, {**configuration, "epochs": 1}, X.iloc[::every], y[::every])
    two = fit_seconds(family, {**configuration, "epochs": 2}, X, y)
    twelve = fit_seconds(family, {**configuration, "epochs": 12}, X, y)
    per_epoch = max(twelve - two, 0.0) / 10
    return two + (MLP_EPOCHS - 2) * per_epoch


def growth(rows, seconds) -> tuple[float, float]:
    """(k, c) of seconds = c * rows^k fitted on log-log."""
    k, log_c = np.polyfit(np.log(rows), np.log(seconds), 1)
    return float(k), float(np.exp(log_c))


def main() -> None:
    from gesturelab import config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 5000, 25000, 100000])
    parser.add_argument("--families", nargs="+", default=list(PROBES))
    parser.add_argument("--max-probe-s", type=float, default=240.0)
    parser.add_argument("--selection-rows", type=int, default=config.SELECTION_ROWS)
    args = parser.parse_args()

    from jittered_rows import jittered

    from gesturelab.datasets.splits import assign_groups, split_train_test
    from gesturelab.models.static_families import sweep_grid

    measured = []  # rows, family, probe, train_rows, seconds, extrapolated
    for n in sorted(args.rows):
        data = jittered(n)
        split = split_train_test(data["label"], assign_groups(data), 0.2, config.SEED)
        train = data[split == "train"]
        X, y = train.drop(columns=["label", "user_id"]), train["label"].to_numpy(object)
        for family in args.families:
            for i, configuration in enumerate(PROBES[family]):
                earlier = [m for m in measured if m["family"] == family and m["probe"] == i]
                if len(earlier) >= 2:
                    last = earlier[-2:]  # the growth between the two largest sizes so far
                    k, c = growth([m["train_rows"] for m in last], [m["seconds"] for m in last])
                    predicted = c * len(y) ** k
                    if predicted > args.max_probe_s:
                        measured.append(
                            dict(rows=n, family=family, probe=i, train_rows=len(y),
                                 seconds=predicted, extrapolated=True)
                        )  # fmt: skip
                        print(f"{n:>7} {family:<14} probe {i}: ~{predicted:8.1f} s (extrapolated)")
                        continue
                seconds = probe_seconds(family, configuration, X, y)
                measured.append(
                    dict(rows=n, family=family, probe=i, train_rows=len(y), seconds=seconds,
                         extrapolated=False)
                )  # fmt: skip
                print(f"{n:>7} {family:<14} probe {i}: {seconds:9.2f} s", flush=True)
    table = pd.DataFrame(measured)
    out = config.REPORTS_DIR / "bench_sweep_rows.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)

    per = table.groupby(["rows", "family"]).agg(
        seconds=("seconds", "mean"),
        train_rows=("train_rows", "first"),
        guessed=("extrapolated", "any"),
    )
    sizes = sorted(table["rows"].unique())
    print("\nSeconds per fit (mean of a family's probes, training split; ~ extrapolated):")
    print(f"{'family':<14} {'configs':>7} " + " ".join(f"{n:>10}" for n in sizes) + f" {'k':>6}")
    totals = {n: 0.0 for n in sizes}
    selected_totals = {n: 0.0 for n in sizes}
    for family in args.families:
        rows = per.xs(family, level="family")
        whole = rows[~rows["guessed"]]  # sizes at which every probe was measured
        k, c = growth(whole["train_rows"], whole["seconds"])
        n_configs = len(sweep_grid(family))
        fits = 5 * 0.8**k + 1  # five folds on 4/5 of the rows, one fit on all of them
        cells = [
            f"{'~' if rows.loc[n, 'guessed'] else ''}{rows.loc[n, 'seconds']:.2f}".rjust(10)
            for n in sizes
        ]
        print(f"{family:<14} {n_configs:>7} " + " ".join(cells) + f" {k:6.2f}")
        for n in sizes:
            full = rows.loc[n, "seconds"]
            totals[n] += n_configs * fits * full
            subsampled = rows.loc[n, "train_rows"] > args.selection_rows
            per_fit = c * args.selection_rows**k if subsampled else full
            selected_totals[n] += n_configs * fits * per_fit
            selected_totals[n] += full if subsampled else 0.0  # the best, refit on every row
    print(
        "\nThe full grid's CPU time (every configuration's folds and fit; not the feature "
        "ablation, transfer estimates or logging), and one-core workers for 20 minutes:"
    )
    print(
        f"{'rows':>8} {'every row':>12} {'workers/20min':>14} "
        f"{'selection':>12} {'workers/20min':>14}"
    )
    for n in sizes:
        print(
            f"{n:>8} {totals[n] / 60:>10.1f} m {int(np.ceil(totals[n] / TARGET_S)):>14} "
            f"{selected_totals[n] / 60:>10.1f} m {int(np.ceil(selected_totals[n] / TARGET_S)):>14}"
        )
    print(f"\n(selection: --selection-rows {args.selection_rows}; per-probe numbers in {out})")


if __name__ == "__main__":
    main()
