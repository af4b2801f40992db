"""Poly-CAM (pytorch_grad_cam.poly_cam): on one layer it is Score-CAM; its coarse-to-fine combination of layer
maps is computed by hand; 3D inputs are refused."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from conftest import golden_targets, hook_count
from torch import nn

from pytorch_grad_cam import PolyCAM, ScoreCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5


def test_poly_cam_single_layer_is_scorecam(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    np.testing.assert_allclose(
        PolyCAM(tiny_cnn, layers, progress=False)(golden_input, golden_targets()),
        ScoreCAM(tiny_cnn, layers, progress=False)(golden_input, golden_targets()),
        atol=TOL,
    )


class _FixedMaps(PolyCAM):
    maps: ClassVar[dict[int, torch.Tensor]] = {}

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth=False):
        return self.maps[activations.shape[-1]]


def _poly(coarse: torch.Tensor, fine: torch.Tensor) -> np.ndarray:
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.AvgPool2d(2), nn.Flatten(), nn.LazyLinear(1))
    x = torch.zeros(1, 1, 4, 4)
    model(x)
    _FixedMaps.maps = {2: coarse, 4: fine}
    return _FixedMaps(model, [model[1], model[0]], progress=False)(x, [ClassifierOutputTarget(0)])


def test_poly_cam_combination_hand_computed():
    coarse = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    # a constant fine map adds no detail: the upsampled coarse map
    expected = scale_cam_image(
        torch.nn.functional.interpolate(coarse[:, None], size=(4, 4), mode="bilinear")[:, 0].numpy()
    )
    np.testing.assert_allclose(_poly(coarse, torch.full((1, 4, 4), 0.3)), expected, atol=TOL)
    # a constant coarse map: the fine map divided by its local 3x3 mean (one-hot → one-hot)
    fine = torch.zeros(1, 4, 4)
    fine[0, 1, 2] = 2.0
    np.testing.assert_allclose(_poly(torch.ones(1, 2, 2), fine), (fine / 2).numpy(), atol=TOL)


def test_poly_cam_rejects_3d_inputs():
    model = nn.Sequential(
        nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 2)
    )
    x = torch.randn(1, 1, 4, 4, 4)
    with pytest.raises(ValueError, match="input_tensor must have shape \\(B, C, H, W\\); got \\(1, 1, 4, 4, 4\\)"):
        PolyCAM(model, [model[1]], progress=False)(x, [ClassifierOutputTarget(0)])
    assert hook_count(model) == 0
