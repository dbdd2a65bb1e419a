"""A champion alias only moves to a model of the same classes and data, and only when asked."""

import mlflow
import pytest
from conftest import log_static_model, run_cli
from mlflow.tracking import MlflowClient

import train_with_mlflow as tracking
from gesturelab import config
from gesturelab.cli import build_parser
from gesturelab.datasets.landmarks import HAGRID_CLASSES, LABEL_COLUMN
from gesturelab.datasets.static_data import prepare
from gesturelab.errors import RegistryError
from gesturelab.models.predictor import model_classes
from gesturelab.models.static_families import build_pipeline
from gesturelab.training.sweep import default_model_name, run_sweep

NAME = config.STATIC_MODEL_NAME


@pytest.fixture(scope="module")
def prepared():
    return prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)


def _logged_model(prepared):
    X, y = prepared.Xy("train")
    pipeline = build_pipeline("svm", {"kernel": "linear", "C": 1.0}).fit(X, y)
    return log_static_model(pipeline, X, "registry-test")


def _champion_version():
    return str(MlflowClient().get_model_version_by_alias(NAME, config.CHAMPION_ALIAS).version)


def test_alias_moves_only_between_models_of_one_label_set_and_dataset(mlflow_store, prepared):
    uri = _logged_model(prepared)
    sha = prepared.loaded.fingerprint
    tracking.register_model(uri, NAME, label_set=HAGRID_CLASSES, data_sha256=sha)
    with pytest.raises(RegistryError, match="predicts 18 other classes than this model's 9"):
        tracking.register_model(uri, NAME, label_set=HAGRID_CLASSES[:9], data_sha256=sha)
    with pytest.raises(RegistryError, match="trained on other data"):
        tracking.register_model(uri, NAME, label_set=HAGRID_CLASSES, data_sha256="0" * 64)
    assert _champion_version() == "1"
    assert len(MlflowClient().search_model_versions(f"name='{NAME}'")) == 1
    tracking.register_model(uri, NAME, label_set=HAGRID_CLASSES, data_sha256=sha)
    assert _champion_version() == "2"


def test_a_quick_sweep_is_never_registered_under_the_label_sets_name(mlflow_store, prepared):
    with pytest.raises(RegistryError, match=f"quick sweep is never registered as '{NAME}'"):
        run_sweep(prepared, quick=True, register_as=NAME, progress=False)


def test_each_label_set_has_its_own_default_name(tmp_path):
    assert default_model_name(HAGRID_CLASSES, "any.csv") == NAME
    assert default_model_name(["a", "b"], tmp_path / "My Gestures.csv") == "my-gestures-2-gestures"


def test_sweep_writes_figures_outside_the_readme_figures_by_default():
    from gesturelab.cli import sweep_figures_dir

    args = build_parser().parse_args(["sweep"])
    assert not args.register
    assert sweep_figures_dir(args.figures_dir, config.STATIC_EXPERIMENT) == (
        config.SCRATCH_FIGURES_DIR
    )
    assert sweep_figures_dir(None, "keypoint-classical-sweep") == (
        config.SCRATCH_FIGURES_DIR / "keypoint"
    )


def _subset(tmp_path, prepared, n_classes=9):
    data = prepared.loaded.data
    keep = data[data[LABEL_COLUMN].isin(sorted(data[LABEL_COLUMN].unique())[:n_classes])]
    path = tmp_path / "subset.csv"
    keep.to_csv(path, index=False)
    return path


@pytest.mark.integration
def test_registering_a_subset_over_hagrids_champion_is_refused_before_training(
    mlflow_store, prepared, tmp_path
):
    uri = _logged_model(prepared)
    tracking.register_model(
        uri, NAME, label_set=prepared.classes, data_sha256=prepared.loaded.fingerprint
    )
    out = run_cli(
        "sweep",
        "--register",
        "--model-name",
        NAME,
        "--data",
        _subset(tmp_path, prepared),
        "--experiment",
        "scratch",
        store=mlflow_store,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "nothing was moved" in out.stderr.strip().splitlines()[-1]
    assert mlflow.get_experiment_by_name("scratch") is None  # refused before any run
    assert _champion_version() == "1"
    assert (
        run_cli("sweep", "--quick", "--register", store=mlflow_store, cwd=tmp_path).returncode == 2
    )


@pytest.mark.slow
@pytest.mark.sweep
def test_quick_sweep_of_a_subset_leaves_the_champion_and_the_readme_figures(
    mlflow_store, prepared, tmp_path
):
    uri = _logged_model(prepared)
    tracking.register_model(
        uri, NAME, label_set=prepared.classes, data_sha256=prepared.loaded.fingerprint
    )
    before = {p.name: p.stat().st_mtime_ns for p in config.FIGURES_DIR.glob("*.png")}
    scratch = config.SCRATCH_FIGURES_DIR / "scratch"  # another label set: a folder of its own
    (scratch / "leaderboard.png").unlink(missing_ok=True)
    out = run_cli(
        "sweep",
        "--quick",
        "--families",
        "logreg",
        "knn",
        "--experiment",
        "scratch",
        "--data",
        _subset(tmp_path, prepared),
        store=mlflow_store,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert _champion_version() == "1"
    assert [m.name for m in MlflowClient().search_registered_models()] == [NAME]
    assert {p.name: p.stat().st_mtime_ns for p in config.FIGURES_DIR.glob("*.png")} == before
    assert (scratch / "leaderboard.png").exists()


def test_an_untagged_champion_is_judged_by_its_own_classes(mlflow_store, prepared):
    """Versions registered by older code carry no label_set tag; the model itself has one."""
    uri = _logged_model(prepared)
    version = mlflow.register_model(uri, NAME)
    MlflowClient().set_registered_model_alias(NAME, config.CHAMPION_ALIAS, version.version)
    with pytest.raises(RegistryError, match="other classes"):
        tracking.register_model(
            uri, NAME, label_set=["a", "b"], data_sha256="0" * 64, classes_of=model_classes
        )
    with pytest.raises(RegistryError, match="does not say which classes"):
        tracking.register_model(uri, NAME, label_set=prepared.classes, data_sha256=None)
    tracking.register_model(
        uri, NAME, label_set=prepared.classes, data_sha256=None, classes_of=model_classes
    )
    assert _champion_version() == "2"
    with pytest.raises(RegistryError, match="cannot be a registered model name"):
        tracking.check_registration("a/b", prepared.classes, None)


def test_a_file_with_too_few_users_is_one_line(sample_frame, tmp_path):
    from gesturelab.errors import SweepDataError

    frame = sample_frame[sample_frame["label"].isin(["palm", "fist", "like"])].copy()
    frame["user_id"] = [f"u{i % 4}" for i in range(len(frame))]
    path = tmp_path / "users4.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(SweepDataError, match="only 4 groups for 5 folds"):
        prepare(path, quarantine_dir=None, verbose=False)
