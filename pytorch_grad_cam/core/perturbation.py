"""Shared machinery of the methods and metrics that run the model on perturbed inputs: validated batch sizes,
progress bars, the Gaussian blur baseline and layout checks of perturbed layer outputs."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam.core.base import BaseCAM
from pytorch_grad_cam.core.checks import check_bool, check_int, check_positive_int, check_real
from pytorch_grad_cam.core.needs import ACTIVATIONS_ONLY
from pytorch_grad_cam.core.outputs import tensors_in
from pytorch_grad_cam.core.types import Reshape, TargetLayers


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
    per forward pass under ``torch.inference_mode()`` and show a progress bar.

    Args:
        model, target_layers, reshape_transform, **kwargs: as :class:`BaseCAM`.
        batch_size: perturbed inputs per forward pass (also settable as ``cam.batch_size``); ``None`` takes the
            class's :attr:`default_batch_size`.
        progress: show a tqdm progress bar over the batches.
    """

    needs = ACTIVATIONS_ONLY
    #: The batch size when none is given.
    default_batch_size: ClassVar[int] = 16
    batch_size = BatchSize()

    def __init__(
        self,
        model: nn.Module,
        target_layers: TargetLayers,
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


def gaussian_blur(images: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Blur each channel of ``(B, C, H, W)`` images with a normalised separable Gaussian (edges replicated).

    ``g(t) ∝ exp(-t² / (2 σ²))`` for ``t = -(k-1)/2 … (k-1)/2``, ``Σ g = 1``.
    """
    kernel_size = check_int(kernel_size, "kernel_size", minimum=1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer; got {kernel_size!r}")
    sigma = check_real(sigma, "sigma", 0.0, low_open=True)
    channels = images.shape[1]
    t = torch.arange(kernel_size, dtype=torch.float32, device=images.device) - (kernel_size - 1) / 2
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(images.dtype)
    half = kernel_size // 2
    x = F.pad(images, (half, half, half, half), mode="replicate")
    x = F.conv2d(x, kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


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
