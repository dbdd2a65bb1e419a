"""The landmark CSV loader on good files and on each kind of bad input."""

import numpy as np
import pandas as pd
import pytest

from gesturelab.datasets.landmarks import HAGRID_CLASSES, LANDMARK_COLUMNS
from gesturelab.datasets.loading import LandmarkDataError, file_fingerprint, load_landmarks_csv


def write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


def test_shipped_sample_loads_whole(sample_csv, tmp_path):
    loaded = load_landmarks_csv(sample_csv, quarantine_dir=tmp_path)
    assert loaded.counts == {"rows_read": 708, "rows_kept": 708, "rows_rejected": 0}
    assert sorted(set(loaded.y)) == sorted(HAGRID_CLASSES)
    assert loaded.X.shape == (708, 21, 3)
    assert loaded.fingerprint == file_fingerprint(sample_csv)
    assert loaded.quarantine_path is None
    assert not list(tmp_path.iterdir())


def test_missing_column_names_file_and_column(sample_frame, tmp_path):
    path = write(sample_frame.drop(columns=["y7"]), tmp_path / "missing.csv")
    with pytest.raises(LandmarkDataError) as error:
        load_landmarks_csv(path, quarantine_dir=tmp_path)
    message = str(error.value)
    assert "missing.csv" in message and "line 1" in message and "'y7'" in message


def test_missing_label_column(sample_frame, tmp_path):
    path = write(sample_frame.drop(columns=["label"]), tmp_path / "nolabel.csv")
    with pytest.raises(LandmarkDataError, match="label"):
        load_landmarks_csv(path)
    loaded = load_landmarks_csv(path, require_label=False, quarantine_dir=None, verbose=False)
    assert len(loaded.data) == 708


def test_unexpected_column(sample_frame, tmp_path):
    path = write(sample_frame.assign(colour="red"), tmp_path / "extra.csv")
    with pytest.raises(LandmarkDataError, match=r"extra\.csv, line 1, column 'colour'"):
        load_landmarks_csv(path)


def test_metadata_columns_are_allowed(sample_frame, tmp_path):
    frame = sample_frame.assign(user_id="u1", handedness="Right", source="img.jpg")
    loaded = load_landmarks_csv(write(frame, tmp_path / "meta.csv"), verbose=False)
    assert {"user_id", "handedness", "source"} <= set(loaded.data.columns)


def test_empty_file_and_header_only(sample_frame, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LandmarkDataError, match=r"empty\.csv: empty file"):
        load_landmarks_csv(empty)
    header = write(sample_frame.iloc[:0], tmp_path / "header.csv")
    with pytest.raises(LandmarkDataError, match="no data rows"):
        load_landmarks_csv(header)


def test_missing_file(tmp_path):
    with pytest.raises(LandmarkDataError, match="file not found"):
        load_landmarks_csv(tmp_path / "nope.csv")


def test_ragged_row_is_a_file_error(sample_csv, tmp_path):
    lines = sample_csv.read_text().splitlines()
    lines[5] += ",1.0,2.0"
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LandmarkDataError, match=r"ragged\.csv, line 6: not a well-formed CSV"):
        load_landmarks_csv(path)


def test_line_numbers_survive_blank_lines_and_quoted_newlines(sample_csv, tmp_path):
    lines = sample_csv.read_text().splitlines()
    label_at = lines[3].rsplit(",", 1)
    lines[3] = label_at[0] + ',"' + label_at[1] + '"'
    lines.insert(2, "")  # a blank line after the first row
    lines[5] = lines[5].rsplit(",", 1)[0] + ",FIST"  # line 6 of the file
    path = tmp_path / "blank.csv"
    path.write_text("\n".join(lines) + "\n\n")
    loaded = load_landmarks_csv(path, classes=HAGRID_CLASSES, quarantine_dir=None, verbose=False)
    assert list(loaded.rejected["line"]) == [6]
    assert loaded.lines[:3].tolist() == [2, 4, 5]


def test_duplicated_header_column(sample_csv, tmp_path):
    lines = sample_csv.read_text().splitlines()
    lines[0] = lines[0].replace("y2,", "y1,", 1)
    path = tmp_path / "dup.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        LandmarkDataError, match=r"dup\.csv, line 1, column 'y1': column appears twice"
    ):
        load_landmarks_csv(path)


@pytest.fixture
def bad_rows_csv(sample_frame, tmp_path):
    frame = sample_frame.astype({c: object for c in sample_frame.columns})
    frame.loc[3, "x5"] = "abc"  # line 5
    frame.loc[10, "z2"] = "nan"  # line 12
    frame.loc[20, "y21"] = "inf"  # line 22
    frame.loc[30, "x1"] = ""  # line 32
    frame.loc[40, "label"] = ""  # line 42
    frame.loc[50, "label"] = "thumbs_sideways"  # line 52
    frame = pd.concat([frame, frame.iloc[[60]]], ignore_index=True)  # line 710 repeats line 62
    conflict = frame.iloc[[70]].copy()
    conflict["label"] = "fist" if conflict["label"].iat[0] != "fist" else "palm"
    frame = pd.concat([frame, conflict], ignore_index=True)  # line 711 relabels line 72
    return write(frame, tmp_path / "bad_rows.csv")


def test_bad_rows_are_quarantined_with_reasons(bad_rows_csv, tmp_path, capsys):
    quarantine = tmp_path / "quarantine"
    loaded = load_landmarks_csv(bad_rows_csv, classes=HAGRID_CLASSES, quarantine_dir=quarantine)
    assert loaded.counts == {"rows_read": 710, "rows_kept": 702, "rows_rejected": 8}
    reasons = dict(zip(loaded.rejected["line"], loaded.rejected["reason"], strict=True))
    assert reasons[5] == "non-numeric value 'abc' in column 'x5'"
    assert reasons[12] == "NaN in column 'z2'"
    assert reasons[22] == "infinite value 'inf' in column 'y21'"
    assert reasons[32].startswith("empty value in column 'x1'")
    assert reasons[42] == "empty label in column 'label'"
    assert reasons[52].startswith("unknown label 'thumbs_sideways'")
    assert reasons[710] == "duplicate of line 62"
    assert reasons[711].startswith("same landmarks as line 72 but label")
    written = pd.read_csv(loaded.quarantine_path, keep_default_na=False)
    assert list(written["line"]) == sorted(reasons)
    assert "8 rejected" in capsys.readouterr().out
    assert np.isfinite(loaded.X).all()


def test_strict_mode_raises_with_line_and_column(bad_rows_csv):
    with pytest.raises(LandmarkDataError) as error:
        load_landmarks_csv(bad_rows_csv, strict=True)
    assert str(error.value).endswith("bad_rows.csv, line 5: non-numeric value 'abc' in column 'x5'")


def test_any_label_when_classes_is_none(bad_rows_csv):
    loaded = load_landmarks_csv(bad_rows_csv, classes=None, quarantine_dir=None, verbose=False)
    assert "thumbs_sideways" in set(loaded.y)


def test_mostly_broken_file_is_refused(sample_frame, tmp_path):
    frame = sample_frame.astype({"x3": object})
    frame.loc[: len(frame) * 2 // 3, "x3"] = "?"
    path = write(frame, tmp_path / "broken.csv")
    with pytest.raises(
        LandmarkDataError, match=r"broken\.csv: \d+ of 708 rows are invalid.*line 2"
    ):
        load_landmarks_csv(path)


def test_degenerate_hand_is_rejected(sample_frame, tmp_path):
    frame = sample_frame.copy()
    frame.loc[0, ["x10", "y10"]] = frame.loc[0, ["x1", "y1"]].to_numpy()
    loaded = load_landmarks_csv(write(frame, tmp_path / "d.csv"), quarantine_dir=None)
    assert loaded.rejected["reason"].iat[0].startswith("degenerate hand")


def test_full_size_file(sample_frame, tmp_path):
    """The full HaGRID CSV has ~25k rows: same code, same checks."""
    rng = np.random.default_rng(0)
    big = pd.concat([sample_frame] * 36, ignore_index=True)
    big[list(LANDMARK_COLUMNS)] += rng.normal(0, 0.01, (len(big), 63))
    loaded = load_landmarks_csv(write(big, tmp_path / "full.csv"), verbose=False)
    assert loaded.counts["rows_kept"] == len(big) == 25488


@pytest.mark.parametrize("value", ["1e308", "1e160", "-3e7"])
def test_implausible_coordinates_are_quarantined_with_their_line(sample_frame, tmp_path, value):
    frame = sample_frame.astype({"x3": object})
    frame.loc[4, "x3"] = value
    loaded = load_landmarks_csv(write(frame, tmp_path / "huge.csv"), quarantine_dir=tmp_path)
    assert loaded.counts["rows_rejected"] == 1 and len(loaded.data) == 707
    assert loaded.rejected["line"].tolist() == [6]
    assert f"implausible coordinate {value} in column 'x3'" in loaded.rejected["reason"].iat[0]


def test_the_models_door_names_the_first_unusable_coordinate(sample_frame):
    from gesturelab.errors import LandmarkInputError
    from gesturelab.models.static_families import build_pipeline

    X, y = sample_frame[list(LANDMARK_COLUMNS)], sample_frame["label"]
    pipeline = build_pipeline("svm", {"kernel": "linear", "C": 1.0}).fit(X, y)
    for value in (1e160, np.inf, np.nan):
        bad = X.copy()
        bad.iloc[2, 7] = value
        with pytest.raises(LandmarkInputError, match=r"1 of 708 hands .* row 2, column 'y3'"):
            pipeline.predict(bad)


def test_quarantine_files_are_per_path_and_cleared_by_a_clean_rerun(sample_frame, tmp_path):
    bad = sample_frame.astype({"x1": object})
    bad.loc[0, "x1"] = "oops"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = load_landmarks_csv(write(bad, tmp_path / "a" / "x.csv"), quarantine_dir=tmp_path)
    second = load_landmarks_csv(write(bad, tmp_path / "b" / "x.csv"), quarantine_dir=tmp_path)
    assert first.quarantine_path != second.quarantine_path
    assert first.quarantine_path.exists() and second.quarantine_path.exists()
    clean = load_landmarks_csv(
        write(sample_frame, tmp_path / "a" / "x.csv"), quarantine_dir=tmp_path
    )
    assert clean.quarantine_path is None and not first.quarantine_path.exists()
    assert second.quarantine_path.exists()


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(LandmarkDataError, match="is a folder, not a landmark CSV file"):
        load_landmarks_csv(tmp_path)


def test_gzip_files_are_read_and_zip_archives_refused(sample_frame, tmp_path):
    import gzip
    import zipfile

    path = tmp_path / "sample.csv.gz"
    with gzip.open(path, "wt") as handle:
        sample_frame.to_csv(handle, index=False)
    loaded = load_landmarks_csv(path, quarantine_dir=None, verbose=False)
    assert len(loaded.data) == 708 and loaded.fingerprint == file_fingerprint(path)
    with zipfile.ZipFile(tmp_path / "sample.zip", "w") as archive:
        archive.writestr("sample.csv", sample_frame.to_csv(index=False))
    with pytest.raises(LandmarkDataError, match="zip archive"):
        load_landmarks_csv(tmp_path / "sample.zip")


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolon_and_tab_files_with_decimal_commas(sample_frame, tmp_path, separator):
    path = tmp_path / "european.csv"
    sample_frame.to_csv(path, index=False, sep=separator, decimal=",")
    loaded = load_landmarks_csv(path, quarantine_dir=None, verbose=False)
    assert len(loaded.data) == 708
    np.testing.assert_allclose(loaded.X.reshape(708, -1), sample_frame[list(LANDMARK_COLUMNS)])


def test_an_unknown_separator_gets_a_hint(sample_frame, tmp_path):
    path = tmp_path / "pipes.csv"
    sample_frame.to_csv(path, index=False, sep="|")
    with pytest.raises(LandmarkDataError, match="header is one column .* with ',', ';' or a tab"):
        load_landmarks_csv(path)


def test_a_file_without_a_header_is_named_as_such(sample_frame, tmp_path):
    path = tmp_path / "noheader.csv"
    sample_frame.to_csv(path, index=False, header=False)
    with pytest.raises(
        LandmarkDataError, match=r"line 1: 64 numbers where the column names belong"
    ):
        load_landmarks_csv(path)
    keypoints = tmp_path / "keypoint.csv"  # label index first, then 21 x, y pairs
    keypoints.write_text("0," + ",".join(["0.0"] * 42) + "\n1," + ",".join(["0.5"] * 42) + "\n")
    with pytest.raises(LandmarkDataError, match="42 values and a label .* keypoint-csv format"):
        load_landmarks_csv(keypoints)


def test_a_label_file_with_a_line_too_long_for_a_name_is_one_error(tmp_path):
    from gesturelab.datasets.labels import read_label_file

    path = tmp_path / "labels.txt"
    path.write_text("wave\n" + "x" * 140_000 + "\n")
    with pytest.raises(LandmarkDataError, match="labels.txt, line 2: not a label file"):
        read_label_file(path)
