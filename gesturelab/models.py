"""Classical model families, their sweep grids, and the pipelines that carry preprocessing.

Every pipeline starts with ``LandmarkNormalizer`` so a logged model takes the raw 63 landmark
columns. Forests and SVMs predict on one core: joblib's start-up per call would cost more than
a single-hand prediction.
"""

from __future__ import annotations

from itertools import product

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from gesturelab.config import SEED
from gesturelab.features import LandmarkNormalizer

FAMILIES = ("svm", "random_forest", "knn", "logreg")

# The configurations the reference project published (SVM 0.972, RF 0.942, KNN 0.903).
REFERENCE_CONFIGS = {
    "svm": {"kernel": "poly", "C": 100.0, "gamma": "scale", "degree": 2},
    "random_forest": {"n_estimators": 200, "max_depth": 30, "max_features": "sqrt"},
    "knn": {"n_neighbors": 3, "weights": "uniform", "p": 2},
}

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
}


# The linear families are cheap enough to sweep the feature set as well.
SWEPT_FEATURE_SETS = ["xy+dist", "xy+dist+angles"]


def make_classifier(family: str, params: dict, seed: int = SEED):
    if family == "svm":
        return SVC(random_state=seed, **params)
    if family == "random_forest":
        return RandomForestClassifier(random_state=seed, n_jobs=1, **params)
    if family == "knn":
        return KNeighborsClassifier(**params)
    if family == "logreg":
        return LogisticRegression(max_iter=5000, **params)
    raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")


def build_pipeline(family: str, params: dict, features: dict | None = None, seed: int = SEED):
    """Raw landmarks -> normalised features -> standardised -> classifier."""
    features = dict(DEFAULT_FEATURES if features is None else features)
    return Pipeline(
        [
            ("landmarks", LandmarkNormalizer(**features)),
            ("scale", StandardScaler()),
            ("clf", make_classifier(family, params, seed)),
        ]
    )


def _grid(**axes):
    return [dict(zip(axes, values)) for values in product(*axes.values())]


def sweep_grid(family: str, quick: bool = False) -> list[dict]:
    """The nested-loop grid of one family; ``quick`` keeps a handful including the reference."""
    if family == "svm":
        if quick:
            return [
                {"kernel": "linear", "C": 1.0},
                {"kernel": "rbf", "C": 10.0, "gamma": "scale"},
                REFERENCE_CONFIGS["svm"],
            ]
        return (
            _grid(kernel=["linear"], C=[0.01, 0.1, 1.0, 10.0, 100.0], features=SWEPT_FEATURE_SETS)
            + _grid(kernel=["rbf"], C=[1.0, 10.0, 100.0, 1000.0], gamma=["scale", 0.001, 0.01, 0.1])
            + _grid(
                kernel=["poly"],
                C=[1.0, 10.0, 100.0, 1000.0],
                gamma=["scale", 0.01, 0.1],
                degree=[2, 3],
            )
        )
    if family == "random_forest":
        if quick:
            return [
                {"n_estimators": 50, "max_depth": 10, "max_features": "sqrt"},
                REFERENCE_CONFIGS["random_forest"],
            ]
        return _grid(
            n_estimators=[100, 200, 400],
            max_depth=[10, 20, 30, None],
            max_features=["sqrt", "log2"],
        )
    if family == "knn":
        if quick:
            return [REFERENCE_CONFIGS["knn"], {"n_neighbors": 5, "weights": "distance", "p": 2}]
        return _grid(n_neighbors=[1, 3, 5, 7, 9, 15], weights=["uniform", "distance"], p=[1, 2])
    if family == "logreg":
        if quick:
            return [{"C": 1.0}, {"C": 1.0, "features": "xy+dist+angles"}]
        return _grid(C=[0.1, 1.0, 10.0, 100.0, 1000.0], features=SWEPT_FEATURE_SETS)
    raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")


def is_reference(family: str, params: dict) -> bool:
    reference = REFERENCE_CONFIGS.get(family)
    return reference is not None and all(params.get(k) == v for k, v in reference.items())


def run_name(family: str, params: dict, features: str = DEFAULT_FEATURE_SET) -> str:
    short = {"n_estimators": "n", "max_depth": "depth", "max_features": "mf", "n_neighbors": "k"}
    parts = [family] + [f"{short.get(k, k)}={v}" for k, v in params.items() if k != "features"]
    if features != DEFAULT_FEATURE_SET:
        parts.append(f"[{features}]")
    return " ".join(parts)
