"""segmentation_models_pytorch explained for real: a U-Net with a ResNet-18 encoder built by smp itself (random
weights, ``encoder_weights=None``), :class:`SemanticSegmentationTarget` on its own predicted mask, layers named
by hand, and Grad-CAM checked against a computation by hand with OpenCV's resize."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from integration_checks import grad_cam_by_hand, run_method
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

smp = pytest.importorskip("segmentation_models_pytorch")

SIZE = 64
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def unet() -> nn.Module:
    torch.manual_seed(0)
    return smp.Unet("resnet18", encoder_weights=None, classes=3).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def targets(unet: nn.Module, images: torch.Tensor) -> list[SemanticSegmentationTarget]:
    """Per image: the class predicted on most pixels, over the pixels where it is predicted."""
    with torch.no_grad():
        predicted = unet(images).argmax(dim=1)
    chosen = [int(torch.bincount(mask.flatten(), minlength=3).argmax()) for mask in predicted]
    return [SemanticSegmentationTarget(c, (mask == c).float().numpy()) for c, mask in zip(chosen, predicted)]


def test_target_is_the_masked_class_score(unet: nn.Module, images: torch.Tensor, targets: list[Any]) -> None:
    with torch.no_grad():
        out = unet(images)
    for index, target in enumerate(targets):
        expected = (out[index, target.category] * target.mask).sum()
        assert float(target(out[index])) == pytest.approx(float(expected), rel=1e-6)
        assert target.mask.sum() > 0


def test_grad_cam_by_hand(unet: nn.Module, images: torch.Tensor, targets: list[Any]) -> None:
    """Grad-CAM on ``encoder.layer3`` (4 x 4): weights = spatial mean of the gradients, ReLU of the weighted
    sum, min-max scaled, ``cv2.resize`` to the input (bilinear), scaled again."""
    layer = unet.encoder.layer3
    with pgc.GradCAM(unet, [layer]) as cam:
        result = cam(images, targets)
    np.testing.assert_allclose(result, grad_cam_by_hand(unet, layer, images, targets), atol=1e-5)


METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    # method: (layer, options); the perturbation methods use the last decoder block (16 channels)
    "GradCAM": ("decoder.blocks.3", {}),
    "HiResCAM": ("decoder.blocks.3", {}),
    "LayerCAM": ("decoder.blocks.4", {}),
    "EigenCAM": ("encoder.layer4", {}),
    "ScoreCAM": ("decoder.blocks.4", {"batch_size": 32, "progress": False}),
    "AblationCAM": ("decoder.blocks.4", {"batch_size": 32, "progress": False}),
    "FullGrad": ("", {}),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_methods_on_smp_unet(unet: nn.Module, images: torch.Tensor, targets: list[Any], name: str) -> None:
    layer, options = METHODS[name]
    layers = [unet.get_submodule(layer)] if layer else []
    chosen = None if name == "EigenCAM" else targets
    _, outputs = run_method(getattr(pgc, name), unet, layers, images, chosen, **options)
    assert outputs.shape == (2, 3, SIZE, SIZE)


def test_the_map_depends_on_the_class(unet: nn.Module, images: torch.Tensor) -> None:
    """One image, the whole image as mask, two classes: two different maps."""
    mask = np.ones((SIZE, SIZE), np.float32)
    with pgc.HiResCAM(unet, [unet.decoder.blocks[3]]) as cam:
        maps = [cam(images[:1], [SemanticSegmentationTarget(c, mask)])[0] for c in (0, 2)]
    assert np.abs(maps[0] - maps[1]).max() > 0.2
