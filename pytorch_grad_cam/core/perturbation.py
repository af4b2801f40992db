"""Shared machinery of the methods and metrics that run the model on perturbed inputs: validated batch sizes,
progress bars, the Gaussian blur baseline (:func:`~pytorch_grad_cam.core.filters.gaussian_blur`) and layout checks
of perturbed layer outputs."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from pytorch_grad_cam.core.base import BaseCAM
from pytorch_grad_cam.core.checks import check_bool, check_positive_int
from pytorch_grad_cam.core.needs import ACTIVATIONS_ONLY
from pytorch_grad_cam.core.outputs import tensors_in
from pytorch_grad_cam.core.types import Layers, Reshape


class ActivationShapeError(ValueError):
    """A target layer's output changed shape between the first pass and the perturbed passes."""


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
        setattr(instance, self.private, check_positive_int(value, self.public))


class PerturbationCAM(BaseCAM):
    """Base of the methods that run the model on many perturbed inputs or activations (Score-CAM and its
    variants, Group-CAM, Ablation-CAM): gradient-free by default, they evaluate ``batch_size`` perturbed copies
    per forward pass under ``torch.no_grad()`` and show a progress bar.

    Args:
        model: as :class:`BaseCAM`.
        target_layers: as :class:`BaseCAM`.
        reshape_transform: as :class:`BaseCAM`.
        batch_size: perturbed inputs per forward pass (also settable as ``cam.batch_size``); ``None`` takes the
            class's :attr:`default_batch_size`.
        progress: show a tqdm progress bar over the batches.
        **kwargs: the other arguments of :class:`BaseCAM`.
    """

    needs = ACTIVATIONS_ONLY
    #: The batch size when none is given.
    default_batch_size: ClassVar[int] = 16
    batch_size = BatchSize()

    def __init__(
        self,
        model: nn.Module,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        *,
        batch_size: int | None = None,
        progress: bool = True,
        **kwargs: Any,
    ) -> None:
        self.batch_size = self.default_batch_size if batch_size is None else batch_size
        self.progress = check_bool(progress, "progress")
        super().__init__(model, target_layers, reshape_transform, **kwargs)


def progress_bar(total: int, enabled: bool, description: str) -> Any:
    """A tqdm bar over ``total`` steps; ``enabled=False`` gives a silent one."""
    import tqdm

    return tqdm.tqdm(total=total, disable=not enabled, desc=description, leave=False)


def noise_scale(input_tensor: torch.Tensor, noise_level: float) -> torch.Tensor:
    """SmoothGrad's noise standard deviation per image: ``σ = noise_level · (max(x) - min(x))``, shaped to
    broadcast over ``input_tensor``."""
    flat = input_tensor.detach().flatten(1)
    spread = flat.max(dim=1).values - flat.min(dim=1).values
    return (noise_level * spread).view((-1,) + (1,) * (input_tensor.ndim - 1))


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
