"""How a sweep chooses: each family's best, the champion among the families' bests (a registry
of rules, ``config.SELECTION_RULE`` the default), and when a champion may not be replaced on
transfer. Light on purpose: the command line lists the rules without importing the sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gesturelab.config import ENSEMBLE_FAMILY
from gesturelab.errors import lookup


def select_best(records: list[dict], tolerance: float, top: float | None = None) -> dict:
    """Best validation macro-F1; among those within ``tolerance`` of it, the most robust.

    Configurations whose clean scores differ by less than the tolerance cannot be told apart
    on a few hundred rows; the one that holds up best under viewpoint perturbation
    (``val_perturbed_f1_macro``) is the safer bet on hands photographed from other angles.
    This chooses each family's best; the champion among the families' bests is chosen by the
    rule ``config.SELECTION_RULE`` names (``SELECTION_RULES``).
    """
    if top is None:
        top = max(r["val_f1_macro"] for r in records)
    close = [r for r in records if r["val_f1_macro"] >= top - tolerance]
    # Exact ties go to the first configuration in grid order (max keeps the first), never to
    # a timing, so a rerun selects the same models.
    return max(close, key=lambda r: (r["val_perturbed_f1_macro"], r["val_f1_macro"]))


def _by_cv(records, tolerance, top):
    return max(records, key=lambda r: r["val_f1_macro"])


def _by_transfer(records, tolerance, top):
    return max(records, key=lambda r: (_transfer(r), r["val_f1_macro"]))


def _cv_then_transfer(records, tolerance, top):
    top = max(r["val_f1_macro"] for r in records) if top is None else top
    close = [r for r in records if r["val_f1_macro"] >= top - tolerance]
    return max(close, key=lambda r: (_transfer(r), r["val_f1_macro"]))


def _ensemble(records, tolerance, top):
    for record in records:
        if record["family"] == ENSEMBLE_FAMILY:
            return record
    return select_best(records, tolerance, top)  # a sweep without one (quick, one family)


def _transfer(record) -> float:
    value = record.get("transfer_f1_macro", np.nan)
    return -1.0 if value is None or not np.isfinite(value) else float(value)


@dataclass(frozen=True)
class SelectionRule:
    """How the champion is chosen among the families' best configurations.

    pick: (records, tolerance, top grouped-CV score of the whole sweep) -> the chosen record.
    transfer: whether it reads the records' transfer estimates (the sweep then estimates them
        before it refits the champion).
    """

    name: str
    pick: Callable[[list[dict], float, float | None], dict]
    transfer: bool
    describe: str


SELECTION_RULES: dict[str, SelectionRule] = {
    rule.name: rule
    for rule in (
        SelectionRule("cv", _by_cv, False, "best grouped-CV macro-F1"),
        SelectionRule(
            "cv+perturbed",
            select_best,
            False,
            "grouped CV; within the tolerance, the most robust to viewpoint perturbation",
        ),
        SelectionRule("transfer", _by_transfer, True, "best transfer estimate"),
        SelectionRule(
            "cv+transfer",
            _cv_then_transfer,
            True,
            "grouped CV; within the tolerance, the best transfer estimate",
        ),
        SelectionRule(
            "ensemble",
            _ensemble,
            False,
            "the soft-voting ensemble of the families' bests (without one: cv+perturbed)",
        ),
    )
}


def selection_rule(name: str) -> SelectionRule:
    return lookup(SELECTION_RULES, name, "selection rule")


# The transfer estimate a registered version carries as tags (``transfer_refusal`` reads them).
TRANSFER_TAGS = ("transfer_f1_macro", "transfer_f1_low", "transfer_f1_high")


def transfer_refusal(champion_tags: dict | None, challenger: dict | None) -> str | None:
    """Why a challenger may not replace the champion on transfer, or None when it may.

    Refused when the champion's transfer estimate lies above the challenger's whole 95 %
    interval: the challenger is worse on unseen sources beyond what its estimate's
    uncertainty explains. Either side without an estimate (an older version, a sweep without
    the transfer check) is not refused on it.
    """
    try:
        old = float((champion_tags or {})["transfer_f1_macro"])
        new, low, high = (float((challenger or {})[k]) for k in TRANSFER_TAGS)
    except (KeyError, TypeError, ValueError):
        return None
    if old <= high:
        return None
    return (
        f"the challenger's transfer estimate {new:.3f} (95 % interval {low:.3f}-{high:.3f}) "
        f"is below the champion's {old:.3f} beyond its interval"
    )
