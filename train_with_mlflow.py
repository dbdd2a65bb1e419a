"""The project's only door to MLflow: the store, runs and what they log, models, the registry.

The store lives in the repository's ``mlruns/`` (SQLite database and artifacts both inside it)
unless ``MLFLOW_TRACKING_URI`` is set. Every path is absolute, taken from ``gesturelab.config``,
because papermill and JupyterLab start kernels in different working directories and MLflow's
defaults follow the working directory.

This module only records and fetches: callers compute metrics and build figures, and get plain
records back (``RunRecord``), so no caller needs MLflow's column names or imports ``mlflow``.
The code lives in ``gesturelab/tracking/`` (store, records, ui, queries, runs, registry,
model_files); this file re-exports it for the notebooks and the package, and holds the loader
MLflow's pyfunc calls for our Keras models (``loader_module: train_with_mlflow``).
"""

from __future__ import annotations

from gesturelab.tracking.model_files import (  # noqa: F401
    LoadedModel,
    model_checksums,
    model_version_info,
    open_model,
    run_json,
    run_of_model,
)
from gesturelab.tracking.queries import (  # noqa: F401
    finished_run_with_key,
    finished_runs,
    leaderboard,
    missing_runs,
    model_present,
    runs_used_since,
)
from gesturelab.tracking.records import (  # noqa: F401
    RunRecord,
    Runs,
    experiment_of_run,
    get_run,
    label_set_key,
    read_curves,
)
from gesturelab.tracking.registry import (  # noqa: F401
    CHALLENGER_ALIAS,
    alias_run_id,
    alias_tags,
    alias_version,
    check_registration,
    drop_alias,
    move_alias,
    register_model,
    tag_version,
    version_tags,
)
from gesturelab.tracking.runs import (  # noqa: F401
    KERAS_PIP_REQUIREMENTS,
    PACKAGE_DIR,
    SKLEARN_PIP_REQUIREMENTS,
    Run,
    adopt_run,
    git_commit,
    log_experiment_run,
    open_run,
    parent_run,
    pinned,
    run_origin,
    start_run,
    tagging,
)
from gesturelab.tracking.store import (  # noqa: F401
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    TrackingError,
    access_refusal,
    artifact_root,
    fail_orphaned_runs,
    find_experiment_id,
    get_or_create_experiment,
    is_store_file,
    local_artifact_roots,
    setup,
    tracking_uri,
)
from gesturelab.tracking.ui import (  # noqa: F401
    DESCRIPTION_TAG,
    LEADERBOARD_VIEW,
    SAVED_VIEW_TAG,
    UI_URL,
    describe_experiment,
    experiment_description,
    model_version_link,
    run_link,
    save_runs_view,
    store_exists,
    ui_pages,
    ui_url,
)


def _load_pyfunc(path):
    """MLflow pyfunc's loader of our Keras models (see ``_KerasWithLayers``)."""
    from mlflow.keras.load import _load_pyfunc as load_keras_pyfunc

    import gesturelab.models.seq_models  # noqa: F401  registers SequenceFeatures, FrameDifference, ...

    return load_keras_pyfunc(path)
