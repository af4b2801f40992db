"""Image utilities: scaling CAMs, overlaying them on images, pre/de-processing, factorization rendering.

The scaling functions have a torch core (:func:`scale_cam_tensor`) used by every method on the model's
device; :func:`scale_cam_image` is its numpy face, with the reference's signature and numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import zoom


def scale_cam_tensor(cam: torch.Tensor, target_size: Sequence[int] | None = None) -> torch.Tensor:
    """Min-max scale every map of a batch to [0, 1] and optionally resize it.

    ``map = (map - min) / (1e-7 + max(map - min))`` per image, then a bilinear resize (2-D maps, identical
    to ``cv2.resize``) or a cubic-spline ``scipy.ndimage.zoom`` (3-D maps).

    Args:
        cam: ``(B, H, W)`` or ``(B, D, H, W)`` float tensor.
        target_size: the output size in reversed axis order, as the reference takes it: ``(W, H)`` for 2-D
            maps, ``(W, H, D)`` for 3-D maps; ``None`` keeps the size.

    Returns:
        A float32 tensor on ``cam``'s device.
    """
    cam = cam.float()
    batch = cam.shape[0]
    flat = cam.reshape(batch, -1)
    view = (batch,) + (1,) * (cam.ndim - 1)
    cam = cam - flat.min(dim=1).values.reshape(view)
    cam = cam / (1e-7 + cam.reshape(batch, -1).max(dim=1).values.reshape(view))
    if target_size is None:
        return cam
    size = tuple(int(s) for s in reversed(tuple(target_size)))
    if len(size) != cam.ndim - 1:
        raise ValueError(
            f"target_size must have one entry per spatial axis of the maps {tuple(cam.shape[1:])}; got {tuple(target_size)}"
        )
    if cam.ndim == 3:
        if tuple(cam.shape[1:]) == size:
            return cam
        return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    host = cam.detach().cpu().numpy()
    zoomed = [zoom(volume, [t / s for s, t in zip(volume.shape, size)]) for volume in host]
    return torch.from_numpy(np.float32(zoomed)).to(cam.device)


def scale_cam_image(cam: np.ndarray, target_size: Sequence[int] | None = None) -> np.ndarray:
    """Min-max scale each map of ``cam`` (``(B, H, W)`` or ``(B, D, H, W)``) and resize it to ``target_size``.

    Numpy face of :func:`scale_cam_tensor` (same arguments); returns ``np.float32``.
    """
    tensor = torch.as_tensor(np.asarray(cam, dtype=np.float32))
    return scale_cam_tensor(tensor, target_size).numpy()
