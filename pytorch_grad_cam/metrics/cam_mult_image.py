"""Confidence change when the image is multiplied by its CAM.

The image is masked by its own map, ``x'_i = x_i ⊙ cam_i`` (broadcast over channels), and the metric is the
change of the target score, ``target_i(f(x'_i)) - target_i(f(x_i))``. A map that keeps what the model looks at
leaves the score unchanged or raises it. "Average Drop" and "Increase in Confidence" are from Grad-CAM++
(Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.metrics.perturbation_confidence import PerturbationConfidenceMetric


def multiply_tensor_with_cam(input_tensor: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """``input ⊙ cam``: one image ``(C, H, W)`` times its map ``(H, W)`` (or a batch times ``(B, 1, H, W)``)."""
    return input_tensor * cam


class _MultiplyByCam:
    """The perturbation ``x ⊙ cam``, batched on the device."""

    def __call__(self, input_tensor: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        return multiply_tensor_with_cam(input_tensor, cam)

    @staticmethod
    def perturb_batch(images: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
        return multiply_tensor_with_cam(images, cams[:, None].to(images.dtype))


class CamMultImageConfidenceChange(PerturbationConfidenceMetric):
    """``target_i(f(x_i ⊙ cam_i)) - target_i(f(x_i))`` per image.

    Args:
        batch_size: evaluate the masked images in chunks of this many (``None``: all at once).
    """

    def __init__(self, *, batch_size: int | None = None) -> None:
        super().__init__(_MultiplyByCam(), batch_size=batch_size)


class DropInConfidence(CamMultImageConfidenceChange):
    """``max(0, target_i(f(x_i)) - target_i(f(x_i ⊙ cam_i)))``: how much the score falls, 0 when it rises."""

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray | tuple[np.ndarray, torch.Tensor]:
        result = super().__call__(*args, **kwargs)
        if isinstance(result, tuple):
            return np.maximum(-result[0], 0), result[1]
        return np.maximum(-result, 0)


class IncreaseInConfidence(CamMultImageConfidenceChange):
    """``1`` where masking the image by its map raises the target score, ``0`` elsewhere (``np.float32``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray | tuple[np.ndarray, torch.Tensor]:
        result = super().__call__(*args, **kwargs)
        if isinstance(result, tuple):
            return np.float32(result[0] > 0), result[1]
        return np.float32(result > 0)
