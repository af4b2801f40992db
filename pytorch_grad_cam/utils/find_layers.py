"""Finding and replacing layers inside a model; listing the candidate target layers with their output shapes."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from pytorch_grad_cam.core.checks import check_bool, check_input_tensor, check_model, describe
from pytorch_grad_cam.core.layers import LayerRow, LayerTable, analyse_layers
from pytorch_grad_cam.core.model import eval_mode, model_input

__all__ = [
    "LayerRow",
    "LayerTable",
    "find_layer_predicate_recursive",
    "find_layer_types_recursive",
    "get_layer_by_name",
    "list_layers",
    "replace_all_layer_type_recursive",
    "replace_layer_recursive",
]


def list_layers(model: nn.Module, input_tensor: torch.Tensor, *, maps_only: bool = False) -> LayerTable:
    """Every module of ``model`` with its output on ``input_tensor``: the candidate target layers.

    The model runs once in eval mode (every ``training`` flag restored after), with a hook on every module
    (removed after). Each row (:class:`~pytorch_grad_cam.core.layers.LayerRow`) gives the dotted name, the module
    type, the output shape, the layout a CAM can use (``"NCHW"`` maps, ``"NHWC"`` channels-last maps, ViT
    ``"tokens"`` on a patch grid of the input, or ``None``), the grid (and the number of extra tokens), and
    whether it is the layer a CAM built without ``target_layers`` would choose. ``print(list_layers(model, x))``
    shows a table, the automatic choice marked ``→``::

           layer     type        output shape     layout  grid
           ...
        →  layer4.1  BasicBlock  (1, 512, 2, 2)   NCHW    2×2
           layer4    Sequential  (1, 512, 2, 2)   NCHW    2×2
        automatic target layer: layer4.1

    Args:
        model: the network.
        input_tensor: an input batch ``(B, C, H, W)`` (or ``(B, C, D, H, W)``), moved to the model's device.
        maps_only: list only the modules whose output is a map a CAM can use.

    Returns:
        The rows in the order in which the modules finished running (a list with a readable ``str``; its
        ``chosen`` property is the automatic choice, ``None`` when there is none and ``error`` says why).
    """
    check_model(model)
    prepared = model_input(check_input_tensor(input_tensor), model)
    with eval_mode(model):
        table, _ = analyse_layers(model, prepared)
    return table.maps if check_bool(maps_only, "maps_only") else table


def replace_layer_recursive(model: nn.Module, old_layer: nn.Module, new_layer: nn.Module) -> bool:
    """Replace the first occurrence of ``old_layer`` (depth-first, registration order) with ``new_layer``.

    Args:
        model: the module to search.
        old_layer: the submodule to replace (compared with ``==``, i.e. identity for modules).
        new_layer: its replacement.

    Returns:
        True when a layer was replaced.

    Raises:
        TypeError: when an argument is not a ``torch.nn.Module``.
    """
    check_model(model, "model")
    check_model(old_layer, "old_layer")
    check_model(new_layer, "new_layer")
    return _replace(model, old_layer, new_layer)


def _replace(model: nn.Module, old_layer: nn.Module, new_layer: nn.Module) -> bool:
    for name, child in model._modules.items():
        if child is None:
            continue
        if child == old_layer:
            model._modules[name] = new_layer
            return True
        if _replace(child, old_layer, new_layer):
            return True
    return False


def replace_all_layer_type_recursive(
    model: nn.Module, old_layer_type: type | tuple[type, ...], new_layer: nn.Module
) -> None:
    """Replace every submodule that is an instance of ``old_layer_type`` with ``new_layer`` (in place).

    As in the reference, the same ``new_layer`` object is put in every place, and the replacement's own
    children are searched too.
    """
    for name, child in model._modules.items():
        if child is None:
            continue
        if isinstance(child, old_layer_type):
            model._modules[name] = new_layer
        replace_all_layer_type_recursive(child, old_layer_type, new_layer)


def find_layer_types_recursive(model: nn.Module, layer_types: Sequence[type]) -> list[nn.Module]:
    """All submodules (depth-first, ``model`` itself excluded) whose exact type is in ``layer_types``."""
    return find_layer_predicate_recursive(model, lambda layer: type(layer) in layer_types)


def find_layer_predicate_recursive(model: nn.Module, predicate: Callable[[nn.Module], bool]) -> list[nn.Module]:
    """All submodules (depth-first, pre-order, ``model`` itself excluded) for which ``predicate`` is true."""
    found: list[nn.Module] = []
    for child in model._modules.values():
        if child is None:
            continue
        if predicate(child):
            found.append(child)
        found.extend(find_layer_predicate_recursive(child, predicate))
    return found


def get_layer_by_name(model: nn.Module, dotted_path: str) -> nn.Module:
    """The submodule at ``dotted_path``, e.g. ``"layer4.1.conv2"`` or ``"features.-1"``.

    Each part is a child name (as in ``model.named_modules()``); an integer part indexes an
    ``nn.Sequential`` / ``nn.ModuleList``, negative indices counting from the end. The empty path is
    ``model`` itself.

    Args:
        model: the model.
        dotted_path: the dotted path of the layer.

    Returns:
        The submodule.

    Raises:
        TypeError: ``model`` is not a module or ``dotted_path`` is not a string.
        ValueError: no such layer; the message lists the closest existing names.
    """
    check_model(model)
    if not isinstance(dotted_path, str):
        raise TypeError(f"dotted_path must be a string such as 'layer4.1.conv2'; got {describe(dotted_path)}")
    module = model
    if dotted_path == "":
        return module
    walked: list[str] = []
    for part in dotted_path.split("."):
        child = module._modules.get(part)
        if child is None and isinstance(module, (nn.Sequential, nn.ModuleList)):
            try:
                index = int(part)
            except ValueError:
                index = None
            if index is not None and -len(module) <= index < len(module):
                child = module[index]
        if child is None:
            raise ValueError(_unknown_layer_message(model, dotted_path, walked, part))
        walked.append(part)
        module = child
    return module


def _unknown_layer_message(model: nn.Module, dotted_path: str, walked: list[str], part: str) -> str:
    names = [name for name, _ in model.named_modules() if name]
    close = difflib.get_close_matches(dotted_path, names, n=5, cutoff=0.6)
    where = ".".join(walked) or "the model"
    message = f"dotted_path {dotted_path!r} does not name a layer of {type(model).__name__}: {where} has no {part!r}"
    if close:
        message += "; did you mean " + ", ".join(repr(name) for name in close) + "?"
    else:
        message += "; see model.named_modules() for the layer names"
    return message
