"""LeGrad: explanations of Vision Transformers from the gradients of their attention maps.

The attention maps are recorded from the attention modules of torchvision / open_clip (``nn.MultiheadAttention``),
timm (``Attention`` and the attention classes built like it, with ``qkv``, ``attn_drop`` and ``fused_attn``) and
Hugging Face transformers (``ViTAttention`` and the other attention modules that return their probabilities with
``attn_implementation="eager"``), and from any other attention module that returns ``(output, probabilities)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from pytorch_grad_cam.core import BaseCAM, LayerRecord, Needs
from pytorch_grad_cam.core.checks import check_callable
from pytorch_grad_cam.core.layers import is_attention
from pytorch_grad_cam.core.outputs import target_scores
from pytorch_grad_cam.core.recording import ActivationsAndGradients, explicit_attention, layer_name
from pytorch_grad_cam.core.types import Layers, Reshape

Head = Callable[[torch.Tensor], Any]

#: The kinds of attention modules whose attention probabilities LeGrad records.
TORCH, TIMM, TRANSFORMERS, RETURNED = "torch", "timm", "transformers", "returned"


def attention_kind(module: nn.Module) -> str | None:
    """How the attention probabilities of ``module`` are read, or ``None`` when it is no attention module.

    * ``"torch"``: ``nn.MultiheadAttention`` (torchvision, open_clip), recomputed step by step with the
      probabilities in the graph (:func:`~pytorch_grad_cam.core.recording.explicit_attention`);
    * ``"timm"``: a timm attention module (``qkv``, ``attn_drop``, ``fused_attn``): its fused kernel is switched off
      for the call and the probabilities are the input of its ``attn_drop``;
    * ``"transformers"``: a Hugging Face attention module (its ``config`` has ``_attn_implementation``): the eager
      implementation is selected for the call, and the module returns ``(output, probabilities)``;
    * ``"returned"``: any other module whose type name says attention; its output must be ``(output,
      probabilities)``.
    """
    if isinstance(module, nn.MultiheadAttention):
        return TORCH
    if hasattr(module, "fused_attn") and isinstance(getattr(module, "attn_drop", None), nn.Module):
        return TIMM
    if not is_attention(module):
        return None
    if hasattr(getattr(module, "config", None), "_attn_implementation"):
        return TRANSFORMERS
    return RETURNED


def _innermost_attentions(module: nn.Module) -> list[nn.Module]:
    """The attention modules inside ``module`` (itself included) that hold no other attention module."""
    found = [sub for sub in module.modules() if attention_kind(sub) is not None]
    return [sub for sub in found if not any(other is not sub and attention_kind(other) for other in sub.modules())]


def attention_block(model: nn.Module, layer: nn.Module, index: int) -> tuple[nn.Module, nn.Module]:
    """The smallest module of ``model`` holding ``layer`` and exactly one attention module (see
    :func:`attention_kind`), and that attention module.

    Raises:
        ValueError: ``layer`` is not inside such a block.
    """
    holders = [module for module in model.modules() if any(sub is layer for sub in module.modules())]
    for block in sorted(holders, key=lambda module: sum(1 for _ in module.modules())):
        attentions = _innermost_attentions(block)
        if len(attentions) == 1:
            return block, attentions[0]
        if len(attentions) > 1:
            break
    raise ValueError(
        f"target_layers[{index}] ({layer_name(model, layer)}) is not inside a transformer block with one attention "
        "module (nn.MultiheadAttention, a timm or Hugging Face attention), so its attention map cannot be recorded; "
        "pick a block or a module inside it, e.g. model.encoder.layers[-1] (torchvision), model.blocks[-1].norm1 "
        "(timm), model.vit.layers[-1].layernorm_before (Hugging Face)"
    )


@contextmanager
def exposed_attention(attentions: Sequence[nn.Module]) -> Iterator[None]:
    """While active, the attention modules compute their probabilities explicitly: timm's fused kernel is switched
    off (``fused_attn = False``) and Hugging Face configs select ``"eager"`` attention; the previous values are put
    back on every exit path."""
    changed: list[tuple[Any, str, Any]] = []
    try:
        for attention in attentions:
            kind = attention_kind(attention)
            module: Any = attention
            if kind == TIMM:
                changed.append((module, "fused_attn", module.fused_attn))
                module.fused_attn = False
            elif kind == TRANSFORMERS:
                config: Any = module.config
                changed.append((config, "_attn_implementation", config._attn_implementation))
                config._attn_implementation = "eager"
        yield
    finally:
        for owner, name, value in reversed(changed):
            setattr(owner, name, value)


def _probabilities(output: Any, module: nn.Module) -> torch.Tensor:
    """The ``(B, heads, N, N)`` probabilities in an attention module's ``(output, probabilities, ...)`` result."""
    if isinstance(output, (tuple, list)) and len(output) > 1:
        probabilities = output[1]
        if isinstance(probabilities, torch.Tensor) and probabilities.ndim == 4:
            return probabilities
    raise ValueError(
        f"the attention module {type(module).__name__} does not return its attention probabilities (B, heads, N, N) "
        "as the second item of its output, so LeGrad cannot read them; pass a model whose attention returns them "
        '(Hugging Face: attn_implementation="eager")'
    )


class AttentionRecorder(ActivationsAndGradients):
    """:class:`~pytorch_grad_cam.core.recording.ActivationsAndGradients` that also records, for each target layer,
    the attention probabilities ``(B, heads, N, N)`` of the transformer block holding it and the block's output
    tokens, in the graph, for every attention kind of :func:`attention_kind` (the core's recorder reads
    ``nn.MultiheadAttention`` only). Its hooks and the attention settings changed for the forward pass are removed
    and restored in ``finally``.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Layers,
        reshape_transform: Reshape = None,
        detach: bool = True,
        *,
        input_gradient: bool = False,
    ) -> None:
        super().__init__(model, target_layers, reshape_transform, detach, input_gradient=input_gradient)
        #: Per target layer: its block and the block's attention module.
        self.attention_blocks = [attention_block(model, layer, index) for index, layer in enumerate(self.target_layers)]
        self.recorded_attention: list[torch.Tensor | None] = []
        self.recorded_blocks: list[Any] = []

    def _attention_hooks(self) -> list[RemovableHandle]:
        by_block: dict[int, tuple[nn.Module, nn.Module, list[int]]] = {}
        for index, (block, attention) in enumerate(self.attention_blocks):
            by_block.setdefault(id(block), (block, attention, []))[2].append(index)
        handles: list[RemovableHandle] = []
        for block, attention, indices in by_block.values():
            handles.append(block.register_forward_hook(self._keep_block(indices)))
            kind = attention_kind(attention)
            if kind == TORCH:
                handles.append(attention.register_forward_hook(self._explicit_torch(indices), with_kwargs=True))
            elif kind == TIMM:
                dropout: Any = attention.attn_drop  # it receives the attention probabilities
                handles.append(dropout.register_forward_hook(self._keep_output(indices)))
            else:
                handles.append(attention.register_forward_hook(self._keep_returned(indices)))
        return handles

    def _store(self, indices: list[int], probabilities: torch.Tensor) -> None:
        for index in indices:
            self.recorded_attention[index] = probabilities

    def _keep_block(self, indices: list[int]) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            for index in indices:
                self.recorded_blocks[index] = output

        return hook

    def _keep_output(self, indices: list[int]) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._store(indices, output)

        return hook

    def _keep_returned(self, indices: list[int]) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._store(indices, _probabilities(output, module))

        return hook

    def _explicit_torch(self, indices: list[int]) -> Callable[..., Any]:
        def hook(module: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
            for name in ("key_padding_mask", "attn_mask"):
                if kwargs.get(name) is not None:
                    raise ValueError(f"attention maps cannot be recorded for attention called with {name}")
            inputs = list(args) + [kwargs.get(name) for name in ("query", "key", "value")[len(args) :]]
            out, probabilities = explicit_attention(module, *inputs[:3])
            self._store(indices, probabilities)
            return (out, output[1])

        return hook

    def __call__(self, x: torch.Tensor) -> Any:
        count = len(self.attention_blocks)
        self.recorded_attention = [None] * count
        self.recorded_blocks = [None] * count
        handles: list[RemovableHandle] = []
        try:
            with exposed_attention([attention for _, attention in self.attention_blocks]):
                handles = self._attention_hooks()
                output = super().__call__(x)
        finally:
            for handle in handles:
                handle.remove()
        missing = [index for index, probabilities in enumerate(self.recorded_attention) if probabilities is None]
        if missing:
            index = missing[0]
            attention = self.attention_blocks[index][1]
            raise ValueError(
                f"the attention module {layer_name(self.model, attention)} of target_layers[{index}] did not run, or "
                "did not compute its attention probabilities, during the forward pass"
            )
        return output

    def layer_record(self, index: int, input_tensor: torch.Tensor, targets: list[Any]) -> LayerRecord:
        record = super().layer_record(index, input_tensor, targets)
        return replace(record, attention_map=self.recorded_attention[index], block_output=self.recorded_blocks[index])


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
    during the call), and any attention module returning ``(output, probabilities)`` (see :func:`attention_kind`);
    the recording is done by :class:`AttentionRecorder`. The probabilities are the same as the fused kernels'
    (the model output is unchanged up to rounding).

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

    def _recorder(self) -> ActivationsAndGradients:
        # The core's recorder reads nn.MultiheadAttention only; AttentionRecorder reads every kind of attention.
        return AttentionRecorder(
            self.model,
            self.target_layers,
            self.reshape_transform,
            self.detach,
            input_gradient=self.needs.input_gradient,
        )

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
