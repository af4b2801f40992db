"""Group-CAM (pytorch_grad_cam.group_cam): a hand-computed case on two half-image channels, clear errors for bad
arguments, and 3D inputs refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import GroupCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

pytestmark = pytest.mark.usefixtures("one_thread")


class HalvesModel(nn.Module):
    """Identity target layer on a 2-channel input; score ``3 Σ x_0 + Σ x_1``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return (3 * x[:, 0].sum(dim=(1, 2)) + x[:, 1].sum(dim=(1, 2)))[:, None]


def test_group_cam_hand_computed_halves():
    """Channel 0 lights the left half, channel 1 the right half, with gradients 3 and 1. The left group's
    mask restores ``3a - c`` of the score lost to the blur, the right one ``a - 3c`` (a ≈ c by symmetry): only
    the left group has a positive weight, so the map is the left half."""
    x = torch.zeros(1, 2, 8, 8)
    x[0, 0, :, :4] = 1
    x[0, 1, :, 4:] = 1
    model = HalvesModel()
    cam = GroupCAM(model, [model.features], groups=2, blur_kernel_size=5, blur_sigma=2.0, progress=False)
    result = cam(x, [ClassifierOutputTarget(0)])
    expected = np.zeros((1, 8, 8), np.float32)
    expected[0, :, :4] = 1
    np.testing.assert_allclose(result, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (lambda m: GroupCAM(m, [m[6]], percentile=100), ValueError, r"percentile must be .*\[0, 100\); got 100"),
        (lambda m: GroupCAM(m, [m[6]], blur_kernel_size=4), ValueError, "blur_kernel_size must be odd; got 4"),
        (lambda m: GroupCAM(m, [m[6]], groups=0), ValueError, "groups must be a positive int; got 0"),
    ],
)
def test_group_cam_bad_arguments(tiny_cnn, factory, error, message):
    with pytest.raises(error, match=message):
        factory(tiny_cnn)


def test_group_cam_rejects_3d_inputs():
    model = nn.Sequential(
        nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 2)
    )
    x = torch.randn(1, 1, 4, 4, 4)
    with pytest.raises(ValueError, match="input_tensor must have shape \\(B, C, H, W\\); got \\(1, 1, 4, 4, 4\\)"):
        GroupCAM(model, [model[1]], progress=False)(x, [ClassifierOutputTarget(0)])
    assert hook_count(model) == 0
