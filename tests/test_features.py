"""Normalisation: invariance to where the hand is, how big it is, and which hand it is."""

import numpy as np
import pandas as pd
import pytest

from gesturelab.datasets.landmarks import LANDMARK_COLUMNS
from gesturelab.features.landmark_features import LandmarkNormalizer, as_hands

OPTIONS = [
    {"coords": "2d", "distances": False, "angles": False},
    {"coords": "2d", "distances": True, "angles": False},
    {"coords": "3d", "distances": True, "angles": True},
    {"coords": "2d", "distances": True, "angles": True, "depth": True},
]


@pytest.fixture(scope="module")
def hands(sample_frame):
    return as_hands(sample_frame[list(LANDMARK_COLUMNS)].to_numpy()[::7])


@pytest.mark.parametrize("options", OPTIONS)
def test_translation_and_scale_invariance(hands, options):
    normaliser = LandmarkNormalizer(**options).fit(hands)
    moved = hands.copy()
    moved[:, :, :2] = moved[:, :, :2] * 2.7 + np.array([313.0, -41.0])
    moved[:, :, 2] *= 2.7
    np.testing.assert_allclose(normaliser.transform(moved), normaliser.transform(hands), atol=1e-9)


@pytest.mark.parametrize("options", OPTIONS)
def test_left_hand_is_mirrored_onto_the_right(hands, options):
    right = pd.DataFrame(hands.reshape(len(hands), -1), columns=LANDMARK_COLUMNS)
    right["handedness"] = "Right"
    left = right.copy()
    left[[c for c in LANDMARK_COLUMNS if c.startswith("x")]] *= -1
    left["handedness"] = "Left"
    normaliser = LandmarkNormalizer(**options).fit(right)
    assert normaliser.mirrors_left_hands_
    np.testing.assert_allclose(normaliser.transform(left), normaliser.transform(right), atol=1e-9)


def test_trained_without_handedness_never_mirrors(hands):
    """Handedness that shows up only at inference must not change what the model sees."""
    normaliser = LandmarkNormalizer().fit(hands)
    assert not normaliser.mirrors_left_hands_
    frame = pd.DataFrame(hands.reshape(len(hands), -1), columns=LANDMARK_COLUMNS)
    labelled = frame.assign(handedness="Left")
    np.testing.assert_array_equal(normaliser.transform(labelled), normaliser.transform(frame))


def test_without_handedness_a_mirrored_hand_stays_different(hands):
    """Geometry alone cannot tell a left palm from a right back of the hand."""
    normaliser = LandmarkNormalizer(distances=False).fit(hands)
    mirrored = hands.copy()
    mirrored[:, :, 0] *= -1
    assert not np.allclose(normaliser.transform(mirrored), normaliser.transform(hands))


def test_depth_tells_the_back_of_a_hand_from_the_palm_of_the_other_hand(hands):
    """Turned round (the back to the camera) a hand is x -> -x and z -> -z; the other hand's
    palm is x -> -x alone. In x, y they are the same; depth tells them apart."""
    back = hands.copy()
    back[:, :, [0, 2]] *= -1
    other_palm = hands.copy()
    other_palm[:, :, 0] *= -1
    flat = LandmarkNormalizer(angles=True).fit(hands)
    np.testing.assert_allclose(flat.transform(back), flat.transform(other_palm), atol=1e-9)
    facing = LandmarkNormalizer(angles=True, depth=True).fit(hands)
    assert len(facing.get_feature_names_out()) == facing.transform(back).shape[1]
    tips = facing.transform(back)[:, -5:]  # each fingertip's depth against its finger's base
    np.testing.assert_allclose(tips, -facing.transform(other_palm)[:, -5:], atol=1e-9)
    assert np.abs(tips).max() > 0.1


def test_normalised_wrist_at_origin_and_unit_scale(hands):
    out = LandmarkNormalizer(distances=False).fit(hands).transform(hands).reshape(-1, 21, 2)
    np.testing.assert_allclose(out[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(out[:, 9], axis=1), 1.0)


def test_raw_mode_passes_coordinates_through(hands):
    out = LandmarkNormalizer(normalise=False, coords="3d", distances=False).fit(hands)
    np.testing.assert_array_equal(out.transform(hands), hands.reshape(len(hands), -1))


@pytest.mark.parametrize("options", OPTIONS)
def test_feature_names_match_width(hands, options):
    normaliser = LandmarkNormalizer(**options).fit(hands)
    assert len(normaliser.get_feature_names_out()) == normaliser.transform(hands[:2]).shape[1]


def test_every_natural_input_form(hands):
    normaliser = LandmarkNormalizer().fit(hands)
    expected = normaliser.transform(hands[:1])
    frame = pd.DataFrame(hands[:1].reshape(1, -1), columns=LANDMARK_COLUMNS)
    for form in (hands[0], hands[0].ravel(), hands[:1], hands[:1].reshape(1, -1), frame):
        np.testing.assert_allclose(normaliser.transform(form), expected)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(n, 63\) or \(n, 21, 3\)"):
        LandmarkNormalizer().fit(np.zeros((2, 20, 3))).transform(np.zeros((2, 20, 3)))


def test_model_trained_with_handedness_refuses_input_without_it(hands):
    right = pd.DataFrame(hands.reshape(len(hands), -1), columns=LANDMARK_COLUMNS)
    normaliser = LandmarkNormalizer().fit(right.assign(handedness="Right"))
    with pytest.raises(ValueError, match="handedness"):
        normaliser.transform(hands)
