"""Classical model families, their sweep grids, and the pipelines that carry preprocessing.

Every pipeline starts with ``LandmarkNormalizer`` so a logged model takes the raw 63 landmark
columns. Forests and SVMs predict on one core: joblib's start-up per call would cost more than
a single-hand prediction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from gesturelab import config
from gesturelab.config import SEED
from gesturelab.errors import lookup
from gesturelab.features.augment import perturb_viewpoint
from gesturelab.features.landmark_features import LandmarkNormalizer
from gesturelab.models.static_ensemble import SoftVotingEnsemble
from gesturelab.models.static_mlp import KerasMLPClassifier

DEFAULT_FEATURES = {"normalise": True, "coords": "2d", "distances": True, "angles": False}
DEFAULT_FEATURE_SET = "xy+dist"

# Feature sets compared on the reference configurations: what each preprocessing step buys.
FEATURE_SETS = {
    "raw": {"normalise": False, "coords": "3d", "distances": False, "angles": False},
    "xy": {"normalise": True, "coords": "2d", "distances": False, "angles": False},
    "xyz": {"normalise": True, "coords": "3d", "distances": False, "angles": False},
    "xy+dist": DEFAULT_FEATURES,
    "xyz+dist": {"normalise": True, "coords": "3d", "distances": True, "angles": False},
    "xy+dist+angles": {"normalise": True, "coords": "2d", "distances": True, "angles": True},
    # x, y features plus which way the hand faces, from z (LandmarkNormalizer's ``depth``)
    "xy+dist+depth": {**DEFAULT_FEATURES, "depth": True},
    "xy+dist+angles+depth": {
        "normalise": True,
        "coords": "2d",
        "distances": True,
        "angles": True,
        "depth": True,
    },
}


def needs_z(name: str) -> bool:
    """Whether feature set ``name`` reads z (3-D landmarks only)."""
    return FEATURE_SETS[name]["coords"] == "3d" or FEATURE_SETS[name].get("depth", False)


def feature_sets_for(dims: int, names=None) -> list[str]:
    """The feature sets 2-D or 3-D data can give: nothing that needs z for 2-D landmarks."""
    names = list(FEATURE_SETS) if names is None else list(names)
    if dims == 3:
        return names
    usable = [n for n in names if not needs_z(n)]
    return usable if "raw" not in names or "xy" in usable else ["xy", *usable]


# The linear families are cheap enough to sweep the feature set as well.
# On 3-D data they also try the depth features (2-D data skips them: ``sweep_grid``), as does
# the Random Forest, which tells a palm from the back of a hand by z and not by x, y alone
# (leave-one-source-block-out macro-F1 on the HaGRID sample: 0.971 with depth, 0.956 without).
SWEPT_FEATURE_SETS = ["xy+dist", "xy+dist+angles", "xy+dist+depth", "xy+dist+angles+depth"]


def build_pipeline(family: str, params: dict, features: dict | None = None, seed: int = SEED):
    """Raw landmarks -> normalised features -> standardised -> classifier.

    ``params["augment"]`` (copies, > 0) trains on that many viewpoint-perturbed copies of every
    training row besides the row itself (``AugmentedPipeline``); the classifier never sees it.
    """
    if family in COMPOSITES:  # whole pipelines combined: each member has its own features
        return COMPOSITES[family].build(params, seed)
    features = dict(DEFAULT_FEATURES if features is None else features)
    params = dict(params)
    copies = int(params.pop("augment", 0))
    steps = [
        ("landmarks", LandmarkNormalizer(**features)),
        ("scale", StandardScaler()),
        ("clf", make_classifier(family, params, seed)),
    ]
    return AugmentedPipeline(steps, copies=copies, seed=seed) if copies else Pipeline(steps)


class AugmentedPipeline(Pipeline):
    """A pipeline that fits on its training rows plus ``copies`` viewpoint-perturbed copies of
    each (``features.augment.perturb_viewpoint``: the hand rotated in the image plane and
    foreshortened, as another camera would see it); predicting is the plain pipeline's.

    The copies are milder (±10°, to 80 %) than the sweep's robustness check (±20°, to 60 %), and
    drawn with other seeds: they teach small changes of viewpoint, not the check's own hands.
    Still a ``Pipeline`` (its steps, ``decision_function``, export), so everything that reads a
    logged model reads this one.
    """

    def __init__(
        self,
        steps,
        *,
        copies: int = 2,
        max_rotation_deg: float = 10.0,
        min_foreshortening: float = 0.8,
        seed: int = SEED,
        memory=None,
        verbose: bool = False,
    ):
        super().__init__(steps, memory=memory, verbose=verbose)
        self.copies = copies
        self.max_rotation_deg = max_rotation_deg
        self.min_foreshortening = min_foreshortening
        self.seed = seed

    def fit(self, X, y=None, **params):
        X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
        copies = [
            perturb_viewpoint(X, self.seed + 1 + i, self.max_rotation_deg, self.min_foreshortening)
            for i in range(self.copies)
        ]
        return super().fit(
            pd.concat([X, *copies], ignore_index=True),
            np.concatenate([np.asarray(y, dtype=object)] * (self.copies + 1)),
            **params,
        )


def _grid(**axes):
    return [dict(zip(axes, values)) for values in product(*axes.values())]


# Viewpoint-perturbed copies of each training row an augmented configuration trains on.
AUGMENT_COPIES = 2


def _augmented(grid: list[dict]) -> list[dict]:
    """The grid, then each of its configurations trained with augmented rows: the linear
    families are cheap enough to sweep it (``AugmentedPipeline``)."""
    return grid + [{**c, "augment": AUGMENT_COPIES} for c in grid]


@dataclass(frozen=True)
class Family:
    """One classical model family: everything the sweep, the CLI and model loading need.

    build: (params, seed) -> an unfitted classifier.
    grid: the full sweep, in the order ties are broken (the first of equals wins).
    quick_grid: a handful for tests and smoke runs, the reference configuration included.
    reference: the configuration the reference project published, if any.
    skops_types: classes a fitted model holds that skops does not trust by itself; loading
        trusts these and nothing the model file lists.
    """

    name: str
    build: Callable[[dict, int], object]
    grid: tuple[dict, ...]
    quick_grid: tuple[dict, ...]
    reference: dict | None = None
    skops_types: tuple[str, ...] = ()


# The configurations the reference project published (SVM 0.972, RF 0.942, KNN 0.903).
_SVM_REFERENCE = {"kernel": "poly", "C": 100.0, "gamma": "scale", "degree": 2}
_RF_REFERENCE = {"n_estimators": 200, "max_depth": 30, "max_features": "sqrt"}
_KNN_REFERENCE = {"n_neighbors": 3, "weights": "uniform", "p": 2}

REGISTRY: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "svm",
            build=lambda params, seed: SVC(random_state=seed, **params),
            grid=tuple(
                _augmented(
                    _grid(
                        kernel=["linear"],
                        C=[0.01, 0.1, 1.0, 10.0, 100.0],
                        features=SWEPT_FEATURE_SETS,
                    )
                )
                + _grid(
                    kernel=["rbf"], C=[1.0, 10.0, 100.0, 1000.0], gamma=["scale", 0.001, 0.01, 0.1]
                )
                + _grid(
                    kernel=["poly"],
                    C=[1.0, 10.0, 100.0, 1000.0],
                    gamma=["scale", 0.01, 0.1],
                    degree=[2, 3],
                )
            ),
            quick_grid=(
                {"kernel": "linear", "C": 1.0},
                {"kernel": "linear", "C": 1.0, "augment": AUGMENT_COPIES},
                {"kernel": "rbf", "C": 10.0, "gamma": "scale"},
                _SVM_REFERENCE,
            ),
            reference=_SVM_REFERENCE,
        ),
        Family(
            "random_forest",
            build=lambda params, seed: RandomForestClassifier(
                random_state=seed, n_jobs=1, **params
            ),
            grid=tuple(
                _grid(
                    n_estimators=[100, 200, 400],
                    max_depth=[10, 20, 30, None],
                    max_features=["sqrt", "log2"],
                    features=["xy+dist", "xy+dist+depth"],
                )
            ),
            quick_grid=(
                {"n_estimators": 50, "max_depth": 10, "max_features": "sqrt"},
                _RF_REFERENCE,
            ),
            reference=_RF_REFERENCE,
            skops_types=("sklearn.tree._tree.Tree",),
        ),
        Family(
            "knn",
            build=lambda params, seed: KNeighborsClassifier(**params),
            grid=tuple(
                _grid(n_neighbors=[1, 3, 5, 7, 9, 15], weights=["uniform", "distance"], p=[1, 2])
            ),
            quick_grid=(_KNN_REFERENCE, {"n_neighbors": 5, "weights": "distance", "p": 2}),
            reference=_KNN_REFERENCE,
        ),
        Family(
            "mlp",
            build=lambda params, seed: KerasMLPClassifier(seed=seed, **params),
            grid=tuple(_grid(hidden=["128,64", "256,128"], dropout=[0.2, 0.4])),
            quick_grid=({"hidden": "64", "dropout": 0.2, "epochs": 20, "batch_size": 64},),
            skops_types=("gesturelab.models.static_mlp.KerasMLPClassifier",),
        ),
        Family(
            "logreg",
            build=lambda params, seed: LogisticRegression(max_iter=5000, **params),
            grid=tuple(
                _augmented(_grid(C=[0.1, 1.0, 10.0, 100.0, 1000.0], features=SWEPT_FEATURE_SETS))
            ),
            quick_grid=({"C": 1.0}, {"C": 1.0, "features": "xy+dist+angles"}),
        ),
    )
}

FAMILIES = tuple(REGISTRY)


@dataclass(frozen=True)
class Composite:
    """A model built from other families' configurations (not swept over a grid of its own):
    the sweep offers it beside the families' bests.

    build: (params, seed) -> an unfitted model taking raw landmarks (its members' pipelines).
    members: params -> the (family, params, feature set) of each member.
    """

    name: str
    build: Callable[[dict, int], object]
    members: Callable[[dict], list[tuple[str, dict, str]]]


def _ensemble_members(params: dict) -> list[tuple[str, dict, str]]:
    return [(family, dict(p), features) for family, p, features in json.loads(params["members"])]


def _build_ensemble(params: dict, seed: int):
    return SoftVotingEnsemble(
        [
            (family, build_pipeline(family, p, FEATURE_SETS[features], seed))
            for family, p, features in _ensemble_members(params)
        ]
    )


ENSEMBLE = config.ENSEMBLE_FAMILY
COMPOSITES: dict[str, Composite] = {
    ENSEMBLE: Composite(ENSEMBLE, _build_ensemble, _ensemble_members),
}


def ensemble_configuration(members) -> dict:
    """The ensemble's configuration from its members' (family, params, feature set): one
    parameter, ``members``, a JSON list (what its run logs and its run key hashes)."""
    return {
        "members": json.dumps(
            [[family, params, features] for family, params, features in members], sort_keys=True
        )
    }


REFERENCE_CONFIGS = {name: f.reference for name, f in REGISTRY.items() if f.reference}
# Every type a logged static model may hold beyond what skops trusts by itself.
SKOPS_TRUSTED_TYPES = (
    f"{LandmarkNormalizer.__module__}.{LandmarkNormalizer.__qualname__}",
    f"{AugmentedPipeline.__module__}.{AugmentedPipeline.__qualname__}",
    f"{SoftVotingEnsemble.__module__}.{SoftVotingEnsemble.__qualname__}",
    *sorted({t for f in REGISTRY.values() for t in f.skops_types}),
)


def family(name: str) -> Family:
    return lookup(REGISTRY, name, "model family")


def make_classifier(name: str, params: dict, seed: int = SEED):
    return family(name).build(params, seed)


def sweep_grid(name: str, quick: bool = False, dims: int = 3) -> list[dict]:
    """The nested-loop grid of one family; ``quick`` keeps a handful including the reference.
    For 2-D data (``dims`` 2) the configurations whose features read z are left out."""
    spec = family(name)
    return [
        dict(c)
        for c in (spec.quick_grid if quick else spec.grid)
        if dims == 3 or not needs_z(c.get("features", DEFAULT_FEATURE_SET))
    ]


def is_reference(family: str, params: dict) -> bool:
    reference = REFERENCE_CONFIGS.get(family)
    return reference is not None and all(params.get(k) == v for k, v in reference.items())


def run_name(family: str, params: dict, features: str = DEFAULT_FEATURE_SET) -> str:
    if family in COMPOSITES:
        members = COMPOSITES[family].members(params)
        return f"{family} of " + " + ".join(member for member, _, _ in members)
    short = {"n_estimators": "n", "max_depth": "depth", "max_features": "mf", "n_neighbors": "k"}
    parts = [family] + [f"{short.get(k, k)}={v}" for k, v in params.items() if k != "features"]
    if features != DEFAULT_FEATURE_SET:
        parts.append(f"[{features}]")
    return " ".join(parts)
