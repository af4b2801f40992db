"""LeGrad: explanations of Vision Transformers from the gradients of their attention maps.

The attention maps are recorded by the core (:mod:`pytorch_grad_cam.core.recording`) from the attention modules
of torchvision / open_clip (``nn.MultiheadAttention``), timm (``Attention`` and the attention classes built like it,
with ``qkv``, ``attn_drop`` and ``fused_attn``) and Hugging Face transformers (``ViTAttention`` and the other
attention modules that return their probabilities with ``attn_implementation="eager"``), and from any other
attention module that returns ``(output, probabilities)``. This module holds LeGrad's own part: the head that turns a
block's tokens into class scores, and the formula.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, LayerRecord, Needs
from pytorch_grad_cam.core.checks import check_callable
from pytorch_grad_cam.core.outputs import target_scores

Head = Callable[[torch.Tensor], Any]


def _tokens(output: Any) -> Any:
    """A block's output tokens: the output itself, or the first item of a tuple output (Hugging Face < 5)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def default_head(model: nn.Module) -> Head:
    """The map from a transformer block's output tokens ``(B, N, D)`` to the model output (class scores):

    * torchvision ``VisionTransformer``: ``heads(encoder.ln(z)[:, 0])``;
    * timm vision transformers (``forward_head`` and a final ``norm``: ViT, DeiT with its distillation head, register
      ViTs, ...): ``model.forward_head(model.norm(z))`` (class-token or average pooling, ``fc_norm``, ``head``);
    * Hugging Face image classifiers (``classifier`` and a base model with a final ``layernorm``, e.g.
      ``ViTForImageClassification``): ``classifier(base.layernorm(z)[:, 0])``.

    Raises:
        ValueError: for other models (pass ``head=``).
    """
    encoder: Any = getattr(model, "encoder", None)
    heads: Any = getattr(model, "heads", None)
    if heads is not None and hasattr(model, "class_token") and hasattr(encoder, "ln"):
        return lambda tokens: heads(encoder.ln(_tokens(tokens))[:, 0])
    forward_head: Any = getattr(model, "forward_head", None)
    norm: Any = getattr(model, "norm", None)
    if callable(forward_head) and isinstance(norm, nn.Module):
        return lambda tokens: forward_head(norm(_tokens(tokens)))
    classifier: Any = getattr(model, "classifier", None)
    prefix = getattr(model, "base_model_prefix", None)
    base: Any = getattr(model, prefix, None) if isinstance(prefix, str) and prefix else None
    final_norm: Any = getattr(base, "layernorm", None)
    if isinstance(classifier, nn.Module) and isinstance(final_norm, nn.Module):
        return lambda tokens: classifier(final_norm(_tokens(tokens))[:, 0])
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

    Works with the attention modules of torchvision and open_clip (``nn.MultiheadAttention``, recomputed step by
    step), timm (its fused kernel switched off during the call) and Hugging Face transformers (eager attention
    during the call), and any attention module returning ``(output, probabilities)`` (see
    :func:`~pytorch_grad_cam.core.recording.attention_kind`); the core records them
    (:attr:`LayerRecord.attention_map`, :attr:`LayerRecord.block_output`). The probabilities are the same as the
    fused kernels' (the model output is unchanged up to rounding).

    Args:
        *args: ``model`` (the Vision Transformer), ``target_layers`` (encoder blocks or modules inside them,
            e.g. ``[model.encoder.layers[-1]]``, ``[model.blocks[-1].norm1]``; ``None`` chooses the norm before the
            last attention and its token grid automatically) and ``reshape_transform`` (required with explicit
            layers: maps tokens ``(B, N, D)`` to ``(B, D, h, w)``, e.g. ``vit_reshape_transform``), as
            :class:`BaseCAM`.
        head: (keyword) maps a block's output tokens ``(B, N, D)`` to the model output; found automatically for
            torchvision's ``VisionTransformer``, timm vision transformers and Hugging Face image classifiers (see
            :func:`default_head`).
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
