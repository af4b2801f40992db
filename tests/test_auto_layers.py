"""Target layers chosen automatically (``target_layers`` omitted), the reshape chosen with them, ``list_layers``,
``vit_reshape_transform`` without sizes, AblationCAM on every layout and FullGrad on transformers.

Every automatic map is compared with the map of the same layer and reshape given by hand: they must be equal.
Models are built locally with random weights (``weights=None``) at small sizes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import hook_count
from torch import nn
from torchvision.models.swin_transformer import SwinTransformer

import pytorch_grad_cam as pgc
from pytorch_grad_cam.core.layers import (
    AmbiguousGridError,
    TokenGridReshape,
    check_channels_first,
    is_channels_last,
    solve_token_grid,
)
from pytorch_grad_cam.utils import list_layers
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------ models
class SmallNet(nn.Module):
    """A CNN with a stem, one block and a GAP + linear head (the block's output is the last feature map)."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1, stride=2))
        self.block = nn.Sequential(
            nn.BatchNorm2d(12), nn.ReLU(inplace=True), nn.Conv2d(12, 12, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.block(self.stem(x))).flatten(1))


class RegisterViT(nn.Module):
    """A dynamic-size ViT: patch-embedding convolution, a class token, register tokens, pre-norm
    ``nn.TransformerEncoderLayer`` blocks and a head reading the class token (any input size divisible by the
    patch)."""

    def __init__(self, patch: int = 16, registers: int = 4, dim: int = 32, depth: int = 2, classes: int = 5) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.registers = nn.Parameter(torch.randn(1, registers, dim) * 0.02)
        self.blocks = nn.Sequential(
            *[
                nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        batch = tokens.shape[0]
        extra = [self.cls_token.expand(batch, -1, -1), self.registers.expand(batch, -1, -1)]
        tokens = self.blocks(torch.cat([*extra, tokens], dim=1))
        return self.head(self.norm(tokens)[:, 0])


class UnfoldViT(nn.Module):
    """A ViT whose patch embedding is ``unfold`` + ``nn.Linear``: no patch-grid map is ever recorded, so a
    32 × 32 input with 17 tokens is 1 + 4 × 4 (patch 8) or 13 + 2 × 2 (patch 16): ambiguous."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(3 * 8 * 8, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.block = nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(F.unfold(x, 8, stride=8).transpose(1, 2))
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.head(self.block(tokens)[:, 0])


class ChannelsLastNet(nn.Module):
    """Channels-last features ``(B, 8, 8, 8)``: the shape alone cannot tell NCHW from NHWC; the linear layer
    acting on the last axis does."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.mix = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.norm(self.mix(self.embed(x).permute(0, 2, 3, 1)))
        return self.head(features.mean(dim=(1, 2)))


def tiny_vit() -> nn.Module:
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=5
    ).eval()
    nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts the head at zero
    return model


def tiny_swin() -> nn.Module:
    return SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=[2, 2], num_classes=5
    ).eval()


# case name → (model builder, input size, the expected layer, the reshape that gives the same map by hand)
CASES = {
    "small_cnn": (SmallNet, (40, 48), lambda m: m.block, None),
    "torchvision_vit": (
        tiny_vit,
        (32, 32),
        lambda m: m.encoder.layers[-1].ln_1,
        lambda t: vit_reshape_transform(t, height=4, width=4),
    ),
    "torchvision_swin": (tiny_swin, (32, 32), lambda m: m.features[-1][-1], swinT_reshape_transform),
    "register_vit": (
        lambda: RegisterViT(patch=8).eval(),
        (32, 40),
        lambda m: m.blocks[-1].norm1,
        lambda t: vit_reshape_transform(t, height=4, width=5),
    ),
}


def check_maps(maps: np.ndarray, shape: tuple[int, ...]) -> None:
    assert maps.shape == shape
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6


def method_kwargs(method: type) -> dict:
    if method is pgc.ScoreCAM:
        return {"batch_size": 8, "progress": False}
    if method is pgc.AblationCAM:
        return {"progress": False}
    return {}


# --------------------------------------------------------------------------------- the automatic choice
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    "method",
    [pgc.GradCAM, pgc.GradCAMPlusPlus, pgc.HiResCAM, pgc.LayerCAM, pgc.EigenCAM, pgc.ScoreCAM, pgc.AblationCAM],
)
def test_automatic_layer_equals_the_layer_given_by_hand(case: str, method: type) -> None:
    build, size, expected, reshape = CASES[case]
    model = build()
    x = torch.randn(2, 3, *size)
    with method(model, **method_kwargs(method)) as cam:
        assert cam.target_layers == []
        automatic = cam(x)
    assert len(cam.target_layers) == 1 and cam.target_layers[0] is expected(model)
    check_maps(automatic, (2, *size))
    assert hook_count(model) == 0
    with method(model, [expected(model)], reshape, **method_kwargs(method)) as by_hand:
        given = by_hand(x)
    np.testing.assert_allclose(automatic, given, atol=1e-6)
    assert automatic.max() > 0.5  # not a blank map


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("resnet18", 64, lambda m: m.layer4[-1]),
        ("vgg11", 64, lambda m: m.features),
        ("densenet121", 64, lambda m: m.features),
        ("mobilenet_v3_small", 64, lambda m: m.features[-1]),
        ("efficientnet_b0", 64, lambda m: m.features[-1]),
        ("convnext_tiny", 64, lambda m: m.features[-1][-1]),
    ],
)
def test_torchvision_cnns_get_their_last_feature_map(name: str, size: int, expected) -> None:
    model = getattr(torchvision.models, name)(weights=None, num_classes=5).eval()
    x = torch.randn(1, 3, size, size)
    cam = pgc.GradCAM(model)
    automatic = cam(x)
    assert cam.target_layers == [expected(model)]
    assert cam.reshape_transform is None
    check_maps(automatic, (1, size, size))
    np.testing.assert_allclose(automatic, pgc.GradCAM(model, [expected(model)])(x), atol=1e-6)


def test_golden_cnn_gets_the_relu_after_its_last_convolution(tiny_cnn, golden_input) -> None:
    cam = pgc.GradCAM(tiny_cnn)
    automatic = cam(golden_input)
    assert cam.target_layers == [tiny_cnn[6]]
    np.testing.assert_allclose(automatic, pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input), atol=0)


def test_channels_last_is_told_by_the_layer_acting_on_the_last_axis() -> None:
    model = ChannelsLastNet().eval()
    x = torch.randn(2, 3, 32, 32)
    cam = pgc.GradCAM(model)
    automatic = cam(x)
    assert cam.target_layers == [model.mix]
    assert cam.auto_choice is not None and cam.auto_choice.layout == "NHWC"
    np.testing.assert_allclose(automatic, pgc.GradCAM(model, [model.mix], swinT_reshape_transform)(x), atol=1e-6)


def test_an_explicit_channels_last_layer_without_a_reshape_is_told() -> None:
    """A target layer given by hand without reshape_transform whose output is clearly (B, h, w, C) is refused by
    check_channels_first (the core's check of explicit layers), naming the reshape; (B, C, h, w) maps pass."""
    size = (32, 32)
    swin = tiny_swin()
    with torch.no_grad():
        stage = swin.features[:2](torch.randn(1, 3, *size))  # (1, 8, 8, 16): an 8 x 8 grid of 16 channels
    assert is_channels_last(stage, size, swin.features[1])
    with pytest.raises(
        ValueError, match=r"target_layers\[0\] \(features.1\) outputs a channels-last map \(1, 8, 8, 16\)"
    ):
        check_channels_first(stage, size, swin.features[1], "target_layers[0] (features.1)")
    check_channels_first(stage.permute(0, 3, 1, 2), size, swin.features[1], "target_layers[0]")  # NCHW: fine
    # (B, 8, 8, 8) reads both ways: channels-last only when the leaf says so (a Linear / LayerNorm on the last axis)
    model = ChannelsLastNet().eval()
    square = torch.zeros(1, 8, 8, 8)
    assert is_channels_last(square, size, model.mix) and is_channels_last(square, size, model.norm)
    assert not is_channels_last(square, size, model.embed) and not is_channels_last(square, size, None)
    assert not is_channels_last(torch.zeros(1, 5, 8, 8), size) and not is_channels_last(torch.zeros(1, 17, 8), size)


def test_a_cam_refuses_an_explicit_channels_last_layer_without_a_reshape() -> None:
    """Through a CAM: the swin stage given by hand is refused (it used to be read as (B, C, h, w) silently), and
    works with the reshape the message names, equal to the automatic choice of the same layer."""
    swin = tiny_swin()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"target_layers\[0\] \(features.1\) outputs a channels-last map"):
        pgc.GradCAM(swin, [swin.features[1]])(x)
    given = pgc.GradCAM(swin, [swin.features[1]], reshape_transform=swinT_reshape_transform)(x)
    assert given.shape == (1, 32, 32) and np.isfinite(given).all()


class TinySegmenter(nn.Module):
    """Conv features and a 1x1 class-score head at the input's size: a segmenter, not a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TinyDetector(nn.Module):
    """A YOLO-like dense output (B, 4 + classes, anchors) with its raw maps: no (B, K) scores."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 7, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        maps = self.head(self.features(x))
        return maps.flatten(2), {"feats": maps}


@pytest.mark.parametrize("model", [TinySegmenter(), TinyDetector()], ids=["segmenter", "detector"])
def test_no_automatic_layer_for_detectors_and_segmenters(model: nn.Module) -> None:
    """Their last map is the score head: the automatic choice refuses, saying why, and list_layers marks no row;
    a layer named by hand works as before."""
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"not one score vector or embedding \(B, K\) per image.*name the layer"):
        pgc.EigenCAM(model.eval())(x)
    table = list_layers(model, x)
    assert table.chosen is None and "score head" in table.error
    cam = pgc.EigenCAM(model, [model.features])(x)
    assert cam.shape == (2, 16, 16) and np.isfinite(cam).all()
    assert hook_count(model) == 0


def test_volumes_get_their_last_feature_map() -> None:
    model = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(6, 3),
    ).eval()  # fmt: skip
    x = torch.randn(2, 1, 8, 12, 12)
    cam = pgc.GradCAM(model)
    automatic = cam(x)
    assert cam.target_layers == [model[3]]
    check_maps(automatic, (2, 8, 12, 12))
    np.testing.assert_allclose(automatic, pgc.GradCAM(model, [model[3]])(x), atol=1e-6)


def test_wrappers_build_their_method_without_layers() -> None:
    model = SmallNet().eval()
    x = torch.randn(2, 3, 32, 32)
    for cam in (
        pgc.NoiseTunnel(model=model, base_method=pgc.GradCAM, num_samples=2, progress=False),
        pgc.GuidedGradCAM(model),
        pgc.RefineCAM(model),
        pgc.FinerCAM(model),
    ):
        check_maps(cam(x), (2, 32, 32))
        assert cam.target_layers == [model.block]
    assert hook_count(model) == 0


def test_legrad_without_layers_on_a_torchvision_vit() -> None:
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    automatic = pgc.LeGrad(model)(x)
    layer = model.encoder.layers[-1].ln_1
    np.testing.assert_allclose(
        automatic, pgc.LeGrad(model, [layer], lambda t: vit_reshape_transform(t, height=4, width=4))(x), atol=1e-6
    )


def test_repr_and_target_layers_say_what_was_chosen() -> None:
    model = tiny_vit()
    cam = pgc.GradCAM(model)
    assert "target_layers=<chosen at the first call>" in repr(cam)
    cam(torch.randn(1, 3, 32, 32))
    text = repr(cam)
    assert "target_layers=[encoder.layers.encoder_layer_1.ln_1] (auto)" in text
    assert "1 extra token + 4×4 grid (patch 8)" in text
    assert cam.auto_choice is not None and cam.auto_choice.name == "encoder.layers.encoder_layer_1.ln_1"
    given = pgc.GradCAM(model, [model.encoder.layers[-1].ln_1], vit_reshape_transform)
    assert repr(given).endswith(
        "target_layers=[encoder.layers.encoder_layer_1.ln_1], reshape_transform=vit_reshape_transform)"
    )


def test_the_choice_keeps_the_model_state_and_works_in_inference_mode() -> None:
    model = SmallNet().train()
    flags = [module.training for module in model.modules()]
    with torch.inference_mode():
        maps = pgc.EigenCAM(model)(torch.randn(1, 3, 32, 32))
    check_maps(maps, (1, 32, 32))
    assert [module.training for module in model.modules()] == flags
    assert hook_count(model) == 0


def test_a_given_reshape_is_kept_with_the_automatic_layer() -> None:
    model = tiny_vit()
    x = torch.randn(1, 3, 32, 32)
    reshape = lambda t: vit_reshape_transform(t, num_extra_tokens=1)  # noqa: E731
    cam = pgc.GradCAM(model, reshape_transform=reshape)
    automatic = cam(x)
    assert cam.reshape_transform is reshape and cam.target_layers == [model.encoder.layers[-1].ln_1]
    np.testing.assert_allclose(automatic, pgc.GradCAM(model, [model.encoder.layers[-1].ln_1], reshape)(x), atol=0)


# ------------------------------------------------------------------------------------- ViT token grids
def test_dynamic_size_vit_gets_the_grid_of_its_input() -> None:
    """112 × 160 with 16-pixel patches: 75 tokens = 1 class + 4 registers + a 7 × 10 grid (a token count that
    no square grid explains); the same CAM then follows another input size."""
    model = RegisterViT(patch=16).eval()
    x = torch.randn(2, 3, 112, 160)
    cam = pgc.GradCAM(model)
    automatic = cam(x)
    reshape = cam.reshape_transform
    assert isinstance(reshape, TokenGridReshape)
    assert (reshape.grid.height, reshape.grid.width, reshape.grid.extra) == (7, 10, 5)
    check_maps(automatic, (2, 112, 160))
    by_hand = pgc.GradCAM(model, [model.blocks[-1].norm1], lambda t: vit_reshape_transform(t, height=7, width=10))
    np.testing.assert_allclose(automatic, by_hand(x), atol=1e-6)
    with pytest.raises(ValueError, match="cannot infer a patch grid from 75 tokens"):
        pgc.GradCAM(model, [model.blocks[-1].norm1], vit_reshape_transform)(x)
    smaller = torch.randn(1, 3, 64, 96)
    by_hand = pgc.GradCAM(model, [model.blocks[-1].norm1], lambda t: vit_reshape_transform(t, height=4, width=6))
    np.testing.assert_allclose(cam(smaller), by_hand(smaller), atol=1e-6)


def test_timm_dynamic_size_vit_at_112_by_160() -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, dynamic_img_size=True, depth=1).eval()
    x = torch.randn(1, 3, 112, 160)
    cam = pgc.GradCAM(model)
    automatic = cam(x)
    assert cam.target_layers == [model.blocks[-1].norm1]
    assert isinstance(cam.reshape_transform, TokenGridReshape)
    assert (cam.reshape_transform.grid.height, cam.reshape_transform.grid.width) == (7, 10)
    layer = model.blocks[-1].norm1
    by_hand = pgc.GradCAM(model, [layer], lambda t: vit_reshape_transform(t, height=7, width=10))(x)
    np.testing.assert_allclose(automatic, by_hand, atol=1e-6)


def test_register_vit_with_a_two_by_two_grid() -> None:
    """28 pixels, patch 14, class + 4 registers: 9 tokens, which the token count alone reads as 3 × 3."""
    model = RegisterViT(patch=14).eval()
    x = torch.randn(1, 3, 28, 28)
    cam = pgc.GradCAM(model)
    automatic = cam(x)
    assert isinstance(cam.reshape_transform, TokenGridReshape)
    assert (cam.reshape_transform.grid.height, cam.reshape_transform.grid.extra) == (2, 5)
    by_hand = pgc.GradCAM(model, [model.blocks[-1].norm1], lambda t: vit_reshape_transform(t, height=2, width=2))
    np.testing.assert_allclose(automatic, by_hand(x), atol=1e-6)
    with pytest.raises(ValueError, match=r"9 tokens are ambiguous \(3x3 \+ 0 extra tokens, 2x2 \+ 5 extra tokens\)"):
        vit_reshape_transform(torch.zeros(1, 9, 4))


def test_an_ambiguous_token_grid_is_a_clear_error() -> None:
    model = UnfoldViT().eval()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(
        ValueError, match=r"fit several patch grids.*vit_reshape_transform\(t, height=\.\.\., width=\.\.\.\)"
    ):
        pgc.GradCAM(model)(x)
    assert hook_count(model) == 0
    reshape = lambda t: vit_reshape_transform(t, height=4, width=4)  # noqa: E731
    cam = pgc.GradCAM(model, reshape_transform=reshape)  # the layer is still chosen; the grid is the user's
    automatic = cam(x)
    assert cam.target_layers == [model.block.norm1]
    np.testing.assert_allclose(automatic, pgc.GradCAM(model, [model.block.norm1], reshape)(x), atol=0)
    table = list_layers(model, x)
    assert table.chosen is None and "several patch grids" in table.error
    assert "ambiguous grid" in str(table)


@pytest.mark.parametrize(
    ("tokens", "size", "evidence", "expected"),
    [
        (197, (224, 224), (), (14, 14, 1, 16)),  # ViT-B/16
        (261, (256, 256), (), (16, 16, 5, 16)),  # class + 4 registers
        (71, (112, 160), (), (7, 10, 1, 16)),  # non-square, dynamic size
        (197, (225, 225), (), (14, 14, 1, 16)),  # a patch embedding that drops the border
        (17, (32, 32), [(4, 4)], (4, 4, 1, 8)),  # 2 × 2 + 13 fits too: the patch embedding's 4 × 4 map decides
        (9, (28, 28), (), (2, 2, 5, 14)),  # 3 × 3 needs a 9-pixel patch, which does not tile 28 pixels
    ],
)
def test_solve_token_grid(tokens: int, size, evidence, expected) -> None:
    grid = solve_token_grid(tokens, size, evidence)
    assert grid is not None and (grid.height, grid.width, grid.extra, grid.patch) == expected


def test_solve_token_grid_takes_the_extra_tokens_of_the_layers_before() -> None:
    """16 tokens of a 64 x 64 input: 4 x 4 (patch 16) or 12 extra + 2 x 2 (patch 32); the token layers before kept
    no extra token (Swin's window tokens, FullGrad's bias layers), which decides."""
    with pytest.raises(AmbiguousGridError):
        solve_token_grid(16, (64, 64))
    grid = solve_token_grid(16, (64, 64), extra_evidence=[0, 1])
    assert grid is not None and (grid.height, grid.width, grid.extra) == (4, 4, 0)
    grid = solve_token_grid(16, (64, 64), [(2, 2)], extra_evidence=[0])  # a grid seen before decides first
    assert grid is not None and (grid.height, grid.extra) == (2, 12)
    with pytest.raises(AmbiguousGridError):
        solve_token_grid(16, (64, 64), extra_evidence=[3])


def test_solve_token_grid_without_an_answer() -> None:
    assert solve_token_grid(1000, (32, 32)) is None  # more tokens than pixels
    with pytest.raises(AmbiguousGridError, match=r"17 tokens .* fit several patch grids of the 32×32 input"):
        solve_token_grid(17, (32, 32), [(8, 8)])  # evidence that matches no candidate


@pytest.mark.parametrize(
    ("tokens", "extra", "side"), [(197, 1, 14), (198, 2, 14), (261, 5, 16), (201, 5, 14), (50, 1, 7)]
)
def test_vit_reshape_transform_keeps_the_common_cases(tokens: int, extra: int, side: int) -> None:
    values = torch.randn(2, tokens, 3)
    expected = values[:, extra:].reshape(2, side, side, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(vit_reshape_transform(values), expected, rtol=0, atol=0)


@pytest.mark.parametrize("tokens", [71, 9, 75])
def test_vit_reshape_transform_refuses_to_guess(tokens: int) -> None:
    with pytest.raises(ValueError, match=r"vit_reshape_transform.*(ambiguous|cannot infer).*height=\.\.\."):
        vit_reshape_transform(torch.zeros(1, tokens, 2))


# ---------------------------------------------------------------------------------------- list_layers
def test_list_layers_on_a_cnn() -> None:
    model = torchvision.models.resnet18(weights=None).train()
    x = torch.randn(1, 3, 64, 64)
    table = list_layers(model, x)
    chosen = table.chosen
    assert chosen is not None and chosen.name == "layer4.1" and chosen.module is model.layer4[-1]
    assert (chosen.type, chosen.shape, chosen.layout, chosen.grid) == ("BasicBlock", (1, 512, 2, 2), "NCHW", (2, 2))
    rows = {row.name: row for row in table}
    assert rows["fc"].layout is None and rows["fc"].shape == (1, 1000)
    assert rows["avgpool"].layout is None  # 1 × 1: no map
    assert rows["layer4.1.relu"].note == "ran 2 times"
    assert all(row.layout is not None for row in table.maps)
    text = str(table)
    assert "→  layer4.1" in text and text.endswith("automatic target layer: layer4.1")
    assert all(module.training for module in model.modules())
    assert hook_count(model) == 0


def test_list_layers_on_transformers() -> None:
    vit = tiny_vit()
    rows = {row.name: row for row in list_layers(vit, torch.randn(1, 3, 32, 32), maps_only=True)}
    ln_1 = rows["encoder.layers.encoder_layer_1.ln_1"]
    assert (ln_1.layout, ln_1.grid, ln_1.extra_tokens, ln_1.chosen) == ("tokens", (4, 4), 1, True)
    assert rows["conv_proj"].layout == "NCHW"
    swin = tiny_swin()
    table = list_layers(swin, torch.randn(1, 3, 32, 32))
    assert table.chosen is not None and table.chosen.name == "features.3.0" and table.chosen.layout == "NHWC"
    assert {row.name: row.layout for row in table}["permute"] == "NCHW"


def test_list_layers_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        list_layers("resnet", torch.zeros(1, 3, 8, 8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_tensor must have shape"):
        list_layers(SmallNet(), torch.zeros(3, 8, 8))


def test_a_model_without_maps_is_a_clear_error() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(
        ValueError, match=r"cannot choose a target layer for Sequential automatically.*pass target_layers"
    ):
        pgc.GradCAM(model)(torch.randn(1, 3, 8, 8))


# ------------------------------------------------------------------------------------------ AblationCAM
@pytest.mark.parametrize("builder", [tiny_swin, tiny_vit], ids=["swin_nhwc", "vit_tokens"])
def test_ablation_cam_with_the_users_reshape_and_the_default_ablation_layer(builder) -> None:
    """The default AblationLayer ablates the axis the reshape turns into channels (the last one here)."""
    model = builder()
    x = torch.randn(2, 3, 32, 32)
    if builder is tiny_swin:
        layer, reshape = model.features[-1][-1], swinT_reshape_transform
    else:
        layer, reshape = model.encoder.layers[-1].ln_1, vit_reshape_transform
    given = pgc.AblationCAM(model, [layer], reshape, progress=False)(x)
    automatic = pgc.AblationCAM(model, progress=False)(x)
    explicit = pgc.AblationCAM(model, [layer], reshape, ablation_layer=pgc.AblationLayerVit(), progress=False)(x)
    check_maps(given, (2, 32, 32))
    np.testing.assert_allclose(given, automatic, atol=1e-6)
    np.testing.assert_allclose(given, explicit, atol=1e-6)


@pytest.mark.parametrize("name", ["mambaout_femto", "swin_tiny_patch4_window7_224"])
def test_ablation_cam_on_timm_channels_last_models(name: str) -> None:
    timm = pytest.importorskip("timm")
    options = {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)} if "swin" in name else {}
    model = timm.create_model(name, pretrained=False, num_classes=5, **options).eval()
    size = 224 if "swin" in name else 64
    x = torch.randn(1, 3, size, size)
    cam = pgc.AblationCAM(model, progress=False)
    automatic = cam(x)
    assert cam.auto_choice is not None and cam.auto_choice.layout == "NHWC"
    check_maps(automatic, (1, size, size))
    layer = cam.target_layers[0]
    by_hand = pgc.AblationCAM(model, [layer], swinT_reshape_transform, progress=False)(x)
    np.testing.assert_allclose(automatic, by_hand, atol=1e-6)


def test_ablation_layer_follows_its_channel_axis() -> None:
    layer = pgc.AblationLayer()
    values = torch.arange(2 * 3 * 3 * 4, dtype=torch.float32).reshape(2, 3, 3, 4) + 1
    layer.set_next_batch(1, values, 2)
    layer.indices = torch.tensor([0, 3])
    layer.channel_axis = -1
    out = layer(None)
    expected = values[1:2].repeat(2, 1, 1, 1)
    value = float(expected.min()) - 1e7
    expected[0, :, :, 0] = value
    expected[1, :, :, 3] = value
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ FullGrad
@pytest.mark.parametrize("all_bias_layers", [False, True])
def test_fullgrad_maps_each_token_layer_on_its_own_grid(all_bias_layers: bool) -> None:
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    automatic = pgc.FullGrad(model, all_bias_layers=all_bias_layers)(x)
    reshape = lambda t: vit_reshape_transform(t, height=4, width=4)  # noqa: E731
    by_hand = pgc.FullGrad(model, [], reshape, all_bias_layers=all_bias_layers)(x)
    check_maps(automatic, (2, 32, 32))
    np.testing.assert_allclose(automatic, by_hand, atol=1e-6)


@pytest.mark.parametrize("name", ["vit_b_16", "swin_t"])
def test_fullgrad_on_torchvision_transformers(name: str) -> None:
    options = {"image_size": 64} if name == "vit_b_16" else {}
    model = getattr(torchvision.models, name)(weights=None, num_classes=5, **options).eval()
    if name == "vit_b_16":
        nn.init.normal_(model.heads.head.weight, std=0.02)
    x = torch.randn(1, 3, 64, 64)
    for all_bias_layers in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning: the target layers are left out
            maps = pgc.FullGrad(model, all_bias_layers=all_bias_layers)(x)
        check_maps(maps, (1, 64, 64))
        assert maps.max() > 0.5
    assert hook_count(model) == 0


# -------------------------------------------------------------------------------------------------- cam.py
def test_cam_py_prints_the_automatic_layer(tmp_path, capsys) -> None:
    from pytorch_grad_cam.cli import main

    weights = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    args = ["--model", "resnet18", "--weights", str(weights), "--output-dir", str(tmp_path), "--method", "eigencam"]
    assert main(args) == 0
    assert "target layer: layer4.1 (auto; NCHW)" in capsys.readouterr().err
    assert main([*args, "--target-layer", "layer4.0"]) == 0
    assert "target layer" not in capsys.readouterr().err
