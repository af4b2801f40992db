"""BaseCAM behaviour on tiny models whose maps can be computed by hand.

The expected maps are computed independently in the tests (numpy / plain autograd, cv2.resize,
scipy.ndimage.zoom), never with the library's own helpers.
"""

from __future__ import annotations

from collections import namedtuple

import cv2
import numpy as np
import pytest
import torch
from conftest import build_tiny_cnn, hook_count
from scipy.ndimage import zoom
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------- helpers
def minmax(cam: np.ndarray) -> np.ndarray:
    """The reference's per-image scaling: subtract the min, divide by 1e-7 + the max."""
    cam = cam - cam.min()
    return cam / (1e-7 + cam.max())


def finish(per_layer: list[np.ndarray]) -> np.ndarray:
    """Multi-layer aggregation: ReLU, mean over layers, min-max scaling again (per image)."""
    stacked = np.maximum(np.stack(per_layer, axis=1), 0).mean(axis=1)
    return np.stack([minmax(image) for image in stacked])


def layer_map_2d(raw: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """One layer: ReLU, min-max per image, cv2 bilinear resize to (H, W)."""
    return np.stack([cv2.resize(np.float32(minmax(np.maximum(m, 0))), (size_hw[1], size_hw[0])) for m in raw])


def acts_and_grads(model: nn.Sequential, x: torch.Tensor, cut: list[int], score) -> tuple[list, list]:
    """Activations after ``model[:k+1]`` for every k in ``cut`` and the gradients of ``score(output)``."""
    acts = []
    h = x
    start = 0
    for k in cut:
        h = model[start : k + 1](h)
        if not h.requires_grad:
            h.requires_grad_(True)
        acts.append(h)
        start = k + 1
    out = model[start:](h)
    grads = torch.autograd.grad(score(out), acts)
    return [a.detach().double().numpy() for a in acts], [g.double().numpy() for g in grads]


def state(model: nn.Module) -> list:
    return [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()]


TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


def tiny_score(out: torch.Tensor) -> torch.Tensor:
    return out[0, 1] + out[1, 3]


# ------------------------------------------------------------ a 1x1 conv + GAP + linear network
def one_by_one_model() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()


def closed_form(model: nn.Sequential, x: torch.Tensor, categories: list[int], method: str) -> np.ndarray:
    """The map of ``method`` on the 1x1-conv model, from its weights alone.

    ``A = Wc x + bc`` per position; the score ``y_k = Σ_c Wl[k, c] mean_hw(A_c) + bl[k]`` has the spatially
    constant gradient ``g_c = Wl[k, c] / (H W)``.
    """
    conv_w = model[0].weight.detach().double().numpy()[:, :, 0, 0]
    conv_b = model[0].bias.detach().double().numpy()
    lin_w = model[3].weight.detach().double().numpy()
    xs = x.double().numpy()
    height, width = xs.shape[2:]
    maps = []
    for image, category in zip(xs, categories):
        a = np.einsum("ck,khw->chw", conv_w, image) + conv_b[:, None, None]
        g = lin_w[category] / (height * width)  # (C,)
        g_map = np.broadcast_to(g[:, None, None], a.shape)
        sums = a.sum(axis=(1, 2))
        if method in ("GradCAM", "HiResCAM"):
            raw = (g[:, None, None] * a).sum(0)
        elif method == "GradCAMElementWise":
            raw = np.maximum(g_map * a, 0).sum(0)
        elif method == "LayerCAM":
            raw = (np.maximum(g_map, 0) * a).sum(0)
        elif method == "XGradCAM":
            raw = ((g * sums / (sums + 1e-7))[:, None, None] * a).sum(0)
        elif method == "GradCAMPlusPlus":
            alpha = g**2 / (2 * g**2 + sums * g**3 + 1e-6)
            weights = alpha * np.maximum(g, 0) * height * width
            raw = (weights[:, None, None] * a).sum(0)
        elif method == "FEM":
            mean = a.mean(axis=(1, 2), keepdims=True)
            std = a.std(axis=(1, 2), keepdims=True)
            weights = (a > mean + 2 * std).mean(axis=(1, 2), keepdims=True)
            raw = (weights * a).sum(0)
        else:
            raise AssertionError(method)
        maps.append(minmax(np.maximum(raw, 0)))
    return finish([np.stack(maps)])


@pytest.mark.parametrize(
    "method", ["GradCAM", "HiResCAM", "GradCAMElementWise", "LayerCAM", "XGradCAM", "GradCAMPlusPlus", "FEM"]
)
def test_one_by_one_conv_closed_form(method: str) -> None:
    model = one_by_one_model()
    x = torch.randn(2, 3, 5, 6)
    categories = [0, 2]
    result = getattr(pgc, method)(model, [model[0]])(x, [ClassifierOutputTarget(c) for c in categories])
    expected = closed_form(model, x, categories, method)
    assert result.dtype == np.float32 and result.shape == (2, 5, 6)
    np.testing.assert_allclose(result, expected, atol=TOL)
    assert result.max() > 0.99  # a real map, not all zeros


def test_hirescam_equals_gradcam_for_spatially_constant_gradients() -> None:
    model = one_by_one_model()
    x = torch.randn(3, 3, 7, 4)
    targets = [ClassifierOutputTarget(c) for c in (0, 1, 2)]
    grad_cam = pgc.GradCAM(model, [model[0]])(x, targets)
    hires = pgc.HiResCAM(model, [model[0]])(x, targets)
    np.testing.assert_allclose(hires, grad_cam, atol=1e-6)
    # ... and they differ on the tiny CNN, where the gradients vary over space
    tiny = build_tiny_cnn()
    xt = torch.randn(2, 3, 12, 12)
    a = pgc.GradCAM(tiny, [tiny[4]])(xt, TARGETS)
    b = pgc.HiResCAM(tiny, [tiny[4]])(xt, TARGETS)
    assert np.abs(a - b).max() > 1e-2


# ------------------------------------------------------------------------------------- 3D models
def conv3d_model() -> nn.Sequential:
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(4, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).eval()


def layer_map_3d(raw: np.ndarray, size_dhw: tuple[int, int, int]) -> np.ndarray:
    out = []
    for m in raw:
        scaled = np.float32(minmax(np.maximum(m, 0)))
        out.append(zoom(scaled, [t / s for s, t in zip(scaled.shape, size_dhw)]))
    return np.stack(out)


@pytest.mark.parametrize("method", ["GradCAM", "HiResCAM", "LayerCAM"])
def test_3d_conv_model_by_hand(method: str) -> None:
    model = conv3d_model()
    x = torch.randn(2, 2, 6, 8, 10)
    targets = [ClassifierOutputTarget(2), ClassifierOutputTarget(0)]
    result = getattr(pgc, method)(model, [model[2]])(x, targets)
    assert result.shape == (2, 6, 8, 10) and result.dtype == np.float32

    (a,), (g,) = acts_and_grads(model, x, [2], lambda out: out[0, 2] + out[1, 0])
    assert a.shape == (2, 6, 3, 4, 5)
    if method == "GradCAM":
        raw = (g.mean(axis=(2, 3, 4), keepdims=True) * a).sum(1)
    elif method == "HiResCAM":
        raw = (g * a).sum(1)
    else:
        raw = (np.maximum(g, 0) * a).sum(1)
    expected = finish([layer_map_3d(raw, (6, 8, 10))])
    np.testing.assert_allclose(result, expected, atol=TOL)
    assert result.max() > 0.99


def test_3d_two_layers_mean() -> None:
    model = conv3d_model()
    x = torch.randn(1, 2, 4, 6, 6)
    result = pgc.GradCAM(model, [model[0], model[2]])(x, [ClassifierOutputTarget(1)])
    acts, grads = acts_and_grads(model, x, [0, 2], lambda out: out[0, 1])
    per_layer = [
        layer_map_3d((g.mean(axis=(2, 3, 4), keepdims=True) * a).sum(1), (4, 6, 6)) for a, g in zip(acts, grads)
    ]
    np.testing.assert_allclose(result, finish(per_layer), atol=TOL)


# ------------------------------------------------------------------------ aggregation and smoothing
def gradcam_by_hand(model, x, layers: list[int], score) -> np.ndarray:
    acts, grads = acts_and_grads(model, x, layers, score)
    size = tuple(x.shape[2:])
    return finish([layer_map_2d((g.mean(axis=(2, 3), keepdims=True) * a).sum(1), size) for a, g in zip(acts, grads)])


def test_multi_layer_mean(tiny_cnn, golden_input) -> None:
    result = pgc.GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])(golden_input, TARGETS)
    np.testing.assert_allclose(result, gradcam_by_hand(tiny_cnn, golden_input, [4, 6], tiny_score), atol=TOL)
    # and with one layer
    result = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, TARGETS)
    np.testing.assert_allclose(result, gradcam_by_hand(tiny_cnn, golden_input, [6], tiny_score), atol=TOL)


def test_reverse_layer_order_pairs_by_index(tiny_cnn, golden_input) -> None:
    forward_order = pgc.GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])
    normal = forward_order(golden_input, TARGETS)
    reverse = pgc.GradCAM(tiny_cnn, [tiny_cnn[6], tiny_cnn[4]])
    reversed_result = reverse(golden_input, TARGETS)
    np.testing.assert_allclose(reversed_result, normal, atol=1e-6)
    record = reverse.activations_and_grads
    assert record.activations[0].shape == (2, 32, 12, 14) and record.gradients[0].shape == (2, 32, 12, 14)
    assert record.activations[1].shape == (2, 16, 12, 14) and record.gradients[1].shape == (2, 16, 12, 14)
    # per-layer maps come out in target_layers order: layer 6 first, then layer 4
    per_layer = reverse.compute_cam_per_layer(golden_input, TARGETS, False)  # reference name, last recording
    acts, grads = acts_and_grads(tiny_cnn, golden_input, [4, 6], tiny_score)
    by_hand = [layer_map_2d((g.mean(axis=(2, 3), keepdims=True) * a).sum(1), (24, 28)) for a, g in zip(acts, grads)]
    np.testing.assert_allclose(per_layer[0][:, 0].numpy(), by_hand[1], atol=TOL)
    np.testing.assert_allclose(per_layer[1][:, 0].numpy(), by_hand[0], atol=TOL)


def test_aug_smooth_is_mean_of_deaugmented_maps(tiny_cnn, golden_input) -> None:
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])
    smoothed = cam(golden_input, TARGETS, aug_smooth=True)
    maps = []
    for flip in (False, True):
        for factor in (0.9, 1.0, 1.1):
            x = golden_input * factor
            if flip:
                x = x.flip(-1)
            m = cam(x, TARGETS)
            maps.append(m[..., ::-1] if flip else m)
    expected = np.mean(maps, axis=0)
    assert len(maps) == 6
    np.testing.assert_allclose(smoothed, expected, atol=1e-6)
    assert np.abs(smoothed - cam(golden_input, TARGETS)).max() > 1e-3  # smoothing did something


def test_eigen_smooth_is_first_component_of_weighted_activations(tiny_cnn, golden_input) -> None:
    result = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, TARGETS, eigen_smooth=True)
    (a,), (g,) = acts_and_grads(tiny_cnn, golden_input, [6], tiny_score)
    weighted = g.mean(axis=(2, 3), keepdims=True) * a
    for i, image in enumerate(weighted):
        rows = image.reshape(image.shape[0], -1).T
        rows = rows - rows.mean(axis=0)
        _, _, vh = np.linalg.svd(rows, full_matrices=False)
        projection = (rows @ vh[0]).reshape(image.shape[1:])
        candidates = [finish([layer_map_2d(s * projection[None], (24, 28))])[0] for s in (1, -1)]
        assert min(np.abs(result[i] - c).max() for c in candidates) < TOL


# --------------------------------------------------------------------------- outputs and results
def test_outputs_hold_last_output_detached(tiny_cnn, golden_input) -> None:
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])
    cam(golden_input, TARGETS)
    with torch.no_grad():
        expected = tiny_cnn(golden_input)
    assert isinstance(cam.outputs, torch.Tensor) and not cam.outputs.requires_grad
    assert cam.outputs.grad_fn is None
    torch.testing.assert_close(cam.outputs, expected)
    other = golden_input[:1] * 0.5
    cam(other, [ClassifierOutputTarget(0)])
    with torch.no_grad():
        torch.testing.assert_close(cam.outputs, tiny_cnn(other))


def test_compute_returns_tensor_on_model_device_equal_to_numpy(tiny_cnn, golden_input) -> None:
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])
    tensor = cam.compute(golden_input, TARGETS)
    array = cam(golden_input, TARGETS)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    assert tensor.device == next(tiny_cnn.parameters()).device
    assert not tensor.requires_grad
    np.testing.assert_array_equal(tensor.numpy(), array)


def test_detach_false_gives_differentiable_result(tiny_cnn, golden_input) -> None:
    x = golden_input.clone().requires_grad_(True)
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]], detach=False)
    result = cam.compute(x, TARGETS)
    assert result.requires_grad
    np.testing.assert_allclose(
        result.detach().numpy(), pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, TARGETS), atol=1e-6
    )
    (grad,) = torch.autograd.grad(result[:, 5:15, 5:15].sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # the gradient goes through the gradient-based weights too: compare with a finite difference
    direction = torch.randn_like(golden_input)
    eps = 1e-3
    with torch.no_grad():
        plus = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]]).compute(golden_input + eps * direction, TARGETS)
        minus = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]]).compute(golden_input - eps * direction, TARGETS)
    numeric = ((plus - minus)[:, 5:15, 5:15].sum() / (2 * eps)).item()
    assert (grad * direction).sum().item() == pytest.approx(numeric, rel=0.05, abs=1e-3)
    assert hook_count(tiny_cnn) == 0


# ------------------------------------------------------------------------ structured model outputs
class DictModel(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net(x)
        return {"logits": logits, "aux": logits * 2}


Pair = namedtuple("Pair", ["scores", "extra"])


class TupleModel(nn.Module):
    def __init__(self, net: nn.Module, named: bool) -> None:
        super().__init__()
        self.net = net
        self.named = named

    def forward(self, x):
        logits = self.net(x)
        return Pair(logits, -logits) if self.named else (logits, -logits)


class Recorder:
    """A target that records what it receives and scores ``key(output)[category]``."""

    def __init__(self, category: int, key) -> None:
        self.category = category
        self.key = key
        self.seen = []

    def __call__(self, output):
        self.seen.append(output)
        return self.key(output)[self.category]


@pytest.mark.parametrize("kind", ["dict", "tuple", "namedtuple"])
def test_structured_outputs_are_indexed_per_image(kind: str, tiny_cnn, golden_input) -> None:
    expected = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, TARGETS)
    if kind == "dict":
        model = DictModel(tiny_cnn)
        targets = [Recorder(1, lambda o: o["logits"]), Recorder(3, lambda o: o["logits"])]
    else:
        model = TupleModel(tiny_cnn, named=kind == "namedtuple")
        targets = [Recorder(1, lambda o: o[0]), Recorder(3, lambda o: o[0])]
    result = pgc.GradCAM(model, [tiny_cnn[6]])(golden_input, targets)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    with torch.no_grad():
        logits = tiny_cnn(golden_input)
    for index, target in enumerate(targets):
        (seen,) = target.seen
        if kind == "dict":
            assert isinstance(seen, dict) and set(seen) == {"logits", "aux"}
            first, second = seen["logits"], seen["aux"]
            torch.testing.assert_close(second, 2 * logits[index])
        else:
            assert isinstance(seen, Pair if kind == "namedtuple" else tuple)
            first, second = seen
            torch.testing.assert_close(second, -logits[index])
        assert first.shape == (5,)
        torch.testing.assert_close(first, logits[index])


def test_targets_none_with_logits_mapping(tiny_cnn, golden_input) -> None:
    expected = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input)
    model = DictModel(tiny_cnn)
    result = pgc.GradCAM(model, [tiny_cnn[6]])(golden_input)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    with torch.no_grad():
        top = tiny_cnn(golden_input).argmax(1)
    explicit_targets = [ClassifierOutputTarget(int(c)) for c in top]
    explicit = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, explicit_targets)
    np.testing.assert_allclose(result, explicit, atol=1e-6)


# ---------------------------------------------------------------------------- dtypes and freezing
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_model_computed_in_float32(dtype, tiny_cnn, golden_input) -> None:
    expected = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, TARGETS)
    low = build_tiny_cnn().to(dtype)
    cam = pgc.GradCAM(low, [low[6]])
    result = cam(golden_input, TARGETS)
    assert result.dtype == np.float32 and np.isfinite(result).all()
    assert result.min() >= 0 and result.max() <= 1
    # bf16 keeps ~3 significant digits: measured mean / max error 1.3e-3 / 7e-3 (fp16: 1.3e-4 / 9e-4)
    assert np.abs(result - expected).mean() < 5e-3
    assert np.abs(result - expected).max() < 2e-2
    assert all(p.dtype == dtype for p in low.parameters())
    assert cam.compute(golden_input, TARGETS).dtype == torch.float32


@pytest.mark.parametrize("frozen", ["backbone", "everything"])
def test_frozen_model_gives_same_map(frozen: str, tiny_cnn, golden_input) -> None:
    expected = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, TARGETS)
    expected_two = pgc.GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])(golden_input, TARGETS)
    model = build_tiny_cnn()
    frozen_part = model[:7] if frozen == "backbone" else model
    for p in frozen_part.parameters():
        p.requires_grad_(False)
    before = state(model)
    for method in ("GradCAM", "HiResCAM", "GradCAMPlusPlus", "LayerCAM"):
        ours = getattr(pgc, method)(model, [model[6]])(golden_input, TARGETS)
        reference = getattr(pgc, method)(tiny_cnn, [tiny_cnn[6]])(golden_input, TARGETS)
        np.testing.assert_allclose(ours, reference, atol=1e-6)
    np.testing.assert_allclose(pgc.GradCAM(model, [model[6]])(golden_input, TARGETS), expected, atol=1e-6)
    if frozen == "everything":
        np.testing.assert_allclose(
            pgc.GradCAM(model, [model[4], model[6]])(golden_input, TARGETS), expected_two, atol=1e-6
        )
    assert state(model) == before
    assert hook_count(model) == 0


def test_parameter_grads_untouched(tiny_cnn, golden_input) -> None:
    marker = {n: torch.full_like(p, 0.25) for n, p in tiny_cnn.named_parameters() if n.startswith("9")}
    for name, p in tiny_cnn.named_parameters():
        p.grad = marker[name].clone() if name in marker else None
    pgc.GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])(golden_input, TARGETS)
    pgc.GradCAMPlusPlus(tiny_cnn, [tiny_cnn[6]])(golden_input)
    for name, p in tiny_cnn.named_parameters():
        if name in marker:
            assert torch.equal(p.grad, marker[name])
        else:
            assert p.grad is None, name


def test_data_parallel_on_cpu(tiny_cnn, golden_input) -> None:
    expected = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, TARGETS)
    wrapped = nn.DataParallel(build_tiny_cnn())
    result = pgc.GradCAM(wrapped, [wrapped.module[6]])(golden_input, TARGETS)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert hook_count(wrapped) == 0


# ------------------------------------------------------------------- in-place ops after the layer
def inplace_model(inplace: bool) -> nn.Sequential:
    torch.manual_seed(11)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


@pytest.mark.parametrize("method", ["GradCAM", "HiResCAM", "GradCAMPlusPlus", "EigenCAM", "EigenGradCAM"])
def test_inplace_relu_after_target_layer(method: str) -> None:
    """A ReLU(inplace=True) right after the target layer (VGG convs, densenet's features[-1]) must not change
    the recorded output or its gradient: the map equals that of the same model with out-of-place ReLUs."""
    x = torch.randn(2, 3, 9, 9)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(3)]
    plain = inplace_model(False)
    expected = getattr(pgc, method)(plain, [plain[0], plain[2]])(x, targets)
    model = inplace_model(True)
    cam = getattr(pgc, method)(model, [model[0], model[2]])
    np.testing.assert_allclose(cam(x, targets), expected, atol=1e-6)
    assert cam.activations_and_grads.activations[0].min() < 0  # the conv output, before the ReLU
    with torch.no_grad():
        torch.testing.assert_close(cam.outputs, plain(x))
    # frozen backbone with in-place ops: works, same map
    for p in model[:3].parameters():
        p.requires_grad_(False)
    np.testing.assert_allclose(cam(x, targets), expected, atol=1e-6)
    assert hook_count(model) == 0
