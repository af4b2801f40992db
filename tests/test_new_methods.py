"""Issue 8 methods: CAM, SmoothGradCAM++, SS-CAM, IS-CAM, Group-CAM, Poly-CAM, Opti-CAM, LeGrad, GuidedGradCAM.

Each has a hand-computable case; a sweep checks shape, float32, finite values in [0, 1], no hook left and the
model's training flags restored for every method × batch {1, 2} × {targets, None} × {one, two layers}.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np
import pytest
import torch
import torchvision
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import (
    CAM,
    ISCAM,
    SSCAM,
    GradCAM,
    GradCAMPlusPlus,
    GroupCAM,
    GuidedBackpropReLUModel,
    GuidedGradCAM,
    HiResCAM,
    LeGrad,
    OptiCAM,
    PolyCAM,
    ScoreCAM,
    SmoothGradCAMPlusPlus,
)
from pytorch_grad_cam.core.recording import explicit_attention
from pytorch_grad_cam.methods import METHOD_NAMES, get_method
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _targets() -> list[ClassifierOutputTarget]:
    return [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


# ----------------------------------------------------------------------------------------------------- CAM
def test_cam_equals_gradcam_and_hirescam_on_gap_linear_head(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    cam = CAM(tiny_cnn, layers)(golden_input, _targets())
    np.testing.assert_allclose(cam, GradCAM(tiny_cnn, layers)(golden_input, _targets()), atol=TOL)
    np.testing.assert_allclose(cam, HiResCAM(tiny_cnn, layers)(golden_input, _targets()), atol=TOL)
    assert CAM(tiny_cnn, layers).fc_layer is tiny_cnn[9]


def test_cam_weights_are_the_classifier_row(tiny_cnn, golden_input):
    cam = CAM(tiny_cnn, [tiny_cnn[6]])
    cam(golden_input, _targets())
    activations = cam.activations_and_grads.activations[0]
    weights = cam.get_cam_weights(golden_input, tiny_cnn[6], _targets(), activations, None)
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


# ---------------------------------------------------------------------------------------- SmoothGradCAM++
def test_smooth_gradcam_plusplus_without_noise_is_gradcam_plusplus(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    smooth = SmoothGradCAMPlusPlus(tiny_cnn, layers, num_samples=3, noise_level=0, progress=False)
    np.testing.assert_allclose(
        smooth(golden_input, _targets()), GradCAMPlusPlus(tiny_cnn, layers)(golden_input, _targets()), atol=TOL
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


def _targets_for(model: nn.Module, x: torch.Tensor) -> list[ClassifierOutputTarget]:
    with torch.no_grad():
        return [ClassifierOutputTarget(int(c)) for c in model(x).argmax(1)]


# ------------------------------------------------------------------------------------------ SS-CAM, IS-CAM
def test_sscam_without_noise_and_iscam_with_one_step_are_scorecam(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    score = ScoreCAM(tiny_cnn, layers, progress=False)(golden_input, _targets())
    ss = SSCAM(tiny_cnn, layers, num_samples=3, std=0, batch_size=7, progress=False)(golden_input, _targets())
    iscam = ISCAM(tiny_cnn, layers, num_samples=1, progress=False)(golden_input, _targets())
    np.testing.assert_allclose(ss, score, atol=TOL)
    np.testing.assert_allclose(iscam, score, atol=TOL)


class LinearScore(nn.Module):
    """The target layer is the identity; the score is ``Σ u_k x_k(p)``, linear in the (masked) input."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.register_buffer("u", torch.tensor([1.0, -2.0]).view(1, 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.features(x) * self.u).sum(dim=(1, 2, 3))[:, None]


def _two_channel_image() -> torch.Tensor:
    x = torch.zeros(1, 2, 4, 4)
    x[0, 0] = torch.arange(16.0).view(4, 4) / 15
    x[0, 1, :2] = 1.0
    x[0, 1, 2:] = 0.5
    return x


def test_iscam_hand_computed_on_a_linear_score():
    """s(x ⊙ t M_c) = t s(x ⊙ M_c), so w = softmax(mean_t t · s_c) with mean_t t = (n + 1) / (2n)."""
    x = _two_channel_image()
    masks = (x - x.flatten(2).min(2).values[..., None, None]) / (
        x.flatten(2).max(2).values - x.flatten(2).min(2).values + 1e-8
    )[..., None, None]
    u = torch.tensor([1.0, -2.0])
    scores = torch.stack([(x[0] * masks[0, c] * u.view(2, 1, 1)).sum() for c in range(2)])
    n = 4
    weights = torch.softmax(scores * (n + 1) / (2 * n), dim=0)
    expected = scale_cam_image((weights.view(1, 2, 1, 1) * x).sum(1).clamp_min(0).numpy())
    model = LinearScore()
    result = ISCAM(model, [model.features], num_samples=n, batch_size=3, progress=False)(x, [ClassifierOutputTarget(0)])
    np.testing.assert_allclose(result, expected, atol=TOL)


def test_sscam_noise_changes_the_map_and_is_seeded(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    torch.manual_seed(3)
    first = SSCAM(tiny_cnn, layers, num_samples=2, std=0.5, progress=False)(golden_input, _targets())
    torch.manual_seed(3)
    again = SSCAM(tiny_cnn, layers, num_samples=2, std=0.5, progress=False)(golden_input, _targets())
    score = ScoreCAM(tiny_cnn, layers, progress=False)(golden_input, _targets())
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - score).max() > 1e-4


# ---------------------------------------------------------------------------------------------- Group-CAM
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


# ---------------------------------------------------------------------------------------------- Poly-CAM
def test_poly_cam_single_layer_is_scorecam(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    np.testing.assert_allclose(
        PolyCAM(tiny_cnn, layers, progress=False)(golden_input, _targets()),
        ScoreCAM(tiny_cnn, layers, progress=False)(golden_input, _targets()),
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


# ---------------------------------------------------------------------------------------------- Opti-CAM
def test_opti_cam_improves_its_objective_monotonically(tiny_cnn, golden_input):
    cam = OptiCAM(tiny_cnn, [tiny_cnn[6]], iterations=15, learning_rate=0.05, progress=False)
    result = cam(golden_input, _targets())
    history = cam.objective_history.numpy()
    assert history.shape == (16, 2)
    assert (np.diff(history, axis=0) >= -1e-6).all()
    assert (history[-1] > history[0] + 1e-4).all()
    assert result.shape == (2, 24, 28) and np.isfinite(result).all()


def test_opti_cam_first_step_is_the_uniform_average(tiny_cnn, golden_input):
    """u = 0 at the start: w = 1/C, the objective is the score of x ⊙ norm(up(mean_c A_c))."""
    cam = OptiCAM(tiny_cnn, [tiny_cnn[6]], iterations=1, progress=False)
    cam(golden_input, _targets())
    record = GradCAM(tiny_cnn, [tiny_cnn[6]])
    record(golden_input, _targets())
    mean_map = record.activations_and_grads.activations[0].mean(1, keepdim=True)
    up = torch.nn.functional.interpolate(mean_map, size=(24, 28), mode="bilinear")
    low, high = up.amin((1, 2, 3), keepdim=True), up.amax((1, 2, 3), keepdim=True)
    with torch.no_grad():
        out = tiny_cnn(golden_input * (up - low) / (high - low + 1e-8))
    torch.testing.assert_close(cam.objective_history[0], out[[0, 1], [1, 3]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"iterations": 0}, ValueError, "iterations must be a positive int; got 0"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate must be a positive number; got str"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate must be a positive number; got -1.0"),
        ({"objective": "area"}, ValueError, "objective must be one of 'mask', 'diff'; got 'area'"),
    ],
)
def test_opti_cam_bad_arguments(tiny_cnn, kwargs, error, message):
    with pytest.raises(error, match=message):
        OptiCAM(tiny_cnn, [tiny_cnn[6]], **kwargs)


def test_opti_cam_diff_objective_and_inference_mode(tiny_cnn, golden_input):
    cam = OptiCAM(tiny_cnn, [tiny_cnn[6]], iterations=3, objective="diff", progress=False)
    cam(golden_input, _targets())
    assert (cam.objective_history <= 0).all()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        cam(golden_input, _targets())
    assert hook_count(tiny_cnn) == 0


# ------------------------------------------------------------------------------------------------ LeGrad
class OneBlockViT(nn.Module):
    """Pixels as tokens, a zero class token, one attention block ``z = t + MHA(t)`` with an identity value and
    output projection, and a linear head on the class token: ``∂y_k/∂A[0, j] = u_k · x_j``, 0 for other rows."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.attention = nn.MultiheadAttention(3, 1, bias=False, batch_first=True)
        with torch.no_grad():
            self.attention.in_proj_weight[6:] = torch.eye(3)
            self.attention.out_proj.weight.copy_(torch.eye(3))
        self.block = _Residual(self.attention)
        self.head = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, -1.0, 0.5], [0.0, 1.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([torch.zeros(x.shape[0], 1, 3), x.flatten(2).transpose(1, 2)], dim=1)
        return self.head(self.block(tokens)[:, 0])


class _Residual(nn.Module):
    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        self.attention = attention

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + self.attention(tokens, tokens, tokens, need_weights=False)[0]


def test_legrad_hand_computed_on_one_block():
    model = OneBlockViT().eval()
    x = torch.randn(2, 3, 4, 4)
    cam = LeGrad(model, [model.block], reshape_transform=vit_reshape_transform, head=lambda z: model.head(z[:, 0]))
    result = cam(x, [ClassifierOutputTarget(0), ClassifierOutputTarget(1)])
    u = model.head.weight.detach()
    relevance = torch.stack([torch.einsum("c,chw->hw", u[i], x[i]) for i in range(2)]).clamp_min(0)
    np.testing.assert_allclose(result, scale_cam_image(relevance.numpy()), atol=TOL)
    assert hook_count(model) == 0


def test_explicit_attention_matches_multihead_attention():
    torch.manual_seed(0)
    for batch_first in (True, False):
        module = nn.MultiheadAttention(8, 2, batch_first=batch_first).eval()
        tokens = torch.randn(3, 5, 8)
        out, attention = explicit_attention(module, tokens, tokens, tokens)
        expected, weights = module(tokens, tokens, tokens, average_attn_weights=False)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(attention, weights, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def vit() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=5
    )
    nn.init.normal_(model.heads.head.weight, std=0.5)  # torchvision zero-initialises the head
    return model.eval()


def test_legrad_on_torchvision_vit(vit):
    x = torch.randn(2, 3, 32, 32)
    cam = LeGrad(vit, [vit.encoder.layers[0].ln_1, vit.encoder.layers[-1]], reshape_transform=vit_reshape_transform)
    assert cam.activations_and_grads.blocks[0][0] is vit.encoder.layers[0]
    result = cam(x)
    assert result.shape == (2, 32, 32) and result.dtype == np.float32
    assert result.min() == 0 and abs(result.max() - 1) < 1e-5
    assert hook_count(vit) == 0


def test_legrad_errors(vit, tiny_cnn):
    with pytest.raises(ValueError, match="needs reshape_transform"):
        LeGrad(vit, [vit.encoder.layers[-1]])
    with pytest.raises(ValueError, match="not inside a transformer block"):
        LeGrad(tiny_cnn, [tiny_cnn[6]], reshape_transform=vit_reshape_transform, head=lambda z: z)
    one_block = OneBlockViT()
    with pytest.raises(ValueError, match="pass head="):
        LeGrad(one_block, [one_block.block], reshape_transform=vit_reshape_transform)
    with pytest.raises(TypeError, match="head must be callable"):
        LeGrad(vit, [vit.encoder.layers[-1]], reshape_transform=vit_reshape_transform, head=3)


# ---------------------------------------------------------------------------------------------- GuidedGradCAM
def test_guided_gradcam_is_gradcam_times_guided_backprop(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    cam = GuidedGradCAM(tiny_cnn, layers)
    result = cam(golden_input, _targets())
    grad_cam = GradCAM(tiny_cnn, layers)(golden_input, _targets())
    guided = GuidedBackpropReLUModel(tiny_cnn)(golden_input, target_category=[1, 3])
    magnitude = np.abs(guided).sum(-1)
    magnitude /= magnitude.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(result, scale_cam_image(grad_cam * magnitude), atol=TOL)
    np.testing.assert_allclose(cam.guided_gradients.movedim(1, -1).numpy(), guided, atol=1e-6)
    assert all(isinstance(m, nn.ReLU) for m in (tiny_cnn[1], tiny_cnn[4], tiny_cnn[6]))


# -------------------------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (lambda m: SmoothGradCAMPlusPlus(m, [m[6]], num_samples=0), ValueError, "num_samples must be a positive int"),
        (lambda m: SmoothGradCAMPlusPlus(m, [m[6]], noise_level=-0.1), ValueError,
         "noise_level must be a non-negative number; got -0.1"),
        (lambda m: SSCAM(m, [m[6]], std="big"), TypeError, "std must be a non-negative number; got str"),
        (lambda m: ISCAM(m, [m[6]], num_samples=2.5), TypeError, "num_samples must be a positive int; got float"),
        (lambda m: GroupCAM(m, [m[6]], percentile=100), ValueError, r"percentile must be .*\[0, 100\); got 100"),
        (lambda m: GroupCAM(m, [m[6]], blur_kernel_size=4), ValueError, "blur_kernel_size must be odd; got 4"),
        (lambda m: GroupCAM(m, [m[6]], groups=0), ValueError, "groups must be a positive int; got 0"),
    ],
)
def test_bad_arguments(tiny_cnn, factory, error, message):
    with pytest.raises(error, match=message):
        factory(tiny_cnn)


def test_group_and_poly_cam_reject_3d_inputs():
    model = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                          nn.Linear(2, 2))
    x = torch.randn(1, 1, 4, 4, 4)
    for cls in (GroupCAM, PolyCAM):
        with pytest.raises(ValueError, match="input_tensor must have shape \\(B, C, H, W\\); got \\(1, 1, 4, 4, 4\\)"):
            cls(model, [model[1]], progress=False)(x, [ClassifierOutputTarget(0)])
        assert hook_count(model) == 0


# ------------------------------------------------------------------------------------------------- sweep
NEW = ["CAM", "SmoothGradCAMPlusPlus", "SSCAM", "ISCAM", "GroupCAM", "PolyCAM", "OptiCAM", "GuidedGradCAM"]
# Group-CAM's map is 0 when no group restores more of the score than the blurred image already has.
MAY_BE_ZERO = {"GroupCAM"}
FAST = {
    "SmoothGradCAMPlusPlus": {"num_samples": 2, "progress": False},
    "SSCAM": {"num_samples": 2, "std": 0.2, "progress": False},
    "ISCAM": {"num_samples": 2, "progress": False},
    "GroupCAM": {"groups": 4, "progress": False},
    "PolyCAM": {"progress": False},
    "OptiCAM": {"iterations": 3, "progress": False},
}


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("layers", ["one", "two"])
def test_sweep(tiny_cnn, golden_input, name, layers):
    if name == "CAM" and layers == "two":
        pytest.skip("CAM is defined on the layer feeding the global average pooling only")
    import pytorch_grad_cam

    tiny_cnn.train()
    target_layers = [tiny_cnn[6]] if layers == "one" else [tiny_cnn[1], tiny_cnn[6]]
    cam = getattr(pytorch_grad_cam, name)(tiny_cnn, target_layers, **FAST.get(name, {}))
    for batch in (1, 2):
        x = golden_input[:batch].clone()
        for targets in (_targets()[:batch], None):
            result = cam(x, targets)
            assert result.shape == (batch, 24, 28) and result.dtype == np.float32
            assert np.isfinite(result).all() and result.min() >= 0 and result.max() <= 1
            assert result.max() > 0.99 or (name in MAY_BE_ZERO and result.max() == 0)
            torch.testing.assert_close(x, golden_input[:batch])
            assert hook_count(tiny_cnn) == 0
            assert all(module.training for module in tiny_cnn.modules())


@pytest.mark.parametrize("name", ["cam", "smoothgradcam++", "sscam", "iscam", "groupcam", "polycam", "opticam",
                                  "guidedgradcam"])
def test_command_line_names(name, tiny_cnn):
    """cam.py builds every method as cls(model=..., target_layers=..., reshape_transform=...). (LeGrad is not
    listed: it applies to ViTs only, and cam.py runs every listed method on the CNN demo model.)"""
    cls = get_method(name)
    assert METHOD_NAMES[name] == cls.__name__
    cls(model=tiny_cnn, target_layers=[tiny_cnn[6]], reshape_transform=None)


def test_legrad_builds_with_the_command_line_arguments(vit):
    transform = functools.partial(vit_reshape_transform)
    LeGrad(model=vit, target_layers=[vit.encoder.layers[-1].ln_1], reshape_transform=transform)
