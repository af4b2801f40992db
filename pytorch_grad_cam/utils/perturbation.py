"""Shared helpers of the perturbation methods (ScoreCAM, AblationCAM): batch sizes, scores of a batch of
perturbed outputs, progress bars, and cutting a model in two at a layer with ``torch.fx``.

Private to the package: the public faces are the methods' constructor keywords.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import tqdm
from torch import fx, nn

from pytorch_grad_cam.base_cam import target_scores as base_target_scores
from pytorch_grad_cam.utils.validation import check_positive_int, tensors_in


class ActivationShapeError(ValueError):
    """A target layer's output changed shape between the first pass and the perturbed passes."""


def check_batch_size(value: Any, name: str = "batch_size") -> int:
    """``value`` as a positive ``int`` (``TypeError`` / ``ValueError`` otherwise)."""
    return check_positive_int(value, name)


class BatchSize:
    """Descriptor of a validated positive-int attribute, so that ``cam.batch_size = n`` is checked too."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.public = name
        self.private = f"_{name}"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return getattr(instance, self.private)

    def __set__(self, instance: Any, value: Any) -> None:
        setattr(instance, self.private, check_batch_size(value, self.public))


def progress_bar(total: int, enabled: bool, description: str) -> tqdm.tqdm:
    """A tqdm bar over ``total`` batches; ``enabled=False`` gives a silent one."""
    return tqdm.tqdm(total=total, disable=not enabled, desc=description, leave=False)


def target_scores(target: Callable[[Any], torch.Tensor], outputs: Any, count: int) -> torch.Tensor:
    """``target`` applied to each of the ``count`` per-image outputs of a batch, as a float32 ``(count,)``.

    Raises:
        ValueError: when a tensor output does not hold ``count`` rows.
    """
    if isinstance(outputs, torch.Tensor) and (outputs.ndim == 0 or outputs.shape[0] != count):
        raise ValueError(
            f"the model returned an output of shape {tuple(outputs.shape)} for a batch of {count} perturbed "
            f"inputs; one output row per input is needed"
        )
    return base_target_scores([target] * count, outputs, first_index=None)


def shapes(value: Any) -> list[tuple[int, ...]]:
    """The shapes of every tensor inside ``value`` (a tensor, mapping or sequence), in order."""
    return [tuple(tensor.shape) for tensor in tensors_in(value)]


def check_same_layout(expected: Any, received: Any, what: str) -> None:
    """Raise :class:`ActivationShapeError` when two layer outputs do not hold tensors of equal shapes."""
    if shapes(expected) != shapes(received):
        raise ActivationShapeError(
            f"{what} gave activations of shape {shapes(received)} in the perturbed passes but {shapes(expected)} "
            "in the first pass; the model must give the layer the same shape for the same image"
        )


class _LeafTracer(fx.Tracer):
    """A tracer that keeps ``layer`` as one call, whatever it holds."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return module is self.layer or super().is_leaf_module(module, qualified_name)


class LayerSplit:
    """A model cut in two at ``layer`` with ``torch.fx``.

    :meth:`head` runs the network up to ``layer`` once and keeps every value the rest of the network reads;
    :meth:`tail` runs only the rest, with a batch of replacement outputs of ``layer`` and the kept values
    (those with a leading batch axis of one are expanded to the batch).

    Raises:
        ValueError: when the model cannot be traced, or ``layer`` is not called exactly once, or the model
            output does not depend on it.
    """

    def __init__(self, model: nn.Module, layer: nn.Module) -> None:
        tracer = _LeafTracer(layer)
        try:
            graph = tracer.trace(model)
        except Exception as error:  # tracing fails in many ways on dynamic models: report them all the same
            raise ValueError(f"the model cannot be traced with torch.fx ({type(error).__name__}: {error})") from error
        nodes = list(graph.nodes)
        cuts = [
            node for node in nodes if node.op == "call_module" and tracer.root.get_submodule(node.target) is layer
        ]
        if len(cuts) != 1:
            raise ValueError(f"the layer is called {len(cuts)} times in the traced graph; exactly once is needed")
        position = nodes.index(cuts[0])
        head_nodes, tail_nodes = nodes[: position + 1], nodes[position + 1 :]
        in_tail = set(tail_nodes)
        read_by_tail = [node for node in head_nodes if any(user in in_tail for user in node.users)]
        carried = [node for node in read_by_tail if node.op != "get_attr"]
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
        for node in read_by_tail:
            if node.op == "get_attr":
                env[node] = tail.node_copy(node, env.__getitem__)
        for node in tail_nodes:
            env[node] = tail.node_copy(node, env.__getitem__)
        self._head = fx.GraphModule(tracer.root, head, "AblationHead")
        self._tail = fx.GraphModule(tracer.root, tail, "AblationTail")

    def head(self, image: torch.Tensor) -> list[Any]:
        """The values the tail needs, computed on one image ``(1, C, *spatial)``; the layer's is at ``cut_index``."""
        return list(self._head(image))

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
        return self._tail(*values)
