"""timm models, explained with zero configuration: ``target_layers`` omitted gives the same maps as the layer and
reshape a user would pick by hand (the ones the docs name), for every family of layout — CNNs (ResNet, ConvNeXt,
EfficientNet), ViTs with 1, 2 (DeiT distilled) and 5 (register) leading tokens, channels-last Swin and MambaOut —
and for gradient, gradient-free, perturbation and bias-gradient methods. AblationCAM's cut model (torch.fx) works on
Swin and MetaFormer blocks that read their batch size from a shape, and equals the full re-run.

The models are timm's own constructors with random weights and shrunk sizes (depths, widths, image sizes), built
once per module. Skipped without timm (pip install -e '.[integrations]')."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.core.layers import TokenGridReshape
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform

timm = pytest.importorskip("timm", reason="timm is not installed (pip install -e '.[integrations]')")

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-6


def _tokens_4x4(tokens: torch.Tensor) -> torch.Tensor:
    return vit_reshape_transform(tokens, height=4, width=4)


# name → (timm model, constructor options, input side, the layer a user would pick by hand, its reshape, the
# automatic choice's name)
MODELS: dict[str, tuple[str, dict[str, Any], int, Callable[[Any], nn.Module], Any, str]] = {
    "resnet50": (
        "resnet50",
        {"layers": (1, 1, 1, 1), "channels": (8, 16, 24, 32), "stem_width": 8},
        64,
        lambda m: m.layer4[-1],
        None,
        "layer4.0",
    ),
    "convnext_tiny": (
        "convnext_tiny",
        {"depths": (1, 1, 1, 1), "dims": (16, 24, 32, 48)},
        64,
        lambda m: m.stages[-1],
        None,
        "stages.3.blocks.0",
    ),
    "efficientnet_b0": ("efficientnet_b0", {}, 64, lambda m: m.bn2, None, "bn2"),
    "vit_small": (
        "vit_small_patch16_224",
        {"img_size": 64, "embed_dim": 48, "depth": 2, "num_heads": 2},
        64,
        lambda m: m.blocks[-1].norm1,
        _tokens_4x4,
        "blocks.1.norm1",
    ),
    "deit_distilled": (
        "deit_tiny_distilled_patch16_224",
        {"img_size": 64, "embed_dim": 48, "depth": 2, "num_heads": 2},
        64,
        lambda m: m.blocks[-1].norm1,
        _tokens_4x4,
        "blocks.1.norm1",
    ),
    "vit_reg4_dinov2": (
        "vit_small_patch14_reg4_dinov2",
        {"img_size": 56, "embed_dim": 48, "depth": 2, "num_heads": 2},
        56,
        lambda m: m.blocks[-1].norm1,
        _tokens_4x4,
        "blocks.1.norm1",
    ),
    "swin_tiny": (
        "swin_tiny_patch4_window7_224",
        {"img_size": 64, "window_size": 4, "embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 2, 2)},
        64,
        lambda m: m.layers[-1],
        swinT_reshape_transform,
        "layers.3.blocks.0",
    ),
    "mambaout_femto": (
        "mambaout_femto",
        {"depths": (1, 1, 1, 1), "dims": (16, 24, 32, 48)},
        64,
        lambda m: m.stages[-1],
        swinT_reshape_transform,
        "stages.3.blocks.0",
    ),
}
VITS = ("vit_small", "deit_distilled", "vit_reg4_dinov2")

METHODS: dict[str, tuple[type, dict[str, Any]]] = {
    "GradCAM": (pgc.GradCAM, {}),
    "GradCAM++": (pgc.GradCAMPlusPlus, {}),
    "HiResCAM": (pgc.HiResCAM, {}),
    "LayerCAM": (pgc.LayerCAM, {}),
    "EigenCAM": (pgc.EigenCAM, {}),
    "ScoreCAM": (pgc.ScoreCAM, {"batch_size": 64, "progress": False}),
    "AblationCAM": (pgc.AblationCAM, {"batch_size": 64, "progress": False}),
    "FullGrad": (pgc.FullGrad, {"all_bias_layers": True}),
    "LeGrad": (pgc.LeGrad, {}),
}
#: Pairs left out, and why (in the test id).
SKIPPED = {("efficientnet_b0", "ScoreCAM"): "1280 channels = 1280 forward passes of the whole network, too slow here"}


def _cases() -> list[Any]:
    cases = []
    for model in MODELS:
        for method in METHODS:
            if method == "LeGrad" and model not in VITS:
                continue  # LeGrad explains attention: vision transformers only
            reason = SKIPPED.get((model, method))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            suffix = "-skipped: " + reason if reason else ""
            cases.append(pytest.param(model, method, marks=marks, id=f"{model}-{method}{suffix}"))
    return cases


@pytest.fixture(scope="module")
def built() -> Callable[[str], tuple[nn.Module, torch.Tensor]]:
    """The model of a ``MODELS`` entry and a seeded input batch of two images, built once per module."""
    cache: dict[str, tuple[nn.Module, torch.Tensor]] = {}

    def build(name: str) -> tuple[nn.Module, torch.Tensor]:
        if name not in cache:
            model_name, options, side, *_ = MODELS[name]
            torch.manual_seed(0)
            model = timm.create_model(model_name, pretrained=False, num_classes=5, **options).eval()
            if name in VITS:
                nn.init.normal_(model.head.weight, std=0.5)  # larger class scores: maps with more contrast
            cache[name] = (model, torch.randn(2, 3, side, side))
        return cache[name]

    return build


def _check(maps: np.ndarray, side: int) -> None:
    assert maps.shape == (2, side, side) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6


@pytest.mark.parametrize(("model_name", "method_name"), _cases())
def test_target_layers_omitted_equals_the_layer_given_by_hand(built, model_name: str, method_name: str) -> None:
    model, x = built(model_name)
    _, _, side, pick, reshape, expected_name = MODELS[model_name]
    method, options = METHODS[method_name]
    automatic = method(model, **options)
    maps = automatic(x)
    _check(maps, side)
    if method is pgc.FullGrad:  # every bias layer; the reshape is the only thing a user gives
        by_hand = method(model, reshape_transform=reshape, **options)(x)
    else:
        assert automatic.auto_choice is not None and automatic.auto_choice.name == expected_name
        by_hand = method(model, [pick(model)], reshape, **options)(x)
    np.testing.assert_allclose(maps, by_hand, atol=TOL, rtol=0)
    if method is pgc.AblationCAM:
        assert automatic.fast_path_used == [True]
    if method is not pgc.EigenCAM:  # EigenCAM may be constant on a 2 x 2 map of random weights
        assert maps.std() > 0
    assert hook_count(model) == 0


# ------------------------------------------------------------------------------- AblationCAM's cut model
def _caformer_like() -> nn.Module:
    """caformer_s18's architecture (separable-convolution then attention stages, channels-last norms), shrunk."""
    from timm.models import metaformer

    torch.manual_seed(0)
    return metaformer.MetaFormer(
        depths=(1, 1, 2, 1),
        dims=(16, 32, 32, 64),
        token_mixers=(metaformer.SepConv, metaformer.SepConv, metaformer.Attention, metaformer.Attention),
        norm_layers=(metaformer.LayerNorm2dNoBias,) * 2 + (metaformer.LayerNormNoBias,) * 2,
        num_classes=5,
    ).eval()


def _swin_deeper() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, img_size=64, window_size=4, embed_dim=16,
        depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), num_classes=5,
    ).eval()  # fmt: skip


@pytest.mark.parametrize(
    ("build", "layer", "reshape"),
    [
        pytest.param(_swin_deeper, lambda m: m.layers[2].blocks[0], swinT_reshape_transform, id="swin-mid-stage"),
        pytest.param(_caformer_like, lambda m: m.stages[2], None, id="caformer-before-attention-stage"),
    ],
)
def test_ablation_cut_model_on_blocks_reading_their_batch_size(build, layer, reshape, capfd) -> None:
    """Blocks after the cut compute ``B, H, W, C = x.shape`` and reshape with it; the cut model recomputes those sizes
    for the tail's batch (it used to carry the head's batch of one, fail, print torch.fx's traceback and fall back)."""
    model = build()
    x = torch.randn(1, 3, 64, 64)
    target = layer(model)
    fast = pgc.AblationCAM(model, [target], reshape, batch_size=16, progress=False, strategy="fast")
    maps = fast(x)
    assert fast.fast_path_used == [True]
    full = pgc.AblationCAM(model, [target], reshape, batch_size=16, progress=False, strategy="full")(x)
    np.testing.assert_allclose(maps, full, atol=1e-5, rtol=0)
    _check(np.concatenate([maps, maps]), 64)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


# ------------------------------------------------------------------------------------ dynamic image size
def test_dynamic_size_vit_at_112_by_160() -> None:
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_small_patch16_224", pretrained=False, dynamic_img_size=True, embed_dim=48, depth=1, num_heads=2,
        num_classes=5,
    ).eval()  # fmt: skip
    x = torch.randn(1, 3, 112, 160)
    cam = pgc.GradCAM(model)
    maps = cam(x)
    assert maps.shape == (1, 112, 160) and np.isfinite(maps).all() and maps.max() <= 1 + 1e-6
    assert cam.target_layers == [model.blocks[-1].norm1]
    assert isinstance(cam.reshape_transform, TokenGridReshape)
    assert (cam.reshape_transform.grid.height, cam.reshape_transform.grid.width) == (7, 10)
    recorded = cam.activations_and_grads
    assert recorded.raw_activations[0].shape == (1, 1 + 7 * 10, 48)
    assert recorded.activations[0].shape == (1, 48, 7, 10)
    layer = model.blocks[-1].norm1
    by_hand = pgc.GradCAM(model, [layer], lambda t: vit_reshape_transform(t, height=7, width=10))(x)
    np.testing.assert_allclose(maps, by_hand, atol=TOL, rtol=0)
    # the token count alone (71 = 1 + 7 x 10) does not tell the grid: a clear error asking for the sizes
    with pytest.raises(ValueError, match=r"cannot infer a patch grid from 71 tokens.*height=\.\.\., width=\.\.\."):
        pgc.GradCAM(model, [layer], vit_reshape_transform)(x)
    with pytest.raises(ValueError, match=r"6 tokens are ambiguous.*height=\.\.\., width=\.\.\."):
        vit_reshape_transform(torch.randn(1, 6, 8))
    assert hook_count(model) == 0
