"""Bring-your-own-data readers: keypoint CSVs, HaGRID-style CSVs with any labels, label files,
imported datasets with their datasheets; every bad input a line-numbered error or a counted
quarantine row."""

import json

import numpy as np
import pandas as pd
import pytest

from gesturelab import config, datasets
from gesturelab.cli import main
from gesturelab.datasets import keypoint_csv
from gesturelab.datasets.importing import import_dataset
from gesturelab.datasets.labels import read_label_file
from gesturelab.datasets.landmarks import HAGRID_CLASSES, LANDMARK_COLUMNS_2D
from gesturelab.datasets.static_data import prepare
from gesturelab.errors import LandmarkDataError, SweepDataError

KEYPOINTS = config.KEYPOINT_CSV
LABELS = KEYPOINTS.parent / "keypoint_classifier_label.csv"


@pytest.fixture(scope="module")
def keypoint_rows() -> pd.DataFrame:
    """The shipped keypoint file as its project writes it: index first, 42 values."""
    return pd.read_csv(KEYPOINTS, header=None, dtype=str, keep_default_na=False)


def write_rows(path, rows: pd.DataFrame, **options):
    rows.to_csv(path, index=False, header=options.pop("header", False), **options)
    return path


def test_the_shipped_keypoint_file_is_read_as_it_is():
    loaded = datasets.read(KEYPOINTS, quarantine_dir=None, verbose=False)
    assert loaded.format == "keypoint-csv" and loaded.dims == 2
    assert loaded.classes == ["Open", "Close", "Pointer"]  # the label file's order
    assert loaded.counts == {"rows_read": 4450, "rows_kept": 4450, "rows_rejected": 0}
    assert loaded.data["label"].value_counts().to_dict() == {
        "Close": 1572,
        "Open": 1522,
        "Pointer": 1356,
    }
    assert loaded.X.shape == (4450, 21, 2)
    assert np.allclose(loaded.X[:, 0], 0.0)  # wrist-relative, as the project writes them
    assert any("keypoint_classifier_label.csv" in note for note in loaded.notes)


def test_the_label_file_tolerates_a_byte_order_mark_and_windows_line_ends(tmp_path):
    assert LABELS.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_label_file(LABELS) == ["Open", "Close", "Pointer"]
    blank = tmp_path / "labels.csv"
    blank.write_text("a\n\nb\n")
    with pytest.raises(LandmarkDataError, match=r"labels\.csv, line 2: blank line"):
        read_label_file(blank)
    twice = tmp_path / "twice.csv"
    twice.write_text("a\nb\na\n")
    with pytest.raises(LandmarkDataError, match=r"line 3: class name 'a' given twice"):
        read_label_file(twice)


def test_a_header_is_told_from_a_first_row_with_a_bad_cell(keypoint_rows, tmp_path):
    rows = keypoint_rows.iloc[:30].copy()
    path = write_rows(tmp_path / "counted.csv", rows, header=True)  # pandas: 0,1,...,42
    assert path.read_text().startswith("0,1,2,")
    loaded = datasets.read(path, labels=LABELS, quarantine_dir=None, verbose=False)
    assert loaded.counts["rows_read"] == 30 and "a header line" in loaded.notes[0]
    rows.iloc[0, 5] = "n/a"  # the first row keeps its place and is judged as a row
    path = write_rows(tmp_path / "bad_first.csv", rows)
    loaded = datasets.read(path, labels=LABELS, quarantine_dir=None, verbose=False)
    assert loaded.counts == {"rows_read": 30, "rows_kept": 29, "rows_rejected": 1}
    assert loaded.rejected["line"].tolist() == [1]
    header = tmp_path / "with_header_label.csv"
    header.write_text("name\nOpen\nClose\n")
    with pytest.raises(LandmarkDataError, match="line 1: the first line 'name' looks like"):
        read_label_file(header)
    with pytest.raises(LandmarkDataError, match="is a folder, not a label file"):
        read_label_file(tmp_path)


def test_header_label_last_and_names(keypoint_rows, tmp_path):
    names = dict(enumerate(read_label_file(LABELS)))
    rows = keypoint_rows.iloc[::50, 1:].copy()
    rows["gesture"] = [names[int(i)] for i in keypoint_rows.iloc[::50, 0]]
    rows.columns = [f"{a}{k}" for k in range(21) for a in "xy"] + ["gesture"]
    path = write_rows(tmp_path / "mine.csv", rows, header=True)
    loaded = datasets.read(path, quarantine_dir=None, verbose=False)
    assert loaded.format == "keypoint-csv"
    assert loaded.classes == ["Close", "Open", "Pointer"]  # no label file: sorted
    assert len(loaded.data) == len(rows)
    np.testing.assert_allclose(
        loaded.data[list(LANDMARK_COLUMNS_2D)].to_numpy(), rows.iloc[:, :42].astype(float)
    )


def test_semicolons_and_decimal_commas(keypoint_rows, tmp_path):
    rows = keypoint_rows.iloc[::100].apply(lambda c: c.str.replace(".", ",", regex=False))
    path = write_rows(tmp_path / "keypoint.csv", rows, sep=";")
    (tmp_path / "keypoint_classifier_label.csv").write_bytes(LABELS.read_bytes())
    loaded = datasets.read(path, quarantine_dir=None, verbose=False)
    assert loaded.counts["rows_kept"] == len(rows)
    reference = keypoint_rows.iloc[::100, 1:].astype(float).to_numpy()
    np.testing.assert_allclose(loaded.data[list(LANDMARK_COLUMNS_2D)].to_numpy(), reference)


def test_bad_keypoint_rows_are_quarantined_with_their_line(keypoint_rows, tmp_path):
    rows = keypoint_rows.iloc[:40].copy()
    path = write_rows(tmp_path / "keypoint.csv", rows)
    text = path.read_text().splitlines()
    text[4] = "7," + text[4].split(",", 1)[1]  # line 5: an index the label file does not name
    text[9] = ",".join(text[9].split(",")[:-1])  # line 10: 41 values
    text[14] = text[14].replace(",", ",abc,", 1).rsplit(",", 1)[0]  # line 15: a word
    path.write_text("\n".join(text) + "\n")
    quarantine = tmp_path / "quarantine"
    loaded = datasets.read(path, labels=LABELS, quarantine_dir=quarantine, verbose=False)
    reasons = dict(zip(loaded.rejected["line"], loaded.rejected["reason"], strict=True))
    assert reasons[5] == (
        "label index 7 has no name in keypoint_classifier_label.csv (3 names: indices 0-2)"
    )
    assert reasons[10] == "42 fields where a label and 42 values belong (21 landmarks × x, y)"
    quarantined = loaded.rejected.set_index("line")
    assert quarantined.loc[10, "x21"] == text[9].split(",")[-1]  # what the line held is kept
    assert reasons[15] == "non-numeric value 'abc' in column 'x1'"
    assert loaded.counts == {"rows_read": 40, "rows_kept": 37, "rows_rejected": 3}
    assert loaded.quarantine_path.parent == quarantine
    assert len(pd.read_csv(loaded.quarantine_path)) == 3


def test_a_2d_file_with_a_stray_z_column_is_named_as_such(keypoint_rows, tmp_path):
    rows = keypoint_rows.iloc[:20, 1:].copy()
    rows.columns = list(LANDMARK_COLUMNS_2D)
    rows["z5"], rows["label"] = "0.1", keypoint_rows.iloc[:20, 0]
    path = write_rows(tmp_path / "stray.csv", rows, header=True)
    with pytest.raises(LandmarkDataError, match=r"column 'z5': z column\(s\) z5 in a file"):
        datasets.read(path, quarantine_dir=None, verbose=False)


def test_indices_without_a_label_file_are_their_own_names(keypoint_rows, tmp_path):
    path = write_rows(tmp_path / "recorded.csv", keypoint_rows.iloc[::30])
    loaded = datasets.read(path, quarantine_dir=None, verbose=False)
    assert loaded.classes == ["0", "1", "2"]
    assert any("no label file was found" in note for note in loaded.notes)


def test_a_file_of_only_numbers_in_both_end_columns_asks_where_the_label_is(tmp_path):
    path = tmp_path / "ambiguous.csv"  # integer pixel coordinates, integer labels
    rows = np.random.default_rng(0).integers(1, 500, (5, 43))
    path.write_text("\n".join(",".join(map(str, row)) for row in rows) + "\n")
    with pytest.raises(LandmarkDataError, match="--label-column first|last"):
        datasets.read(path, quarantine_dir=None, verbose=False)
    loaded = datasets.read(path, label_column="last", quarantine_dir=None, verbose=False)
    assert loaded.counts["rows_kept"] == 5
    assert loaded.classes == sorted(map(str, set(rows[:, -1])))


def test_a_hagrid_csv_with_other_labels_keeps_them(sample_frame, tmp_path):
    frame = sample_frame.copy()
    mine = {"like": "thumbs_up", "dislike": "thumbs_down", "fist": "grip", "palm": "open_hand"}
    frame = frame[frame["label"].isin(mine)].replace({"label": mine})
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    prepared = prepare(path, quarantine_dir=None, verbose=False)
    assert prepared.classes == ["grip", "open_hand", "thumbs_down", "thumbs_up"]
    assert prepared.dims == 3
    # --classes restricts and orders; the others are counted and quarantined.
    only = tmp_path / "only.txt"
    only.write_text("thumbs_up\nthumbs_down\n")
    restricted = datasets.read(path, classes=only, quarantine_dir=tmp_path / "q", verbose=False)
    assert restricted.classes == ["thumbs_up", "thumbs_down"]
    assert restricted.counts["rows_rejected"] == (~frame["label"].str.startswith("thumbs")).sum()
    assert restricted.rejected["reason"].str.startswith("unknown label").all()
    # HaGRID's own check is still there for HaGRID's files.
    with pytest.raises(LandmarkDataError, match="none of the file's labels .* is in the given"):
        datasets.read(path, classes="hagrid", quarantine_dir=None, verbose=False)
    assert datasets.class_list("hagrid") == list(HAGRID_CLASSES)


def test_the_keypoint_file_is_split_in_long_blocks():
    prepared = prepare(KEYPOINTS, quarantine_dir=None, verbose=False)
    sizes = prepared.data.groupby("group").size()
    assert len(sizes) == 36 and sizes.min() > 100  # 12 blocks per class, not 445 of 10 rows
    assert prepared.data.groupby("group")["split"].nunique().max() == 1
    assert set(prepared.part("test")["label"]) == {"Open", "Close", "Pointer"}
    assert "12" not in prepared.group_source or "blocks" in prepared.group_source


def test_import_writes_the_canonical_form_and_a_datasheet(tmp_path, capsys):
    code = main(
        ["data", "import", str(KEYPOINTS), "--name", "kp", "--data-dir", str(tmp_path),
         "--quarantine-dir", str(tmp_path / "q")]
    )  # fmt: skip
    assert code == 0
    folder = tmp_path / "kp"
    sheet = json.loads((folder / "datasheet.json").read_text())
    assert sheet["format"] == "keypoint-csv" and sheet["landmarks"] == "2-D (x, y)"
    assert sheet["classes"] == ["Open", "Close", "Pointer"]
    assert sheet["rows_per_class"] == {"Open": 1522, "Close": 1572, "Pointer": 1356}
    assert sheet["source_sha256"] == datasets.read(KEYPOINTS, quarantine_dir=None).fingerprint
    assert sheet["license_file"] == "LICENSE" and "Apache License" in sheet["license"]
    assert "data import" in sheet["command"]
    assert (folder / "LICENSE").is_file() and "## Classes (3)" in (
        folder / "datasheet.md"
    ).read_text()
    # The name is the dataset from now on, in the label file's order.
    again = datasets.read("kp", data_dir=tmp_path, quarantine_dir=None, verbose=False)
    assert again.name == "kp" and again.dims == 2 and again.classes == sheet["classes"]
    assert len(again.data) == 4450
    out = capsys.readouterr().out
    assert "classes (3): Open 1522, Close 1572, Pointer 1356" in out


def test_unknown_names_and_bad_dataset_names(tmp_path):
    with pytest.raises(LandmarkDataError, match="nor an imported dataset"):
        datasets.read("no-such-dataset", data_dir=tmp_path)
    loaded = datasets.read(KEYPOINTS, quarantine_dir=None, verbose=False)
    with pytest.raises(LandmarkDataError, match="a dataset name is lower-case"):
        import_dataset(loaded, "My Data", data_dir=tmp_path)
    (tmp_path / "taken").mkdir()
    with pytest.raises(LandmarkDataError, match="is not an imported dataset"):
        import_dataset(loaded, "taken", data_dir=tmp_path)


def test_an_import_is_whole_or_not_at_all_and_one_at_a_time(tmp_path, monkeypatch):
    """A killed first import blocked the name forever, a killed re-import left a 0-byte file,
    and two imports of one name both reported success while one was silently replaced."""
    import fcntl

    from gesturelab.datasets import importing

    loaded = datasets.read(KEYPOINTS, quarantine_dir=None, verbose=False)
    write = importing._write_landmarks

    def interrupted(loaded, name, folder, command):
        (folder / "landmarks.csv").write_text("x1")  # half-written, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(importing, "_write_landmarks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_dataset(loaded, "kp", data_dir=tmp_path)
    assert not (tmp_path / "kp").exists(), "a first import that died left the name taken"
    monkeypatch.setattr(importing, "_write_landmarks", write)
    sheet = (import_dataset(loaded, "kp", data_dir=tmp_path) / "datasheet.json").read_text()

    monkeypatch.setattr(importing, "_write_landmarks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_dataset(loaded, "kp", data_dir=tmp_path)
    assert (tmp_path / "kp" / "datasheet.json").read_text() == sheet, "a re-import half-replaced it"
    assert len(pd.read_csv(tmp_path / "kp" / "landmarks.csv")) == 4450
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []

    monkeypatch.setattr(importing, "_write_landmarks", write)
    with open(tmp_path / ".kp.lock", "w") as lock:  # another import holds the name
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(LandmarkDataError, match="another import of this name is running"):
            import_dataset(loaded, "kp", data_dir=tmp_path)


def test_one_class_is_refused_before_a_sweep(keypoint_rows, tmp_path):
    from gesturelab.training.sweep_state import check_sweepable

    path = write_rows(tmp_path / "keypoint.csv", keypoint_rows[keypoint_rows[0] == "0"])
    prepared = prepare(path, quarantine_dir=None, verbose=False)
    with pytest.raises(SweepDataError, match="a classifier needs at least two classes"):
        check_sweepable(prepared, {})


def test_inspect_prints_what_the_file_holds(tmp_path, capsys):
    assert main(["data", "inspect", str(KEYPOINTS), "--quarantine-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "keypoint-csv, 2-D (x, y) landmarks" in out
    assert "rows: 4450 read, 4450 kept, 0 rejected" in out
    assert "groups: none in the file: 36 contiguous blocks within label runs" in out


def test_sniffing_tells_the_formats_apart(sample_csv, tmp_path):
    assert datasets.detect(KEYPOINTS).name == "keypoint-csv"
    assert datasets.detect(sample_csv).name == "landmark-csv"
    assert keypoint_csv.sniff(sample_csv) is False
    with pytest.raises(LandmarkDataError, match="without class folders"):
        datasets.detect(tmp_path)


@pytest.mark.slow
@pytest.mark.sweep
def test_a_hagrid_csv_with_other_labels_sweeps_into_its_own_experiment(
    sample_frame, mlflow_store, tmp_path
):
    from conftest import run_cli
    from mlflow.tracking import MlflowClient

    mine = {"like": "thumbs_up", "dislike": "thumbs_down", "fist": "grip", "palm": "open_hand"}
    frame = sample_frame[sample_frame["label"].isin(mine)].replace({"label": mine})
    path = tmp_path / "my_gestures.csv"
    frame.to_csv(path, index=False)
    out = run_cli(
        "sweep", "--data", path, "--quick", "--families", "logreg", "knn",
        store=mlflow_store, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "experiment: my-gestures-classical-sweep" in out.stdout
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("my-gestures-classical-sweep")
    (champion,) = client.search_runs(
        [experiment.experiment_id], "tags.run_kind = 'champion'", max_results=5
    )
    assert json.loads(champion.data.tags["label_set"]) == sorted(mine.values())
    assert client.get_experiment_by_name(config.STATIC_EXPERIMENT) is None
    assert champion.data.params["reject_method"] == "threshold"
    assert 0.9 <= champion.data.metrics["reject_val_coverage"] <= 1.0
