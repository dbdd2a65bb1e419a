"""``--hand both``: two hands a frame (the right hand's 21 points, then the left's, each masked
where it is missing), read from the real ISLR files, kept through an imported bundle, learnt by
a model that records it, and served the same way by the predictor and the streaming recognizer;
and the hands of ``extract``'s per-frame CSVs placed by their handedness column."""

from __future__ import annotations

import numpy as np
import pytest

from gesturelab import config
from gesturelab.datasets import seq_writers, shrec
from gesturelab.datasets.landmarks import mirror_hand
from gesturelab.datasets.sequence_formats import import_sequences, read_sequences
from gesturelab.datasets.sequences import hand_mask, resample
from gesturelab.errors import LandmarkDataError, LandmarkInputError

ISLR = config.DATA_DIR / "islr_signs_sample"


def _read(hand: str, **options):
    return read_sequences(ISLR, hand=hand, quarantine_dir=None, verbose=False, **options)


@pytest.fixture(scope="module")
def both():
    return _read("both")


def _by_source(loaded) -> dict:
    return dict(zip(loaded.data.meta["source"].tolist(), loaded.data.sequences, strict=True))


def test_both_hands_are_each_hand_as_recorded_with_its_own_mask(both):
    assert both.data.hand == "both" and both.data.hands == 2
    assert {s.shape[1:] for s in both.data.sequences} == {(42, 3)}
    two = _by_source(both)
    right, left = _by_source(_read("right")), _by_source(_read("left"))
    # a frame counts when either hand is in it: what a one-hand reading keeps is kept here
    assert set(right) | set(left) <= set(two)
    for source, sequence in right.items():
        np.testing.assert_array_equal(two[source][:, :21], sequence)
    for source, sequence in left.items():  # the left reading mirrors; both keeps it as recorded
        np.testing.assert_allclose(mirror_hand(two[source][:, 21:]), sequence, atol=1e-6)
    present = np.asarray([hand_mask(s).any(axis=0) for s in both.data.sequences])
    # real signers: some sequences hold one hand only, and each hand is masked on its own
    assert present[:, 0].sum() < len(present) or present[:, 1].sum() < len(present)
    assert any((m[:, 0] != m[:, 1]).any() for m in (hand_mask(s) for s in both.data.sequences))
    notes = [n for n in both.notes if n.startswith("hand: both")]
    assert notes == [
        f"hand: both (right then left, each masked where it is missing); the right hand in "
        f"{present[:, 0].sum()} sequences, the left in {present[:, 1].sum()}, both in "
        f"{present.all(axis=1).sum()}"
    ]


def test_an_imported_two_hand_dataset_reads_back_the_same(both, tmp_path):
    import_sequences(both, "signs", data_dir=tmp_path, command="test")
    again = read_sequences("signs", data_dir=tmp_path, quarantine_dir=None, verbose=False)
    assert again.data.hand == "both" and again.data.hands == 2
    assert again.counts["sequences_kept"] == both.counts["sequences_kept"]
    for a, b in zip(again.data.sequences, both.data.sequences, strict=True):
        np.testing.assert_array_equal(a, b)


def test_clip_folders_refuse_both_hands_in_one_line(tmp_path):
    (tmp_path / "wave").mkdir()
    with pytest.raises(LandmarkDataError, match="tracked one hand a clip") as refused:
        read_sequences(tmp_path, format="clip-folder", hand="both", verbose=False)
    assert "\n" not in str(refused.value)


def test_a_two_hand_model_learns_records_and_serves_both_hands(both):
    from gesturelab.models.predictor import SequencePredictor
    from gesturelab.serving.streaming import StreamingRecognizer
    from gesturelab.training.seq_experiment import stream_metadata, train_and_log
    from gesturelab.training.seq_training import TrainConfig, flat

    # not logged: how a logged model is loaded does not depend on its hands (test_seq_predictor)
    train_config = TrainConfig(arch="cnn", frames=16, epochs=3, width=16, patience=3)
    out = train_and_log(both.data, train_config, n_bootstrap=10, log=False)
    metadata = {"frames": 16, "classes": list(both.data.classes)}
    predictor = SequencePredictor(out.model, {**metadata, **stream_metadata(both.data, out)})
    assert out.model.input_shape[1:] == (16, 126)
    assert predictor.hand == "both" and predictor.hands == 2
    assert predictor.get_model_info()["input_shape"] == [16, 42, 3]
    sequence = both.data.sequences[0]
    np.testing.assert_allclose(
        predictor.predict_distribution(sequence),
        out.model.predict_on_batch(flat(resample(sequence, 16)[None])),
        atol=1e-6,
    )
    with pytest.raises(LandmarkInputError, match="takes both hands"):
        predictor.predict_distribution(sequence[:, :21])
    # streaming: a frame whose left hand is missing pushed whole, or its right hand pushed
    # with MediaPipe's handedness, is the same frame to the model
    right_only = sequence.copy()
    right_only[:, 21:] = np.nan
    tables = []
    for whole in (True, False):
        recognizer = StreamingRecognizer(predictor, fps=30.0, window=16, stride=4, threshold=0.0)
        for frame in right_only:
            recognizer.push(frame) if whole else recognizer.push(frame[:21], handedness="Right")
        tables.append(recognizer.windows_table())
    assert len(tables[0]) > 0
    assert tables[0]["label"].tolist() == tables[1]["label"].tolist()
    np.testing.assert_allclose(tables[0]["confidence"], tables[1]["confidence"], atol=1e-6)
    with pytest.raises(LandmarkInputError, match="needs its handedness"):
        predictor.takes_hand(sequence[0, :21], None)


@pytest.fixture(scope="module")
def gestures():
    """Eight real SHREC'17 sequences of four gestures."""
    data = shrec.load_compact()
    return data.subset(np.concatenate([np.flatnonzero(data.labels == k)[:2] for k in range(4)]))


def test_extract_csvs_place_each_hand_by_its_handedness(gestures, tmp_path):
    """Rows as ``extract`` writes them (hand_index, handedness): odd sequences signed with the
    left hand, every third frame a second hand on the other side. Each choice gets back the
    hand it names; before, the second hand's rows were dropped whatever their side."""
    path = seq_writers.write_sequence_csv(
        gestures, tmp_path / "rows.csv", left_handed=range(1, 8, 2), other_hand_every=3
    )

    def read(hand):
        return read_sequences(path, hand=hand, quarantine_dir=None, verbose=False)

    dominant, both = read("dominant"), read("both")
    assert dominant.data.meta["hand"].tolist() == ["right", "left"] * 4
    assert any("hands placed by column 'handedness'" in n for n in dominant.notes)
    for i, (original, got) in enumerate(
        zip(gestures.sequences, dominant.data.sequences, strict=True)
    ):
        np.testing.assert_allclose(got, original, rtol=1e-5, atol=1e-5, equal_nan=True)
        two = both.data.sequences[i]
        signing = slice(21, 42) if i % 2 else slice(0, 21)
        other = slice(0, 21) if i % 2 else slice(21, 42)
        np.testing.assert_array_equal(
            hand_mask(two)[:, 1 if i % 2 else 0], hand_mask(original)[:, 0]
        )
        present = hand_mask(two)[:, 0 if i % 2 else 1]
        assert present.sum() == (hand_mask(original)[::3, 0]).sum() and not present[1::3].any()
        np.testing.assert_allclose(
            mirror_hand(two[:, signing]) if i % 2 else two[:, signing],
            original,
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            two[present, other],
            (original if i % 2 else mirror_hand(original))[present],
            rtol=1e-5,
            atol=1e-5,
        )
    # --hand right: the left-handed signers' sequences are their few right-hand frames, or set
    # aside; the file without its handedness column refuses --hand and reads as recorded
    right = read("right")
    assert set(right.data.meta["hand"].tolist()) == {"right"}
    plain = seq_writers.write_sequence_csv(gestures, tmp_path / "plain.csv")
    with pytest.raises(LandmarkDataError, match="no handedness column"):
        read_sequences(plain, hand="left", verbose=False)
    assert read_sequences(plain, quarantine_dir=None, verbose=False).data.hand is None


def test_a_handedness_cell_that_names_no_side_is_listed(gestures, tmp_path):
    path = seq_writers.write_sequence_csv(
        gestures.subset([0]), tmp_path / "rows.csv", left_handed=[0]
    )
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",Left,", ",left hand,")
    path.write_text("\n".join(lines) + "\n")
    loaded = read_sequences(path, quarantine_dir=None, verbose=False)
    assert loaded.rejected[["line", "reason"]].values.tolist() == [
        [4, "column 'handedness': 'left hand' is not Left or Right (row not used)"]
    ]
