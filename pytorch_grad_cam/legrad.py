"""LeGrad: explanations of Vision Transformers from the gradients of their attention maps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, LayerRecord, Needs
from pytorch_grad_cam.core.checks import check_callable
from pytorch_grad_cam.core.outputs import target_scores

Head = Callable[[torch.Tensor], Any]


def default_head(model: nn.Module) -> Head:
    """The map from a layer's tokens to class scores for a torchvision ``VisionTransformer``: the final
    LayerNorm and the classification head applied to the class token."""
    encoder: Any = getattr(model, "encoder", None)
    heads: Any = getattr(model, "heads", None)
    if heads is not None and hasattr(model, "class_token") and hasattr(encoder, "ln"):
        return lambda tokens: heads(encoder.ln(tokens)[:, 0])
    raise ValueError(
        f"LeGrad cannot tell how {type(model).__name__} turns a layer's tokens into class scores; pass head=, a "
        "callable mapping tokens (B, N, D) to the model's output, e.g. lambda z: model.head(model.norm(z)[:, 0])"
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
    (the paper averages every block). One forward pass for all target layers, one backward pass per layer.

    Works with attention computed by ``nn.MultiheadAttention`` (torchvision ``VisionTransformer``); the core
    records the attention maps (``Needs(attention_maps=True)``), recomputing the attention step by step
    during the call to expose ``A^l``.

    Args:
        *args: ``model`` (the Vision Transformer), ``target_layers`` (encoder blocks or modules inside them,
            e.g. ``[model.encoder.layers[-1]]``; ``None`` chooses the last block's ``ln_1`` and its token grid
            automatically) and ``reshape_transform`` (required with explicit layers: maps tokens ``(B, N, D)``
            to ``(B, D, h, w)``, e.g. ``vit_reshape_transform``), as :class:`BaseCAM`.
        head: (keyword) maps a block's output tokens ``(B, N, D)`` to the model output; found automatically for
            torchvision's ``VisionTransformer``.
        **kwargs: passed to :class:`BaseCAM`.
    """

    needs = Needs(layer_gradients=False, attention_maps=True)

    def __init__(self, *args: Any, head: Head | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.reshape_transform is None and not self.auto_layers:  # the automatic choice brings one
            raise ValueError(
                "LeGrad needs reshape_transform to turn tokens (B, N, D) into a (B, D, h, w) map, e.g. "
                "pytorch_grad_cam.utils.reshape_transforms.vit_reshape_transform; got None"
            )
        check_callable(head, "head", example="lambda z: model.head(model.norm(z)[:, 0])")
        self.head = head if head is not None else default_head(self.model)

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        if layer.attention_map is None:
            raise RuntimeError("LeGrad needs the attention maps recorded (needs = Needs(attention_maps=True))")
        with torch.enable_grad():
            score = target_scores(layer.targets, self.head(layer.block_output)).sum()
            (gradient,) = torch.autograd.grad(score, layer.attention_map, allow_unused=True, retain_graph=True)
        if gradient is None:
            raise ValueError("the target score does not depend on the attention of this block; check head and targets")
        relevance = gradient.detach().float().clamp_min(0).mean(dim=(1, 2))
        return self.reshape_transform(relevance[..., None])[:, 0]
