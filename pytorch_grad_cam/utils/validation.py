"""Argument checks shared by the methods, metrics and tools: one wording for every error of one kind.

Every check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong value) with a
message that names the argument, what was expected and what was received.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

Target = Callable[[Any], torch.Tensor]


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


def check_positive_int(value: Any, name: str, allow_none: bool = False) -> int | None:
    """``value`` as a positive ``int`` (``None`` passes when ``allow_none``).

    Raises:
        TypeError: for anything that is not an integer (``bool`` included).
        ValueError: for an integer ``<= 0``.
    """
    expected = "a positive int or None" if allow_none else "a positive int"
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be {expected}; got {describe(value)}")
    value = operator.index(value)
    if value <= 0:
        raise ValueError(f"{name} must be {expected}; got {value}")
    return value


def check_input_tensor(input_tensor: Any, ndims: Sequence[int] = (4, 5)) -> torch.Tensor:
    """Raise unless ``input_tensor`` is a non-empty, finite, floating-point image batch with ``ndims`` axes."""
    layouts = {4: "(B, C, H, W)", 5: "(B, C, D, H, W)"}
    expected = " or ".join(layouts[n] for n in ndims)
    if not isinstance(input_tensor, torch.Tensor):
        raise TypeError(f"input_tensor must be a torch.Tensor of shape {expected}; got {describe(input_tensor)}")
    if input_tensor.ndim not in ndims:
        raise ValueError(f"input_tensor must have shape {expected}; got {tuple(input_tensor.shape)}")
    if input_tensor.shape[0] == 0:
        raise ValueError(f"input_tensor must hold at least one image; got shape {tuple(input_tensor.shape)}")
    if not input_tensor.is_floating_point():
        raise TypeError(
            f"input_tensor must be a floating-point (normalised) image batch; got dtype {input_tensor.dtype}"
        )
    if not torch.isfinite(input_tensor).all():
        raise ValueError("input_tensor contains NaN or inf values")
    return input_tensor


def check_targets(targets: Any, batch_size: int) -> list[Target] | None:
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


def default_targets(outputs: Any, batch_size: int | None = None) -> list[ClassifierOutputTarget]:
    """``targets=None``: one :class:`ClassifierOutputTarget` on the top class of each image.

    The output must be a ``(B, num_classes)`` tensor, or a mapping (e.g. a Hugging Face ``ModelOutput``) whose
    ``logits`` entry is one.
    """
    scores = outputs["logits"] if isinstance(outputs, Mapping) and "logits" in outputs else outputs
    rows_ok = batch_size is None or (isinstance(scores, torch.Tensor) and scores.shape[0] == batch_size)
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or not rows_ok:
        raise ValueError(
            "targets=None explains the top class of a (B, num_classes) classification output, but the model "
            f"returned {describe(outputs)}; pass targets explicitly, e.g. "
            "[SemanticSegmentationTarget(category, mask)]"
        )
    return [ClassifierOutputTarget(int(category)) for category in scores.argmax(dim=-1).tolist()]


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside ``value`` (a tensor, mapping or sequence, nested), in order."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)
