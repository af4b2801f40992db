"""Relevance mass accuracy and relevance rank accuracy (Arras et al. 2022): hand-computed values, ties,
signed maps, torch inputs and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytorch_grad_cam.metrics import Complexity, energy_pointing_game, relevance_mass_accuracy, relevance_rank_accuracy


def _mask() -> np.ndarray:
    mask = np.zeros((1, 4, 4), bool)
    mask[0, :2, :2] = True  # K = 4 pixels
    return mask


def test_relevance_mass_accuracy_hand_values():
    cam = np.zeros((1, 4, 4), np.float32)
    cam[0, 0, 0] = 3.0  # inside
    cam[0, 3, 3] = 1.0  # outside
    cam[0, 2, 2] = -5.0  # negative relevance does not count
    np.testing.assert_allclose(relevance_mass_accuracy(cam, _mask()), [0.75])
    np.testing.assert_allclose(relevance_mass_accuracy(np.abs(cam).clip(0, 3), _mask()), [3 / 7])
    nonneg = np.random.default_rng(0).random((3, 4, 4))
    masks = np.repeat(_mask(), 3, axis=0)
    np.testing.assert_allclose(relevance_mass_accuracy(nonneg, masks), energy_pointing_game(nonneg, masks))


def test_relevance_rank_accuracy_hand_values():
    cam = np.arange(16, dtype=np.float32).reshape(1, 4, 4)[:, ::-1, ::-1].copy()  # highest values top-left
    # top 4: values 15, 14, 13, 12 at (0,0), (0,1), (0,2), (0,3): two of them in the mask
    np.testing.assert_allclose(relevance_rank_accuracy(cam, _mask()), [0.5])
    perfect = np.zeros((1, 4, 4))
    perfect[0, :2, :2] = 1
    np.testing.assert_allclose(relevance_rank_accuracy(torch.from_numpy(perfect), torch.from_numpy(_mask())), [1.0])


def test_relevance_rank_accuracy_shares_ties():
    # a uniform map: every pixel tied, the expected share is the chance level K / N = 4 / 16
    np.testing.assert_allclose(relevance_rank_accuracy(np.ones((1, 4, 4)), _mask()), [0.25])
    # one clear winner inside, then 3 places left among 15 tied pixels of which 3 are inside: 1 + 3 * 3/15
    cam = np.zeros((1, 4, 4))
    cam[0, 0, 0] = 1
    np.testing.assert_allclose(relevance_rank_accuracy(cam, _mask()), [(1 + 3 * 3 / 15) / 4])


def test_empty_mask_warns_and_scores_zero():
    with pytest.warns(UserWarning, match="empty"):
        result = relevance_rank_accuracy(np.ones((1, 4, 4)), np.zeros((1, 4, 4), bool))
    np.testing.assert_array_equal(result, [0.0])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: relevance_mass_accuracy([[0.0]], _mask()),
            TypeError,
            "cams must be a torch tensor or a numpy array; got list",
        ),
        (lambda: relevance_mass_accuracy(np.ones((1, 4, 4), bool), _mask()), TypeError, "cams must hold real"),
        (
            lambda: relevance_rank_accuracy(np.ones((1, 4, 4)), np.ones((1, 3, 4))),
            ValueError,
            r"masks must have the shape of cams \(1, 4, 4\); got \(1, 3, 4\)",
        ),
        (
            lambda: relevance_rank_accuracy(np.ones((4, 4)), np.ones((4, 4))),
            ValueError,
            r"cams must have shape \(B, H, W\); got \(4, 4\)",
        ),
        (lambda: relevance_rank_accuracy(np.full((1, 4, 4), np.nan), _mask()), ValueError, "NaN"),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_complexity_refuses_non_finite_maps() -> None:
    with pytest.raises(ValueError, match="grayscale_cams contains NaN or inf values"):
        Complexity()(np.full((1, 4, 4), np.nan, dtype=np.float32))
