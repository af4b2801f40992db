"""Recording: the one place where hooks are placed on a model.

Everything a method reads from a forward and backward pass is recorded here, by one object whose hooks live
for one forward pass (registered when it is called, removed in ``finally``):

* the outputs of the target layers (after ``reshape_transform``), and their gradients;
* the gradients at the outputs of layers with a bias (FullGrad), through tensor hooks removed after the
  backward pass;
* the attention probabilities of the transformer blocks that hold the target layers, and the blocks' output
  tokens (LeGrad), in the graph, for every kind of attention module of :func:`attention_kind`:
  ``nn.MultiheadAttention`` recomputed step by step, timm's attention with its fused kernel switched off, Hugging
  Face attention in eager mode, and any attention returning ``(output, probabilities)``;
* the gradient of the input;
* every module's output shape in one probe forward pass (:func:`probe_module_outputs`), from which
  :mod:`pytorch_grad_cam.core.layers` chooses a target layer when none is given.

Gradients are computed explicitly with :func:`torch.autograd.grad` (:meth:`ActivationsAndGradients.
compute_gradients`): no ``.grad`` is written on the model's parameters and only the part of the graph after
the recorded tensors is traversed.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from pytorch_grad_cam.core.types import Layers, Reshape


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """The dotted name of ``layer`` inside ``model`` (its type name when it is not a submodule)."""
    for name, module in model.named_modules():
        if module is layer:
            return name or "<model itself>"
    return type(layer).__name__


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
        raise ValueError(
            "attention maps cannot be recorded for nn.MultiheadAttention with add_bias_kv or add_zero_attn"
        )
    if not module.batch_first:
        query, key, value = (tensor.transpose(0, 1) for tensor in (query, key, value))
    dim, heads = module.embed_dim, module.num_heads
    bias = module.in_proj_bias
    biases: Sequence[torch.Tensor | None] = (None, None, None) if bias is None else bias.split(dim)
    if module._qkv_same_embed_dim:
        weights: Sequence[torch.Tensor] = module.in_proj_weight.split(dim)
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


#: The kinds of attention modules whose attention probabilities are recorded (see :func:`attention_kind`).
TORCH, TIMM, TRANSFORMERS, RETURNED = "torch", "timm", "transformers", "returned"


def is_attention(module: nn.Module) -> bool:
    """An attention module: ``nn.MultiheadAttention``, or a type name with ``Attention`` / ending in ``Attn``."""
    name = type(module).__name__.lower()
    return isinstance(module, nn.MultiheadAttention) or "attention" in name or name.endswith("attn")


def attention_kind(module: nn.Module) -> str | None:
    """How the attention probabilities of ``module`` are read, or ``None`` when it is no attention module.

    * ``"torch"``: ``nn.MultiheadAttention`` (torchvision, open_clip), recomputed step by step with the
      probabilities in the graph (:func:`explicit_attention`);
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


@dataclass(frozen=True)
class LayerRecord:
    """What one call recorded for one target layer: everything a method reads to make that layer's map.

    Attributes:
        index: the layer's position in ``target_layers``.
        layer: the target layer.
        input_tensor: the model's input of the call (on the model's device).
        targets: one target per image.
        activations: the layer's output after ``reshape_transform``, float32 ``(B, C, *spatial)``.
        grads: ``∂y/∂A`` of the same shape, float32, when the method needs the layer gradients (else ``None``).
        raw_activations: the layer's output before ``reshape_transform`` (in the graph when recorded so).
        raw_gradients: ``∂y/∂A`` before ``reshape_transform``, in the graph (second-order methods only).
        attention_map: the attention probabilities ``(B, heads, N, N)`` of the block holding the layer, in the
            graph (methods needing attention maps only).
        block_output: that block's output tokens, in the graph (methods needing attention maps only).
    """

    index: int
    layer: nn.Module
    input_tensor: torch.Tensor
    targets: list[Any]
    activations: torch.Tensor
    grads: torch.Tensor | None = None
    raw_activations: Any = None
    raw_gradients: torch.Tensor | None = None
    attention_map: torch.Tensor | None = None
    block_output: Any = None

    @property
    def gradients(self) -> torch.Tensor:
        """:attr:`grads`, which a gradient method can rely on."""
        if self.grads is None:
            raise RuntimeError(
                "the layer gradients were not recorded: the method must declare needs = Needs(layer_gradients=True)"
            )
        return self.grads

    @property
    def spatial_axes(self) -> tuple[int, ...]:
        """The spatial axes of :attr:`activations`: ``(2, 3)`` for maps, ``(2, 3, 4)`` for volumes."""
        return tuple(range(2, self.activations.ndim))


class ActivationsAndGradients:
    """Record target-layer outputs (after ``reshape_transform``) in one forward pass, and their gradients.

    Args:
        model: the network.
        target_layers: the modules whose outputs are recorded; each must run exactly once per forward.
        reshape_transform: optional callable applied to every recorded output and gradient, e.g. to turn
            ViT tokens ``(B, N, C)`` into a ``(B, C, h, w)`` map.
        detach: when ``True`` (default) the recorded activations and gradients are detached from the graph;
            when ``False`` they stay differentiable (gradients are computed with ``create_graph=True``).
        bias_layers: modules whose output gradients are recorded too (:attr:`bias_gradients`), every time
            they run; a module off the path to the score records nothing.
        attention: record the attention probabilities ``(B, heads, N, N)`` and the output tokens of the
            transformer block holding each target layer (:attr:`attention_maps`, :attr:`block_outputs`), in the
            graph, for every kind of attention module of :func:`attention_kind`; the attention settings changed
            for the forward pass (:func:`exposed_attention`) are restored in ``finally``.
        input_gradient: record the gradient of the input (:attr:`input_gradient`).
        graph_from_layers: record the autograd graph only from the first target layer on
            (:attr:`graph_from_layers`).

    After a call, ``activations[i]`` and ``gradients[i]`` belong to ``target_layers[i]``, whatever the order
    in which the layers ran.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Layers,
        reshape_transform: Reshape = None,
        detach: bool = True,
        *,
        bias_layers: Sequence[nn.Module] = (),
        attention: bool = False,
        input_gradient: bool = False,
        graph_from_layers: bool = False,
    ) -> None:
        self.model = model
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.detach = detach
        self.bias_layers = list(bias_layers)
        self.input_gradient_wanted = input_gradient
        layers = self.target_layers if attention else []
        #: Per target layer (with ``attention``): its transformer block and the block's attention module.
        self.attention_blocks = [attention_block(model, layer, index) for index, layer in enumerate(layers)]
        #: When ``True``, the target layers' gradients are computed, and a float output that does not require
        #: grad (a frozen backbone) is replaced by a detached leaf that does.
        self.needs_gradients = True
        #: When ``True`` (with :attr:`needs_gradients`), the forward pass starts without recording the autograd
        #: graph and the first target layer to run switches recording on: the gradients with respect to the
        #: layers' outputs never need what came before them, so the graph of the prefix is not built (nor the
        #: tensors it would save). The grad mode is restored after the forward pass. Ignored while something
        #: before the layers is differentiated too (the input gradient, bias layers, attention maps) or the
        #: recording stays in the graph (``detach=False``: second-order methods differentiate it again).
        self.graph_from_layers = graph_from_layers
        self.activations: list[torch.Tensor] = []
        self.gradients: list[torch.Tensor] = []
        #: With ``detach=False``: the gradients before ``reshape_transform``, still in the graph (ShapleyCAM
        #: differentiates them again with respect to :attr:`raw_activations`).
        self.raw_gradients: list[torch.Tensor] = []
        #: ``(module, ∂y/∂output)`` for every run of a bias layer that the score depends on, in backward order.
        self.bias_gradients: list[tuple[nn.Module, torch.Tensor]] = []
        #: Per target layer: the attention map ``(B, heads, N, N)`` of its block, and the block's output.
        self.attention_maps: list[torch.Tensor | None] = []
        self.block_outputs: list[Any] = []
        #: The input of the last forward pass (a leaf requiring grad when the input gradient is recorded).
        self.input: torch.Tensor | None = None
        self.input_gradient: torch.Tensor | None = None
        self.handles: list[RemovableHandle] = []
        self._tensor_handles: list[RemovableHandle] = []
        self._raw: list[Any] = []
        self._runs: list[int] = []
        self._batch = 0

    @property
    def raw_activations(self) -> list[Any]:
        """The target layers' outputs of the last forward pass, before ``reshape_transform``."""
        return self._raw

    # ----------------------------------------------------------------------------------------- hooks
    def _layer_hook(self, index: int) -> Callable[[nn.Module, Any, Any], Any]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            self._runs[index] += 1
            if self._runs[index] > 1:
                raise RuntimeError(
                    f"target_layers[{index}] ({layer_name(self.model, module)}) ran more than once in one "
                    "forward pass, so its activations are ambiguous; choose a module that runs once "
                    "(for example the block that contains it)"
                )
            replaced = None
            if self.needs_gradients:
                self._check_differentiable(index, module, output)
                if self._graph_from_layers_now():
                    torch.set_grad_enabled(True)  # for the rest of the forward pass (__call__ restores it)
                if not output.requires_grad and torch.is_grad_enabled():
                    # Frozen backbone: nothing before this layer needs a gradient, so a detached leaf
                    # that requires grad is an exact stand-in and lets us differentiate with respect to it.
                    replaced = output.detach().requires_grad_(True)
                    output = replaced
            self._raw[index] = output
            activation = self.reshape_transform(output) if self.reshape_transform is not None else output
            if not isinstance(activation, torch.Tensor):
                raise TypeError(
                    f"target_layers[{index}] ({layer_name(self.model, module)}) produced "
                    f"{type(activation).__name__} after reshape_transform; a tensor is needed: pass a "
                    "reshape_transform that returns one, or choose another layer"
                )
            self._check_batch(index, activation, "activations")
            self.activations[index] = activation.detach() if self.detach else activation
            if isinstance(output, torch.Tensor):
                # The model goes on with a copy, so that an in-place op after the layer (a following
                # ReLU(inplace=True), e.g. densenet's features[-1] or a VGG conv) neither alters the recorded
                # output nor its gradient, nor touches the frozen-backbone leaf (an autograd error).
                return output.clone()
            return replaced

        return hook

    def _bias_hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.requires_grad:

            def keep(grad: torch.Tensor) -> None:
                # a tensor hook gives the gradient of this output even if a later op changes it in place
                self.bias_gradients.append((module, grad))

            self._tensor_handles.append(output.register_hook(keep))

    def _attention_hooks(self) -> list[RemovableHandle]:
        """Hooks recording, per block, its output tokens and its attention probabilities (by attention kind)."""
        by_block: dict[int, tuple[nn.Module, nn.Module, list[int]]] = {}
        for index, (block, attention) in enumerate(self.attention_blocks):
            by_block.setdefault(id(block), (block, attention, []))[2].append(index)
        handles: list[RemovableHandle] = []
        for block, attention, indices in by_block.values():
            handles.append(block.register_forward_hook(self._block_hook(indices)))
            kind = attention_kind(attention)
            if kind == TORCH:
                handles.append(attention.register_forward_hook(self._explicit_torch_hook(indices), with_kwargs=True))
            elif kind == TIMM:
                dropout: Any = attention.attn_drop  # it receives the attention probabilities
                handles.append(dropout.register_forward_hook(self._output_hook(indices)))
            else:
                handles.append(attention.register_forward_hook(self._returned_hook(indices)))
        return handles

    def _store_attention(self, indices: list[int], probabilities: torch.Tensor) -> None:
        for index in indices:
            self.attention_maps[index] = probabilities

    def _output_hook(self, indices: list[int]) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._store_attention(indices, output)

        return hook

    def _returned_hook(self, indices: list[int]) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._store_attention(indices, _probabilities(output, module))

        return hook

    def _explicit_torch_hook(self, indices: list[int]) -> Callable[..., Any]:
        def hook(module: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
            for name in ("key_padding_mask", "attn_mask"):
                if kwargs.get(name) is not None:
                    raise ValueError(f"attention maps cannot be recorded for attention called with {name}")
            inputs = list(args) + [kwargs.get(name) for name in ("query", "key", "value")[len(args) :]]
            out, probabilities = explicit_attention(module, *inputs[:3])
            self._store_attention(indices, probabilities)
            return (out, output[1])

        return hook

    def _block_hook(self, indices: list[int]) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            for index in indices:
                self.block_outputs[index] = output

        return hook

    def _graph_from_layers_now(self) -> bool:
        """:attr:`graph_from_layers`, unless something before the target layers is differentiated too or the
        recording stays in the graph."""
        before = self.input_gradient_wanted or self.bias_layers or self.attention_blocks
        return self.graph_from_layers and self.needs_gradients and self.detach and not before

    def _check_batch(self, index: int, values: torch.Tensor, what: str) -> None:
        """Raise unless ``values`` (after ``reshape_transform``) hold one row per input image."""
        if values.ndim > 0 and values.shape[0] == self._batch:
            return
        rows = values.shape[0] if values.ndim > 0 else 0
        transform = self.reshape_transform
        via = f" after reshape_transform {getattr(transform, '__name__', repr(transform))}" if transform else ""
        raise ValueError(
            f"target_layers[{index}] ({layer_name(self.model, self.target_layers[index])}) gives {what} of shape "
            f"{tuple(values.shape)}{via}: {rows} row(s) for a batch of {self._batch} image(s); the "
            "reshape_transform must keep the batch axis first and whole (one map per image)"
        )

    def _check_differentiable(self, index: int, module: nn.Module, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"target_layers[{index}] ({layer_name(self.model, module)}) outputs "
                f"{type(output).__name__}, which cannot carry a gradient; gradient-based methods need a "
                "layer whose output is a tensor"
            )
        if not (output.is_floating_point() or output.is_complex()):
            raise TypeError(
                f"target_layers[{index}] ({layer_name(self.model, module)}) outputs a {output.dtype} "
                "tensor, which cannot carry a gradient; choose a layer with a floating-point output"
            )

    def register(self) -> None:
        """Attach the forward hooks (idempotent)."""
        if self.handles:
            return
        # The attention hooks go first: a block that is also a target layer records its own output, before the
        # layer hook hands the model a copy.
        handles = self._attention_hooks()
        handles += [layer.register_forward_hook(self._layer_hook(i)) for i, layer in enumerate(self.target_layers)]
        handles += [layer.register_forward_hook(self._bias_hook) for layer in self.bias_layers]
        self.handles = handles

    def release(self) -> None:
        """Remove every hook this object placed (idempotent)."""
        for handle in (*self.handles, *self._tensor_handles):
            handle.remove()
        self.handles = []
        self._tensor_handles = []

    def __enter__(self) -> ActivationsAndGradients:
        self.register()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # ------------------------------------------------------------------------------------ forward
    def __call__(self, x: torch.Tensor) -> Any:
        """Run the model on ``x`` and record every target layer's output; returns the model output."""
        count = len(self.target_layers)
        self.activations = [None] * count  # type: ignore[list-item]
        self.gradients = []
        self.raw_gradients = []
        self.bias_gradients = []
        self.attention_maps = [None] * len(self.attention_blocks)
        self.block_outputs = [None] * len(self.attention_blocks)
        self.input_gradient = None
        self._raw = [None] * count
        self._runs = [0] * count
        self._batch = x.shape[0]
        if self.input_gradient_wanted:
            x = x.detach().requires_grad_(True)
        self.input = x
        self.release()
        self.register()
        try:
            # with graph_from_layers, the first target layer's hook switches recording on; no_grad's exit restores it
            prefix = torch.no_grad() if self._graph_from_layers_now() else nullcontext()
            with exposed_attention([attention for _, attention in self.attention_blocks]), prefix:
                output = self.model(x)
        finally:
            for handle in self.handles:
                handle.remove()
            self.handles = []
        silent = [i for i, runs in enumerate(self._runs) if runs == 0]
        if silent:
            names = ", ".join(f"target_layers[{i}] ({layer_name(self.model, self.target_layers[i])})" for i in silent)
            raise ValueError(
                f"{names} did not run during the forward pass; a target layer must be a module the model actually calls"
            )
        missing = [index for index, probabilities in enumerate(self.attention_maps) if probabilities is None]
        if missing:
            index = missing[0]
            attention = self.attention_blocks[index][1]
            raise ValueError(
                f"the attention module {layer_name(self.model, attention)} of target_layers[{index}] did not run, or "
                "did not compute its attention probabilities, during the forward pass"
            )
        return output

    def layer_record(self, index: int, input_tensor: torch.Tensor, targets: list[Any]) -> LayerRecord:
        """What the last call recorded for ``target_layers[index]``, activations and gradients in float32."""
        return LayerRecord(
            index=index,
            layer=self.target_layers[index],
            input_tensor=input_tensor,
            targets=targets,
            activations=self.activations[index].float(),
            grads=self.gradients[index].float() if index < len(self.gradients) else None,
            raw_activations=self._raw[index],
            raw_gradients=self.raw_gradients[index] if index < len(self.raw_gradients) else None,
            attention_map=self.attention_maps[index] if self.attention_blocks else None,
            block_output=self.block_outputs[index] if self.attention_blocks else None,
        )

    def compute_gradients(self, score: torch.Tensor) -> list[torch.Tensor]:
        """Gradients of the scalar ``score`` with respect to every recorded target-layer output (when
        :attr:`needs_gradients`), the input (when recorded) and the bias layers' outputs, in one pass.

        The layer gradients are stored in ``self.gradients`` (after ``reshape_transform``) and returned.

        Raises:
            ValueError: when the score does not depend on a target layer.
        """
        layers = self._raw if self.needs_gradients else []
        for index, raw in enumerate(layers):
            self._check_differentiable(index, self.target_layers[index], raw)
        if not score.requires_grad:
            raise ValueError(
                "the target score does not depend on any target layer's output (it does not require grad); "
                "check the targets and the target layers"
            )
        sources = list(layers) + ([self.input] if self.input_gradient_wanted else [])
        try:
            grads = torch.autograd.grad(
                score, sources, allow_unused=True, retain_graph=not self.detach, create_graph=not self.detach
            )
        finally:
            for handle in self._tensor_handles:
                handle.remove()
            self._tensor_handles = []
        if self.input_gradient_wanted:
            *grads, input_grad = grads  # type: ignore[assignment]
            if input_grad is None:
                raise ValueError("the target score does not depend on the input; check the targets")
            self.input_gradient = input_grad.detach()
        unused = [i for i, grad in enumerate(grads) if grad is None]
        if unused:
            names = ", ".join(f"target_layers[{i}] ({layer_name(self.model, self.target_layers[i])})" for i in unused)
            hint = ""
            if hasattr(self.model, "_orig_mod"):  # torch.compile's OptimizedModule
                hint = (
                    "; the model is torch.compile'd, and a compiled graph gives no gradient to its inner "
                    "layers: explain model._orig_mod (the same weights, run eagerly) or use a gradient-free "
                    "method such as EigenCAM"
                )
            raise ValueError(
                f"the target score does not depend on {names}: no gradient flows back to it; choose a layer "
                f"that lies on the path to the model output{hint}"
            )
        self.raw_gradients = [] if self.detach else list(grads)
        if self.reshape_transform is not None:
            grads = tuple(self.reshape_transform(grad) for grad in grads)
        for index, grad in enumerate(grads):
            self._check_batch(index, grad, "gradients")
        self.gradients = [grad.detach() if self.detach else grad for grad in grads]
        return self.gradients


def twice_differentiable_attention() -> AbstractContextManager[None]:
    """Run ``scaled_dot_product_attention`` on PyTorch's math kernel: the fused (flash / memory-efficient)
    kernels have no second derivative, which a Hessian-vector product needs (vision transformers)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3
        return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False)
    return sdpa_kernel(SDPBackend.MATH)


@contextmanager
def replaced_output(layer: nn.Module, replace: Callable[[Any], Any]) -> Iterator[None]:
    """Inside the ``with`` block, ``layer``'s output ``o`` is replaced by ``replace(o)`` (AblationCAM's full
    re-run with ablated activations); the hook is removed on exit."""
    handle = layer.register_forward_hook(lambda module, inputs, output: replace(output))
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class ModuleRun:
    """What one probe forward pass saw of one module (see :func:`probe_module_outputs`).

    Attributes:
        name: the dotted name in ``model.named_modules()``.
        module: the module.
        runs: how many times it ran in the pass.
        start: the event number when its (first) run began; events count module starts and ends.
        end: the event number when its (last) run ended.
        shape: the shape of its output when that is a tensor (of the last run), else ``None``.
        floating: whether that tensor is floating-point.
        alias_of: the name of the first module that returned the very same tensor, unchanged since (a
            container handing on its last child's output); ``None`` when the tensor is new (or changed in place).
        has_children: whether the module has submodules.
    """

    name: str
    module: nn.Module
    runs: int
    start: int
    end: int
    shape: tuple[int, ...] | None
    floating: bool
    alias_of: str | None
    has_children: bool


def probe_module_outputs(
    model: nn.Module, input_tensor: torch.Tensor, model_output: list[Any] | None = None
) -> list[ModuleRun]:
    """Run ``model`` once on ``input_tensor`` (without autograd) and report every submodule that ran, in the
    order in which the modules finished, with the shape of its output; the model's own output is appended to
    ``model_output`` when that list is given.

    Hooks are placed on every submodule (``model`` itself excluded) and removed in ``finally``. The model runs as
    it is (the caller sets eval mode); the input is not modified. Under ``torch.inference_mode()`` the pass runs
    outside it (on a copy of the input), so that in-place changes of outputs can be told apart.
    """
    named = [(name, module) for name, module in model.named_modules() if name]
    events = 0
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    runs: dict[int, int] = {}
    outputs: dict[int, tuple[tuple[int, ...] | None, bool]] = {}
    #: id(tensor) -> (weak reference, version counter when returned, name of the first module returning it)
    returned: dict[int, tuple[Any, int, str]] = {}
    alias: dict[int, str | None] = {}
    name_of = {id(module): name for name, module in named}

    def before(module: nn.Module, inputs: Any) -> None:
        nonlocal events
        events += 1
        starts.setdefault(id(module), events)

    def after(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal events
        events += 1
        key = id(module)
        ends[key] = events
        runs[key] = runs.get(key, 0) + 1
        if not isinstance(output, torch.Tensor):
            outputs[key] = (None, False)
            alias[key] = None
            return
        outputs[key] = (tuple(output.shape), output.is_floating_point())
        seen = returned.get(id(output))
        version = output._version
        if seen is not None and seen[0]() is output and seen[1] == version:
            alias[key] = seen[2]
        else:
            alias[key] = None
            returned[id(output)] = (weakref.ref(output), version, name_of[key])

    handles: list[RemovableHandle] = []
    try:
        for _, module in named:
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
        with torch.inference_mode(False), torch.no_grad():
            output = model(input_tensor.clone() if input_tensor.is_inference() else input_tensor)
        if model_output is not None:
            model_output.append(output)
    finally:
        for handle in handles:
            handle.remove()
    found = []
    for name, module in named:
        key = id(module)
        if key not in ends:
            continue
        shape, floating = outputs[key]
        found.append(
            ModuleRun(
                name=name,
                module=module,
                runs=runs[key],
                start=starts.get(key, ends[key]),
                end=ends[key],
                shape=shape,
                floating=floating,
                alias_of=alias[key],
                has_children=next(module.children(), None) is not None,
            )
        )
    found.sort(key=lambda run: run.end)
    return found
