"""Sequence dataset readers: each layout gives back the sequences another wrote, and bad input
is an error or a counted quarantine entry that names the file, sequence, frame or line."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from gesturelab.datasets import seq_writers, shrec
from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.datasets.sequence_formats import (
    describe_sequences,
    detect_sequences,
    import_sequences,
    read_sequences,
)
from gesturelab.datasets.sequences import frame_mask
from gesturelab.errors import LandmarkDataError


@pytest.fixture(scope="module")
def sample():
    """Real SHREC'17 sequences: 42, three per gesture, from every subject there is."""
    data = shrec.load_compact()
    rows = np.concatenate([np.flatnonzero(data.labels == k)[::45][:3] for k in range(14)])
    return data.subset(rows)


def _same(a, b) -> bool:
    key = lambda s: (len(s), float(np.nan_to_num(s[0, 0, 0])))  # noqa: E731
    return all(
        np.allclose(x, y, atol=1e-5, equal_nan=True)
        for x, y in zip(sorted(a.sequences, key=key), sorted(b.sequences, key=key), strict=True)
    )


@pytest.mark.parametrize("layout", ["csv", "npy", "holistic", "npz"])
def test_every_layout_reads_back_what_was_written(sample, tmp_path, layout):
    path = {
        "csv": lambda: seq_writers.write_sequence_csv(sample, tmp_path / "frames.csv"),
        "npy": lambda: seq_writers.write_npy_frames(sample, tmp_path / "npy"),
        "holistic": lambda: seq_writers.write_npy_frames(sample, tmp_path / "h", holistic=True),
        "npz": lambda: seq_writers.write_npz(sample, tmp_path / "bundle.npz"),
    }[layout]()
    loaded = read_sequences(path, quarantine_dir=tmp_path / "q", verbose=False)
    assert loaded.group_by == "subject"
    assert len(loaded.data) == len(sample) and loaded.counts["sequences_rejected"] == 0
    assert sorted(loaded.classes) == sorted(shrec.GESTURES_14)
    assert sorted(loaded.data.label_names) == sorted(sample.label_names)
    assert sorted(loaded.data.subjects.tolist()) == sorted(sample.subjects.tolist())
    assert loaded.data.subjects.dtype.kind == "i"  # ids written as text split as numbers
    assert _same(loaded.data, sample)


def test_the_label_order_can_be_given(sample, tmp_path):
    path = seq_writers.write_sequence_csv(sample, tmp_path / "frames.csv")
    loaded = read_sequences(path, classes=list(shrec.GESTURES_14), verbose=False)
    assert loaded.classes == list(shrec.GESTURES_14)
    assert (loaded.data.labels == sample.labels).all()


def _write_frames(path, rows, header=("sequence", "frame", "label", *LANDMARK_COLUMNS)):
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(header)
        out.writerows(rows)


def _hand(seed: int) -> list[float]:
    return list(np.random.default_rng(seed).uniform(0, 1, 63).round(4))


def test_csv_gaps_are_frames_without_a_hand_and_bad_input_is_listed(tmp_path):
    rows = [["a", f, "wave", *_hand(f)] for f in (0, 1, 2, 5, 6, 7)]  # frames 3, 4: no hand
    rows += [["b", 0, "wave", *_hand(9)]]  # one frame: no gesture
    bad = _hand(10)
    bad[4] = "oops"
    rows += [["c", f, "push", *(bad if f == 2 else _hand(f))] for f in range(6)]
    rows += [["d", f, "push" if f < 3 else "wave", *_hand(f)] for f in range(6)]
    path = tmp_path / "frames.csv"
    _write_frames(path, rows)
    loaded = read_sequences(path, quarantine_dir=tmp_path / "q", verbose=False)
    by_id = dict(zip(loaded.data.meta["source"], loaded.data.sequences))
    a = by_id["frames.csv#wave/a"]
    assert len(a) == 8 and frame_mask(a).tolist() == [1, 1, 1, 0, 0, 1, 1, 1]
    c = by_id["frames.csv#push/c"]
    assert not frame_mask(c)[2] and frame_mask(c).sum() == 5
    assert loaded.group_by == "source file"
    rejected = pd.read_csv(loaded.quarantine_path)
    assert loaded.counts == {
        "sequences_read": 5,
        "sequences_kept": 2,
        "sequences_rejected": 3,
        "frame_problems": 1,
        "file_problems": 0,
    }
    one_frame = rejected[rejected["sequence"] == "b"].iloc[0]
    assert "1 frame(s)" in one_frame["reason"] and one_frame["line"] == 8
    cell = rejected[rejected["sequence"] == "c"].iloc[0]
    assert "column 'y2'" in cell["reason"] and "'oops'" in cell["reason"]
    assert cell["line"] == 11 and cell["frame"] == 2
    # Sequence d changes label half-way: a sequence is one id with one label, so its two
    # halves are two recordings of 3 frames, each too short and each listed.
    halves = rejected[rejected["sequence"] == "d"]
    assert len(halves) == 2 and all("3 frame(s)" in r for r in halves["reason"])


def test_a_csv_without_a_sequence_column_is_a_static_file(tmp_path, sample_csv):
    assert detect_sequences(sample_csv) is None
    with pytest.raises(LandmarkDataError, match="not a sequence dataset"):
        read_sequences(sample_csv, verbose=False)


def test_npy_of_an_unknown_length_is_refused_with_the_lengths_understood(tmp_path):
    folder = tmp_path / "MP_Data" / "hello" / "0"
    folder.mkdir(parents=True)
    for frame in range(5):
        np.save(folder / f"{frame}.npy", np.zeros(100))
    with pytest.raises(LandmarkDataError, match=r"0\.npy: a frame of 100 values.*63.*1662"):
        read_sequences(tmp_path / "MP_Data", verbose=False)


def test_holistic_frames_use_the_hand_present_in_more_frames(tmp_path):
    root = tmp_path / "MP_Data"
    left, right = np.arange(63) + 1.0, -(np.arange(63) + 1.0)
    for seq, (n_left, n_right) in enumerate([(8, 3), (3, 8), (5, 5)]):
        folder = root / "thanks" / str(seq)
        folder.mkdir(parents=True)
        for frame in range(8):
            vector = np.zeros(1662)
            if frame < n_left:
                vector[1536:1599] = left
            if frame < n_right:
                vector[1599:] = right
            np.save(folder / f"{frame}.npy", vector)
    loaded = read_sequences(root, verbose=False)
    first_frames = [s[0, 0, 0] for s in loaded.data.sequences]
    # left (mirrored: x -> 1 - x), right, right on a tie
    assert first_frames == [0.0, -1.0, -1.0]
    assert loaded.data.meta["hand"].tolist() == ["left", "right", "right"]
    assert frame_mask(loaded.data.sequences[0]).sum() == 8
    assert any("the left (mirrored) in 1" in note for note in loaded.notes)
    assert loaded.group_by == "source file"
    # --hand left: every sequence its left hand, whatever the other holds
    lefts = read_sequences(root, hand="left", quarantine_dir=None, verbose=False)
    assert lefts.data.hand == "left" and set(lefts.data.meta["hand"]) == {"left"}
    assert [int(frame_mask(s).sum()) for s in lefts.data.sequences] == [8, 5]  # 3 of 8 set aside


def test_an_npz_of_python_objects_is_not_unpickled(tmp_path):
    path = tmp_path / "bundle.npz"
    ragged = np.empty(2, dtype=object)
    ragged[:] = [np.zeros((5, 21, 3)), np.zeros((6, 21, 3))]
    np.savez(path, sequences=ragged, labels=np.array([0, 1]))
    with pytest.raises(LandmarkDataError, match="pickle"):
        read_sequences(path, verbose=False)


def test_npz_masks_lengths_and_class_names_are_used(tmp_path, sample):
    fixed = sample.to_fixed(40, "pad")[:4]
    masks = np.ones(fixed.shape[:2], bool)
    masks[0, 10:20] = False
    path = tmp_path / "b.npz"
    np.savez(
        path,
        X=fixed.reshape(4, 40, 63),
        y=np.array([1, 0, 1, 0]),
        masks=masks,
        lengths=np.array([40, 30, 40, 3]),
        classes=np.array(["no", "yes"]),
    )
    loaded = read_sequences(path, quarantine_dir=tmp_path / "q", verbose=False)
    assert loaded.classes == ["no", "yes"] and loaded.counts["sequences_rejected"] == 1
    assert [len(s) for s in loaded.data.sequences] == [40, 30, 40]
    assert frame_mask(loaded.data.sequences[0]).sum() == 30


def test_import_writes_a_dataset_every_command_reads_by_name(tmp_path, sample):
    path = seq_writers.write_npy_frames(sample, tmp_path / "npy")
    loaded = read_sequences(path, verbose=False)
    folder = import_sequences(loaded, "my-moves", data_dir=tmp_path / "data", command="test")
    assert {p.name for p in folder.iterdir()} >= {"sequences.npz", "datasheet.json", "datasheet.md"}
    again = read_sequences("my-moves", data_dir=tmp_path / "data", verbose=False)
    assert again.name == "my-moves" and again.group_by == "subject"
    assert _same(again.data, loaded.data) and again.classes == loaded.classes
    info = describe_sequences(again)
    assert info["frames"]["min"] == int(sample.lengths.min())
    assert sum(info["sequences_per_class"].values()) == len(sample)


def test_static_readers_send_sequence_datasets_to_train_seq(tmp_path, sample):
    from gesturelab import datasets

    path = seq_writers.write_sequence_csv(sample, tmp_path / "frames.csv")
    with pytest.raises(LandmarkDataError, match="train-seq --data"):
        datasets.read(path, verbose=False)


def test_a_new_dataset_gets_its_own_frames_experiment_and_model_name(sample):
    from gesturelab.training.seq_defaults import (
        frames_for,
        sequence_experiment,
        sequence_model_name,
    )
    from gesturelab.training.seq_training import config_for

    assert frames_for(sample) == int(np.clip(round(np.median(sample.lengths)), 8, 64))
    short = sample.subset(np.arange(3))
    short.sequences = [s[:5] for s in short.sequences]
    assert frames_for(short) == 8
    assert sequence_model_name(["a", "b", "c"], "My Moves") == "my-moves-3-sequence-gestures"
    assert sequence_experiment("My Moves") == "my-moves-sequence-models"
    # SHREC'17's per-label-set choices stay SHREC's: 28 classes of another dataset get the
    # architecture's own augmentation, not the mild preset tuned on SHREC'17's 28.
    assert config_for("tcn", 28).augmentation == "mild"
    assert config_for("tcn", 28, tuned_on="my-moves").augmentation == "full"
    assert config_for("lstm", 14, tuned_on="my-moves").features == "full"


def test_csvs_as_people_write_them(tmp_path):
    # Semicolons and decimal commas, ids that restart for every gesture, no frame column.
    path = tmp_path / "recorded.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:
        out = csv.writer(handle, delimiter=";")
        out.writerow(["label", "seq", *LANDMARK_COLUMNS])
        for label in ("wave", "push"):
            for seq in (0, 1):
                for f in range(6):
                    out.writerow([label, seq, *[str(v).replace(".", ",") for v in _hand(f)]])
    assert detect_sequences(path).name == "sequence-csv"
    loaded = read_sequences(path, quarantine_dir=tmp_path / "q", verbose=False)
    assert len(loaded.data) == 4 and loaded.counts["frame_problems"] == 0
    assert all(frame_mask(s).all() and len(s) == 6 for s in loaded.data.sequences)
    assert loaded.data.sequences[0][0, 0, 0] == pytest.approx(_hand(0)[0])


def test_frame_numbers_that_are_no_frame_numbers_are_refused_not_a_traceback(tmp_path):
    rows = [["a", f, "wave", *_hand(f)] for f in range(5)]
    rows += [["b", v, "wave", *_hand(1)] for v in ("inf", "3.5", "0", "1", "2", "3")]
    rows += [["c", f * 1000, "wave", *_hand(f)] for f in range(6)]  # milliseconds
    rows += [["e", v, "wave", *_hand(1)] for v in ("1e10", "0", "1", "2", "3")]
    path = tmp_path / "frames.csv"
    _write_frames(path, rows)
    loaded = read_sequences(path, quarantine_dir=tmp_path / "q", verbose=False)
    rejected = pd.read_csv(loaded.quarantine_path)
    b = rejected[rejected["sequence"] == "b"]
    assert sum("not a whole frame number" in r for r in b["reason"]) == 2
    for absurd in ("c", "e"):
        reason = rejected[rejected["sequence"] == absurd].iloc[0]["reason"]
        assert "timestamps or another unit" in reason
    assert sorted(len(s) for s in loaded.data.sequences) == [4, 5]


def test_a_static_csv_with_an_id_per_row_is_not_taken_for_sequences(tmp_path, sample_frame):
    frame = sample_frame.head(50).copy()
    frame.insert(0, "sample_id", range(len(frame)))
    path = tmp_path / "static.csv"
    frame.to_csv(path, index=False)
    assert detect_sequences(path) is None  # the static reader's own rules apply to it
    from gesturelab import datasets

    with pytest.raises(LandmarkDataError) as error:
        datasets.read(path, quarantine_dir=None, verbose=False)
    assert "train-seq" not in str(error.value)


def test_npy_frames_named_frame_n_keep_their_order_and_a_missing_file_is_a_gap(tmp_path):
    folder = tmp_path / "MP_Data" / "wave" / "take_1"
    folder.mkdir(parents=True)
    for f in [*range(0, 7), *range(8, 20)]:
        np.save(folder / f"frame_{f}.npy", np.full(63, f + 1.0))
    loaded = read_sequences(tmp_path / "MP_Data", quarantine_dir=tmp_path / "q", verbose=False)
    (sequence,) = loaded.data.sequences
    assert len(sequence) == 20 and not frame_mask(sequence)[7]
    kept = sequence[frame_mask(sequence), 0, 0]
    assert kept.tolist() == [v + 1.0 for v in [*range(0, 7), *range(8, 20)]]
    assert loaded.counts["frame_problems"] == 1


def test_a_stray_frame_number_sets_the_sequence_aside_before_a_span_is_allocated(tmp_path):
    """One stray ``2000000.npy`` beside frames 0..116 cost 147 s, 2.4 GB and a 216 MB
    quarantine file (a masked frame listed for every missing number)."""
    root = tmp_path / "MP_Data"
    for take, extra in (("take_1", [2_000_000]), ("take_2", [])):
        folder = root / "wave" / take
        folder.mkdir(parents=True)
        for f in [*range(117), *extra]:
            np.save(folder / f"{f}.npy", np.full(63, f + 1.0))
    loaded = read_sequences(root, quarantine_dir=tmp_path / "q", verbose=False)
    assert len(loaded.data) == 1 and loaded.counts["sequences_rejected"] == 1
    rejected = pd.read_csv(loaded.quarantine_path)
    assert len(rejected) == 1 and rejected.iloc[0]["sequence"] == "wave/take_1"
    assert "frame numbers 0..2000000 for 118 frames" in rejected.iloc[0]["reason"]


def test_an_action_folder_whose_name_is_not_utf8_is_read_as_escaped_text(tmp_path):
    import os

    for action in (b"wave", b"w\xe9ve"):
        folder = os.path.join(os.fsencode(tmp_path), b"MP", action, b"t1")
        os.makedirs(folder)
        for f in range(12):
            vector = np.full(63, f + 1.0)
            vector[0] = np.nan if f == 3 else vector[0]
            np.save(os.fsdecode(folder + b"/%d.npy" % f), vector)
    loaded = read_sequences(tmp_path / "MP", quarantine_dir=tmp_path / "q", verbose=False)
    assert sorted(loaded.classes) == ["w\\xe9ve", "wave"]
    rejected = pd.read_csv(loaded.quarantine_path)
    assert sorted(rejected["sequence"]) == ["w\\xe9ve/t1", "wave/t1"]


def test_an_npz_naming_a_class_twice_is_refused_not_merged(tmp_path, sample):
    fixed = sample.to_fixed(40, "pad")[:3]
    path = tmp_path / "b.npz"
    np.savez(path, X=fixed, y=np.array([0, 1, 2]), classes=np.array(["wave", "push", "wave"]))
    with pytest.raises(LandmarkDataError, match="'classes' names 'wave' more than once"):
        read_sequences(path, verbose=False)


def test_damaged_frames_in_npy_and_npz_are_masked_and_each_listed(tmp_path, sample):
    """NaN, inf and 1e308 frames were masked without a line, and 1e30 coordinates were kept
    and scored."""
    folder = tmp_path / "MP_Data" / "wave" / "take_1"
    folder.mkdir(parents=True)
    damaged = {3: np.nan, 5: np.inf, 7: 1e308, 9: 1e30}
    for f in range(20):
        vector = np.full(63, f + 1.0)
        vector[:3] = damaged.get(f, f + 1.0)
        np.save(folder / f"{f}.npy", vector)
    loaded = read_sequences(tmp_path / "MP_Data", quarantine_dir=tmp_path / "q", verbose=False)
    (sequence,) = loaded.data.sequences
    assert np.flatnonzero(~frame_mask(sequence)).tolist() == [3, 5, 7, 9]
    assert np.nanmax(np.abs(sequence)) <= 20
    assert loaded.counts["frame_problems"] == 4

    fixed = sample.to_fixed(40, "pad")[:2].astype(np.float64)
    for f, value in damaged.items():
        fixed[0, f, 4, 1] = value
    path = tmp_path / "b.npz"
    np.savez(path, X=fixed, y=np.array([0, 1]), classes=np.array(["a", "b"]))
    loaded = read_sequences(path, quarantine_dir=tmp_path / "q", verbose=False)
    rejected = pd.read_csv(loaded.quarantine_path)
    assert sorted(rejected[rejected["sequence"] == 0]["frame"].tolist()) == [3, 5, 7, 9]
    assert not frame_mask(loaded.data.sequences[0])[[3, 5, 7, 9]].any()


def test_same_named_files_keep_their_own_rejects_and_a_clean_read_removes_them(tmp_path, sample):
    fixed = sample.to_fixed(40, "pad")[:2].astype(np.float64)
    damaged = fixed.copy()
    damaged[0, 3, 4, 1] = np.inf
    paths = []
    for folder, data in (("a", damaged), ("b", damaged)):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "takes.npz")
        np.savez(paths[-1], X=data, y=np.array([0, 1]), classes=np.array(["x", "y"]))
    quarantined = [
        read_sequences(p, quarantine_dir=tmp_path / "q", verbose=False).quarantine_path
        for p in paths
    ]
    assert quarantined[0] != quarantined[1] and all(q.is_file() for q in quarantined)
    np.savez(paths[0], X=fixed, y=np.array([0, 1]), classes=np.array(["x", "y"]))
    clean = read_sequences(paths[0], quarantine_dir=tmp_path / "q", verbose=False)
    assert clean.quarantine_path is None and not quarantined[0].exists()
    assert quarantined[1].is_file()


def test_npz_padding_without_lengths_bytes_labels_and_one_hot(tmp_path, sample):
    fixed = sample.to_fixed(40, "pad")[:3]  # real frames then zeros
    real = [min(len(s), 40) for s in sample.sequences[:3]]
    path = tmp_path / "b.npz"
    np.savez(
        path,
        sequences=fixed,
        labels=np.array([b"wave", b"push", b"wave"]),
        subjects=np.array([b"S01", b"S02", b"S01"]),
    )
    loaded = read_sequences(path, verbose=False)
    assert [len(s) for s in loaded.data.sequences] == real
    assert loaded.classes == ["push", "wave"] and set(loaded.data.subjects) == {"S01", "S02"}
    np.savez(path, X=fixed, y=np.eye(2)[[1, 0, 1]], classes=np.array(["no", "yes"]))
    assert list(read_sequences(path, verbose=False).data.label_names) == ["yes", "no", "yes"]


def _twelve_frames(tmp_path):
    folder = tmp_path / "MP_Data" / "wave" / "take_1"
    folder.mkdir(parents=True)
    for f in range(12):
        np.save(folder / f"{f}.npy", np.full(63, f + 1.0))
    return folder


@pytest.mark.parametrize(
    "broken, problem",
    [
        (lambda f: f.write_bytes(b""), "(empty file); frame masked"),
        (lambda f: np.save(f, np.array(["x"] * 63)), "(it holds text, not numbers); frame masked"),
    ],
    ids=["zero-byte", "text"],
)
def test_an_npy_frame_that_is_empty_or_text_is_a_masked_listed_frame(tmp_path, broken, problem):
    folder = _twelve_frames(tmp_path)
    broken(folder / "4.npy")
    loaded = read_sequences(tmp_path / "MP_Data", quarantine_dir=tmp_path / "q", verbose=False)
    assert np.flatnonzero(~frame_mask(loaded.data.sequences[0])).tolist() == [4]
    assert loaded.counts["frame_problems"] == 1
    (listed,) = pd.read_csv(loaded.quarantine_path)["reason"]
    assert listed.endswith(problem), listed


@pytest.mark.parametrize(
    "content, message",
    [
        (b"action,sequence,subject\nwave,take_1\n", "subjects.csv, line 2: 2 fields where the"),
        ("action,sequence,subject\nwave,take_1,Jos\xe9\n".encode("latin-1"), "not a UTF-8 text"),
    ],
    ids=["short-row", "latin-1"],
)
def test_a_subjects_file_people_get_wrong_is_one_error_naming_it(tmp_path, content, message):
    _twelve_frames(tmp_path)
    (tmp_path / "MP_Data" / "subjects.csv").write_bytes(content)
    with pytest.raises(LandmarkDataError, match=message):
        read_sequences(tmp_path / "MP_Data", verbose=False)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lengths": np.array([40.0, np.nan, 40.0])}, "'lengths' of sequence 1 is nan"),
        ({"lengths": np.array([40, 41, 40])}, "'lengths' of sequence 1 is 41: frame counts"),
        ({"frame_rate": np.array("fast")}, "'frame_rate' is 'fast', not one number"),
        ({"X": np.zeros((0, 40, 21, 3)), "y": np.zeros(0, int)}, "no sequences, or no frames"),
        ({"X": np.zeros((3, 0, 21, 3))}, r"shape \(3, 0, 21, 3\): no sequences, or no frames"),
    ],
    ids=["nan-lengths", "lengths-too-long", "text-frame-rate", "no-sequences", "no-frames"],
)
def test_an_npz_with_impossible_lengths_rate_or_sizes_is_refused(tmp_path, sample, change, message):
    arrays = {"X": sample.to_fixed(40, "pad")[:3], "y": np.array([0, 1, 0])}
    path = tmp_path / "b.npz"
    np.savez(path, **{**arrays, **change})
    with pytest.raises(LandmarkDataError, match=message):
        read_sequences(path, verbose=False)
