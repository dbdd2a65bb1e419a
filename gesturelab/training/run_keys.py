"""Run keys: everything that decides a stored result, hashed into one string.

A finished run whose key equals the one a training would have is reused instead of trained
again (a second ``make reproduce`` trains nothing). One scheme for both kinds of model: the
configuration (seed included), the data's digests, the code that trains or scores it, and the
versions of the libraries that compute it, so editing a module or upgrading scikit-learn or
TensorFlow trains again instead of silently reusing results of the old code.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import metadata

from gesturelab import config

# The code each kind of result depends on (paths inside the package).
STATIC_TRAINING_CODE = (
    "training/sweep.py", "training/sweep_state.py", "training/selection_rules.py",
    "training/sweep_transfer.py", "training/sweep_champion.py", "models/static_families.py",
    "models/static_mlp.py", "models/static_ensemble.py",
    "features/landmark_features.py", "features/augment.py", "datasets/splits.py",
    "datasets/static_data.py", "evaluation/metrics.py",
)  # fmt: skip
SEQUENCE_TRAINING_CODE = (
    "training/seq_training.py", "models/seq_models.py", "datasets/sequences.py",
    "datasets/landmarks.py",
)  # fmt: skip
# What a stored score depends on besides the training code: test scores, reject rules.
SCORING_CODE = (
    "evaluation/full_report.py", "models/predictor.py", "models/rejection.py",
    "datasets/landmarks.py",
)  # fmt: skip
# The libraries whose versions decide the numbers (the static MLP family is a Keras network).
STATIC_LIBRARIES = ("scikit-learn", "scipy", "numpy", "keras", "tensorflow-cpu")
SEQUENCE_LIBRARIES = ("keras", "tensorflow-cpu", "numpy")


@cache
def code_version(files: tuple[str, ...], libraries: tuple[str, ...] = ()) -> str:
    """A digest of ``files`` (paths inside the package) and the installed ``libraries``."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode())
        digest.update((config.REPO_ROOT / "gesturelab" / name).read_bytes())
    digest.update(" ".join(f"{d}=={metadata.version(d)}" for d in libraries).encode())
    return digest.hexdigest()[:16]


def static_code_version() -> str:
    return code_version(STATIC_TRAINING_CODE, STATIC_LIBRARIES)


def sequence_code_version() -> str:
    return code_version(SEQUENCE_TRAINING_CODE, SEQUENCE_LIBRARIES)


def scoring_code_version() -> str:
    return code_version(SCORING_CODE)


def run_key(**parts) -> str:
    """The key of a training: its parts (configuration, data digests, seed, role) and the code."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def derived_key(*parts) -> str:
    """The key of what is computed from a keyed run (its test scores, its refit, a champion)."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
