"""What a user sees when something they gave is wrong: one line, exit code 2, nothing lost."""

import shutil

import mlflow.keras
import mlflow.sklearn
import pandas as pd
import pytest
from conftest import cli_here, run_cli

from gesturelab import config
from gesturelab.datasets.static_data import prepare
from gesturelab.models.static_families import SKOPS_TRUSTED_TYPES, build_pipeline

SAMPLES = config.DATA_DIR / "mediapipe_samples"

# Every test runs the command line: in a subprocess where the whole process is the point (a
# library's noise on the terminal, files a crash would leave), in this process (``cli_here``)
# where the message is, which spares each call an interpreter's start and TensorFlow's import.
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def static_model(tmp_path_factory):
    """A static model folder as the project writes one (skops, trusted types)."""
    prepared = prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)
    X, y = prepared.Xy("train")
    folder = tmp_path_factory.mktemp("models") / "static"
    pipeline = build_pipeline("svm", {"kernel": "linear", "C": 1.0}).fit(X, y)
    mlflow.sklearn.save_model(
        pipeline, folder, skops_trusted_types=list(SKOPS_TRUSTED_TYPES), pip_requirements=[]
    )
    return folder


@pytest.fixture(scope="module")
def sequence_model(tmp_path_factory):
    from gesturelab.models.seq_models import build_model

    folder = tmp_path_factory.mktemp("models") / "sequence"
    model = build_model("cnn", 16, 14, width=8)
    mlflow.keras.save_model(
        model, str(folder), pip_requirements=[], metadata={"classes": list("abcdefghijklmn")}
    )
    return folder


def test_extract_keeps_every_readable_file_when_one_video_is_broken(tmp_path, store):
    folder = tmp_path / "m"
    folder.mkdir()
    for photo in SAMPLES.glob("*.jpg"):
        shutil.copy(photo, folder)
    (folder / "zero.mp4").write_bytes(b"")
    out = run_cli(
        "extract",
        "--input",
        folder,
        "--out",
        tmp_path / "m.csv",
        "--no-progress",
        cwd=tmp_path,
        store=store,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = pd.read_csv(tmp_path / "m.csv")
    assert len(rows) == 3  # thumb_up: 1 hand, two_thumbs_up: 2
    problems = pd.read_csv(tmp_path / "m.problems.csv")
    assert problems.to_dict("records") == [
        {
            "source": str(folder / "zero.mp4"),
            "problem": "cannot open video (empty, damaged or not a video)",
        }
    ]


def test_predict_on_an_unopenable_video_is_one_line(tmp_path, store, static_model):
    (tmp_path / "zero.mp4").write_bytes(b"")
    out = run_cli(
        "predict",
        "--model",
        static_model,
        "--input",
        tmp_path / "zero.mp4",
        "--out",
        tmp_path / "out",
        "--no-progress",
        cwd=tmp_path,
        store=store,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'zero.mp4'}: cannot open video (empty, damaged or not a video)"
    )
    assert "Traceback" not in out.stderr
    problems = pd.read_csv(tmp_path / "out" / "problems.csv")
    assert list(problems["source"]) == [str(tmp_path / "zero.mp4")]


def test_predict_flags_a_truncated_photo_and_writes_its_problems(tmp_path, store, static_model):
    photo = tmp_path / "thumb_up.jpg"
    photo.write_bytes((SAMPLES / "thumb_up.jpg").read_bytes()[:20_000])
    out = run_cli(
        "predict",
        "--model",
        static_model,
        "--input",
        photo,
        "--out",
        tmp_path / "out",
        "--no-progress",
        cwd=tmp_path,
        store=store,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(partly decoded image)" in out.stdout
    problems = pd.read_csv(tmp_path / "out" / "problems.csv")
    assert problems["problem"].iat[0].startswith("partly decoded")


def test_a_sequence_model_is_refused_where_it_needs_single_hands(tmp_path, store, sequence_model):
    out = cli_here(
        "evaluate",
        "--model",
        sequence_model,
        "--data",
        config.HAGRID_SAMPLE_CSV,
        "--no-log",
        cwd=tmp_path,
        store=store,
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert "is a sequence model (16 frames per gesture)" in last and "evaluate-seq" in last
    assert "Traceback" not in out.stderr


def test_predict_with_a_sequence_model_on_a_photo_says_it_needs_a_sequence(
    tmp_path, store, sequence_model
):
    photo = SAMPLES / "thumb_up.jpg"
    out = cli_here(
        "predict", "--model", sequence_model, "--input", photo, cwd=tmp_path, store=store
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert "is a sequence model (16 frames per gesture)" in last
    assert "needs a sequence (a video, or --camera 0)" in last and "thumb_up.jpg" in last
    assert "Traceback" not in out.stderr


def test_predict_with_a_sequence_model_on_a_static_csv_says_it_needs_a_sequence(
    tmp_path, store, sequence_model
):
    out = cli_here(
        "predict",
        "--model",
        sequence_model,
        "--input",
        config.HAGRID_SAMPLE_CSV,
        cwd=tmp_path,
        store=store,
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert "needs a sequence (a video, or --camera 0)" in last and "is no video" in last
    assert "evaluate-seq --data" in last and "Traceback" not in out.stderr


def test_a_static_model_is_refused_by_evaluate_seq(tmp_path, store, static_model):
    out = cli_here(
        "evaluate-seq", "--model", static_model, "--split", "train", cwd=tmp_path, store=store
    )
    assert out.returncode == 2
    assert "is a static (scikit-learn) model" in out.stderr.strip().splitlines()[-1]
    assert "KeyError" not in out.stderr


@pytest.mark.parametrize(
    "model",
    [
        "models:/nonexistent@champion",
        "runs:/0123456789abcdef0123456789abcdef/model",
        "models:/",
        "not/a/model",
    ],
)
def test_a_model_that_does_not_exist_is_one_line(tmp_path, store, model):
    from gesturelab.errors import GestureLabError

    command = ["evaluate", "--model", model, "--data", config.HAGRID_SAMPLE_CSV, "--no-log"]
    # In this process (seconds less each); the registry's case also as a user runs it, where
    # a library's log line on the terminal would show.
    out = cli_here(*command, cwd=tmp_path, store=store)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr
    with pytest.raises(GestureLabError):  # --debug: the traceback, not the line
        cli_here("--debug", *command, cwd=tmp_path, store=store)
    if model.startswith("models:/nonexistent"):
        out = run_cli(*command, cwd=tmp_path, store=store)
        assert out.returncode == 2
        lines = [x for x in out.stderr.strip().splitlines() if "mlflow.store.db" not in x]
        assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert "Traceback" in run_cli("--debug", *command, cwd=tmp_path, store=store).stderr


@pytest.mark.parametrize("model", ["models:/nonexistent/1", "models:/nonexistent@champion"])
def test_the_card_of_a_model_that_does_not_exist_is_one_line(tmp_path, store, model):
    out = cli_here("model", "info", model, cwd=tmp_path, store=store)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {model}: "), out.stderr


def test_extract_says_so_when_nothing_could_be_read(tmp_path, store):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = run_cli(
        "extract",
        "--input",
        tmp_path / "in",
        "--out",
        tmp_path / "rows.csv",
        "--no-progress",
        cwd=tmp_path,
        store=store,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "error: none of the 1 input(s) could be read"
    assert pd.read_csv(tmp_path / "rows.problems.csv")["problem"].tolist() == [
        "unreadable or corrupt image"
    ]


def test_an_unknown_architecture_is_refused_with_the_known_ones(tmp_path, store):
    out = cli_here("train-seq", "--arch", "transformer", cwd=tmp_path, store=store)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        "error: unknown architecture 'transformer'; known: lstm, gru, tcn, cnn, ddnet, ensemble"
    )
