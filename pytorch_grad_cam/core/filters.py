"""Separable 2-D filters in torch: OpenCV's default border (``BORDER_REFLECT_101``) where the reference filtered
with OpenCV (``cv2.Sobel`` in :mod:`pytorch_grad_cam.sobel_cam`, ``cv2.GaussianBlur`` in
:class:`pytorch_grad_cam.sess.SESS`), so that the numbers agree with it, or replicated edges (the blurred
baselines of Group-CAM and the deletion / insertion metrics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pytorch_grad_cam.core.checks import check_choice, check_int, check_real, describe

__all__ = ["gaussian_blur", "gaussian_kernel", "reflect101_indices", "separable_filter"]

#: How a filter extends an image past its border: mirrored without repeating the edge (OpenCV's default,
#: ``gfedcb|abcdefgh|gfedcba``) or the edge repeated (``aaaaaa|abcdefgh|hhhhhhh``).
BORDERS = ("reflect101", "replicate")


def reflect101_indices(length: int, pad: int, device: torch.device | None = None) -> torch.Tensor:
    """Source indices of an axis of ``length`` samples padded by ``pad`` on both sides, mirrored about the edge
    samples without repeating them (``gfedcb|abcdefgh|gfedcba``), as OpenCV's ``BORDER_REFLECT_101``.

    Any ``pad`` works, also one longer than the axis (the mirroring repeats with period ``2 (length - 1)``); a
    single sample is repeated.
    """
    positions = torch.arange(-pad, length + pad, device=device)
    if length == 1:
        return torch.zeros_like(positions)
    period = 2 * (length - 1)
    folded = positions.remainder(period)
    return torch.where(folded >= length, period - folded, folded)


def border_indices(length: int, pad: int, border: str, device: torch.device | None = None) -> torch.Tensor:
    """Source indices of an axis of ``length`` samples padded by ``pad`` on both sides with ``border``."""
    if border == "replicate":
        return torch.arange(-pad, length + pad, device=device).clamp(0, length - 1)
    return reflect101_indices(length, pad, device)


def separable_filter(
    images: torch.Tensor, kernel_x: torch.Tensor, kernel_y: torch.Tensor, border: str = "reflect101"
) -> torch.Tensor:
    """Correlate every ``(..., H, W)`` image with ``kernel_y ⊗ kernel_x`` (odd lengths, centred anchor), borders
    ``border`` (:data:`BORDERS`): ``out(y, x) = Σ_{i, j} kernel_y[i] kernel_x[j] img(y + i - r_y, x + j - r_x)``.

    The sums run in the images' dtype; the kernels are cast to it.
    """
    for name, kernel in (("kernel_x", kernel_x), ("kernel_y", kernel_y)):
        if kernel.ndim != 1 or kernel.numel() % 2 == 0:
            raise ValueError(f"{name} must be a 1-D kernel of odd length; got {describe(kernel)}")
    if images.ndim < 2:
        raise ValueError(f"images must have shape (..., H, W); got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    flat = images.reshape(-1, 1, height, width)
    half_x, half_y = kernel_x.numel() // 2, kernel_y.numel() // 2
    check_choice(border, "border", BORDERS)
    flat = flat.index_select(2, border_indices(height, half_y, border, images.device))
    flat = flat.index_select(3, border_indices(width, half_x, border, images.device))
    flat = F.conv2d(flat, kernel_x.to(images).reshape(1, 1, 1, -1))
    flat = F.conv2d(flat, kernel_y.to(images).reshape(1, 1, -1, 1))
    return flat.reshape(images.shape)


def gaussian_kernel(size: int, sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """OpenCV's ``getGaussianKernel(size, sigma)`` for ``sigma > 0``: ``g_i ∝ exp(-(i - (size-1)/2)² / (2 σ²))``,
    ``Σ g_i = 1``, computed in float64 and returned as ``dtype``."""
    size = check_int(size, "kernel_size", minimum=1)
    if size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer; got {size}")
    sigma = check_real(sigma, "sigma", 0.0, low_open=True)
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).to(dtype)


def gaussian_blur(
    images: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0, border: str = "replicate"
) -> torch.Tensor:
    """Blur every ``(..., H, W)`` image with the separable :func:`gaussian_kernel` in both directions:
    ``g(t) ∝ exp(-t² / (2 σ²))`` for ``t = -(k-1)/2 … (k-1)/2``, ``Σ g = 1``. With ``border="reflect101"`` it is
    ``cv2.GaussianBlur(img, (k, k), sigma)``."""
    kernel = gaussian_kernel(kernel_size, sigma, images.dtype)
    return separable_filter(images, kernel, kernel, border)
