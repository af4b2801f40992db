"""RefineCAM: the product of per-layer base maps (as the reference computes it), hooks, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, RefineCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


@pytest.mark.parametrize("base_method", [GradCAMPlusPlus, GradCAM])
@pytest.mark.parametrize("use_targets", [True, False])
def test_product_of_per_layer_maps(tiny_cnn, golden_input, base_method, use_targets):
    layers = [tiny_cnn[6], tiny_cnn[4], tiny_cnn[1]]
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)] if use_targets else None
    kwargs = {"base_method": base_method} if base_method is not GradCAMPlusPlus else {}
    cam = RefineCAM(tiny_cnn, layers, **kwargs)(golden_input, targets)
    # the reference: one base CAM per layer, multiplied, scaled
    per_layer = np.array([base_method(tiny_cnn, [layer])(golden_input, targets) for layer in layers])
    expected = scale_cam_image(np.prod(per_layer, axis=0))
    assert cam.dtype == np.float32 and cam.shape == (2, 24, 28)
    np.testing.assert_allclose(cam, expected, atol=1e-6)
    assert hook_count(tiny_cnn) == 0


def test_hand_computed_two_layers():
    # identity 1x1 convs: GradCAM of each layer is (up to scaling) the map of the channel the score reads
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.Conv2d(1, 1, 1, bias=False), nn.Flatten(), nn.Linear(9, 1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[1].weight.fill_(1.0)
        model[3].weight.fill_(1.0)
        model[3].bias.zero_()
    x = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]).reshape(1, 1, 3, 3)
    cam = RefineCAM(model, [model[0], model[1]], base_method=GradCAM)(x, [ClassifierOutputTarget(0)])
    scaled = x[0, 0].numpy() / (8 + 1e-7)
    product = scaled * scaled
    np.testing.assert_allclose(cam[0], product / (product.max() + 1e-7), atol=1e-6)


def test_single_layer_and_aug_smooth_equal_the_base_method(tiny_cnn, golden_input):
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    with RefineCAM(tiny_cnn, [tiny_cnn[4]]) as refine, GradCAMPlusPlus(tiny_cnn, [tiny_cnn[4]]) as base:
        np.testing.assert_allclose(refine(golden_input, targets), base(golden_input, targets), atol=1e-6)
        np.testing.assert_allclose(
            refine(golden_input, targets, aug_smooth=True), base(golden_input, targets, aug_smooth=True), atol=1e-6
        )
        np.testing.assert_allclose(
            refine.forward(golden_input, targets, True), base(golden_input, targets, eigen_smooth=True), atol=1e-5
        )
        assert torch.equal(refine.outputs, base.outputs)
    assert hook_count(tiny_cnn) == 0


def test_releases_hooks_and_state_on_errors(tiny_cnn, golden_input):
    tiny_cnn.train()
    flags = [m.training for m in tiny_cnn.modules()]
    refine = RefineCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])
    with pytest.raises(ValueError, match=r"targets must have one entry per image.*got 3 target"):
        refine(golden_input, [ClassifierOutputTarget(0)] * 3)
    with pytest.raises(ValueError, match=r"category must be in \[0, 5\).*got 11"):
        refine(golden_input, [ClassifierOutputTarget(11)] * 2)
    with pytest.raises(TypeError, match=r"base_method must be a CAM class such as GradCAM.*; got int 3"):
        RefineCAM(tiny_cnn, [tiny_cnn[4]], base_method=3)
    with pytest.raises(TypeError, match=r"target_layers\[0\] must be a torch.nn.Module; got str"):
        RefineCAM(tiny_cnn, ["layer4"])
    assert hook_count(tiny_cnn) == 0
    assert [m.training for m in tiny_cnn.modules()] == flags
    assert all(p.grad is None for p in tiny_cnn.parameters())
