"""ShapleyCAM: golden numbers, a hand-computed second-order case, a ViT, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torchvision.models import vit_b_16

from pytorch_grad_cam import GradCAM, ShapleyCAM
from pytorch_grad_cam.core.scaling import scale_cam_tensor
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform


def _layers(model: nn.Sequential, which: str) -> list[nn.Module]:
    return [model[6]] if which == "one" else [model[4], model[6]]


def _state(model: nn.Module) -> tuple:
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [p.grad for p in model.parameters()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def _same_state(a: tuple, b: tuple) -> bool:
    return a[:3] == b[:3] and all(torch.equal(a[3][k], b[3][k]) for k in a[3])


@pytest.mark.parametrize(("layers", "variant"), [("one", "targets"), ("one", "argmax"), ("two", "targets")])
def test_golden(tiny_cnn, golden_input, golden, layers, variant):
    before = _state(tiny_cnn)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)] if variant == "targets" else None
    cam = ShapleyCAM(tiny_cnn, _layers(tiny_cnn, layers))(golden_input, targets)
    assert cam.dtype == np.float32
    np.testing.assert_allclose(cam, golden[f"ShapleyCAM/{layers}/{variant}"], atol=1e-5)
    assert hook_count(tiny_cnn) == 0
    assert _same_state(before, _state(tiny_cnn))


def test_piecewise_linear_net_equals_gradcam_also_with_aug_smooth(tiny_cnn, golden_input):
    # ReLU networks have a zero Hessian almost everywhere: ShapleyCAM reduces to GradCAM.
    layers = _layers(tiny_cnn, "two")
    targets = [ClassifierOutputTarget(2), ClassifierOutputTarget(0)]
    with ShapleyCAM(tiny_cnn, layers) as shapley, GradCAM(tiny_cnn, layers) as gradcam:
        np.testing.assert_allclose(
            shapley(golden_input, targets, aug_smooth=True), gradcam(golden_input, targets, aug_smooth=True), atol=1e-6
        )
    assert hook_count(tiny_cnn) == 0


class QuadraticHead(nn.Module):
    """y_k = Σ_c v_kc mean(A_c) + ½ Σ_c u_kc Σ_positions A_c²: gradient and Hessian known by hand."""

    def __init__(self, v: torch.Tensor, u: torch.Tensor) -> None:
        super().__init__()
        self.v = nn.Parameter(v)
        self.u = nn.Parameter(u)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        flat = a.flatten(2)
        return flat.mean(-1) @ self.v.T + 0.5 * (flat**2).sum(-1) @ self.u.T


@pytest.mark.parametrize("spatial", [(5, 6), (3, 4, 5)])
def test_hand_computed_second_order_weights(spatial):
    channels = 3
    conv = nn.Conv2d if len(spatial) == 2 else nn.Conv3d
    v = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])
    u = torch.tensor([[-0.4, 0.6, 0.1], [0.2, -0.3, 0.5]])
    model = nn.Sequential(conv(2, channels, 1), QuadraticHead(v, u))
    x = torch.randn(2, 2, *spatial)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(1)]
    cam = ShapleyCAM(model, [model[0]]).compute(x, targets)

    a = model[0](x).detach()
    n = a[0, 0].numel()
    rows = torch.stack([v[0], v[1]]), torch.stack([u[0], u[1]])
    view = (2, channels) + (1,) * len(spatial)
    grad = rows[0].reshape(view) / n + rows[1].reshape(view) * a  # ∂y/∂A
    hvp = rows[1].reshape(view) * a  # H A with H = diag(u)
    weights = (grad - 0.5 * hvp).flatten(2).mean(-1)
    per_layer = scale_cam_tensor((weights.reshape(view) * a).sum(1).clamp_min(0), tuple(spatial))
    expected = scale_cam_tensor(per_layer.clamp_min(0))  # BaseCAM's layer aggregation
    torch.testing.assert_close(cam, expected, atol=1e-5, rtol=0)
    # the second-order term matters here: GradCAM gives another map
    assert (GradCAM(model, [model[0]]).compute(x, targets) - cam).abs().max() > 1e-2
    assert hook_count(model) == 0


@pytest.fixture(scope="module")
def vit() -> nn.Module:
    torch.manual_seed(0)
    model = vit_b_16(weights=None, image_size=48, num_classes=6).eval()
    nn.init.normal_(model.heads.head.weight)  # torchvision initialises the head to zero: no gradient at all
    return model


def test_vit_with_reshape_transform_matches_direct_second_order_computation(vit):
    layer = vit.encoder.layers[-1].ln_1
    x = torch.randn(2, 3, 48, 48)
    targets = [ClassifierOutputTarget(4), ClassifierOutputTarget(1)]
    cam = ShapleyCAM(vit, [layer], reshape_transform=vit_reshape_transform).compute(x, targets)

    captured = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no second derivative
            out = vit(x)
    finally:
        handle.remove()
    tokens = captured[0]
    score = out[0, 4] + out[1, 1]
    (grad,) = torch.autograd.grad(score, tokens, create_graph=True)
    (hvp,) = torch.autograd.grad(grad, tokens, grad_outputs=tokens.detach())
    assert hvp.abs().max() > 0  # attention and GELU make the score non-linear in the tokens
    grid = (2, 768, 3, 3)
    to_map = lambda t: t.detach()[:, 1:].transpose(1, 2).reshape(grid)  # noqa: E731  (drop the class token)
    weights = (to_map(grad) - 0.5 * to_map(hvp)).mean(dim=(2, 3))
    expected = scale_cam_tensor((weights[:, :, None, None] * to_map(tokens)).sum(1).clamp_min(0), (48, 48))
    torch.testing.assert_close(cam, expected, atol=1e-5, rtol=0)
    assert hook_count(vit) == 0
    assert not vit.training


def test_detach_true_is_rejected(tiny_cnn):
    with pytest.raises(ValueError, match=r"ShapleyCAM needs detach=False.*got detach=True"):
        ShapleyCAM(tiny_cnn, [tiny_cnn[6]], detach=True)


def test_bad_input_leaves_no_hook_and_state_unchanged(tiny_cnn, golden_input):
    tiny_cnn.train()
    before = _state(tiny_cnn)
    cam = ShapleyCAM(tiny_cnn, [tiny_cnn[6]])
    with pytest.raises(ValueError, match=r"targets must have one entry per image.*2 image\(s\), got 1 target"):
        cam(golden_input, [ClassifierOutputTarget(1)])
    with pytest.raises(ValueError, match=r"input_tensor must have shape \(B, C, H, W\).*got \(3, 24, 28\)"):
        cam(golden_input[0])
    with pytest.raises(ValueError, match=r"category must be in \[0, 5\).*got 7"):
        cam(golden_input, [ClassifierOutputTarget(7), ClassifierOutputTarget(1)])
    with pytest.raises(TypeError, match=r"target_layers must be a list of modules"):
        ShapleyCAM(tiny_cnn, tiny_cnn[6])
    assert hook_count(tiny_cnn) == 0
    assert _same_state(before, _state(tiny_cnn))
