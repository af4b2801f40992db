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


#: Modules that act on each channel alone and map a channel filled with one value to one value (so that switching a
#: channel off commutes with them): activations, global or adaptive pooling, flattening, dropout in eval mode.
_PER_CHANNEL_MODULES: tuple[type[nn.Module], ...] = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Identity,
    nn.Flatten,
)
_PER_CHANNEL_FUNCTIONS = frozenset(
    {
        torch.flatten,
        torch.relu,
        torch.sigmoid,
        torch.tanh,
        torch.nn.functional.relu,
        torch.nn.functional.relu6,
        torch.nn.functional.gelu,
        torch.nn.functional.silu,
        torch.nn.functional.hardswish,
        torch.nn.functional.adaptive_avg_pool1d,
        torch.nn.functional.adaptive_avg_pool2d,
        torch.nn.functional.adaptive_avg_pool3d,
    }
)
_PER_CHANNEL_METHODS = frozenset({"flatten", "relu", "sigmoid", "tanh", "mean", "amax"})
#: Modules that leave a batch of vectors as it is (in eval mode): skipped in an affine chain of ``nn.Linear``.
_DROPOUT = nn.modules.dropout._DropoutNd
_NEUTRAL_MODULES: tuple[type[nn.Module], ...] = (nn.Identity, nn.Flatten, _DROPOUT)


def _acts_per_channel(node: fx.Node, source: fx.Node, root: nn.Module) -> bool:
    """Whether ``node`` reads ``source`` only and acts on each of its channels (axis 1) alone, mapping a channel
    filled with one value to one value. A mean or maximum must leave the batch and channel axes alone. Whether the
    result still has one entry per channel is checked on the tensors (:meth:`LayerSplit.channel_shortcut`)."""
    if node.all_input_nodes != [source] or not node.args or node.args[0] is not source:
        return False
    if node.op == "call_module":
        module = root.get_submodule(str(node.target))
        dropout = isinstance(module, _DROPOUT) and not module.training
        return dropout or type(module) in _PER_CHANNEL_MODULES
    if node.op == "call_function":
        return node.target in _PER_CHANNEL_FUNCTIONS
    if node.op == "call_method" and node.target in _PER_CHANNEL_METHODS:
        if node.target not in ("mean", "amax"):
            return True
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        return all(isinstance(dim, int) and dim >= 2 for dim in dims)
    return False


def _linear_chain(start: fx.Node, root: nn.Module) -> tuple[list[str], list[fx.Node]]:
    """The qualified names of the ``nn.Linear`` modules that follow ``start`` (with identities, flattening of a
    batch of vectors and dropout in eval mode between them), in order, and the nodes up to the last of them."""
    names: list[str] = []
    nodes: list[fx.Node] = []
    passed: list[fx.Node] = []
    node = start
    while len(node.users) == 1:
        (user,) = node.users
        if user.op != "call_module" or user.all_input_nodes != [node] or user.args[0] is not node:
            break
        module = root.get_submodule(str(user.target))
        passed.append(user)
        if isinstance(module, nn.Linear):
            names.append(str(user.target))
            nodes = list(passed)
        elif not isinstance(module, _NEUTRAL_MODULES) or (isinstance(module, _DROPOUT) and module.training):
            break
        node = user
    return names, nodes


def _graph_after(start: fx.Node, nodes: list[fx.Node], constants: list[fx.Node]) -> Callable[..., Any] | None:
    """The function ``f(root, value_of_start)`` running ``nodes`` (the ``get_attr`` nodes ``constants`` they read
    copied first); ``None`` when they read any value computed before ``start`` other than those."""
    graph = fx.Graph()
    env = {start: graph.placeholder("value")}
    try:
        for node in [*constants, *nodes]:
            env[node] = graph.node_copy(node, env.__getitem__)
    except KeyError:
        return None
    return _function_of(graph)


class ChannelShortcut:
    """The model outputs for copies of a layer output with one channel switched off each, computed without the
    copies (see :meth:`LayerSplit.channel_shortcut`).

    Args:
        pooled: the per-channel operations applied to the layer output: ``(N, C, ...)``, or flattened to
            ``(N, C k)`` with channel ``c`` in entries ``c k`` to ``c k + k - 1``.
        switched_off: ``(N, C, k)``: the same for a layer output filled with each image's ablation value.
        linears: the ``nn.Linear`` modules that come next, in order (applied when ``pooled`` is flattened).
        rest: the function of a batch giving the model output from what they give (from ``pooled`` when
            ``linears`` is empty); ``None`` when the last linear gives the model output.
    """

    def __init__(
        self,
        pooled: torch.Tensor,
        switched_off: torch.Tensor,
        linears: list[nn.Linear],
        rest: Callable[[torch.Tensor], Any] | None,
    ) -> None:
        images, channels = switched_off.shape[:2]
        self._shape = pooled.shape[1:]
        self._pooled = pooled.reshape(images, channels, -1)
        self._switched_off = switched_off
        self._rest = rest
        self._jacobian: torch.Tensor | None = None  # (K, C, k): how the linears' output moves with each entry
        self._base: torch.Tensor | None = None  # (N, K): the linears' output for the un-ablated layer output
        if linears:
            jacobian: torch.Tensor = linears[0].weight
            base: torch.Tensor = linears[0](pooled)
            for module in linears[1:]:
                jacobian, base = module.weight @ jacobian, module(base)
            self._jacobian = jacobian.reshape(jacobian.shape[0], *self._pooled.shape[1:])
            self._base = base

    def outputs(self, image: int, channels: torch.Tensor) -> Any:
        """The model output for ``len(channels)`` copies of image ``image``'s layer output, copy ``i`` with channel
        ``channels[i]`` switched off."""
        count = len(channels)
        if self._jacobian is not None and self._base is not None:
            change = self._switched_off[image, channels] - self._pooled[image, channels]  # (count, k)
            moved = torch.einsum("knj,nj->nk", self._jacobian[:, channels], change)
            linear_output = self._base[image] + moved
            return linear_output if self._rest is None else self._rest(linear_output)
        rows = self._pooled[image].expand(count, *self._pooled.shape[1:]).clone()
        rows[torch.arange(count, device=rows.device), channels] = self._switched_off[image, channels]
        if self._rest is None:  # not reached: without linears the rest of the tail is a function
            raise RuntimeError("ChannelShortcut needs the rest of the tail")
        return self._rest(rows.reshape(count, *self._shape))


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
        self._pool: Callable[..., Any] | None = None
        self._rest: Callable[..., Any] | None = None
        self._linears: list[str] = []
        self._after_linears: Callable[..., Any] | None = None
        if self._carried_count == 1:  # the tail reads the layer output alone
            self._find_shortcut(tracer.root, cuts[0], head_nodes, tail_nodes, read)

    def _find_shortcut(
        self, root: nn.Module, cut: fx.Node, head_nodes: list[fx.Node], tail_nodes: list[fx.Node], read: set[fx.Node]
    ) -> None:
        """Split the tail again after the operations on the layer output that act on each channel alone (a global
        pooling, an activation, flattening: ``_pool``), and after the ``nn.Linear`` modules that follow them
        (``_linears``); ``_rest`` and ``_after_linears`` run what follows each (see :meth:`channel_shortcut`)."""
        chain: list[fx.Node] = []
        end = cut
        while len(end.users) == 1 and _acts_per_channel(next(iter(end.users)), end, root):
            end = next(iter(end.users))
            chain.append(end)
        pool = fx.Graph()
        env = {cut: pool.placeholder("layer_output")}
        for node in chain:
            env[node] = pool.node_copy(node, env.__getitem__)
        pool.output(env[end])
        constants = [node for node in head_nodes if node in read and node.op == "get_attr"]
        rest = [node for node in tail_nodes if node not in set(chain)]
        self._rest = _graph_after(end, rest, constants)
        if self._rest is None:
            return
        linears, passed = _linear_chain(end, root)
        if not chain and not linears:  # the copies would run through the whole tail anyway
            return
        self._pool = _function_of(pool)
        if not linears:
            return
        following = [node for node in rest if node not in set(passed)]
        if len(following) == 1 and following[0].op == "output" and following[0].args[0] is passed[-1]:
            self._linears, self._after_linears = linears, None  # the last linear gives the model output
        else:
            self._after_linears = _graph_after(passed[-1], following, constants)
            self._linears = linears if self._after_linears is not None else []

    def channel_shortcut(self, layer_output: Any, values: torch.Tensor) -> ChannelShortcut | None:
        """The model outputs for copies of ``layer_output``, each with one channel (axis 1) switched off (set to
        ``values[i]`` for image ``i``), without the copies when the tail reads the layer output alone and starts with
        operations that act on each channel alone (``avgpool``, ``relu``, ``flatten``); ``None`` otherwise.

        Those operations commute with switching a channel off: they run once on the layer output (``p = pool(A)``)
        and once on a layer output filled with ``values`` (``q``), and a copy is ``p`` with channel ``c``'s entries
        taken from ``q`` (one value per channel after a global pooling, instead of a whole feature map). The
        ``nn.Linear`` modules that follow (``W``) are affine, so ``y_c = y + W[:, c] (q_c - p_c)`` with the entries
        of channel ``c`` alone, and only what follows them runs on the copies (nothing for ``avgpool`` + ``fc``).

        The caller must compare the outputs with :meth:`tail` on real copies: they are equal, rounding aside, whenever
        the operations are as described.
        """
        if self._pool is None or self._rest is None or not isinstance(layer_output, torch.Tensor):
            return None
        if layer_output.ndim < 2:
            return None
        images, channels = layer_output.shape[:2]
        pooled = self._pool(self._root, layer_output.clone())  # a copy: the operations may work in place
        if not isinstance(pooled, torch.Tensor) or pooled.shape[0] != images or pooled.ndim < 2:
            return None
        if (pooled.ndim > 2 and pooled.shape[1] != channels) or pooled[0].numel() % channels:
            return None
        filled = values.to(layer_output.dtype).reshape(-1, *([1] * (layer_output.ndim - 1))).expand_as(layer_output)
        switched_off = self._pool(self._root, filled.contiguous()).reshape(images, channels, -1)
        flat = pooled.ndim == 2 and bool(self._linears)
        modules = [self._root.get_submodule(name) for name in self._linears] if flat else []
        linears = [module for module in modules if isinstance(module, nn.Linear)]
        if len(linears) != len(modules):  # swapped since the trace
            return None
        root, rest = self._root, self._after_linears if flat else self._rest
        return ChannelShortcut(pooled, switched_off, linears, None if rest is None else lambda batch: rest(root, batch))

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
