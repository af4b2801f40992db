"""The model's device, dtype and ``training`` flags around a call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_input(input_tensor: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``input_tensor`` on the model's device and, when floating, in the model's floating dtype (half/bf16
    models take half/bf16 inputs); a new tensor whenever either changes, never the caller's modified."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if input_tensor.is_floating_point() and dtype is not None:
        return input_tensor.to(device=model_device(model), dtype=dtype)
    return input_tensor.to(model_device(model))


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode inside the ``with`` block and restore every module's ``training`` flag after."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training
