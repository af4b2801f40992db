"""LeGrad: explanations of Vision Transformers from the gradients of their attention maps."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam.base_cam import BaseCAM, Target, target_scores
from pytorch_grad_cam.utils.validation import describe

Head = Callable[[torch.Tensor], Any]


def explicit_attention(
    module: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.MultiheadAttention``'s output computed step by step, with its attention map in the graph.

    ``A_h = softmax(q_h k_hᵀ / √d)``, ``out = W_o [A_1 v_1, …, A_H v_H] + b_o`` (eval mode: no dropout).

    Returns:
        The output (in the module's batch layout) and the attention maps ``(B, heads, N_query, N_key)``.

    Raises:
        ValueError: for modules with ``add_bias_kv`` or ``add_zero_attn``.
    """
    if module.bias_k is not None or module.add_zero_attn:
        raise ValueError("LeGrad does not support nn.MultiheadAttention with add_bias_kv or add_zero_attn")
    if not module.batch_first:
        query, key, value = (tensor.transpose(0, 1) for tensor in (query, key, value))
    dim, heads = module.embed_dim, module.num_heads
    bias = module.in_proj_bias
    biases = (None, None, None) if bias is None else bias.split(dim)
    if module._qkv_same_embed_dim:
        weights = module.in_proj_weight.split(dim)
    else:
        weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
    q, k, v = (F.linear(tensor, w, b) for tensor, w, b in zip((query, key, value), weights, biases))
    batch, length = q.shape[:2]

    def split(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.reshape(tensor.shape[0], tensor.shape[1], heads, dim // heads).transpose(1, 2)

    q, k, v = split(q), split(k), split(v)
    attention = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dim // heads), dim=-1)
    mixed = (attention @ v).transpose(1, 2).reshape(batch, length, dim)
    out = module.out_proj(mixed)
    return (out if module.batch_first else out.transpose(0, 1)), attention


def default_head(model: nn.Module) -> Head:
    """The map from a layer's tokens to class scores for a torchvision ``VisionTransformer``: the final
    LayerNorm and the classification head applied to the class token."""
    if all(hasattr(model, name) for name in ("encoder", "heads", "class_token")) and hasattr(model.encoder, "ln"):
        return lambda tokens: model.heads(model.encoder.ln(tokens)[:, 0])
    raise ValueError(
        f"LeGrad cannot tell how {type(model).__name__} turns a layer's tokens into class scores; pass head=, a "
        "callable mapping tokens (B, N, D) to the model's output, e.g. lambda z: model.head(model.norm(z)[:, 0])"
    )


def _attention_block(model: nn.Module, layer: nn.Module, index: int) -> tuple[nn.Module, nn.MultiheadAttention]:
    """The smallest module holding ``layer`` and exactly one ``nn.MultiheadAttention``, and that attention."""
    holders = [module for module in model.modules() if any(sub is layer for sub in module.modules())]
    for block in sorted(holders, key=lambda module: sum(1 for _ in module.modules())):
        attentions = [sub for sub in block.modules() if isinstance(sub, nn.MultiheadAttention)]
        if len(attentions) == 1:
            return block, attentions[0]
        if len(attentions) > 1:
            break
    raise ValueError(
        f"target_layers[{index}] ({type(layer).__name__}) is not inside a transformer block with one "
        "nn.MultiheadAttention; LeGrad explains Vision Transformers: pick an encoder block, e.g. "
        "model.encoder.layers[-1]"
    )


class LeGrad(BaseCAM):
    """LeGrad — Bousselham et al. 2024, "LeGrad: An Explainability Method for Vision Transformers via Feature
    Formation Sensitivity", https://arxiv.org/abs/2404.03214

    For the transformer block ``l`` that holds each target layer, the block's output tokens ``z^l`` are turned
    into class scores by the model's own head (``s^l = head(z^l)``; for the last block, the model output), and
    the target score's gradient with respect to the block's attention map ``A^l`` (heads × queries × keys) gives
    the relevance of every key token:
    ``E^l = (1 / (H·N)) Σ_h Σ_i ReLU(∂s^l/∂A^l_{h,i,:})``; the patch tokens of ``E^l`` (through
    ``reshape_transform``) are the map. Several target layers are averaged as in :class:`BaseCAM`
    (the paper averages every block). One forward and backward pass per target layer.

    Works with attention computed by ``nn.MultiheadAttention`` (torchvision ``VisionTransformer``); the
    attention is recomputed step by step during the call (a forward hook, removed after) to expose ``A^l``.

    Args:
        model: the Vision Transformer.
        target_layers: encoder blocks (or modules inside them), e.g. ``[model.encoder.layers[-1]]``.
        reshape_transform: maps tokens ``(B, N, D)`` to ``(B, D, h, w)``, e.g. ``vit_reshape_transform``;
            required.
        head: maps a block's output tokens ``(B, N, D)`` to the model output; found automatically for
            torchvision's ``VisionTransformer``.
        **kwargs: passed to :class:`BaseCAM`.
    """

    uses_gradients = False

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        head: Head | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.blocks = [_attention_block(model, layer, i) for i, layer in enumerate(self.target_layers)]
        if reshape_transform is None:
            raise ValueError(
                "LeGrad needs reshape_transform to turn tokens (B, N, D) into a (B, D, h, w) map, e.g. "
                "pytorch_grad_cam.utils.reshape_transforms.vit_reshape_transform; got None"
            )
        if head is not None and not callable(head):
            raise TypeError(f"head must be callable (tokens → model output) or None; got {describe(head)}")
        self.head = head if head is not None else default_head(model)

    def get_cam_image(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        if torch.is_inference_mode_enabled():
            raise RuntimeError("LeGrad needs gradients, which torch.inference_mode() forbids; call it outside it")
        index = next(i for i, layer in enumerate(self.target_layers) if layer is target_layer)
        block, attention_module = self.blocks[index]
        captured: dict[str, Any] = {}

        def on_attention(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
            inputs = list(args) + [kwargs.get(name) for name in ("query", "key", "value")[len(args) :]]
            for name in ("key_padding_mask", "attn_mask"):
                if kwargs.get(name) is not None:
                    raise ValueError(f"LeGrad does not support attention called with {name}")
            out, captured["attention"] = explicit_attention(module, *inputs[:3])
            return (out, output[1])

        def on_block(module: nn.Module, args: tuple, output: Any) -> None:
            captured["tokens"] = output

        handles = [
            attention_module.register_forward_hook(on_attention, with_kwargs=True),
            block.register_forward_hook(on_block),
        ]
        try:
            with torch.enable_grad():
                self.model(input_tensor)
        finally:
            for handle in handles:
                handle.remove()
        with torch.enable_grad():
            outputs = self.head(captured["tokens"])
            score = target_scores(targets, outputs).sum()
            (gradient,) = torch.autograd.grad(score, captured["attention"], allow_unused=True)
        if gradient is None:
            raise ValueError("the target score does not depend on the attention of this block; check head and targets")
        relevance = gradient.detach().float().clamp_min(0).mean(dim=(1, 2))
        return self.reshape_transform(relevance[..., None])[:, 0]
