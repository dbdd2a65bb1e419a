"""Champion and challenger: a new version earns the ``champion`` alias on held-out data.

A newly trained model is registered as the ``challenger`` (``--register --challenger``).
``promote`` scores the challenger and the champion on the same held-out data (a static model on
any dataset ``gesturelab.datasets`` reads, a sequence model on any sequence dataset or a
SHREC'17 split), compares them with the paired test of ``evaluation.full_report`` (McNemar's
exact test and a paired bootstrap interval of the accuracy difference), and moves ``champion``
only when the challenger is not worse: its accuracy on those rows at least the champion's, and
its transfer estimate (held-out sources, kept on the version by the sweep) not below the
champion's beyond its interval (``training.selection_rules.transfer_refusal``, the guard the
sweep applies too when it registers a champion). ``--force`` moves it anyway, and says so.
``rollback`` points ``champion`` back at the version it pointed at before. Every move is
recorded on the versions as tags: when, who, why, the comparison's numbers, the version it
replaced.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

import numpy as np

from gesturelab import config
from gesturelab.errors import RegistryError
from gesturelab.evaluation.scoring import Labelled, score
from gesturelab.training.selection_rules import transfer_refusal

CHALLENGER = "challenger"


def _tracking():
    import train_with_mlflow

    return train_with_mlflow


def held_out_predictions(model_uri: str, data, split: str = "test", quarantine_dir=None):
    """(true labels, predicted labels, what the rows are) of a model on held-out data."""
    from gesturelab.models.predictor import SequencePredictor, load_predictor

    predictor = load_predictor(model_uri)
    if isinstance(predictor, SequencePredictor):
        from gesturelab.datasets import shrec
        from gesturelab.datasets.sequence_formats import read_sequences

        if data is None:
            sequences = shrec.load(None, "train", len(predictor.classes))
            what = "the shipped SHREC'17 split"
        else:
            loaded = read_sequences(
                data,
                classes=list(predictor.classes),
                verbose=False,
                quarantine_dir=quarantine_dir,
                split=split,
            )
            sequences, what = loaded.data, f"{data} ({len(loaded.data)} sequences)"
        held = Labelled.sequences(sequences, what)
    else:
        from gesturelab import datasets

        if data is None:
            raise RegistryError("a static model is compared on data: pass --data")
        loaded = datasets.read(data, quarantine_dir=quarantine_dir, verbose=False)
        held = Labelled(loaded.data, loaded.y, f"{data} ({len(loaded.data)} rows)")
    scored = score(predictor, held, report=False)
    return np.asarray(scored.truth, dtype=object), scored.predicted, held.what


def compare(name: str, data=None, split: str = "test", quarantine_dir=None) -> dict:
    """The challenger against the champion of ``name`` on the same rows (``paired_comparison``,
    a = challenger, b = champion)."""
    from gesturelab.evaluation.full_report import paired_comparison

    tracking = _tracking()
    champion = tracking.alias_version(name, config.CHAMPION_ALIAS)
    challenger = tracking.alias_version(name, CHALLENGER)
    if challenger is None:
        raise RegistryError(
            f"{name} has no {CHALLENGER!r} version to promote "
            "(register one with --register --challenger)"
        )
    if champion is None:
        return {
            "champion": None,
            "challenger": challenger,
            "not_worse": True,
            "data": None,
            "reason": "no champion yet",
        }
    if champion == challenger:
        raise RegistryError(f"{name}: the challenger is the champion (version {champion})")
    tags = {v: tracking.version_tags(name, v) for v in (champion, challenger)}
    if tags[champion].get("label_set") != tags[challenger].get("label_set"):
        raise RegistryError(
            f"{name}: versions {challenger} and {champion} predict different "
            "classes; they cannot be compared on the same rows"
        )
    truth, new, what = held_out_predictions(
        f"models:/{name}/{challenger}", data, split, quarantine_dir
    )
    truth_old, old, _ = held_out_predictions(
        f"models:/{name}/{champion}", data, split, quarantine_dir
    )
    if len(truth) != len(truth_old) or (truth != truth_old).any():
        raise RegistryError(f"{name}: the two versions were not scored on the same rows")
    paired = paired_comparison(truth, new, old)
    worse_here = paired["accuracy_a"] < paired["accuracy_b"]
    reasons = ["the challenger is less accurate on these rows"] if worse_here else []
    on_transfer = transfer_refusal(tags[champion], tags[challenger])
    if on_transfer:
        reasons.append(on_transfer)
    return {
        "champion": champion,
        "challenger": challenger,
        "data": what,
        "rows": len(truth),
        **paired,
        **{
            f"transfer_{side}": _estimate(tags[v])
            for side, v in (("a", challenger), ("b", champion))
        },
        "not_worse": not reasons,
        "refusal": "; ".join(reasons),
    }


def _estimate(tags: dict) -> str:
    """A version's transfer estimate as its tags hold it, for the decision's record."""
    if "transfer_f1_macro" not in tags:
        return "none (registered without one)"
    text = f"{float(tags['transfer_f1_macro']):.3f}"
    if "transfer_f1_low" in tags and "transfer_f1_high" in tags:
        low, high = float(tags["transfer_f1_low"]), float(tags["transfer_f1_high"])
        text += f" ({low:.3f}-{high:.3f})"
    return text


def _stamp(action: str, reason: str) -> dict:
    return {
        f"{action}_at": datetime.now(UTC).isoformat(timespec="seconds"),
        f"{action}_by": getpass.getuser(),
        f"{action}_reason": reason or "(none given)",
    }


def promote(name: str, data=None, split="test", force=False, reason="", quarantine_dir=None):
    """Move ``champion`` to the challenger when it is not worse (or ``force``); the decision."""
    tracking = _tracking()
    decision = compare(name, data, split, quarantine_dir)
    decision["promoted"] = bool(decision["not_worse"] or force)
    decision["forced"] = bool(force and not decision["not_worse"])
    numbers = {
        k: decision[k]
        for k in (
            "data",
            "rows",
            "accuracy_a",
            "accuracy_b",
            "difference",
            "difference_low",
            "difference_high",
            "mcnemar_p",
            "transfer_a",
            "transfer_b",
            "refusal",
        )
        if k in decision
    }
    if not decision["promoted"]:
        tracking.move_alias(
            name,
            CHALLENGER,
            decision["challenger"],
            {
                **_stamp("refused", reason),
                "refused_comparison": json.dumps(numbers),
            },
        )
        return decision
    tags = {
        **_stamp("promoted", reason),
        "promotion_comparison": json.dumps(numbers),
        "previous_champion": decision["champion"] or "",
        "forced": decision["forced"],
    }
    tracking.move_alias(name, config.CHAMPION_ALIAS, decision["challenger"], tags)
    tracking.drop_alias(name, CHALLENGER)
    return decision


def rollback(name: str, reason: str = "") -> dict:
    """Point ``champion`` back at the version the current champion replaced."""
    tracking = _tracking()
    current = tracking.alias_version(name, config.CHAMPION_ALIAS)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    previous = tracking.version_tags(name, current).get("previous_champion")
    if not previous:
        raise RegistryError(
            f"{name}@champion (version {current}) replaced no earlier champion "
            "through `promote`: there is nothing to roll back to"
        )
    # The restored version keeps its own previous_champion: a second rollback goes further back.
    tracking.move_alias(
        name,
        config.CHAMPION_ALIAS,
        previous,
        {**_stamp("restored", reason), "restored_from": current},
    )
    tracking.tag_version(name, current, _stamp("rolled_back", reason))
    return {"champion": previous, "rolled_back": current}
