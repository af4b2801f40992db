"""Guided Grad-CAM (pytorch_grad_cam.guided_grad_cam): Grad-CAM times the magnitude of guided backpropagation,
rescaled, with the model's ReLUs left in place."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import golden_targets
from torch import nn

from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel, GuidedGradCAM
from pytorch_grad_cam.utils.image import scale_cam_image

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5


def test_guided_gradcam_is_gradcam_times_guided_backprop(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    cam = GuidedGradCAM(tiny_cnn, layers)
    result = cam(golden_input, golden_targets())
    grad_cam = GradCAM(tiny_cnn, layers)(golden_input, golden_targets())
    guided = GuidedBackpropReLUModel(tiny_cnn)(golden_input, target_category=[1, 3])
    magnitude = np.abs(guided).sum(-1)
    magnitude /= magnitude.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(result, scale_cam_image(grad_cam * magnitude), atol=TOL)
    np.testing.assert_allclose(cam.guided_gradients.movedim(1, -1).numpy(), guided, atol=1e-6)
    assert all(isinstance(m, nn.ReLU) for m in (tiny_cnn[1], tiny_cnn[4], tiny_cnn[6]))
