"""One run-key scheme for both kinds of model: the code and library versions are in every key."""

from gesturelab.training import run_keys


def test_every_key_covers_files_that_exist_and_the_libraries_that_compute_the_result():
    for files in (
        run_keys.STATIC_TRAINING_CODE,
        run_keys.SEQUENCE_TRAINING_CODE,
        run_keys.SCORING_CODE,
    ):
        assert run_keys.code_version(files)  # reads each file: a moved module fails here
    assert "scikit-learn" in run_keys.STATIC_LIBRARIES  # an upgrade trains again
    assert {"keras", "tensorflow-cpu"} <= set(run_keys.SEQUENCE_LIBRARIES)
    without = run_keys.code_version(run_keys.STATIC_TRAINING_CODE)
    assert run_keys.static_code_version() != without
    assert run_keys.run_key(role="a", seed=1) != run_keys.run_key(role="a", seed=2)
