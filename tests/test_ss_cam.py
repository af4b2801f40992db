"""SS-CAM (pytorch_grad_cam.ss_cam): without noise it is Score-CAM; its noise changes the map reproducibly under
a seed; a bad ``std`` is a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import golden_targets

from pytorch_grad_cam import SSCAM, ScoreCAM

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5


def test_sscam_without_noise_is_scorecam(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    score = ScoreCAM(tiny_cnn, layers, progress=False)(golden_input, golden_targets())
    ss = SSCAM(tiny_cnn, layers, num_samples=3, std=0, batch_size=7, progress=False)(golden_input, golden_targets())
    np.testing.assert_allclose(ss, score, atol=TOL)


def test_sscam_noise_changes_the_map_and_is_seeded(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    torch.manual_seed(3)
    first = SSCAM(tiny_cnn, layers, num_samples=2, std=0.5, progress=False)(golden_input, golden_targets())
    torch.manual_seed(3)
    again = SSCAM(tiny_cnn, layers, num_samples=2, std=0.5, progress=False)(golden_input, golden_targets())
    score = ScoreCAM(tiny_cnn, layers, progress=False)(golden_input, golden_targets())
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - score).max() > 1e-4


def test_sscam_bad_std(tiny_cnn):
    with pytest.raises(TypeError, match="std must be a non-negative number; got str"):
        SSCAM(tiny_cnn, [tiny_cnn[6]], std="big")
