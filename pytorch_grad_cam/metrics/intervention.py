"""Intervention test: does the model rely on a region? Compare its predictions on images before and after the region
is removed (or changed) — the check that a benchmark's ground truth is what the model uses.

For a model that relies on a marker, removing the marker changes most predictions and removing anything else
changes few (``flip_rate``); the probability of the labelled class falls accordingly (``probability_drop``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.core.checks import as_tensor, check_positive_int, describe

__all__ = ["InterventionResult", "intervention_effect"]


@dataclass(frozen=True)
class InterventionResult:
    """Predictions of one model on images before and after an intervention, one entry per image.

    Attributes:
        labels: the true classes, int64 ``(N,)``.
        predicted_before / predicted_after: the predicted classes (argmax of the output), int64 ``(N,)``.
        probability_before / probability_after: the softmax probability of the true class, float64 ``(N,)``.
    """

    labels: np.ndarray
    predicted_before: np.ndarray
    predicted_after: np.ndarray
    probability_before: np.ndarray
    probability_after: np.ndarray

    @property
    def accuracy_before(self) -> float:
        """The share of images classified correctly before the intervention."""
        return float((self.predicted_before == self.labels).mean())

    @property
    def accuracy_after(self) -> float:
        """The share of images classified correctly after the intervention."""
        return float((self.predicted_after == self.labels).mean())

    @property
    def flips(self) -> np.ndarray:
        """Per image, whether the intervention changed the predicted class (bool ``(N,)``)."""
        return self.predicted_after != self.predicted_before

    @property
    def flip_rate(self) -> float:
        """The share of images whose predicted class the intervention changed."""
        return float(self.flips.mean())

    @property
    def probability_drop(self) -> float:
        """The mean fall of the true class's probability (negative when it rises)."""
        return float((self.probability_before - self.probability_after).mean())


def _predict(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> tuple[np.ndarray, ...]:
    predicted, probability = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            output = model(images[start : start + batch_size])
            if not isinstance(output, torch.Tensor) or output.ndim != 2:
                raise ValueError(
                    f"model must return class scores (B, num_classes); got {describe(output)} for a batch of images"
                )
            predicted.append(output.argmax(dim=1))
            chosen = labels[start : start + batch_size].to(output.device)[:, None]
            probability.append(output.float().softmax(dim=1).gather(1, chosen)[:, 0])
    return (
        torch.cat(predicted).cpu().numpy().astype(np.int64),
        torch.cat(probability).cpu().numpy().astype(np.float64),
    )


def intervention_effect(
    model: nn.Module,
    images: torch.Tensor,
    altered_images: torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    batch_size: int = 256,
) -> InterventionResult:
    """The model's predictions on ``images`` and on ``altered_images`` (the same images after an intervention).

    Args:
        model: a classifier returning ``(B, num_classes)`` scores, in the mode it should be evaluated in.
        images: the model's inputs ``(N, ...)``.
        altered_images: the same inputs after the intervention, of the same shape.
        labels: the true class of each image ``(N,)``.
        batch_size: images per forward pass.

    Returns:
        An :class:`InterventionResult`.

    Raises:
        TypeError: if the images are not tensors.
        ValueError: if the shapes disagree, or the model's output is not ``(B, num_classes)``.
    """
    if not isinstance(images, torch.Tensor) or not isinstance(altered_images, torch.Tensor):
        raise TypeError(
            f"images and altered_images must be torch tensors; got {describe(images)} and {describe(altered_images)}"
        )
    if images.shape != altered_images.shape:
        raise ValueError(
            f"altered_images must have the shape of images {tuple(images.shape)}; got {tuple(altered_images.shape)}"
        )
    label_tensor = as_tensor(labels, "labels").long().flatten()
    if len(label_tensor) != len(images):
        raise ValueError(f"labels must hold one class per image ({len(images)}); got {len(label_tensor)}")
    batch_size = check_positive_int(batch_size, "batch_size")
    before = _predict(model, images, label_tensor, batch_size)
    after = _predict(model, altered_images, label_tensor, batch_size)
    return InterventionResult(label_tensor.cpu().numpy(), before[0], after[0], before[1], after[1])
