"""The perturbations robustness is measured on: seeded, within their bounds, and as scans and photos
perturb a digit (turned, shifted, noisy)."""

import numpy as np
import pytest

from models import robustness
from pipeline import mnist


@pytest.fixture(scope="module")
def digits():
    return mnist.load(mnist.TEST, 64)[0]


def _centre(pixels: np.ndarray) -> np.ndarray:
    rows, cols = np.mgrid[0:28, 0:28]
    mass = pixels.sum(axis=(1, 2))
    return np.stack([(pixels * rows).sum(axis=(1, 2)) / mass, (pixels * cols).sum(axis=(1, 2)) / mass], axis=1)


def test_the_same_seed_gives_the_same_pictures(digits):
    for kind in robustness.PERTURBATIONS:
        np.testing.assert_array_equal(robustness.perturbed(digits, kind), robustness.perturbed(digits, kind))
        assert not np.array_equal(robustness.perturbed(digits, kind, seed=1), robustness.perturbed(digits, kind))


def test_shifts_move_whole_pixels_up_to_three(digits):
    moved = _centre(robustness.perturbed(digits, "shift")) - _centre(digits)
    assert np.abs(moved).max() <= robustness.SHIFT_PIXELS + 0.5  # Ink leaving the frame moves it a little.
    assert np.abs(moved).max() > 1.5


def test_rotations_keep_the_digit_in_place(digits):
    turned = robustness.perturbed(digits, "rotation")
    assert np.abs(_centre(turned) - _centre(digits)).max() < 2.0
    assert np.abs(turned - digits).mean() > 5  # But they do turn it.


def test_noise_has_the_sigma_and_stays_in_range(digits):
    noisy = robustness.perturbed(digits, "noise")
    assert noisy.min() >= 0 and noisy.max() <= 255
    background = digits == 0
    assert 7 < (noisy - digits)[background].std() < 20  # Half of the noise on black is clipped away.


def test_unknown_perturbation(digits):
    with pytest.raises(ValueError, match="unknown perturbation 'blur'"):
        robustness.perturbed(digits, "blur")
