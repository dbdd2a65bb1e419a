"""The files people record gestures in: long landmark tables (the Kaggle ISLR layout: the
shipped real files, the same data as CSV) and MediaPipe JSON dumps; left-handed signers mirrored
onto the right hand; one-line refusals of bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gesturelab import config
from gesturelab.datasets import long_table, seq_writers, shrec
from gesturelab.datasets.landmarks import mirror_hand
from gesturelab.datasets.sequence_formats import detect_sequences, read_sequences
from gesturelab.errors import LandmarkDataError

ISLR = config.DATA_DIR / "islr_signs_sample"


@pytest.fixture(scope="module")
def islr():
    return read_sequences(ISLR, quarantine_dir=None, verbose=False)


@pytest.fixture(scope="module")
def sample():
    """Real SHREC'17 sequences: one of each of four gestures by each of three subjects."""
    data = shrec.load_compact()
    subjects = np.unique(data.subjects)[:3]
    rows = [
        int(np.flatnonzero((data.labels == k) & (data.subjects == s))[0])
        for k in range(4)
        for s in subjects
    ]
    return data.subset(np.asarray(rows))


def test_the_kaggle_files_are_read_by_participant_with_every_set_aside_sequence_listed(islr):
    assert detect_sequences(ISLR).name == "long-table"
    assert islr.group_by == "subject"
    assert sorted(set(islr.data.subjects.tolist())) == sorted(
        pd.read_csv(ISLR / "train.csv")["participant_id"].unique().tolist()
    )
    assert islr.classes == ["hello", "thankyou"]
    counts = islr.counts
    assert counts["sequences_read"] == 60
    assert counts["sequences_kept"] + counts["sequences_rejected"] == 60
    assert len(islr.rejected) == counts["sequences_rejected"] > 0
    assert islr.rejected["reason"].str.contains("a hand in").all()
    # signers of either hand: both sides were chosen, and each left hand was mirrored
    sides = islr.data.meta["hand"]
    assert {"left", "right"} <= set(sides.tolist())
    assert islr.data.hand == config.DEFAULT_HAND
    # the whole files (face rows too) and the hands-and-pose files read alike: the hand is
    # all a sequence holds, and the other parts stay readable
    parts = long_table.read_parts(next((ISLR / "train_landmark_files" / "2044").glob("*.parquet")))
    assert {k: v.shape[1] for k, v in parts.items()} == {
        "face": 468,
        "left_hand": 21,
        "pose": 33,
        "right_hand": 21,
    }


def test_a_right_handed_choice_sets_left_handed_signers_aside_and_says_so(tmp_path):
    loaded = read_sequences(ISLR, hand="right", quarantine_dir=tmp_path, verbose=False)
    assert set(loaded.data.meta["hand"].tolist()) == {"right"}
    assert loaded.rejected["reason"].str.contains("no right hand in the file").any()


def test_the_same_data_as_csv_gives_the_same_arrays(islr, tmp_path):
    """Each file rewritten as CSV with its columns reordered and renamed the ways people
    write them, its rows shuffled, and the manifest with other column names."""
    rng = np.random.default_rng(0)
    manifest = pd.read_csv(ISLR / "train.csv")
    for path in manifest["path"]:
        table = pd.read_parquet(ISLR / path).drop(columns="row_id")
        table = table.sample(frac=1.0, random_state=int(rng.integers(1 << 30)))
        table = table.rename(
            columns={"type": "Hand", "landmark_index": "landmark", "frame": "Frame"}
        )
        target = (tmp_path / path).with_suffix(".csv")
        target.parent.mkdir(parents=True, exist_ok=True)
        table[["z", "Hand", "x", "landmark", "Frame", "y"]].to_csv(target, index=False)
    manifest["path"] = manifest["path"].str.replace(".parquet", ".csv")
    manifest.rename(columns={"path": "file", "participant_id": "signer", "sign": "label"}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    again = read_sequences(tmp_path, quarantine_dir=None, verbose=False)
    assert again.format == "long-table"
    assert again.counts == islr.counts
    assert (again.data.subjects == islr.data.subjects).all()
    assert (again.data.labels == islr.data.labels).all()
    for a, b in zip(again.data.sequences, islr.data.sequences, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)


def test_a_left_handed_signer_reaches_the_data_as_the_right_handed_one(sample, tmp_path):
    """The same real sequences written once as right hands and once as (mirrored) left hands:
    read back, they are the same arrays, so a model sees the same gesture."""
    right = read_sequences(
        seq_writers.write_long_table(sample, tmp_path / "right", pose=True),
        quarantine_dir=None,
        verbose=False,
    )
    left = read_sequences(
        seq_writers.write_long_table(sample, tmp_path / "left", left_handed=range(len(sample))),
        quarantine_dir=None,
        verbose=False,
    )
    assert set(left.data.meta["hand"].tolist()) == {"left"}
    assert set(right.data.meta["hand"].tolist()) == {"right"}
    for a, b, original in zip(
        left.data.sequences, right.data.sequences, sample.sequences, strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(b, original, atol=1e-6, equal_nan=True)


def test_labels_from_folders_and_one_table_of_many_sequences(sample, tmp_path):
    root = seq_writers.write_long_table(sample, tmp_path / "kaggle", suffix=".csv")
    manifest = pd.read_csv(root / "train.csv")
    # ROOT/<label>/<subject>/<file>.csv
    tables = []
    for row in manifest.itertuples():
        table = pd.read_csv(root / row.path)
        target = (
            tmp_path / "folders" / row.sign / str(row.participant_id) / f"{row.sequence_id}.csv"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(target, index=False)
        tables.append(
            table.assign(sequence_id=row.sequence_id, sign=row.sign, user=row.participant_id)
        )
    folders = read_sequences(tmp_path / "folders", quarantine_dir=None, verbose=False)
    single = tmp_path / "all.csv"
    pd.concat(tables).to_csv(single, index=False)
    one = read_sequences(single, quarantine_dir=None, verbose=False)
    for loaded in (folders, one):
        assert loaded.format == "long-table" and loaded.group_by == "subject"
        assert sorted(loaded.data.label_names) == sorted(sample.label_names)
        assert sorted(map(int, loaded.data.subjects)) == sorted(map(int, sample.subjects))


def _long(tmp_path, name="t.csv", **columns) -> str:
    frame = {"frame": [0] * 21, "type": ["right_hand"] * 21, "landmark_index": range(21)}
    frame.update({"x": np.linspace(0, 1, 21), "y": np.linspace(1, 0, 21), "z": 0.0})
    frame.update(columns)
    path = tmp_path / name
    pd.DataFrame(frame).to_csv(path, index=False)
    return path


def test_bad_long_tables_are_refused_in_one_line_naming_the_file(tmp_path):
    # a parquet without landmark columns
    boxes = tmp_path / "boxes.parquet"
    pd.DataFrame({"frame": [0], "bbox": ["0 0 1 1"], "label": ["a"]}).to_parquet(boxes)
    with pytest.raises(LandmarkDataError, match="boxes.parquet: not a long landmark table.*index"):
        read_sequences(boxes, format="long-table", quarantine_dir=None, verbose=False)
    # rows of 2-D and 3-D mixed in one file
    z = [0.1] * 10 + [np.nan] * 11
    with pytest.raises(LandmarkDataError, match=r"mixed\.csv, line 12: mixed 2-D and 3-D"):
        read_sequences(_long(tmp_path, "mixed.csv", z=z), format="long-table", verbose=False)
    # a landmark index no hand has
    with pytest.raises(LandmarkDataError, match=r"idx\.csv, line 2: landmark index 40"):
        read_sequences(
            _long(tmp_path, "idx.csv", landmark_index=[40] + list(range(1, 21))),
            format="long-table",
            verbose=False,
        )
    # no part names a hand
    with pytest.raises(LandmarkDataError, match="names no hand.*face"):
        read_sequences(_long(tmp_path, "face.csv", type="face"), format="long-table", verbose=False)


def test_a_manifest_naming_missing_files_counts_them(tmp_path, sample):
    root = seq_writers.write_long_table(sample, tmp_path / "partial")
    manifest = pd.read_csv(root / "train.csv")
    gone = manifest["path"].iloc[:2]
    for path in gone:
        (root / path).unlink()
    loaded = read_sequences(root, quarantine_dir=tmp_path / "q", verbose=False)
    assert loaded.counts["file_problems"] == 2
    assert len(loaded.data) == len(sample) - 2
    listed = loaded.rejected[loaded.rejected["kind"] == "file"]
    assert listed["reason"].str.contains("named in train.csv .* but not found").all()
    assert any("not in the folder" in note for note in loaded.notes)
    # a damaged file of many sets its sequence aside, with the reason and line
    damaged = root / manifest["path"].iloc[2]
    table = pd.read_parquet(damaged)
    table.loc[5, "landmark_index"] = 40
    table.to_parquet(damaged)
    loaded = read_sequences(root, quarantine_dir=None, verbose=False)
    assert len(loaded.data) == len(sample) - 3
    aside = loaded.rejected[loaded.rejected["kind"] == "sequence"].iloc[0]
    assert "landmark index 40 outside 0..20" in aside["reason"] and aside["line"] == 7
    for path in manifest["path"].iloc[2:]:
        (root / path).unlink()
    with pytest.raises(LandmarkDataError, match="partial: none of the 12 files named in train"):
        read_sequences(root, quarantine_dir=None, verbose=False)


def test_the_hand_option_is_refused_where_files_hold_one_hand(tmp_path, sample):
    bundle = seq_writers.write_npz(sample, tmp_path / "b.npz")
    with pytest.raises(LandmarkDataError, match="one hand per sequence as recorded.*long-table"):
        read_sequences(bundle, hand="left", verbose=False)


def test_mirroring_is_its_own_inverse_in_pixels_and_in_normalised_units():
    hand = np.random.default_rng(0).random((21, 3))
    np.testing.assert_allclose(mirror_hand(mirror_hand(hand)), hand)
    np.testing.assert_allclose(mirror_hand(hand * 640, 640)[:, 0], 640 - hand[:, 0] * 640)


@pytest.mark.parametrize("layout", seq_writers.JSON_LAYOUTS)
def test_mediapipe_json_dumps_read_back_the_sequences_with_either_hand(sample, tmp_path, layout):
    lefts = range(0, len(sample), 2)
    root = seq_writers.write_mediapipe_json(sample, tmp_path / layout, layout, left_handed=lefts)
    loaded = read_sequences(root, quarantine_dir=None, verbose=False)
    assert loaded.format == "mediapipe-json" and loaded.group_by == "subject"
    assert loaded.counts["sequences_kept"] == len(sample)
    assert loaded.data.meta["hand"].tolist().count("left") == len(lefts)
    if layout == "holistic":  # the same files named by a manifest (Kaggle-style) read alike
        rows = [(f.relative_to(root).as_posix(), f.parent.name, f.parent.parent.name)
                for f in sorted(root.rglob("*.json"))]  # fmt: skip
        pd.DataFrame(rows, columns=["path", "participant_id", "sign"]).to_csv(
            root / "train.csv", index=False
        )
        listed = read_sequences(root, quarantine_dir=None, verbose=False)
        assert listed.format == "mediapipe-json" and len(listed.data) == len(sample)
    by_source = dict(zip(loaded.data.meta["source"], loaded.data.sequences, strict=True))
    for i, original in enumerate(sample.sequences):
        name = str(root / sample.label_names[i] / str(sample.subjects[i]) / f"{i}.json")
        np.testing.assert_allclose(by_source[name], original, atol=1e-6, equal_nan=True)


def test_json_without_landmarks_or_with_a_broken_hand_says_what_and_where(tmp_path, sample):
    boxes = tmp_path / "annotations.json"
    boxes.write_text('{"0a1b": {"bboxes": [[0.1, 0.2, 0.3, 0.4]], "labels": ["like"]}}')
    with pytest.raises(LandmarkDataError, match="annotations.json: holds no hand landmarks"):
        read_sequences(boxes, quarantine_dir=None, verbose=False)
    (tmp_path / "broken.json").write_text('[{"leftHandLandmarks": [')
    with pytest.raises(LandmarkDataError, match="broken.json, line 1: not valid JSON"):
        read_sequences(tmp_path / "broken.json", quarantine_dir=None, verbose=False)
    root = seq_writers.write_mediapipe_json(sample.subset([0]), tmp_path / "short", "holistic")
    file = next(root.rglob("*.json"))
    frames = json.loads(file.read_text())
    frames[2]["rightHandLandmarks"] = frames[2]["rightHandLandmarks"][:20]
    file.write_text(json.dumps(frames))
    loaded = read_sequences(root, quarantine_dir=None, verbose=False)
    assert loaded.counts["frame_problems"] == 1
    problem = loaded.rejected.iloc[0]
    assert problem["frame"] == 2 and "20 points where a hand has 21" in problem["reason"]


def test_long_csvs_as_people_write_them_read_the_same(sample, tmp_path):
    """Landmark names instead of numbers, a `hand` column of Left/Right beside `type` = hand,
    milliseconds instead of frame numbers, a spreadsheet's export (semicolons, decimal commas,
    CRLF, a byte-order mark), two sequences in one file."""
    from gesturelab.datasets.landmarks import LANDMARK_NAMES

    rows = []
    for i in (0, 1):
        sequence = sample.sequences[i]
        side = "Left" if i == 1 else "Right"
        hand = mirror_hand(sequence) if side == "Left" else sequence
        for f, frame in enumerate(hand):
            for k, (x, y, z) in enumerate(frame):
                rows.append(
                    {"clip": f"take{i}", "gesture": sample.label_names[i],
                     "timestamp": 1000 + 33.4 * f, "type": "hand", "hand": side,
                     "landmark": LANDMARK_NAMES[k].upper(), "x": x, "y": y, "z": z}
                )  # fmt: skip
    path = tmp_path / "webcam_log.csv"
    # a spreadsheet's export: semicolons, decimal commas, CRLF, a byte-order mark
    text = (
        pd.DataFrame(rows)
        .sample(frac=1.0, random_state=0)
        .to_csv(sep=";", decimal=",", index=False, lineterminator="\r\n")
    )
    path.write_bytes(("\ufeff" + text).encode("utf-8"))
    loaded = read_sequences(path, quarantine_dir=None, verbose=False)
    assert loaded.format == "long-table"
    assert any("distinct values of 'timestamp'" in note for note in loaded.notes)
    assert loaded.data.meta["hand"].tolist() == ["right", "left"]
    for read, original in zip(loaded.data.sequences, sample.sequences[:2], strict=True):
        np.testing.assert_allclose(read, original, atol=1e-6, equal_nan=True)


def test_json_lines_and_frames_keyed_by_number_read_the_same(sample, tmp_path):
    root = seq_writers.write_mediapipe_json(sample.subset([0]), tmp_path / "json", "hands")
    file = next(root.rglob("*.json"))
    frames = json.loads(file.read_text())
    lines = tmp_path / "lines" / "grab" / "take.jsonl"  # a label folder names the label
    lines.parent.mkdir(parents=True)
    lines.write_text("\n".join(json.dumps(f) for f in frames) + "\n")
    keyed = tmp_path / "keyed.json"
    keyed.write_text(
        json.dumps({"label": "grab", "frames": {str(i): f for i, f in enumerate(frames)}})
    )
    expected = sample.sequences[0]
    for path in (lines.parent.parent, keyed):
        loaded = read_sequences(path, classes=None, quarantine_dir=None, verbose=False)
        np.testing.assert_allclose(loaded.data.sequences[0], expected, atol=1e-6, equal_nan=True)
    assert read_sequences(keyed, quarantine_dir=None, verbose=False).classes == ["grab"]


def test_an_imported_dataset_keeps_the_hand_choice_of_its_reading(islr, tmp_path):
    from gesturelab.datasets.sequence_formats import import_sequences

    folder = import_sequences(islr, "signs", data_dir=tmp_path, command="test")
    again = read_sequences("signs", data_dir=tmp_path, quarantine_dir=None, verbose=False)
    assert again.data.hand == islr.data.hand == "dominant"
    assert again.data.meta["hand"].tolist() == islr.data.meta["hand"].tolist()
    for a, b in zip(again.data.sequences, islr.data.sequences, strict=True):
        np.testing.assert_allclose(a, b, equal_nan=True)
    assert json.loads((folder / "datasheet.json").read_text())["hand"] == "dominant"
    with pytest.raises(LandmarkDataError, match="made with --hand dominant"):
        read_sequences("signs", data_dir=tmp_path, hand="right", verbose=False)
