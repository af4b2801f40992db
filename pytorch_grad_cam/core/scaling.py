"""Min-max scaling and resizing of maps: the one place every method, metric and utility scales a map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def min_max_scale(maps: torch.Tensor, eps: float = 1e-7, start_dim: int = 1) -> torch.Tensor:
    """Scale every map of a batch to [0, 1]: ``(m - min) / (max - min + eps)``.

    The minimum and maximum are taken over the axes from ``start_dim`` on, separately for each index of the
    axes before it (``start_dim=1``: one range per image; ``2``: per image and channel). ``eps`` keeps a
    constant map finite (0). The reference uses ``1e-7`` for CAMs and ``1e-8`` for Score-CAM-style masks.
    """
    flat = maps.flatten(start_dim)
    view = tuple(maps.shape[:start_dim]) + (1,) * (maps.ndim - start_dim)
    low = flat.min(dim=-1).values.reshape(view)
    shifted = maps - low
    return shifted / (shifted.flatten(start_dim).max(dim=-1).values.reshape(view) + eps)


def resize_cam_tensor(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize ``(B, *spatial)`` maps to ``size`` (in axis order, ``(H, W)`` or ``(D, H, W)``), unscaled.

    2-D maps: bilinear, half-pixel centres (identical to ``cv2.resize``), differentiable, on the maps' device.
    3-D maps: ``scipy.ndimage.zoom`` (cubic spline) on the host, as the reference does.
    """
    size = tuple(int(side) for side in size)
    if len(size) != maps.ndim - 1:
        raise ValueError(f"size must have one entry per spatial axis of the maps {tuple(maps.shape[1:])}; got {size}")
    if tuple(maps.shape[1:]) == size:
        return maps
    if maps.ndim == 3:
        return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    from scipy.ndimage import zoom

    host = maps.detach().cpu().numpy()
    zoomed = [zoom(volume, [t / s for s, t in zip(volume.shape, size)]) for volume in host]
    return torch.from_numpy(np.asarray(zoomed, dtype=np.float32)).to(maps.device)


def scale_cam_tensor(cam: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
    """Min-max scale every map of a batch to [0, 1] (per image, ``eps = 1e-7``), then resize it to ``size``.

    ``map = (map - min) / (1e-7 + max(map - min))``, then :func:`resize_cam_tensor`.

    Args:
        cam: ``(B, H, W)`` or ``(B, D, H, W)`` float tensor.
        size: the output size in axis order, ``(H, W)`` or ``(D, H, W)`` (as :func:`resize_cam_tensor`);
            ``None`` keeps the size. The reference's numpy ``scale_cam_image`` takes ``(W, H)`` instead.

    Returns:
        A float32 tensor on ``cam``'s device.
    """
    scaled = min_max_scale(cam.float())
    return scaled if size is None else resize_cam_tensor(scaled, size)
