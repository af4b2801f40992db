"""CAM (pytorch_grad_cam.zhou_cam): equal to Grad-CAM and HiResCAM on a GAP + linear head, its weights are the
classifier's rows, and clear errors where the model has no such head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import golden_targets, hook_count
from torch import nn

from pytorch_grad_cam import CAM, GradCAM, HiResCAM

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5


def test_cam_equals_gradcam_and_hirescam_on_gap_linear_head(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    cam = CAM(tiny_cnn, layers)(golden_input, golden_targets())
    np.testing.assert_allclose(cam, GradCAM(tiny_cnn, layers)(golden_input, golden_targets()), atol=TOL)
    np.testing.assert_allclose(cam, HiResCAM(tiny_cnn, layers)(golden_input, golden_targets()), atol=TOL)
    assert CAM(tiny_cnn, layers).fc_layer is tiny_cnn[9]


def test_cam_weights_are_the_classifier_row(tiny_cnn, golden_input):
    cam = CAM(tiny_cnn, [tiny_cnn[6]])
    cam(golden_input, golden_targets())
    activations = cam.activations_and_grads.activations[0]
    weights = cam.get_cam_weights(golden_input, tiny_cnn[6], golden_targets(), activations, None)
    torch.testing.assert_close(weights, tiny_cnn[9].weight[[1, 3]].detach())


def test_cam_clear_errors_without_gap_linear_head(tiny_cnn, golden_input):
    conv_only = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match=r"has no nn\.Linear layer"):
        CAM(conv_only, [conv_only[0]])
    with pytest.raises(ValueError, match="16 channels and fc_layer expects 32"):
        CAM(tiny_cnn, [tiny_cnn[4]])(golden_input)
    # the conv before the last ReLU: GAP(conv) is not what the classifier sees
    with pytest.raises(ValueError, match="no GAP \\+ linear head"):
        CAM(tiny_cnn, [tiny_cnn[5]])(golden_input)
    with pytest.raises(TypeError, match=r"fc_layer must be a torch\.nn\.Linear; got .*Conv2d"):
        CAM(tiny_cnn, [tiny_cnn[6]], fc_layer=tiny_cnn[5])
    with pytest.raises(ValueError, match="fc_layer is not a submodule"):
        CAM(tiny_cnn, [tiny_cnn[6]], fc_layer=nn.Linear(32, 5))
    assert hook_count(tiny_cnn) == 0
