"""Argument checks for every public entry point: one wording for every error of one kind.

Every check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong value) with a
message that names the argument, what was expected and what was received, and returns the value in its
canonical type. Nothing else in the package writes an ``isinstance(x, bool) or ...`` check by hand.
"""

from __future__ import annotations

import cmath
import math
import numbers
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeVar, overload

import numpy as np
import torch
from torch import nn

T = TypeVar("T")


def describe(value: Any) -> str:
    """A short description of ``value`` for error messages: shape and dtype of arrays, the value of
    scalars and strings, the (module-qualified) type of anything else."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({value.dtype})"
    if isinstance(value, np.ndarray):
        return f"a numpy.ndarray of shape {value.shape} ({value.dtype})"
    if isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return f"{type(value).__name__} {value!r}"
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a ``bool``; ``TypeError`` for anything else (``0``/``1`` included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {describe(value)}")
    return bool(value)


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """``value`` as an ``int`` (Python, numpy or a one-element integer tensor), ``>= minimum`` when given.

    Raises:
        TypeError: for anything that is not an integer (``bool`` included).
        ValueError: for an integer below ``minimum``.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise TypeError(f"{name} must be {expected}; got {describe(value)}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return value


@overload
def check_positive_int(value: Any, name: str, allow_none: Literal[False] = False) -> int: ...
@overload
def check_positive_int(value: Any, name: str, allow_none: bool) -> int | None: ...
def check_positive_int(value: Any, name: str, allow_none: bool = False) -> int | None:
    """``value`` as a positive ``int`` (``None`` passes when ``allow_none``).

    Raises:
        TypeError: for anything that is not an integer (``bool`` included).
        ValueError: for an integer ``<= 0``.
    """
    expected = "a positive int or None" if allow_none else "a positive int"
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be {expected}; got {describe(value)}")
    value = operator.index(value)
    if value <= 0:
        raise ValueError(f"{name} must be {expected}; got {value}")
    return value


def check_real(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite ``float`` within ``[low, high]`` (either end open or absent).

    Raises:
        TypeError: for anything that is not a real number (``bool`` included).
        ValueError: for NaN, infinity, or a number outside the range.
    """
    if low == 0 and high is None:
        phrase = "a positive number" if low_open else "a non-negative number"
    elif low is None and high is None:
        phrase = "a real number"
    else:
        left = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        right = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        phrase = f"a number in {left}, {right}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {phrase}; got {describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite {phrase[2:]}; got {value}")
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        raise ValueError(f"{name} must be {phrase}; got {value}")
    return number


def check_choice(value: Any, name: str, choices: Sequence[T]) -> T:
    """``value`` when it is one of ``choices``; ``ValueError`` listing them otherwise."""
    if not any(value == choice and type(value) is type(choice) for choice in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_callable(value: Any, name: str, allow_none: bool = True, example: str = "") -> Any:
    """``value`` when it is callable (or ``None`` when allowed); ``TypeError`` otherwise."""
    if (value is None and allow_none) or callable(value):
        return value
    hint = f", e.g. {example}" if example else ""
    raise TypeError(f"{name} must be callable{' or None' if allow_none else ''}{hint}; got {describe(value)}")


def check_model(model: Any, name: str = "model") -> nn.Module:
    """``model`` when it is a ``torch.nn.Module``; ``TypeError`` otherwise."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {describe(model)}")
    return model


def check_model_has_data(model: nn.Module, name: str = "model") -> nn.Module:
    """``model`` when none of its parameters and buffers is on the ``meta`` device (shapes without values, as
    ``torch.device("meta")`` or ``init_empty_weights`` make them); ``ValueError`` naming them otherwise."""
    tensors = (*model.named_parameters(), *model.named_buffers())
    if not any(tensor.is_meta for _, tensor in tensors):
        return model
    meta = [tensor_name for tensor_name, tensor in tensors if tensor.is_meta]
    shown = ", ".join(meta[:3]) + (f" and {len(meta) - 3} more" if len(meta) > 3 else "")
    raise ValueError(
        f"{name}'s parameters are on the meta device, which holds shapes but no data ({len(meta)} of "
        f"{len(tensors)} parameters and buffers: {shown}); load the weights first, e.g. "
        f"{name}.load_state_dict(state_dict, assign=True), or {name}.to_empty(device='cpu') followed by "
        f"{name}.load_state_dict(state_dict)"
    )


def check_target_layers(target_layers: Any, model: nn.Module, allow_empty: bool = False) -> list[nn.Module]:
    """``target_layers`` as a list of submodules of ``model`` (a list, tuple or ``nn.ModuleList``)."""
    if isinstance(target_layers, nn.Module) and not isinstance(target_layers, nn.ModuleList):
        raise TypeError(
            "target_layers must be a list of modules, e.g. [model.layer4[-1]]; got a single "
            f"{type(target_layers).__name__}"
        )
    if not isinstance(target_layers, (list, tuple, nn.ModuleList)):
        raise TypeError(f"target_layers must be a list of modules; got {describe(target_layers)}")
    if len(target_layers) == 0 and not allow_empty:
        raise ValueError("target_layers must name at least one layer; got an empty list")
    submodules = {id(module) for module in model.modules()}
    for index, layer in enumerate(target_layers):
        if not isinstance(layer, nn.Module):
            raise TypeError(f"target_layers[{index}] must be a torch.nn.Module; got {describe(layer)}")
        if id(layer) not in submodules:
            raise ValueError(
                f"target_layers[{index}] ({type(layer).__name__}) is not a submodule of the model; pick "
                "a layer of this model, e.g. model.layer4[-1]"
            )
    return list(target_layers)


def as_tensor(value: Any, name: str) -> torch.Tensor:
    """A numpy array or tensor as a tensor (a tensor is returned as it is, on its device; a numpy array is made
    contiguous first, so that flipped views such as ``cams[:, ::-1]`` are accepted)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or a numpy array; got {describe(value)}")
    return value


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every element of a floating-point (or complex) ``tensor`` is finite, with one wait for its device.

    The sum is tried first (one read of the tensor, no temporary the size of the tensor): a NaN or an infinity
    anywhere makes the sum NaN or infinite, whatever the order of the additions, so a finite sum proves every
    element finite. Only when the sum is not finite (a non-finite element, or finite elements whose sum
    overflows) is the element-wise ``torch.isfinite`` consulted, which gives the answer.
    """
    values = tensor.detach() if tensor.requires_grad else tensor
    total = values.sum().item()  # one wait for the device, and no further kernel
    if cmath.isfinite(total) if isinstance(total, complex) else math.isfinite(total):
        return True
    return bool(torch.isfinite(values).all())


#: The checks queued by :func:`deferred_checks` (``None`` outside it): a 0-d boolean tensor on the device, and
#: what to do when it is ``False`` (raise or warn).
_PENDING: ContextVar[list[tuple[torch.Tensor, Callable[[], None]]] | None] = ContextVar("_PENDING", default=None)


@contextmanager
def deferred_checks() -> Iterator[None]:
    """Within the block, :func:`unless_on_device` and :func:`require_finite` do not make the host wait for the
    device: each queues a boolean computed on the device, and the block's end reads them all at once (one wait
    per device) and acts on the failed ones in the order they were queued: the first error is raised, warnings
    are issued. For loops that call a CAM many times (SESS's batches of patches), whose checks would otherwise
    wait once each. The work done after a failing check until the end of the block is wasted, never returned.
    Nested blocks leave the decision to the outermost.
    """
    if _PENDING.get() is not None:
        yield
        return
    pending: list[tuple[torch.Tensor, Callable[[], None]]] = []
    token = _PENDING.set(pending)
    try:
        yield
    except BaseException as error:
        _PENDING.reset(token)
        try:
            _settle(pending)  # a failed check queued before the error is its likely cause
        except Exception as cause:
            raise cause from error
        raise
    _PENDING.reset(token)
    _settle(pending)


def _settle(pending: list[tuple[torch.Tensor, Callable[[], None]]]) -> None:
    by_device: dict[torch.device, list[int]] = {}
    for position, (flag, _) in enumerate(pending):
        by_device.setdefault(flag.device, []).append(position)
    passed = [True] * len(pending)
    for positions in by_device.values():
        for position, value in zip(positions, torch.stack([pending[i][0] for i in positions]).tolist()):
            passed[position] = bool(value)
    for ok, (_, otherwise) in zip(passed, pending):
        if not ok:
            otherwise()


def unless_on_device(flag: torch.Tensor, otherwise: Callable[[], None]) -> None:
    """Call ``otherwise`` (which raises or warns) when the 0-d boolean ``flag`` is ``False``: at once (one wait for
    the device), or at the end of the enclosing :func:`deferred_checks` block."""
    pending = _PENDING.get()
    if pending is not None:
        pending.append((flag.detach(), otherwise))
    elif not bool(flag):
        otherwise()


def require_finite(tensor: torch.Tensor, error: Callable[[], Exception]) -> None:
    """Raise ``error()`` when an element of ``tensor`` is NaN or infinite: at once with :func:`all_finite` (one
    wait), or at the end of the enclosing :func:`deferred_checks` block."""
    if _PENDING.get() is None:
        if not all_finite(tensor):
            raise error()
        return

    def fail() -> None:
        raise error()

    unless_on_device(torch.isfinite(tensor.detach()).all(), fail)


def check_input_tensor(input_tensor: Any, ndims: Sequence[int] = (4, 5), name: str = "input_tensor") -> torch.Tensor:
    """Raise unless ``input_tensor`` is a non-empty, finite, floating-point image batch with ``ndims`` axes
    (``name`` is the argument's name in the messages)."""
    layouts = {4: "(B, C, H, W)", 5: "(B, C, D, H, W)"}
    expected = " or ".join(layouts[n] for n in ndims)
    if not isinstance(input_tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}; got {describe(input_tensor)}")
    if input_tensor.ndim not in ndims:
        raise ValueError(f"{name} must have shape {expected}; got {tuple(input_tensor.shape)}")
    if input_tensor.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image; got shape {tuple(input_tensor.shape)}")
    if not input_tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point (normalised) image batch; got dtype {input_tensor.dtype}")
    if input_tensor.is_meta:
        raise ValueError(
            f"{name} is on the meta device, which holds a shape but no data; pass a tensor with values, e.g. on "
            "'cpu' or 'cuda'"
        )
    require_finite(input_tensor, lambda: ValueError(f"{name} contains NaN or inf values"))
    return input_tensor


def check_targets(targets: Any, batch_size: int) -> list[Callable[[Any], Any]] | None:
    """Raise unless ``targets`` is ``None`` or a list of ``batch_size`` callables, one per image."""
    if targets is None:
        return None
    if not isinstance(targets, (list, tuple)):
        raise TypeError(
            "targets must be a list of callables (one per image), e.g. [ClassifierOutputTarget(281)], or None; "
            f"got {describe(targets)}"
        )
    for index, target in enumerate(targets):
        if not callable(target):
            raise TypeError(
                f"targets[{index}] must be callable, e.g. ClassifierOutputTarget(281); got {describe(target)}"
            )
    if len(targets) != batch_size:
        raise ValueError(
            f"targets must have one entry per image: input_tensor holds {batch_size} image(s), "
            f"got {len(targets)} target(s)"
        )
    return list(targets)


def check_index(value: Any, name: str, size: int) -> int:
    """``value`` as an ``int`` index in ``[0, size)`` (a class index, a label, ...).

    Raises:
        TypeError: for anything that is not an integer (``bool`` included).
        ValueError: for an integer outside ``[0, size)``.
    """
    index = check_int(value, name)
    if not 0 <= index < size:
        raise ValueError(f"{name} must be an integer in [0, {size}); got {index}")
    return index
