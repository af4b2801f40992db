"""Cutting a model in two at a layer with ``torch.fx`` (AblationCAM's fast path)."""

from __future__ import annotations

import builtins
import inspect
import operator
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


class LayerSplit:
    """A model cut in two at ``layer`` with ``torch.fx``.

    :meth:`head` runs the network up to ``layer`` once and keeps every value the rest of the network reads;
    :meth:`tail` runs only the rest, with a batch of replacement outputs of ``layer`` and the kept values
    (those with a leading batch axis of one are expanded to the batch). Sizes the rest reads from tensors of the
    first part (``B, H, W, C = x.shape`` before a ``reshape(B, ...)``, as in timm's Swin and MetaFormer blocks) are
    not kept but recomputed in the tail from the expanded tensors, so that they hold the tail's batch size rather
    than the one image the head ran on.

    The two parts run as plain functions (``GraphModule.forward``), so an error in them is raised as it is, without
    ``torch.fx``'s printed traceback.

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
        self._head = fx.GraphModule(tracer.root, head, "AblationHead")
        self._tail = fx.GraphModule(tracer.root, tail, "AblationTail")

    def head(self, image: torch.Tensor) -> list[Any]:
        """The values the tail needs, computed on one image ``(1, C, *spatial)``; the layer's is at ``cut_index``."""
        return list(self._head.forward(image))

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
        return self._tail.forward(*values)
