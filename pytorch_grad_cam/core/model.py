"""The model's device, dtype and ``training`` flags around a call."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

#: One re-entrant lock per model: calls on a model may nest in one thread (a wrapper calling its base method,
#: a metric calling a CAM) but never overlap across threads. One CAM object called again from inside its own
#: call is refused by the protocol (``CAMMethod._not_reentered``), not here.
_MODEL_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_input(input_tensor: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``input_tensor`` on the model's device and, when floating, in the model's floating dtype (half/bf16
    models take half/bf16 inputs); a new tensor whenever either changes, never the caller's modified.

    An inference tensor (made under ``torch.inference_mode()``) used outside inference mode is copied
    (:func:`autograd_ready`)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if input_tensor.is_floating_point() and dtype is not None:
        return autograd_ready(input_tensor.to(device=model_device(model), dtype=dtype))
    return autograd_ready(input_tensor.to(model_device(model)))


def autograd_ready(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``, or a normal copy of it when it is an inference tensor (made under ``torch.inference_mode()``)
    and inference mode is off now: autograd cannot save an inference tensor for backward, a copy it can."""
    if tensor.is_inference() and not torch.is_inference_mode_enabled():
        return tensor.clone()
    return tensor


@contextmanager
def exclusive_use(model: nn.Module) -> Iterator[None]:
    """Hold ``model`` for the ``with`` block: a call from another thread on the same model raises
    ``RuntimeError`` at once instead of mixing hooks, recorded values and ``training`` flags with this one.
    Calls nested in one thread are allowed."""
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
    if not lock.acquire(blocking=False):
        raise RuntimeError(
            f"the model ({type(model).__name__}) is being explained by a call in another thread; calls on one "
            "model cannot overlap (they share its hooks and training flags): give each thread its own model, "
            "e.g. copy.deepcopy(model), or call one at a time"
        )
    try:
        yield
    finally:
        lock.release()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode inside the ``with`` block and restore every module's ``training`` flag after.

    The model is held for the block (:func:`exclusive_use`): a call on it from another thread meanwhile raises
    ``RuntimeError``, so the flags are always restored by the call that set them."""
    with exclusive_use(model):
        flags = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            yield
        finally:
            for module, training in flags:
                module.training = training
