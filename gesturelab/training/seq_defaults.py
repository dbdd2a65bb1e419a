"""What a sequence dataset's models are called, trained with and logged beside: names, default
architecture and frame count, TensorBoard links.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gesturelab import config
from gesturelab.datasets.sequences import SequenceSet
from gesturelab.training.seq_runs import tracking


def dataset_info(data: SequenceSet, path=None) -> dict:
    from gesturelab.datasets.loading import file_fingerprint

    info = {
        "source": str(path or data.source),
        "n_sequences": len(data),
        "n_subjects": len(np.unique(data.subjects)),
        "n_classes": len(data.classes),
    }
    if path is not None and Path(path).exists():
        info["sha256"] = file_fingerprint(path)
    return info


def tensorboard_url(log_dir) -> str:
    """Where ``make tensorboard`` shows one fit's curves (TensorBoard's run filter)."""
    return f"{config.TENSORBOARD_URL}/?runFilter={Path(log_dir).name}#timeseries"


def default_architecture(n_classes: int) -> tuple[str, str]:
    """The architecture ``train-seq`` uses unless told, and why: that of the registered
    champion of SHREC'17's ``n_classes`` gestures, else ``config.SEQUENCE_ARCHITECTURES``."""
    name = config.SEQUENCE_MODEL_NAMES.get(n_classes)
    tags = tracking().alias_tags(name) if name else None
    if tags and tags.get("arch"):
        return tags["arch"], f"that of the registered {name}@{config.CHAMPION_ALIAS}"
    arch = config.SEQUENCE_ARCHITECTURES.get(n_classes, config.SEQUENCE_ARCHITECTURES[14])
    return arch, "config.SEQUENCE_ARCHITECTURES: no registered champion to follow"


# Frames a model of a new dataset resamples each sequence to, unless told: its median length,
# within what the architectures were tuned for (SHREC'17's median is 57 frames at 30 fps).
FRAMES_RANGE = (8, 64)


def frames_for(data: SequenceSet) -> int:
    low, high = FRAMES_RANGE
    return int(np.clip(round(float(np.median(data.lengths))), low, high))


def sequence_model_name(classes, dataset_name) -> str:
    """The registered name of a sequence model of any dataset but SHREC'17: its own, with
    the number of classes, so that no other label set can take SHREC's champion alias."""
    from gesturelab.training.sweep import dataset_slug

    return f"{dataset_slug(dataset_name)}-{len(classes)}-sequence-gestures"


def sequence_experiment(dataset_name) -> str:
    from gesturelab.training.sweep import dataset_slug

    return f"{dataset_slug(dataset_name)}-sequence-models"
