"""Figures for notebooks, MLflow runs and the README.

Charts (heatmaps, bars, curves) are drawn with seaborn in one theme, ``THEME``; pictures of
hands and photos keep matplotlib's plain axes, since a grid over a photo hides the hand.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from gesturelab.datasets.landmarks import FINGER_CHAINS, HAND_CONNECTIONS
from gesturelab.features.landmark_features import as_hands

FINGER_COLOURS = ("tab:red", "tab:orange", "tab:green", "tab:blue", "tab:purple")
BONE_COLOUR = {
    (chain[i], chain[i + 1]): colour
    for chain, colour in zip(FINGER_CHAINS, FINGER_COLOURS)
    for i in range(len(chain) - 1)
}
# The charts' look, applied per figure (never globally: a notebook's own plots keep theirs).
THEME = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("notebook", font_scale=0.8),
    "axes.prop_cycle": plt.cycler(color=sns.color_palette("colorblind")),
}
PALETTE = "colorblind"
SEQUENTIAL = "Blues"


# The PNG text chunk that holds the digest of what a saved figure was drawn from.
INPUTS_KEY = "gesturelab-inputs"


def save_unless_same(path, inputs, draw, dpi: int = 110) -> Path:
    """Save ``draw()`` to ``path`` unless the PNG there was drawn from the same ``inputs``
    (anything JSON can write) by the same plotting code: a rerun that changed nothing draws
    nothing. The digest travels in the PNG's own text chunk, so a copied figure keeps it."""
    from PIL import Image

    path = Path(path)
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(json.dumps(inputs, sort_keys=True, default=str).encode())
    key = digest.hexdigest()
    try:
        with Image.open(path) as image:
            if getattr(image, "text", {}).get(INPUTS_KEY) == key:
                return path
    except (OSError, ValueError):  # no figure there yet, or not a PNG
        pass
    figure = draw()
    figure.savefig(path, dpi=dpi, metadata={INPUTS_KEY: key})
    plt.close(figure)
    return path


def themed(draw):
    """Draw a chart under ``THEME``."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(THEME):
            return draw(*args, **kwargs)

    return wrapper


@themed
def confusion_matrix_figure(cm, labels, title="", normalise=False):
    """Counts (or row shares) as a heatmap, a number in every non-empty cell.

    Drawn with matplotlib's own mesh rather than seaborn's heatmap: the sweep draws one per
    configuration run, and seaborn's made a text object for every cell, empty ones included,
    and drew the figure once more to colour them (0.29 s a figure, now about a third of it).
    """
    from matplotlib.colors import to_rgba

    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise else cm
    n = len(labels)
    size = max(5.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=110)
    mesh = ax.pcolormesh(
        shown,
        cmap=SEQUENTIAL,
        vmin=float(shown.min(initial=0.0)),
        vmax=float(shown.max(initial=0.0)) or 1.0,
        edgecolors="white",
        linewidth=0.5,
    )
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)  # the first class on top, as a matrix is read
    ax.set_aspect("equal")
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ticks = np.arange(n) + 0.5
    ax.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(ticks, labels, rotation=0, fontsize=8)
    # empty cells stay blank: a wall of zeros hides the few confusions that matter
    for i, j in zip(*np.nonzero(cm)):
        r, g, b, _ = to_rgba(mesh.cmap(mesh.norm(shown[i, j])))
        light = 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.408
        ax.text(
            j + 0.5,
            i + 0.5,
            f"{shown[i, j]:.2f}" if normalise else f"{int(cm[i, j])}",
            ha="center",
            va="center",
            fontsize=7,
            color="black" if light else "white",
        )
    colorbar = fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04)
    colorbar.outline.set_linewidth(0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


@themed
def leaderboard_figure(board: pd.DataFrame, metric="val_f1_macro", label_col="run_name", title=""):
    """Horizontal bars of the best runs, coloured by model family."""
    board = board.sort_values(metric, ascending=False).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(board) + 1.5), dpi=110)
    sns.barplot(
        data=board,
        x=metric,
        y=label_col,
        hue="family",
        hue_order=list(dict.fromkeys(board["family"])),
        palette=PALETTE,
        dodge=False,
        orient="h",
        ax=ax,
    )
    for y, value in enumerate(board[metric]):
        ax.text(value, y, f" {value:.3f}", va="center", fontsize=8)
    ax.set_xlim(max(0.0, float(board[metric].min()) - 0.05), 1.0)
    ax.set_xlabel(metric)
    ax.set_ylabel("")
    ax.legend(loc="lower right", fontsize=8, title=None)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


@themed
def feature_ablation_figure(table: pd.DataFrame):
    """Grouped-CV macro-F1 of the reference configurations (columns) per feature set (rows)."""
    long = table.rename_axis(index="features", columns="family").stack().rename("f1")
    long = long.reset_index()
    figure, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    sns.barplot(
        data=long,
        x="features",
        y="f1",
        hue="family",
        order=list(table.index),
        hue_order=list(table.columns),
        palette=PALETTE,
        ax=ax,
    )
    ax.set_ylabel("grouped-CV macro-F1")
    ax.set_xlabel("")
    ax.set_ylim(max(0.0, float(table.min().min()) - 0.05), 1.0)
    ax.set_title("Reference configurations: what each feature step buys")
    ax.tick_params(axis="x", rotation=0, labelsize=8)
    ax.legend(fontsize=8, title=None)
    figure.tight_layout()
    return figure


def draw_hand(ax, hand, title="", invert_y=True):
    """One hand skeleton, each finger in its own colour."""
    hand = as_hands(hand)[0]
    for a, b in HAND_CONNECTIONS:
        ax.plot(hand[[a, b], 0], hand[[a, b], 1], color=BONE_COLOUR.get((a, b), "grey"), lw=2)
    ax.scatter(hand[:, 0], hand[:, 1], s=8, color="black", zorder=3)
    ax.set_aspect("equal")
    if invert_y and not ax.yaxis_inverted():
        ax.invert_yaxis()  # image coordinates: y grows downwards
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def skeleton_grid(hands, titles, ncols=6):
    n = len(hands)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.4 * nrows), dpi=100)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, hand, title in zip(np.ravel(axes), hands, titles):
        ax.axis("on")
        draw_hand(ax, hand, title)
    fig.tight_layout()
    return fig


@themed
def class_balance_figure(table: pd.DataFrame):
    """Stacked bars of rows per class and split (output of splits.describe_split)."""
    fig, ax = plt.subplots(figsize=(9, 3.5), dpi=110)
    colours = sns.color_palette(PALETTE, len(table.columns))
    table.plot.bar(stacked=True, ax=ax, width=0.8, color=colours)
    ax.set_ylabel("rows")
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


def raw_vs_normalised_figure(hands, title=""):
    """The same gesture from different places: raw pixels, then wrist-centred and scale-free."""
    from gesturelab.features.landmark_features import LandmarkNormalizer

    hands = as_hands(hands)
    normalised = LandmarkNormalizer(distances=False).fit(hands).transform(hands)
    normalised = normalised.reshape(len(hands), -1, 2)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), dpi=100)
    for hand, flat in zip(hands, normalised):
        draw_hand(axes[0], hand)
        draw_hand(axes[1], np.c_[flat, np.zeros(len(flat))])
    axes[0].set_title("raw landmarks (pixels)", fontsize=10)
    axes[1].set_title("wrist-centred, wrist→middle MCP = 1", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def photo_with_hands(rgb, hands, labels, ax=None, title=""):
    """A photo with each hand's skeleton and its predicted label drawn on it."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6 * rgb.shape[0] / rgb.shape[1]), dpi=100)
    ax.imshow(rgb)
    for hand, label in zip(as_hands(hands), labels):
        for a, b in HAND_CONNECTIONS:
            ax.plot(hand[[a, b], 0], hand[[a, b], 1], color=BONE_COLOUR.get((a, b), "white"), lw=2)
        x, y = hand[:, 0].min(), hand[:, 1].min()
        ax.text(
            x,
            y,
            label,
            color="black",
            fontsize=10,
            va="bottom",
            bbox={"facecolor": "yellow", "alpha": 0.8, "pad": 2},
        )
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return ax.figure


def frame_strip(frames_rgb, titles, ncols=6):
    """Video frames side by side with their labels."""
    nrows = int(np.ceil(len(frames_rgb) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.0 * nrows + 0.4), dpi=100)
    for ax in np.ravel(axes):
        ax.set_axis_off()
    for ax, frame, title in zip(np.ravel(axes), frames_rgb, titles):
        ax.imshow(frame)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


@themed
def reliability_figure(calibration: dict, title="", ax=None):
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    bins = calibration["bins"]
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    else:
        fig = ax.figure
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    ax.bar(centres, [b["accuracy"] for b in bins], width=0.09, alpha=0.7, label="accuracy per bin")
    ax.plot(
        [b["confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        "o-",
        color="black",
        ms=3,
        label="at the bin's mean confidence",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the top class")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} ECE {calibration['ece']:.3f}".strip(), fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


@themed
def training_curves_figure(histories: dict, metric: str = "accuracy", title: str = ""):
    """One panel per run: training and validation ``metric`` per epoch."""
    n = len(histories)
    ncols = min(n, 4)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False)
    for ax, (name, history) in zip(axes.ravel(), histories.items()):
        ax.plot(history[metric], label="train")
        if f"val_{metric}" in history:
            ax.plot(history[f"val_{metric}"], label="validation")
        ax.set_title(name if len(name) < 45 else name[:42] + "...", fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylim(0, 1.02) if metric == "accuracy" else None
        ax.legend(fontsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@themed
def scaling_figure(table: pd.DataFrame, title: str = ""):
    """Held-out-subject accuracy against training sequences per class, one line per model."""
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(
        data=table.sort_values("per_class"),
        x="per_class",
        y="held_out_accuracy",
        hue="arch",
        style="arch",
        markers=True,
        dashes=False,
        errorbar=None,  # one point per model and size; intervals would need a resample
        palette=PALETTE,
        ax=ax,
    )
    ax.set_xscale("log")
    ticks = sorted(table["per_class"].unique())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training sequences per class (log scale)")
    ax.set_ylabel("accuracy on held-out subjects")
    ax.set_ylim(0, 1)
    ax.legend(title=None)
    ax.set_title(title)
    fig.tight_layout()
    return fig


@themed
def personalisation_figure(table: pd.DataFrame, title: str = ""):
    """Mean accuracy gain on a user's remaining sequences against calibration samples per
    class: the model used (after the fallback, solid) and the candidate (before it, dashed),
    one panel per learning rate, one colour per freeze strategy."""
    rates = list(dict.fromkeys(table["learning_rate"]))
    fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 3.8), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        part = table[table["learning_rate"] == rate]
        long = pd.concat(
            [
                part.assign(model="used (after fallback)", gain=part["mean_gain"]),
                part.assign(model="candidate (before)", gain=part["candidate_gain"]),
            ]
        )
        sns.lineplot(
            data=long,
            x="samples_per_class",
            y="gain",
            hue="strategy",
            style="model",
            markers=True,
            errorbar=None,  # one mean per point; the table gives the counts
            palette=PALETTE,
            ax=ax,
        )
        ax.axhline(0, color="0.4", linewidth=0.8)
        ax.set_xticks(sorted(part["samples_per_class"].unique()))
        ax.set_xlabel("calibration samples per class")
        ax.set_ylabel("mean accuracy gain on the rest")
        ax.set_title(f"learning rate {rate:g}")
        ax.legend(fontsize="small", title=None)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@themed
def interval_bars_figure(table: pd.DataFrame, value: str, low: str, high: str, label: str, group):
    """Horizontal bars with their confidence intervals, one panel per ``group`` value."""
    groups = list(table[group].unique())
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 0.5 * len(table) + 1.5))
    for ax, key in zip(np.atleast_1d(axes), groups):
        rows = table[table[group] == key].sort_values(value, ascending=False)
        rows = rows.assign(**{label: rows[label].astype(str)}).reset_index(drop=True)
        sns.barplot(data=rows, x=value, y=label, color=sns.color_palette(PALETTE)[0], ax=ax)
        errors = [rows[value] - rows[low], rows[high] - rows[value]]
        ax.errorbar(
            rows[value], range(len(rows)), xerr=errors, fmt="none", ecolor="black", capsize=3, lw=1
        )
        for y, v in enumerate(rows[value]):
            ax.text(v, y, f" {v:.3f}", va="bottom", fontsize=8)
        ax.set_xlim(max(0, rows[low].min() - 0.1), 1.0)
        ax.set_title(f"{group} = {key}")
        ax.set_xlabel(value)
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


@themed
def per_class_f1_figure(series: dict, title: str = ""):
    """Horizontal per-class F1 bars, one panel per model ({name: pandas Series of F1})."""
    fig, axes = plt.subplots(
        1,
        len(series),
        figsize=(4.5 * len(series), 0.28 * max(len(s) for s in series.values()) + 1.5),
    )
    good, weak = sns.color_palette(PALETTE)[0], sns.color_palette(PALETTE)[3]
    for ax, (name, f1) in zip(np.atleast_1d(axes), series.items()):
        f1 = f1.sort_values(ascending=False)  # best at the top, as the leaderboard
        rows = pd.DataFrame({"class": f1.index.astype(str), "f1": f1.to_numpy()})
        rows["below 0.9"] = np.where(rows["f1"] < 0.9, "F1 < 0.9", "F1 >= 0.9")
        sns.barplot(
            data=rows,
            x="f1",
            y="class",
            hue="below 0.9",
            hue_order=["F1 >= 0.9", "F1 < 0.9"],
            palette={"F1 >= 0.9": good, "F1 < 0.9": weak},
            dodge=False,
            legend=False,
            ax=ax,
        )
        ax.set_xlim(max(0.0, min(0.8, f1.min() - 0.05)), 1.0)
        ax.axvline(0.9, color="grey", linestyle=":", linewidth=1)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("F1")
        ax.set_ylabel("")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def trajectory_figure(sequences, titles, joints=(0, 8), ncols=4):
    """Paths of the wrist and the index fingertip in the camera plane (x right, y up).

    SHREC'17 world coordinates: y grows upwards, so the plot is not flipped.
    """
    n = len(sequences)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, seq, title in zip(axes.ravel(), sequences, titles):
        ax.axis("on")
        seq = np.asarray(seq)
        for joint, colour in zip(joints, ("tab:blue", "tab:orange")):
            path = seq[:, joint, :2]
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=1.5)
            ax.plot(*path[0], "o", color=colour, ms=4)
            ax.plot(*path[-1], "s", color=colour, ms=4)
        ax.set_aspect("equal", "datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8)
    fig.suptitle("wrist (blue) and index tip (orange); circle = start, square = end", fontsize=9)
    fig.tight_layout()
    return fig


@themed
def reject_figure(rule: dict, title: str = ""):
    """Coverage and accuracy on the answered hands against the reject threshold."""
    curve = rule["trade_off"]
    t = [c["threshold"] for c in curve]
    figure, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, [c["coverage"] for c in curve], marker="o", label="coverage (hands answered)")
    ax.plot(t, [c["accuracy_answered"] for c in curve], marker="s", label="accuracy, answered")
    chosen = f"chosen {rule['threshold']:.3f} (coverage {rule['val_coverage']:.1%})"
    ax.axvline(rule["threshold"], color="grey", linestyle="--", label=chosen)
    score = "SVM margin" if rule.get("score") == "margin" else "top-class probability"
    ax.set_xlabel(f"threshold on the {score} (out-of-fold validation)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Reject option: {title}" if title else "Reject option")
    ax.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return figure


@themed
def stream_timeline_figure(truth: pd.DataFrame, segments: dict, seconds: float = 60.0, title=""):
    """The first ``seconds`` of a stream: the gestures played (top row) and, below, the
    segments each setting reported, green when they match an overlapping gesture's label."""
    rows = ["played", *segments]
    fig, ax = plt.subplots(figsize=(12, 0.7 * len(rows) + 1.2))
    shown = truth[truth["start_s"] < seconds]

    def bar(y, span, colour):
        ax.barh(y, span.end_s - span.start_s, left=span.start_s, color=colour)
        ax.text((span.start_s + span.end_s) / 2, y, span.label.replace("_", "\n"),
                ha="center", va="center", fontsize=6, color="white")  # fmt: skip

    for gesture in shown.itertuples():
        bar(0, gesture, "#4c72b0")
    for y, table in enumerate(segments.values(), start=1):
        for seg in table[table["start_s"] < seconds].itertuples():
            overlap = (truth["start_s"] < seg.end_s) & (truth["end_s"] > seg.start_s)
            good = (overlap & (truth["label"] == seg.label)).any()
            bar(y, seg, "#55a868" if good else "#c44e52")
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, seconds)
    ax.set_xlabel("stream time (s)")
    ax.set_title(title or "Gestures played and segments reported (green: right label)")
    fig.tight_layout()
    return fig


@themed
def label_issues_figure(per_class: pd.DataFrame, title: str = ""):
    """Examples and flagged labels per class (output of ``label_check``): where to look first."""
    table = per_class.sort_values("flagged_share", ascending=False)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(table) + 2), 3.6), dpi=110)
    x = np.arange(len(table))
    ax.bar(x, table["examples"], color="#c9d6df", label="examples")
    ax.bar(x, table["flagged"], color="#d1495b", label="flagged as likely wrong")
    for i, (n, share) in enumerate(zip(table["flagged"], table["flagged_share"], strict=True)):
        if n:
            ax.text(i, n, f"{share:.0%}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, table.index, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("examples")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
