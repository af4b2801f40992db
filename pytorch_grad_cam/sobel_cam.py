"""Sobel "CAM": the image's edge strength, a model-free baseline map (used by the metrics tutorial)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.core.checks import describe
from pytorch_grad_cam.core.filters import separable_filter

__all__ = ["sobel_cam"]

#: OpenCV 5's fixed-point RGB → gray weights for 8-bit images (``round(w · 2**15)`` of 0.299, 0.587, 0.114).
_GRAY_WEIGHTS_8BIT = (9798, 19235, 3735)
_GRAY_SHIFT = 15
_GRAY_WEIGHTS_FLOAT = (0.299, 0.587, 0.114)


def _gray(image: torch.Tensor) -> torch.Tensor:
    """``Y = 0.299 R + 0.587 G + 0.114 B`` of an ``(H, W, 3|4)`` image, as ``cv2.COLOR_RGB2GRAY`` computes it:
    in 15-bit fixed point with rounding for uint8 (OpenCV 5; OpenCV 4 rounds
    some pixels the other way), in float32 otherwise."""
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    if image.dtype == torch.uint8:
        w_r, w_g, w_b = _GRAY_WEIGHTS_8BIT
        total = red.int() * w_r + green.int() * w_g + blue.int() * w_b + (1 << (_GRAY_SHIFT - 1))
        return (total >> _GRAY_SHIFT).double()
    f_r, f_g, f_b = _GRAY_WEIGHTS_FLOAT
    return (red * f_r + green * f_g + blue * f_b).double()


def _to_uint8(values: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``saturate_cast<uchar>``: round half to even, clip to [0, 255]."""
    return values.round().clamp(0, 255).to(torch.uint8)


def sobel_cam(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Edge strength of an RGB image: the mean absolute Sobel derivative, a map that needs no model.

    A baseline to compare CAMs against (an "explanation" that only follows edges), as in the reference's metrics
    tutorial, e.g. ``sobel_cam(np.uint8(rgb_img * 255))``. With ``Y`` the gray image
    (``0.299 R + 0.587 G + 0.114 B``) and the 3×3 Sobel operator (Sobel & Feldman 1968, "A 3x3 Isotropic
    Gradient Operator for Image Processing"; https://en.wikipedia.org/wiki/Sobel_operator):

    ``G_x = [1 2 1]ᵀ ⊗ [-1 0 1] ⋆ Y``,  ``G_y = [-1 0 1]ᵀ ⊗ [1 2 1] ⋆ Y``  (borders mirrored, ``dcb|abcd|cba``),

    ``map = round(0.5 · u8(|G_x|) + 0.5 · u8(|G_y|))``, where ``u8`` rounds half to even and saturates at 255.
    The numbers are those of the reference's OpenCV pipeline (``cvtColor`` → ``Sobel`` → ``convertScaleAbs`` →
    ``addWeighted``), computed in torch.

    Args:
        img: ``(H, W, 3)`` (or ``(H, W, 4)``, alpha ignored) RGB image: uint8 in [0, 255], or floating point
            (gray computed in float32; then the derivatives are small and the map is mostly 0 to 4, as with
            the reference). A numpy array or a tensor.

    Returns:
        ``np.uint8`` array ``(H, W)``.

    Raises:
        TypeError: when ``img`` is not an array, or neither uint8 nor floating point.
        ValueError: when ``img`` is not ``(H, W, 3)`` / ``(H, W, 4)`` or is empty.
    """
    image = _as_image_tensor(img)
    gray = _gray(image)
    smooth = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    derive = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    grad_x = _to_uint8(separable_filter(gray, derive, smooth).abs())
    grad_y = _to_uint8(separable_filter(gray, smooth, derive).abs())
    combined = 0.5 * grad_x.float() + 0.5 * grad_y.float()
    return _to_uint8(combined).cpu().numpy()


def _as_image_tensor(img: Any) -> torch.Tensor:
    if isinstance(img, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(img))
    elif isinstance(img, torch.Tensor):
        image = img.detach()
    else:
        raise TypeError(f"img must be an (H, W, 3) RGB image as a numpy array or tensor; got {describe(img)}")
    if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"img must be a non-empty (H, W, 3) RGB image; got shape {tuple(image.shape)}")
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"img must be uint8 (0-255) or floating point; got dtype {image.dtype}")
    return image if image.dtype == torch.uint8 else image.float()
