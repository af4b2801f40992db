"""MONAI 3-D networks explained for real: a small ``UNet`` (segmentation of a volume) and a small ``DenseNet``
(the class of ``DenseNet121``, fewer and thinner blocks so that the module stays fast), built by MONAI itself
with random weights. The maps are volumes ``(D, H, W)`` resized like the reference (``scipy.ndimage.zoom``'s
cubic spline), checked by hand for Grad-CAM. ScoreCAM runs on the U-Net only (one forward per channel; on
the DenseNet it would only add time)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from integration_checks import grad_cam_by_hand, run_method
from scipy.ndimage import zoom
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget

nets = pytest.importorskip("monai.networks.nets")

SIDE = 32
VOLUME = (SIDE, SIDE, SIDE)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def unet() -> nn.Module:
    torch.manual_seed(0)
    return nets.UNet(
        spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2), num_res_units=1
    ).eval()


@pytest.fixture(scope="module")
def densenet() -> nn.Module:
    torch.manual_seed(0)
    return nets.DenseNet(
        spatial_dims=3, in_channels=1, out_channels=2, init_features=16, growth_rate=8, block_config=(2, 2, 2, 2)
    ).eval()


@pytest.fixture(scope="module")
def volumes() -> torch.Tensor:
    return torch.rand(2, 1, *VOLUME, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def unet_targets(unet: nn.Module, volumes: torch.Tensor) -> list[SemanticSegmentationTarget]:
    """Class 1 over the voxels where the U-Net predicts it."""
    with torch.no_grad():
        predicted = unet(volumes).argmax(dim=1)
    return [SemanticSegmentationTarget(1, (mask == 1).float().numpy()) for mask in predicted]


CLASSIFY = [ClassifierOutputTarget(0), ClassifierOutputTarget(0)]  # the top class of both volumes


# --------------------------------------------------------------------------------------- U-Net
def unet_layer(unet: nn.Module) -> nn.Module:
    """The decoder block at half resolution (8 channels, 16³): ``model[1].submodule[2]``."""
    return unet.model[1].submodule[2]


def test_unet_grad_cam_by_hand(unet: nn.Module, volumes: torch.Tensor, unet_targets: list[Any]) -> None:
    layer = unet_layer(unet)
    with pgc.GradCAM(unet, [layer]) as cam:
        result = cam(volumes, unet_targets)
    np.testing.assert_allclose(result, grad_cam_by_hand(unet, layer, volumes, unet_targets), atol=1e-5)


# ------------------------------------------------------------------------------------ DenseNet
def test_densenet_grad_cam_by_hand(densenet: nn.Module, volumes: torch.Tensor) -> None:
    layer = densenet.features.denseblock2  # 32 channels at 4³ for a 32³ volume
    with pgc.GradCAM(densenet, [layer]) as cam:
        result = cam(volumes, CLASSIFY)
    np.testing.assert_allclose(result, grad_cam_by_hand(densenet, layer, volumes, CLASSIFY), atol=1e-5)


# method: (options on the U-Net, options on the DenseNet or None to skip it there)
METHODS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "GradCAM": ({}, {}),
    "GradCAMPlusPlus": ({}, {}),
    "HiResCAM": ({}, {}),
    "LayerCAM": ({}, {}),
    "EigenCAM": ({}, {}),
    "ScoreCAM": ({"batch_size": 8, "progress": False}, None),  # one forward per channel: U-Net only
    "AblationCAM": ({"batch_size": 8, "progress": False}, {"batch_size": 32, "progress": False}),
    "FullGrad": ({"all_bias_layers": True}, {"all_bias_layers": True}),  # 3-D bias layers need all_bias_layers
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_methods_on_monai_unet(unet: nn.Module, volumes: torch.Tensor, unet_targets: list[Any], name: str) -> None:
    layers = [] if name == "FullGrad" else [unet_layer(unet)]
    targets = None if name == "EigenCAM" else unet_targets
    _, outputs = run_method(getattr(pgc, name), unet, layers, volumes, targets, **METHODS[name][0])
    assert outputs.shape == (2, 2, *VOLUME)


@pytest.mark.parametrize("name", sorted(name for name, (_, options) in METHODS.items() if options is not None))
def test_methods_on_monai_densenet(densenet: nn.Module, volumes: torch.Tensor, name: str) -> None:
    layers = [] if name == "FullGrad" else [densenet.features.denseblock2]
    targets = None if name == "EigenCAM" else CLASSIFY
    options = METHODS[name][1]
    assert options is not None
    _, outputs = run_method(getattr(pgc, name), densenet, layers, volumes, targets, **options)
    assert outputs.shape == (2, 2)


def test_densenet_default_targets_are_the_top_class(densenet: nn.Module, volumes: torch.Tensor) -> None:
    with torch.no_grad():
        top = densenet(volumes).argmax(dim=1).tolist()
    layer = [densenet.features.denseblock2]
    implicit = pgc.GradCAM(densenet, layer)(volumes)
    explicit = pgc.GradCAM(densenet, layer)(volumes, [ClassifierOutputTarget(c) for c in top])
    np.testing.assert_array_equal(implicit, explicit)


# ---------------------------------------------------------------------------------- the 3-D resize
@pytest.mark.parametrize(
    ("source", "size"),
    [
        ((4, 4, 4), VOLUME),
        ((3, 5, 2), (7, 9, 11)),
        ((1, 4, 6), (2, 8, 8)),
        ((8, 6, 5), (3, 6, 1)),
        ((2, 2, 2), (2, 5, 2)),
    ],
)
def test_volume_resize_is_scipy_zoom(source: tuple[int, int, int], size: tuple[int, int, int]) -> None:
    """Volumes are resized in torch with the numbers of the reference's ``scipy.ndimage.zoom`` (cubic spline,
    corners aligned): up, down, single-voxel axes and unchanged axes."""
    from pytorch_grad_cam.core.scaling import resize_cam_tensor

    maps = torch.rand(2, *source, generator=torch.Generator().manual_seed(0))
    expected = np.stack([zoom(m, [t / s for s, t in zip(source, size)]) for m in maps.numpy()])
    result = resize_cam_tensor(maps, size)
    assert result.shape == (2, *size) and result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-6)


def test_densenet_layer_chosen_automatically(densenet: nn.Module, volumes: torch.Tensor) -> None:
    """A 3-D classifier needs no target layer: the last feature map with more than one voxel per axis (at 32³,
    the last transition's convolution; the last dense block is 1³), the same maps as when it is named."""
    cam = pgc.GradCAM(densenet)
    automatic = cam(volumes)
    assert cam.auto_choice is not None and cam.auto_choice.name == "features.transition3.conv"
    named = pgc.GradCAM(densenet, [densenet.features.transition3.conv])(volumes)
    np.testing.assert_allclose(automatic, named, atol=1e-6)
    assert automatic.shape == (2, *VOLUME) and np.isfinite(automatic).all()
