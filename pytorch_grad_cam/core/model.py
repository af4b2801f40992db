"""The model's device, dtype and ``training`` flags around a call."""

from __future__ import annotations

import itertools
import operator
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

#: One re-entrant lock per model: calls on a model may nest in one thread (a wrapper calling its base method,
#: a metric calling a CAM) but never overlap across threads. One CAM object called again from inside its own
#: call is refused by the protocol (``CAMMethod._not_reentered``), not here.
_MODEL_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):  # the first one only: no full walk
        return tensor.device
    return torch.device("cpu")


def floating_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter; ``None`` without one."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def model_input(input_tensor: torch.Tensor, model: nn.Module, snapshot: ModelSnapshot | None = None) -> torch.Tensor:
    """``input_tensor`` on the model's device and, when floating, in the model's floating dtype (half/bf16
    models take half/bf16 inputs); a new tensor whenever either changes, never the caller's modified.

    An inference tensor (made under ``torch.inference_mode()``) used outside inference mode is copied
    (:func:`autograd_ready`). ``snapshot``: the model's :class:`ModelSnapshot`, when the caller took one (the
    device and dtype are then read from it instead of from a new look at the parameters)."""
    if snapshot is not None:
        dtype, device = snapshot.floating_dtype, snapshot.device
    else:
        dtype, device = floating_dtype(model), model_device(model)
    if input_tensor.is_floating_point() and dtype is not None:
        return autograd_ready(input_tensor.to(device=device, dtype=dtype))
    return autograd_ready(input_tensor.to(device))


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
    lock = _model_lock(model)
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
def held_model(model: nn.Module) -> Iterator[ModelSnapshot | None]:
    """Hold ``model`` for the ``with`` block when no other thread does, and give a :class:`ModelSnapshot` of it
    taken while held; ``None`` (nothing held) when another thread is explaining the model.

    A call takes its one look at the model's modules here (for :func:`eval_mode`, :func:`model_input` and the
    meta-device check) instead of one per step. With ``None`` the call goes on as without it: its argument checks
    come first, and :func:`eval_mode` then raises the ``RuntimeError`` of :func:`exclusive_use` if the other
    thread still holds the model."""
    lock = _model_lock(model)
    if not lock.acquire(blocking=False):
        yield None
        return
    try:
        yield ModelSnapshot.of(model)
    finally:
        lock.release()


@contextmanager
def eval_mode(model: nn.Module, snapshot: ModelSnapshot | None = None) -> Iterator[None]:
    """Put ``model`` in eval mode inside the ``with`` block and restore every module's ``training`` flag after.

    The model is held for the block (:func:`exclusive_use`): a call on it from another thread meanwhile raises
    ``RuntimeError``, so the flags are always restored by the call that set them. ``snapshot``: the flags as read
    by :func:`held_model` in the enclosing block (the model held since), instead of a new walk over the modules."""
    with exclusive_use(model):
        snapshot = snapshot if snapshot is not None else ModelSnapshot.of(model)
        modules, flags = snapshot.modules, snapshot.training
        # ``model.eval()`` sets every flag to False through each module's ``train``; when no module overrides
        # ``train`` (nor the model ``eval``) and every flag already is False, it would change nothing: skipped.
        if any(flags) or not snapshot.plain_train:
            model.eval()
        try:
            yield
        finally:
            now = [module.training for module in modules]
            if not all(map(operator.is_, now, flags)):  # set back the flags that changed
                for module, training, current in zip(modules, flags, now):
                    if current is not training:
                        module.training = training


@dataclass(frozen=True)
class ModelSnapshot:
    """What one walk over ``model.modules()`` reads for a call.

    Attributes:
        modules: the modules, in ``model.modules()`` order (the model first).
        training: their ``training`` flags.
        plain_train: whether ``model.eval()`` only sets those flags: neither the model overrides ``eval`` nor any
            module ``train`` (as some backbones do, to keep their norms frozen).
        holds_meta: whether a parameter or buffer is on the ``meta`` device.
        device: the device of the first parameter (else buffer), as :func:`model_device` gives it.
        floating_dtype: the dtype of the first floating-point parameter (``None`` without one).
    """

    modules: list[nn.Module]
    training: list[bool]
    plain_train: bool
    holds_meta: bool
    device: torch.device
    floating_dtype: torch.dtype | None

    @classmethod
    def of(cls, model: nn.Module) -> ModelSnapshot:
        """Walk ``model.modules()`` once (the meta check reads each module's own parameter and buffer tables); the
        device and dtype come from the first parameters, as :func:`model_device` and :func:`floating_dtype` give
        them."""
        train = nn.Module.train
        modules = _modules(model)
        plain = type(model).eval is nn.Module.eval and all(type(module).train is train for module in modules)
        meta = any(
            tensor is not None and tensor.is_meta
            for module in modules
            for table in (module._parameters, module._buffers)
            for tensor in table.values()
        )
        return cls(
            modules=modules,
            training=[module.training for module in modules],
            plain_train=plain,
            holds_meta=meta,
            device=model_device(model),
            floating_dtype=floating_dtype(model),
        )


def _modules(model: nn.Module) -> list[nn.Module]:
    """``list(model.modules())``: the same modules in the same order (depth first, each module once, the model
    first), walked without building the dotted names ``named_modules`` makes for each. A model or submodule that
    overrides ``modules`` / ``named_modules`` is walked by its own method."""
    named_modules = nn.Module.named_modules
    if type(model).modules is not nn.Module.modules:
        return list(model.modules())
    found: list[nn.Module] = []
    seen: set[nn.Module] = set()
    stack: list[nn.Module | None] = [model]
    while stack:
        module = stack.pop()
        if module is None or module in seen:
            continue
        if type(module).named_modules is not named_modules:
            return list(model.modules())
        seen.add(module)
        found.append(module)
        stack.extend(reversed(module._modules.values()))  # popped first to last
    return found


def _model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock of ``model`` (made at its first use)."""
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
    return lock
