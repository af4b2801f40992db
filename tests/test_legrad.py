"""LeGrad (pytorch_grad_cam.legrad): a hand-computed one-block ViT, the explicit attention it records
(pytorch_grad_cam.core.recording.explicit_attention) equal to nn.MultiheadAttention, a torchvision ViT, clear
errors, and construction with the command-line arguments."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torchvision
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import LeGrad
from pytorch_grad_cam.core.recording import explicit_attention
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5


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
    assert cam.activations_and_grads.attention_blocks[0][0] is vit.encoder.layers[0]
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


def test_legrad_builds_with_the_command_line_arguments(vit):
    transform = functools.partial(vit_reshape_transform)
    LeGrad(model=vit, target_layers=[vit.encoder.layers[-1].ln_1], reshape_transform=transform)
