"""Cutting a model in two at a layer with ``torch.fx`` (AblationCAM's fast path)."""

from __future__ import annotations

import builtins
import inspect
import operator
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

#: Tensor methods whose result is a size (not a tensor): recomputed in the tail rather than carried.
_SIZE_METHODS = frozenset({"size", "dim", "numel", "ndimension", "nelement"})
#: Functions that combine sizes (``B, H, W, C = x.shape``; ``H // 2``; ``(B, N, C)``).
_SIZE_FUNCTIONS = frozenset(
    {
        operator.getitem,
        operator.add,
        operator.sub,
        operator.mul,
        operator.floordiv,
        operator.truediv,
        operator.mod,
        operator.neg,
        operator.pow,
        builtins.len,
        builtins.int,
        builtins.max,
        builtins.min,
    }
)


def _is_size_node(node: fx.Node, sizes: set[fx.Node]) -> bool:
    """Whether ``node`` computes a size from tensors' shapes: ``x.shape``, ``x.size()``, ``x.dim()``, or a
    function of sizes and constants only (``x.shape[0]``, ``H // 2``)."""
    if node.op == "call_function" and node.target is builtins.getattr:
        return len(node.args) > 1 and node.args[1] in ("shape", "ndim")
    if node.op == "call_method" and node.target in _SIZE_METHODS:
        return True
    if node.op == "call_function" and node.target in _SIZE_FUNCTIONS:
        inputs = node.all_input_nodes
        return bool(inputs) and all(argument in sizes for argument in inputs)
    return False


class _LeafTracer(fx.Tracer):
    """A tracer that keeps ``layer`` as one call, whatever it holds."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return module is self.layer or super().is_leaf_module(module, qualified_name)


def _default_arguments(model: nn.Module) -> dict[str, Any] | None:
    """The parameters of ``model.forward`` after the first that have a default (open_clip's ``text=None``, timm's
    ``attn_mask=None, is_causal=False``), traced as the constants a call with the input alone gives them."""
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    defaults = {p.name: p.default for p in parameters if p.kind in kinds and p.default is not inspect.Parameter.empty}
    return defaults or None


def _function_of(graph: fx.Graph) -> Callable[..., Any]:
    """The graph's code as a plain function ``f(root, *inputs)`` that reads the modules and parameters from
    ``root`` (by their qualified names, as the traced model holds them)."""
    code = graph.python_code(root_module="self")
    namespace = dict(code.globals)
    exec(compile(code.src, "<pytorch_grad_cam cut model>", "exec"), namespace)  # the code torch.fx generated
    function: Callable[..., Any] = namespace["forward"]
    return function


class LayerSplit:
    """A model cut in two at ``layer`` with ``torch.fx``.

    :meth:`carried` gives every value of the first part that the rest of the network reads (running the network up
    to ``layer`` only when the rest reads more than the layer output and the model input); :meth:`tail` runs only
    the rest, with a batch of replacement outputs of ``layer`` and the kept values
    (those with a leading batch axis of one are expanded to the batch). Sizes the rest reads from tensors of the
    first part (``B, H, W, C = x.shape`` before a ``reshape(B, ...)``, as in timm's Swin and MetaFormer blocks) are
    not kept but recomputed in the tail from the expanded tensors, so that they hold the tail's batch size rather
    than the one image the head ran on.

    The two parts run as plain functions of the code ``torch.fx`` generates (reading the modules from a weak proxy of
    the model), so an error in them is raised as it is, without ``torch.fx``'s printed traceback.

    Raises:
        ValueError: when the model cannot be traced, or ``layer`` is not called exactly once, or the model
            output does not depend on it.
    """

    def __init__(self, model: nn.Module, layer: nn.Module) -> None:
        tracer = _LeafTracer(layer)
        try:
            graph = tracer.trace(model, concrete_args=_default_arguments(model))
        except Exception as error:  # tracing fails in many ways on dynamic models: report them all the same
            raise ValueError(f"the model cannot be traced with torch.fx ({type(error).__name__}: {error})") from error
        nodes = list(graph.nodes)
        cuts = [node for node in nodes if node.op == "call_module" and tracer.root.get_submodule(node.target) is layer]
        if len(cuts) != 1:
            raise ValueError(f"the layer is called {len(cuts)} times in the traced graph; exactly once is needed")
        position = nodes.index(cuts[0])
        head_nodes, tail_nodes = nodes[: position + 1], nodes[position + 1 :]
        in_tail = set(tail_nodes)
        sizes: set[fx.Node] = set()
        for node in head_nodes:
            if _is_size_node(node, sizes):
                sizes.add(node)
        read_by_tail = {node for node in head_nodes if any(user in in_tail for user in node.users)}
        # the sizes the tail reads, and the sizes they are computed from: recomputed in the tail
        recomputed = {node for node in read_by_tail if node in sizes}
        for node in reversed(head_nodes):
            if node in recomputed:
                recomputed.update(argument for argument in node.all_input_nodes if argument in sizes)
        read = read_by_tail | {argument for node in recomputed for argument in node.all_input_nodes}
        carried = [node for node in head_nodes if node in read and node not in recomputed and node.op != "get_attr"]
        if cuts[0] not in carried:
            raise ValueError("the model output does not depend on the layer")
        self.cut_index = carried.index(cuts[0])
        self._carried_count = len(carried)
        inputs = next(node for node in nodes if node.op == "placeholder")
        #: Whether the tail reads values of the first part other than the layer output and the model input.
        self.needs_head = any(node is not cuts[0] and node is not inputs for node in carried)

        head = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for node in head_nodes:
            env[node] = head.node_copy(node, env.__getitem__)
        head.output(tuple(env[node] for node in carried))

        tail = fx.Graph()
        env = {node: tail.placeholder(f"carried_{i}") for i, node in enumerate(carried)}
        for node in head_nodes:
            if (node in read and node.op == "get_attr") or node in recomputed:
                env[node] = tail.node_copy(node, env.__getitem__)
        for node in tail_nodes:
            env[node] = tail.node_copy(node, env.__getitem__)
        # plain functions of a weak proxy of the model, not GraphModules: those would hold the model's submodules,
        # and through any of them that refers back to the model (a hook bound to it), keep the model alive in the
        # cache of :func:`split_at`
        self._root = weakref.proxy(model)
        self._head = _function_of(head)
        self._tail = _function_of(tail)

    def carried(self, inputs: torch.Tensor, layer_output: Any) -> list[Any]:
        """The values the tail needs for a batch whose layer output ``layer_output`` is already known.

        When the tail reads nothing of the first part but the layer's output and the model input (every
        sequential CNN cut at a block), they are taken as they are and nothing runs: the layer's entry (at
        :attr:`cut_index`) is ``layer_output``. Otherwise (:attr:`needs_head`) the network up to the layer runs once
        on the whole batch, and the layer's entry is the output it gave there.
        """
        if self.needs_head:
            return list(self._head(self._root, inputs))
        values = [inputs] * self._carried_count
        values[self.cut_index] = layer_output
        return values

    @staticmethod
    def image_rows(carried: list[Any], image: int, images: int) -> list[Any]:
        """Image ``image``'s part of values carried for a batch of ``images``: row ``image`` (kept as a batch of
        one) of every tensor with a leading axis of ``images``; everything else as it is."""
        return [
            value[image : image + 1]
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == images
            else value
            for value in carried
        ]

    def tail(self, layer_output: Any, carried: list[Any], count: int) -> Any:
        """The model output for a batch of ``count`` replacement outputs of the layer."""
        values = []
        for index, value in enumerate(carried):
            if index == self.cut_index:
                values.append(layer_output)
            elif isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == 1:
                # a view when several rows are read (so an in-place write fails loudly), a copy for one row
                values.append(value.expand(count, *value.shape[1:]) if count > 1 else value.clone())
            else:
                values.append(value)
        return self._tail(self._root, *values)


#: Splits traced so far: per model, by the target layer's id and the model's training flag (tracing can bake in
#: ``self.training`` branches), with a weak reference to the layer to tell a new module that reuses an old id.
_TRACED: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, bool], tuple[weakref.ref[nn.Module], Any]]] = (
    weakref.WeakKeyDictionary()
)


def split_at(model: nn.Module, layer: nn.Module, *, retrace: bool = False) -> tuple[LayerSplit, bool]:
    """``LayerSplit(model, layer)``, traced once per model, layer and training mode and reused by every later call
    and every CAM object (a failure to trace is remembered too), and whether it was traced before this call.
    ``retrace=True`` traces again, for a model whose forward pass changed after it was traced (a cut model that no
    longer reproduces the model's output; swapped submodules are read from the model on every call anyway).

    Raises:
        ValueError: as :class:`LayerSplit`.
    """
    traced = _TRACED.setdefault(model, {})
    key = (id(layer), model.training)
    known = traced.get(key)
    reused = known is not None and not retrace and known[0]() is layer
    if known is None or not reused:
        try:
            result: LayerSplit | ValueError = LayerSplit(model, layer)
        except ValueError as error:
            result = error
        known = traced[key] = (weakref.ref(layer), result)
    if isinstance(known[1], ValueError):
        raise known[1].with_traceback(None)  # the remembered error, without the frames of earlier raises
    return known[1], reused
