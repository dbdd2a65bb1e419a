"""How the sequence leaderboard names a champion per label set: a registry of rules over the
board's rows (validated on held-out subjects), ``config.SEQUENCE_SELECTION_RULE`` the one
notebook 03 and ``train-seq`` use. Whether a rule is any good is measured on subjects no
choice saw (``studies.seq_rule_study``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from gesturelab import config
from gesturelab.errors import lookup

ENSEMBLE_ARCH = "ensemble"


def _ranked(rows: pd.DataFrame, score: str) -> pd.DataFrame:
    # Equal scores go to the smaller model, then the board's order (never a timing).
    return rows.sort_values([score, "parameters"], ascending=[False, True], kind="stable")


def _by_accuracy(rows: pd.DataFrame) -> tuple[str, ...]:
    return (str(_ranked(rows, "val_accuracy").iloc[0]["arch"]),)


def _by_f1(rows: pd.DataFrame) -> tuple[str, ...]:
    return (str(_ranked(rows, "val_f1_macro").iloc[0]["arch"]),)


def _smallest_close(rows: pd.DataFrame) -> tuple[str, ...]:
    top = rows["val_accuracy"].max()
    close = rows[rows["val_accuracy"] >= top - SMALLEST_TOLERANCE]
    return (str(close.sort_values("parameters", kind="stable").iloc[0]["arch"]),)


def _ensemble(rows: pd.DataFrame) -> tuple[str, ...]:
    if (rows["arch"] == ENSEMBLE_ARCH).any():
        return (ENSEMBLE_ARCH,)
    return _by_accuracy(rows)  # a board without one


def _top_two(rows: pd.DataFrame) -> tuple[str, ...]:
    singles = rows[rows["arch"] != ENSEMBLE_ARCH]
    return tuple(str(a) for a in _ranked(singles, "val_accuracy")["arch"].iloc[:2])


# Validation accuracy on about 400 sequences moves by 0.01 with four sequences: closer than
# this, the smaller model is the safer bet (fewer weights, less to overfit the held-out subjects).
SMALLEST_TOLERANCE = 0.01


@dataclass(frozen=True)
class SequenceRule:
    """pick: one label set's board rows -> the architectures of the champion (one, or the
    members of an average)."""

    name: str
    pick: Callable[[pd.DataFrame], tuple[str, ...]]
    describe: str


SEQUENCE_RULES: dict[str, SequenceRule] = {
    rule.name: rule
    for rule in (
        SequenceRule(
            "accuracy", _by_accuracy, "best validation accuracy (ties: the smaller model)"
        ),
        SequenceRule("macro-f1", _by_f1, "best validation macro-F1 (ties: the smaller model)"),
        SequenceRule(
            "smallest-close",
            _smallest_close,
            f"the smallest model within {SMALLEST_TOLERANCE} of the best validation accuracy",
        ),
        SequenceRule(
            "ensemble",
            _ensemble,
            "the board's ensemble (its default members), whatever validation says",
        ),
        SequenceRule(
            "top-two",
            _top_two,
            "the average of the two single architectures best on validation accuracy",
        ),
    )
}


def sequence_rule(name: str) -> SequenceRule:
    return lookup(SEQUENCE_RULES, name, "sequence selection rule")


def champion_pick(
    board: pd.DataFrame, n_classes: int, rule: str = config.SEQUENCE_SELECTION_RULE
) -> tuple[str, ...]:
    """The architectures ``rule`` names from the leaderboard's rows of one label set."""
    rows = board[board["classes"] == n_classes]
    if rows.empty:
        raise ValueError(f"the leaderboard has no rows of {n_classes} classes")
    return sequence_rule(rule).pick(rows)
