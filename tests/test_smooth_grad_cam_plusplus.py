"""SmoothGradCAM++ (pytorch_grad_cam.smooth_grad_cam_plusplus): without noise it is Grad-CAM++; with noise its
weights come from the mean powers of the noisy gradients, computed by hand; bad arguments are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import golden_targets
from torch import nn

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5


def _targets_for(model: nn.Module, x: torch.Tensor) -> list[ClassifierOutputTarget]:
    with torch.no_grad():
        return [ClassifierOutputTarget(int(c)) for c in model(x).argmax(1)]


def test_smooth_gradcam_plusplus_without_noise_is_gradcam_plusplus(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    smooth = SmoothGradCAMPlusPlus(tiny_cnn, layers, num_samples=3, noise_level=0, progress=False)
    np.testing.assert_allclose(
        smooth(golden_input, golden_targets()),
        GradCAMPlusPlus(tiny_cnn, layers)(golden_input, golden_targets()),
        atol=TOL,
    )


def test_smooth_gradcam_plusplus_averages_gradient_powers(tiny_cnn, golden_input):
    """Two samples: D_p is the mean of the p-th powers of the two noisy gradients (same seed, same noise).
    (At tiny_cnn[6] the gradient is W[k] / (h·w) whatever the input, so an earlier layer is used.)"""
    layers = [tiny_cnn[4]]
    torch.manual_seed(5)
    result = SmoothGradCAMPlusPlus(tiny_cnn, layers, num_samples=2, noise_level=0.3, progress=False)(golden_input)
    torch.manual_seed(5)
    spread = (golden_input.flatten(1).max(1).values - golden_input.flatten(1).min(1).values).view(-1, 1, 1, 1)
    grads, acts = [], None
    for _ in range(2):
        noisy = golden_input + torch.randn_like(golden_input) * 0.3 * spread
        cam = GradCAM(tiny_cnn, layers)
        cam(noisy, _targets_for(tiny_cnn, golden_input))
        grads.append(cam.activations_and_grads.gradients[0])
    cam(golden_input, _targets_for(tiny_cnn, golden_input))
    acts = cam.activations_and_grads.activations[0]
    d1, d2, d3 = (sum(g**p for g in grads) / 2 for p in (1, 2, 3))
    alpha = d2 / (2 * d2 + acts.sum((2, 3), keepdim=True) * d3 + 1e-6)
    weights = (torch.where(d2 != 0, alpha, 0) * d1.clamp_min(0)).sum((2, 3))
    assert (grads[0] - grads[1]).abs().max() > 1e-4
    expected = scale_cam_image((weights[..., None, None] * acts).sum(1).clamp_min(0).numpy(), (28, 24))
    np.testing.assert_allclose(result, scale_cam_image(expected), atol=1e-4)  # BaseCAM scales again after resizing


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (lambda m: SmoothGradCAMPlusPlus(m, [m[6]], num_samples=0), ValueError, "num_samples must be a positive int"),
        (
            lambda m: SmoothGradCAMPlusPlus(m, [m[6]], noise_level=-0.1),
            ValueError,
            "noise_level must be a non-negative number; got -0.1",
        ),
    ],
)
def test_smooth_gradcam_plusplus_bad_arguments(tiny_cnn, factory, error, message):
    with pytest.raises(error, match=message):
        factory(tiny_cnn)


def test_the_noisy_copies_per_pass_do_not_change_the_result(tiny_cnn, golden_input):
    """batch_size groups the noisy copies into passes; the noise (drawn copy by copy) and the map are the same."""
    layers = [tiny_cnn[4]]
    maps = []
    for batch_size in (1, 2, 5, 64):  # copies of the 2 images per pass: 1, 1, 2 (then 1), all 5
        torch.manual_seed(3)
        cam = SmoothGradCAMPlusPlus(
            tiny_cnn, layers, num_samples=5, noise_level=0.3, batch_size=batch_size, progress=False
        )
        maps.append(cam(golden_input))
    for other in maps[1:]:
        np.testing.assert_allclose(other, maps[0], atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        SmoothGradCAMPlusPlus(tiny_cnn, layers, batch_size=0)
