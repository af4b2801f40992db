"""IS-CAM (pytorch_grad_cam.is_cam): with one integration step it is Score-CAM; on a score linear in the masked
input its weights are computed by hand; a bad ``num_samples`` is a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import golden_targets
from torch import nn

from pytorch_grad_cam import ISCAM, ScoreCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5


def test_iscam_with_one_step_is_scorecam(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    score = ScoreCAM(tiny_cnn, layers, progress=False)(golden_input, golden_targets())
    iscam = ISCAM(tiny_cnn, layers, num_samples=1, progress=False)(golden_input, golden_targets())
    np.testing.assert_allclose(iscam, score, atol=TOL)


class LinearScore(nn.Module):
    """The target layer is the identity; the score is ``Σ u_k x_k(p)``, linear in the (masked) input."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.register_buffer("u", torch.tensor([1.0, -2.0]).view(1, 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.features(x) * self.u).sum(dim=(1, 2, 3))[:, None]


def _two_channel_image() -> torch.Tensor:
    x = torch.zeros(1, 2, 4, 4)
    x[0, 0] = torch.arange(16.0).view(4, 4) / 15
    x[0, 1, :2] = 1.0
    x[0, 1, 2:] = 0.5
    return x


def test_iscam_hand_computed_on_a_linear_score():
    """s(x ⊙ t M_c) = t s(x ⊙ M_c), so w = softmax(mean_t t · s_c) with mean_t t = (n + 1) / (2n)."""
    x = _two_channel_image()
    masks = (x - x.flatten(2).min(2).values[..., None, None]) / (
        x.flatten(2).max(2).values - x.flatten(2).min(2).values + 1e-8
    )[..., None, None]
    u = torch.tensor([1.0, -2.0])
    scores = torch.stack([(x[0] * masks[0, c] * u.view(2, 1, 1)).sum() for c in range(2)])
    n = 4
    weights = torch.softmax(scores * (n + 1) / (2 * n), dim=0)
    expected = scale_cam_image((weights.view(1, 2, 1, 1) * x).sum(1).clamp_min(0).numpy())
    model = LinearScore()
    result = ISCAM(model, [model.features], num_samples=n, batch_size=3, progress=False)(x, [ClassifierOutputTarget(0)])
    np.testing.assert_allclose(result, expected, atol=TOL)


def test_iscam_bad_num_samples(tiny_cnn):
    with pytest.raises(TypeError, match="num_samples must be a positive int; got float"):
        ISCAM(tiny_cnn, [tiny_cnn[6]], num_samples=2.5)
