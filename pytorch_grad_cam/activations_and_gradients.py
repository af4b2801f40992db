"""Capture the outputs of target layers during one forward pass, and their gradients.

Hooks live only for the duration of the forward pass they serve: they are registered when
:class:`ActivationsAndGradients` is called and removed in ``finally``, whatever happens inside the model.
Gradients are not collected by tensor hooks but computed explicitly with :func:`torch.autograd.grad`
(:meth:`ActivationsAndGradients.compute_gradients`): no ``.grad`` is written on the model's parameters and
only the part of the graph after the target layers is traversed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def _layer_name(model: nn.Module, layer: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is layer:
            return name or "<model itself>"
    return type(layer).__name__


class ActivationsAndGradients:
    """Record target-layer outputs (after ``reshape_transform``) in one forward pass, and their gradients.

    Args:
        model: the network.
        target_layers: the modules whose outputs are recorded; each must run exactly once per forward.
        reshape_transform: optional callable applied to every recorded output and gradient, e.g. to turn
            ViT tokens ``(B, N, C)`` into a ``(B, C, h, w)`` map.
        detach: when ``True`` (default) the recorded activations and gradients are detached from the graph;
            when ``False`` they stay differentiable (gradients are computed with ``create_graph=True``).

    After a call, ``activations[i]`` and ``gradients[i]`` belong to ``target_layers[i]``, whatever the order
    in which the layers ran.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        detach: bool = True,
    ) -> None:
        self.model = model
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.detach = detach
        #: When ``True``, a float output that does not require grad (a frozen backbone) is replaced by a
        #: detached leaf that does, so that gradients can still be taken with respect to it.
        self.needs_gradients = True
        self.activations: list[torch.Tensor] = []
        self.gradients: list[torch.Tensor] = []
        #: With ``detach=False``: the gradients before ``reshape_transform``, still in the graph (ShapleyCAM
        #: differentiates them again with respect to :attr:`raw_activations`).
        self.raw_gradients: list[torch.Tensor] = []
        self.handles: list[RemovableHandle] = []
        self._raw: list[Any] = []
        self._runs: list[int] = []

    @property
    def raw_activations(self) -> list[Any]:
        """The target layers' outputs of the last forward pass, before ``reshape_transform``."""
        return self._raw

    # ----------------------------------------------------------------------------------------- hooks
    def _make_hook(self, index: int) -> Callable[[nn.Module, Any, Any], Any]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            self._runs[index] += 1
            if self._runs[index] > 1:
                raise RuntimeError(
                    f"target_layers[{index}] ({_layer_name(self.model, module)}) ran more than once in one "
                    "forward pass, so its activations are ambiguous; choose a module that runs once "
                    "(for example the block that contains it)"
                )
            replaced = None
            if self.needs_gradients:
                self._check_differentiable(index, module, output)
                if not output.requires_grad and torch.is_grad_enabled():
                    # Frozen backbone: nothing before this layer needs a gradient, so a detached leaf
                    # that requires grad is an exact stand-in and lets us differentiate with respect to it.
                    replaced = output.detach().requires_grad_(True)
                    output = replaced
            self._raw[index] = output
            activation = self.reshape_transform(output) if self.reshape_transform is not None else output
            if not isinstance(activation, torch.Tensor):
                raise TypeError(
                    f"target_layers[{index}] ({_layer_name(self.model, module)}) produced "
                    f"{type(activation).__name__} after reshape_transform; a tensor is needed: pass a "
                    "reshape_transform that returns one, or choose another layer"
                )
            self.activations[index] = activation.detach() if self.detach else activation
            if isinstance(output, torch.Tensor):
                # The model goes on with a copy, so that an in-place op after the layer (a following
                # ReLU(inplace=True), e.g. densenet's features[-1] or a VGG conv) neither alters the recorded
                # output nor its gradient, nor touches the frozen-backbone leaf (an autograd error).
                return output.clone()
            return replaced

        return hook

    def _check_differentiable(self, index: int, module: nn.Module, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"target_layers[{index}] ({_layer_name(self.model, module)}) outputs "
                f"{type(output).__name__}, which cannot carry a gradient; gradient-based methods need a "
                "layer whose output is a tensor"
            )
        if not (output.is_floating_point() or output.is_complex()):
            raise TypeError(
                f"target_layers[{index}] ({_layer_name(self.model, module)}) outputs a {output.dtype} "
                "tensor, which cannot carry a gradient; choose a layer with a floating-point output"
            )

    def register(self) -> None:
        """Attach the forward hooks (idempotent)."""
        if self.handles:
            return
        self.handles = [layer.register_forward_hook(self._make_hook(i)) for i, layer in enumerate(self.target_layers)]

    def release(self) -> None:
        """Remove every hook this object placed (idempotent)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []

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
        self._raw = [None] * count
        self._runs = [0] * count
        self.register()
        try:
            output = self.model(x)
        finally:
            self.release()
        silent = [i for i, runs in enumerate(self._runs) if runs == 0]
        if silent:
            names = ", ".join(f"target_layers[{i}] ({_layer_name(self.model, self.target_layers[i])})" for i in silent)
            raise ValueError(
                f"{names} did not run during the forward pass; a target layer must be a module the model "
                "actually calls"
            )
        return output

    def compute_gradients(self, score: torch.Tensor) -> list[torch.Tensor]:
        """Gradients of the scalar ``score`` with respect to every recorded target-layer output.

        They are stored in ``self.gradients`` (after ``reshape_transform``) and returned.

        Raises:
            ValueError: when the score does not depend on a target layer.
        """
        for index, raw in enumerate(self._raw):
            self._check_differentiable(index, self.target_layers[index], raw)
        if not score.requires_grad:
            raise ValueError(
                "the target score does not depend on any target layer's output (it does not require grad); "
                "check the targets and the target layers"
            )
        grads = torch.autograd.grad(
            score, self._raw, allow_unused=True, retain_graph=not self.detach, create_graph=not self.detach
        )
        unused = [i for i, grad in enumerate(grads) if grad is None]
        if unused:
            names = ", ".join(
                f"target_layers[{i}] ({_layer_name(self.model, self.target_layers[i])})" for i in unused
            )
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
        self.gradients = [grad.detach() if self.detach else grad for grad in grads]
        return self.gradients
