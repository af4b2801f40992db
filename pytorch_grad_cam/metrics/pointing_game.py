"""Localization against ground-truth masks: the pointing game and the energy-based pointing game.

* Pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop",
  https://arxiv.org/abs/1608.00507): a map *hits* when its maximum lies on the object, or within ``tolerance``
  pixels of it (Euclidean distance; the paper uses 15 px). When several pixels share the maximum (a flat map, a
  plateau), the map hits only if every one of them does: a uniform map points nowhere.

      hit_i = ∀ p ∈ argmax(cam_i): dist(p, mask_i) ≤ tolerance

* Energy-based pointing game (Wang et al. 2020, Score-CAM, https://arxiv.org/abs/1910.01279): the share of
  the map's energy that falls inside the mask,

      proportion_i = Σ_p cam_i(p) mask_i(p) / Σ_p cam_i(p)

Both accept numpy arrays or torch tensors (computed in torch on the maps' device) and return numpy arrays.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.core.checks import as_tensor, check_real
from pytorch_grad_cam.core.types import Maps

__all__ = ["check_maps", "check_maps_and_masks", "energy_pointing_game", "pointing_game"]


def check_maps(value: Any, name: str) -> torch.Tensor:
    """``(B, H, W)`` real, finite maps (numpy or torch) as a detached float64 tensor on their device (float32 on
    MPS, which has no float64).

    Raises:
        TypeError: for anything but a numpy array or a tensor, or maps of bools or complex numbers.
        ValueError: for another shape, or NaN / inf values.
    """
    maps = as_tensor(value, name).detach()
    if maps.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W); got {tuple(maps.shape)}")
    if maps.dtype == torch.bool or maps.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {maps.dtype}")
    maps = maps.to(torch.float32 if maps.device.type == "mps" else torch.float64)
    if not torch.isfinite(maps).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return maps


def check_maps_and_masks(
    cams: Any, masks: Any, name: str = "masks", warn_empty: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(B, H, W)`` maps (as :func:`check_maps` gives them) and bool masks (the argument ``name``) of
    the same shape on the maps' device; warns about empty masks unless ``warn_empty`` is false."""
    cam_tensor = check_maps(cams, "cams")
    mask_tensor = as_tensor(masks, name).detach()
    if mask_tensor.shape != cam_tensor.shape:
        raise ValueError(
            f"{name} must have the shape of cams {tuple(cam_tensor.shape)}; got {tuple(mask_tensor.shape)}"
        )
    mask_tensor = mask_tensor.to(cam_tensor.device)
    if mask_tensor.dtype != torch.bool:
        if mask_tensor.is_complex() or not ((mask_tensor == 0) | (mask_tensor == 1)).all():
            raise ValueError(
                f"{name} must be boolean (or hold only 0 and 1); got dtype {mask_tensor.dtype} with other values"
            )
        mask_tensor = mask_tensor != 0
    empty = ~mask_tensor.flatten(1).any(dim=1)
    if warn_empty and empty.any():
        warnings.warn(
            f"masks of image(s) {torch.nonzero(empty).flatten().tolist()} are empty: no pixel of the map can be on "
            "the object (a miss, energy 0)",
            stacklevel=3,
        )
    return cam_tensor, mask_tensor


def _dilate(masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """The pixels within Euclidean distance ``tolerance`` of ``masks``: a dilation by a disk."""
    radius = math.floor(tolerance)
    if radius == 0:
        return masks
    offsets = torch.arange(-radius, radius + 1, device=masks.device, dtype=torch.float32)
    disk = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= float(tolerance) ** 2).float()
    spread = F.conv2d(masks[:, None].float(), disk[None, None], padding=radius)
    return spread[:, 0] > 0.5


def pointing_game(cams: Maps, masks: np.ndarray | torch.Tensor, tolerance: float = 0) -> np.ndarray:
    """Whether each map's maximum falls on its object (Zhang et al. 2016, https://arxiv.org/abs/1608.00507).

    ``hit_i = ∀ p ∈ argmax(cam_i): dist(p, mask_i) ≤ tolerance`` — every pixel that reaches the maximum must lie
    within ``tolerance`` pixels (Euclidean) of the mask; so a flat map only hits a mask that covers the image.

    Args:
        cams: ``(B, H, W)`` maps (numpy or torch).
        masks: ``(B, H, W)`` bool ground-truth masks (or 0/1 values).
        tolerance: the distance in pixels within which a maximum still counts as on the object (``0``: on it).

    Returns:
        ``np.ndarray`` of bool, ``(B,)``.
    """
    tolerance = check_real(tolerance, "tolerance", 0)
    cam_tensor, mask_tensor = check_maps_and_masks(cams, masks)
    return pointing_hits(cam_tensor, mask_tensor, tolerance).cpu().numpy()


def pointing_hits(cams: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """The pointing game's hits ``(B,)`` (bool tensor) of validated maps and bool masks (no checks)."""
    batch = cams.shape[0]
    flat = cams.reshape(batch, -1)
    is_max = flat == flat.max(dim=1, keepdim=True).values
    near = _dilate(masks, tolerance).reshape(batch, -1)
    return ~(is_max & ~near).any(dim=1)


def energy_pointing_game(cams: Maps, masks: np.ndarray | torch.Tensor) -> np.ndarray:
    """The share of each map's energy inside its mask (Wang et al. 2020, https://arxiv.org/abs/1910.01279).

    ``proportion_i = Σ_p cam_i(p) mask_i(p) / Σ_p cam_i(p)``; a map that is zero everywhere scores 0 (with a
    warning).

    Args:
        cams: ``(B, H, W)`` non-negative maps (numpy or torch).
        masks: ``(B, H, W)`` bool ground-truth masks (or 0/1 values).

    Returns:
        ``np.ndarray`` of float64 in [0, 1], ``(B,)``.
    """
    cam_tensor, mask_tensor = check_maps_and_masks(cams, masks)
    if (cam_tensor < 0).any():
        raise ValueError(
            f"cams must be non-negative for the energy pointing game; got a minimum of {cam_tensor.min().item():.4g}"
        )
    total = cam_tensor.flatten(1).sum(dim=1)
    inside = (cam_tensor * mask_tensor).flatten(1).sum(dim=1)
    zero = total == 0
    if zero.any():
        warnings.warn(
            f"cams of image(s) {torch.nonzero(zero).flatten().tolist()} are zero everywhere: energy 0", stacklevel=2
        )
    proportion = torch.where(zero, torch.zeros_like(total), inside / torch.where(zero, torch.ones_like(total), total))
    return proportion.cpu().numpy().astype(np.float64)
