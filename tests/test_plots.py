"""Figures: seaborn's theme applied per chart (never leaking into a notebook's own plots), and
the same data drawn twice gives the same bytes (the README's figures are rebuilt by reproduce)."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from gesturelab.evaluation import plots  # noqa: E402

RNG = np.random.default_rng(0)
LABELS = [f"g{i}" for i in range(6)]
BOARD = pd.DataFrame(
    {
        "run_name": [f"run {i}" for i in range(8)],
        "family": ["svm", "knn", "logreg", "random_forest"] * 2,
        "val_f1_macro": RNG.uniform(0.8, 1.0, 8),
    }
)
INTERVALS = pd.DataFrame({"arch": ["lstm", "tcn", "cnn"] * 2, "classes": [14] * 3 + [28] * 3,
                          "acc": [0.9, 0.85, 0.8, 0.88, 0.84, 0.79]})  # fmt: skip
INTERVALS["low"], INTERVALS["high"] = INTERVALS["acc"] - 0.03, INTERVALS["acc"] + 0.02
F1 = pd.Series(RNG.uniform(0.7, 1, 6), index=LABELS)
CHARTS = {
    "confusion": lambda: plots.confusion_matrix_figure(np.diag([5, 6, 7, 8, 9, 10]), LABELS),
    "leaderboard": lambda: plots.leaderboard_figure(BOARD, title="t"),
    "ablation": lambda: plots.feature_ablation_figure(
        pd.DataFrame({"svm": [0.9, 0.95], "knn": [0.85, 0.9]}, index=["xy", "xy+dist"])
    ),
    "intervals": lambda: plots.interval_bars_figure(
        INTERVALS, "acc", "low", "high", "arch", "classes"
    ),
    "per_class": lambda: plots.per_class_f1_figure({"svm": F1}),
    "scaling": lambda: plots.scaling_figure(
        pd.DataFrame(
            {"arch": ["lstm"] * 3, "per_class": [5, 20, 80], "held_out_accuracy": [0.3, 0.6, 0.8]}
        )  # fmt: skip
    ),
}


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=60)
    plt.close(figure)
    return buffer.getvalue()


@pytest.mark.parametrize("name", CHARTS)
def test_a_chart_is_drawn_the_same_twice_in_the_theme_without_changing_global_style(name):
    before = dict(plt.rcParams)
    first, second = _png(CHARTS[name]()), _png(CHARTS[name]())
    assert first == second
    assert dict(plt.rcParams) == before  # THEME is applied per figure only


def test_the_confusion_heatmap_writes_only_the_cells_that_happened():
    matrix = np.array([[5, 1], [0, 7]])
    figure = plots.confusion_matrix_figure(matrix, ["a", "b"])
    ax = figure.axes[0]
    shown = sorted(t.get_text() for t in ax.texts if t.get_text())
    where = {t.get_text(): (t.get_position(), t.get_color()) for t in ax.texts}
    plt.close(figure)
    assert shown == ["1", "5", "7"]
    assert where["1"] == ((1.5, 0.5), "black")  # row a, column b: a light cell
    assert where["7"] == ((1.5, 1.5), "white")  # the darkest cell
    assert ax.get_ylim() == (2.0, 0.0)  # the first class on top, as a matrix is read
