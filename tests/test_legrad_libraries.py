"""LeGrad on the attention of real libraries: timm (fused attention switched off for the call), Hugging Face
transformers (eager attention for the call) and torchvision (nn.MultiheadAttention recomputed).

One small ViT is built in timm with random weights and copied into Hugging Face's ``ViTForImageClassification`` and
torchvision's ``VisionTransformer``: the three compute the same network with three attention implementations, so
their LeGrad maps must be equal. A hand-written computation of the formula on a one-block timm ViT checks the
numbers; DeiT's distillation head and register tokens go through the automatic head and grid. Each library is
skipped when it is not installed (pip install -e '.[integrations]')."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import LeGrad
from pytorch_grad_cam.core.recording import RETURNED, TIMM, TORCH, TRANSFORMERS, attention_kind
from pytorch_grad_cam.legrad import default_head
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

timm = pytest.importorskip("timm", reason="timm is not installed (pip install -e '.[integrations]')")

pytestmark = pytest.mark.usefixtures("one_thread")

DIM, DEPTH, HEADS, MLP, SIZE, PATCH, CLASSES = 64, 2, 2, 128, 64, 16, 10
TOL = 1e-5


def _timm_vit(depth: int = DEPTH) -> nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_small_patch16_224",
        pretrained=False,
        img_size=SIZE,
        embed_dim=DIM,
        depth=depth,
        num_heads=HEADS,
        mlp_ratio=MLP / DIM,
        num_classes=CLASSES,
    )
    nn.init.normal_(model.head.weight, std=0.5)  # larger class scores: maps with more contrast
    return model.eval()


@pytest.fixture(scope="module")
def timm_vit() -> nn.Module:
    return _timm_vit()


@pytest.fixture(scope="module")
def hf_vit(timm_vit: nn.Module) -> nn.Module:
    """Hugging Face's ViT with the timm model's weights (q, k, v split from timm's fused qkv)."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    config = transformers.ViTConfig(
        hidden_size=DIM,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        intermediate_size=MLP,
        image_size=SIZE,
        patch_size=PATCH,
        num_labels=CLASSES,
        layer_norm_eps=1e-6,  # timm's
    )
    model = transformers.ViTForImageClassification(config).eval()
    weights = timm_vit.state_dict()
    embeddings = model.vit.embeddings
    pairs: list[tuple[nn.Module | nn.Parameter, str]] = [
        (embeddings.patch_embeddings.projection, "patch_embed.proj"),
        (model.vit.layernorm, "norm"),
        (model.classifier, "head"),
    ]
    with torch.no_grad():
        embeddings.cls_token.copy_(weights["cls_token"])
        embeddings.position_embeddings.copy_(weights["pos_embed"])
        for index, layer in enumerate(model.vit.layers):
            prefix = f"blocks.{index}."
            pairs += [
                (layer.layernorm_before, prefix + "norm1"),
                (layer.layernorm_after, prefix + "norm2"),
                (layer.attention.o_proj, prefix + "attn.proj"),
                (layer.mlp.fc1, prefix + "mlp.fc1"),
                (layer.mlp.fc2, prefix + "mlp.fc2"),
            ]
            projections = (layer.attention.q_proj, layer.attention.k_proj, layer.attention.v_proj)
            for part, projection in enumerate(projections):
                rows = slice(part * DIM, (part + 1) * DIM)
                projection.weight.copy_(weights[prefix + "attn.qkv.weight"][rows])
                projection.bias.copy_(weights[prefix + "attn.qkv.bias"][rows])
        for module, name in pairs:
            module.weight.copy_(weights[name + ".weight"])  # type: ignore[union-attr]
            module.bias.copy_(weights[name + ".bias"])  # type: ignore[union-attr]
    return model


@pytest.fixture(scope="module")
def torchvision_vit(timm_vit: nn.Module) -> nn.Module:
    """torchvision's ViT with the timm model's weights (nn.MultiheadAttention's in_proj is timm's qkv)."""
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.VisionTransformer(
        image_size=SIZE, patch_size=PATCH, num_layers=DEPTH, num_heads=HEADS, hidden_dim=DIM, mlp_dim=MLP,
        num_classes=CLASSES,
    ).eval()  # fmt: skip
    weights = timm_vit.state_dict()
    with torch.no_grad():
        model.class_token.copy_(weights["cls_token"])
        model.encoder.pos_embedding.copy_(weights["pos_embed"])
        pairs: list[tuple[nn.Module, str]] = [
            (model.conv_proj, "patch_embed.proj"),
            (model.encoder.ln, "norm"),
            (model.heads.head, "head"),
        ]
        for index, layer in enumerate(model.encoder.layers):
            prefix = f"blocks.{index}."
            attention = layer.self_attention
            attention.in_proj_weight.copy_(weights[prefix + "attn.qkv.weight"])
            attention.in_proj_bias.copy_(weights[prefix + "attn.qkv.bias"])
            pairs += [
                (layer.ln_1, prefix + "norm1"),
                (layer.ln_2, prefix + "norm2"),
                (attention.out_proj, prefix + "attn.proj"),
                (layer.mlp[0], prefix + "mlp.fc1"),
                (layer.mlp[3], prefix + "mlp.fc2"),
            ]
        for module, name in pairs:
            module.weight.copy_(weights[name + ".weight"])
            module.bias.copy_(weights[name + ".bias"])
    return model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, SIZE, SIZE)


def _grid(tokens: torch.Tensor) -> torch.Tensor:
    return vit_reshape_transform(tokens, height=SIZE // PATCH, width=SIZE // PATCH)


def test_the_three_libraries_compute_the_same_network(timm_vit, hf_vit, torchvision_vit, images):
    with torch.no_grad():
        expected = timm_vit(images)
        torch.testing.assert_close(hf_vit(images).logits, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torchvision_vit(images), expected, atol=1e-5, rtol=1e-5)
    assert attention_kind(timm_vit.blocks[0].attn) == TIMM
    assert attention_kind(hf_vit.vit.layers[0].attention) == TRANSFORMERS
    assert attention_kind(torchvision_vit.encoder.layers[0].self_attention) == TORCH


def test_legrad_equal_across_attention_implementations(timm_vit, hf_vit, torchvision_vit, images):
    targets = [ClassifierOutputTarget(3), ClassifierOutputTarget(7)]
    expected = LeGrad(timm_vit, [timm_vit.blocks[-1].norm1], _grid)(images, targets)
    assert np.isfinite(expected).all() and expected.min() == 0 and abs(expected.max() - 1) < 1e-5
    assert expected.shape == (2, SIZE, SIZE) and expected.std() > 0.05
    hf = LeGrad(hf_vit, [hf_vit.vit.layers[-1].layernorm_before], _grid)(images, targets)
    tv = LeGrad(torchvision_vit, [torchvision_vit.encoder.layers[-1].ln_1], _grid)(images, targets)
    np.testing.assert_allclose(hf, expected, atol=TOL)
    np.testing.assert_allclose(tv, expected, atol=TOL)
    # every block, and target_layers omitted (the norm before the last attention, its grid from the input)
    every = LeGrad(timm_vit, list(timm_vit.blocks), _grid)(images, targets)
    np.testing.assert_allclose(LeGrad(hf_vit, list(hf_vit.vit.layers), _grid)(images, targets), every, atol=TOL)
    automatic = LeGrad(hf_vit)
    np.testing.assert_allclose(automatic(images, targets), expected, atol=TOL)
    assert automatic.target_layers == [hf_vit.vit.layers[-1].layernorm_before]
    np.testing.assert_allclose(LeGrad(timm_vit)(images, targets), expected, atol=TOL)
    for model in (timm_vit, hf_vit, torchvision_vit):
        assert hook_count(model) == 0


def test_attention_settings_are_restored(timm_vit, hf_vit, images):
    assert all(block.attn.fused_attn for block in timm_vit.blocks)
    assert hf_vit.config._attn_implementation == "sdpa"
    fused = LeGrad(timm_vit)(images)
    assert all(block.attn.fused_attn for block in timm_vit.blocks)
    LeGrad(hf_vit)(images)
    assert hf_vit.config._attn_implementation == "sdpa"
    # the unfused attention gives the same map, and stays unfused
    for block in timm_vit.blocks:
        block.attn.fused_attn = False
    try:
        np.testing.assert_allclose(LeGrad(timm_vit)(images), fused, atol=TOL)
        assert not any(block.attn.fused_attn for block in timm_vit.blocks)
    finally:
        for block in timm_vit.blocks:
            block.attn.fused_attn = True
    # restored when the forward pass fails too
    with pytest.raises(ValueError, match="input_tensor"):
        LeGrad(hf_vit)(images[0])
    broken = LeGrad(timm_vit, [timm_vit.blocks[-1].norm1], lambda t: t[:, :1])  # not (B, C, h, w): fails late
    with pytest.raises(ValueError):
        broken(images)
    assert all(block.attn.fused_attn for block in timm_vit.blocks) and hook_count(timm_vit) == 0


def test_legrad_by_hand_on_one_timm_block(images):
    """E = mean over heads and queries of ReLU(∂y/∂A), A = softmax(q kᵀ / √d) computed here from timm's weights."""
    model = _timm_vit(depth=1)
    block = model.blocks[0]
    target = 4
    result = LeGrad(model, [block.norm1], _grid)(images, [ClassifierOutputTarget(target)] * 2)

    with torch.no_grad():
        tokens = model.patch_embed(images)
        tokens = torch.cat([model.cls_token.expand(2, -1, -1), tokens], dim=1) + model.pos_embed
    head_dim = DIM // HEADS
    qkv = block.attn.qkv(block.norm1(tokens)).reshape(2, -1, 3, HEADS, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.detach()
    attention = torch.softmax(q @ k.transpose(-2, -1) / head_dim**0.5, dim=-1).requires_grad_(True)
    mixed = (attention @ v).transpose(1, 2).reshape(2, -1, DIM)
    z = tokens + block.attn.proj(mixed)
    z = z + block.mlp(block.norm2(z))
    score = model.head(model.norm(z)[:, 0])[:, target].sum()
    (gradient,) = torch.autograd.grad(score, attention)
    relevance = gradient.clamp_min(0).mean(dim=(1, 2))[:, 1:].reshape(2, SIZE // PATCH, SIZE // PATCH)
    expected = scale_cam_image(scale_cam_image(relevance.numpy(), (SIZE, SIZE)))  # per layer, then the mean of layers
    np.testing.assert_allclose(result, expected, atol=TOL)


def test_legrad_on_deit_distilled_and_register_tokens(images):
    torch.manual_seed(0)
    deit = timm.create_model(
        "deit_tiny_distilled_patch16_224", pretrained=False, img_size=SIZE, embed_dim=DIM, depth=2, num_heads=HEADS,
        num_classes=CLASSES,
    ).eval()  # fmt: skip
    automatic = LeGrad(deit)
    result = automatic(images)
    assert automatic.auto_choice is not None and automatic.auto_choice.reshape.extra == 2  # type: ignore[union-attr]
    by_hand = LeGrad(deit, [deit.blocks[-1].norm1], lambda t: vit_reshape_transform(t, height=4, width=4))
    np.testing.assert_allclose(result, by_hand(images), atol=TOL)
    assert np.isfinite(result).all() and result.min() >= 0 and result.max() <= 1 + 1e-6 and result.std() > 0.05
    # the head is timm's own: the mean of the class and distillation heads
    tokens = torch.randn(2, 18, DIM)
    with torch.no_grad():
        torch.testing.assert_close(default_head(deit)(tokens), deit.forward_head(deit.norm(tokens)))

    registers = timm.create_model(
        "vit_small_patch14_reg4_dinov2", pretrained=False, img_size=56, embed_dim=DIM, depth=2, num_heads=HEADS,
        num_classes=CLASSES,
    ).eval()  # fmt: skip
    x = torch.randn(1, 3, 56, 56)
    automatic = LeGrad(registers)
    result = automatic(x)
    assert automatic.auto_choice.reshape.extra == 5  # type: ignore[union-attr]
    by_hand = LeGrad(registers, [registers.blocks[-1].norm1], lambda t: vit_reshape_transform(t, height=4, width=4))
    np.testing.assert_allclose(result, by_hand(x), atol=TOL)
    assert np.isfinite(result).all() and result.min() == 0 and abs(result.max() - 1) < 1e-5


class _PlainAttention(nn.Module):
    """An attention of no library: single head, returns ``(output, probabilities)``."""

    def __init__(self, dim: int, give: bool = True) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.give = give

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        probabilities = torch.softmax(q[:, None] @ k[:, None].transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
        return (probabilities @ v[:, None])[:, 0], probabilities if self.give else None


class _Block(nn.Module):
    def __init__(self, dim: int, give: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = _PlainAttention(dim, give)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.norm(x))[0]


class _TinyViT(nn.Module):
    def __init__(self, give: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.block = _Block(8, give)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.block(tokens).mean(dim=1))


def test_any_attention_returning_its_probabilities():
    model = _TinyViT().eval()
    assert attention_kind(model.block.attention) == RETURNED
    x = torch.randn(2, 3, 16, 16)
    head = lambda z: model.head(z.mean(dim=1))  # noqa: E731
    result = LeGrad(model, [model.block.norm], vit_reshape_transform, head=head)(x)
    assert np.isfinite(result).all() and result.min() == 0 and abs(result.max() - 1) < 1e-5

    silent = _TinyViT(give=False).eval()
    cam = LeGrad(silent, [silent.block.norm], vit_reshape_transform, head=lambda z: silent.head(z.mean(dim=1)))
    with pytest.raises(ValueError, match="does not return its attention probabilities"):
        cam(x)
    assert hook_count(silent) == 0
    with pytest.raises(ValueError, match="pass head="):
        LeGrad(model, [model.block.norm], vit_reshape_transform)
