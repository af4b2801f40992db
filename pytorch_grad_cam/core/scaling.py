"""Min-max scaling and resizing of maps: the one place every method, metric and utility scales a map."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def min_max_scale(maps: torch.Tensor, eps: float = 1e-7, start_dim: int = 1) -> torch.Tensor:
    """Scale every map of a batch to [0, 1]: ``(m - min) / (max - min + eps)``.

    The minimum and maximum are taken over the axes from ``start_dim`` on, separately for each index of the
    axes before it (``start_dim=1``: one range per image; ``2``: per image and channel). ``eps`` keeps a
    constant map finite (0). The reference uses ``1e-7`` for CAMs and ``1e-8`` for Score-CAM-style masks.
    """
    if not maps.requires_grad and 0 <= start_dim < maps.ndim and maps.numel() > 0:
        # the same values as below without the indices (several times faster on large maps), reduced over the axes
        # themselves; a floating ``shifted`` (a new tensor, outside any graph) is divided in place
        axes = tuple(range(start_dim, maps.ndim))
        shifted = maps - maps.amin(dim=axes, keepdim=True)
        spread = shifted.amax(dim=axes, keepdim=True) + eps
        return shifted.div_(spread) if shifted.is_floating_point() else shifted / spread
    # min / max with indices: the gradient of a tied extreme goes to one element, as it always has
    flat = maps.flatten(start_dim)
    view = tuple(maps.shape[:start_dim]) + (1,) * (maps.ndim - start_dim)
    low = flat.min(dim=-1).values.reshape(view)
    shifted = maps - low
    return shifted / (shifted.flatten(start_dim).max(dim=-1).values.reshape(view) + eps)


def _mirror(index: torch.Tensor, length: int) -> torch.Tensor:
    """Indices folded into ``[0, length)`` by whole-sample mirroring (``-1 → 1``, ``length → length - 2``)."""
    if length == 1:
        return torch.zeros_like(index)
    period = 2 * length - 2
    folded = torch.remainder(index, period)
    return torch.where(folded >= length, period - folded, folded)


@functools.lru_cache(maxsize=64)
def _spline_zoom_matrix(source: int, target: int) -> torch.Tensor:
    """The ``(target, source)`` float64 matrix of a 1-D cubic-spline zoom, as ``scipy.ndimage.zoom`` does it.

    ``scipy.ndimage.zoom(order=3, mode="constant", grid_mode=False)`` is separable: along each axis it
    (1) turns the samples ``x`` into cubic B-spline coefficients ``c`` with mirrored borders,
    ``(c[i-1] + 4 c[i] + c[i+1]) / 6 = x[i]``, and (2) evaluates the spline at the output points
    ``p_o = o (source - 1) / (target - 1)`` (the corners stay aligned), with the B-spline weights of
    ``t = p - floor(p)``: ``(1-t)³/6, (3t³ - 6t² + 4)/6, (-3t³ + 3t² + 3t + 1)/6, t³/6`` on the coefficients
    ``floor(p) - 1 … floor(p) + 2`` (mirrored at the borders). Both steps are linear: the matrix is their
    product, ``W · P⁻¹``.
    """
    double = torch.float64
    rows = torch.arange(source)
    prefilter = torch.zeros(source, source, dtype=double)
    for offset, weight in ((-1, 1.0 / 6.0), (0, 4.0 / 6.0), (1, 1.0 / 6.0)):
        prefilter.index_put_((rows, _mirror(rows + offset, source)), torch.full((source,), weight, dtype=double), True)
    step = (source - 1) / (target - 1) if target > 1 else 1.0
    points = (torch.arange(target, dtype=double) * step).clamp(0, source - 1)
    base = torch.floor(points)
    t = points - base
    weights = torch.stack(
        [(1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6], dim=1
    )
    evaluation = torch.zeros(target, source, dtype=double)
    out_rows = torch.arange(target)
    for k in range(4):
        columns = _mirror(base.long() - 1 + k, source)
        evaluation.index_put_((out_rows, columns), weights[:, k], True)
    return evaluation @ torch.linalg.inv(prefilter)


def spline_zoom(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize ``(B, *spatial)`` maps with the cubic spline of ``scipy.ndimage.zoom`` (its default ``order=3``).

    The same numbers as ``scipy.ndimage.zoom(volume, [t / s for s, t in zip(volume.shape, size)])`` (float
    rounding aside, < 1e-6 on maps in [0, 1]), computed in torch on the maps' device and differentiable: one
    ``(target, source)`` matrix per axis (see :func:`_spline_zoom_matrix`), applied axis by axis. Like the
    reference, the cubic spline may overshoot [0, 1] slightly near sharp edges.

    Args:
        maps: ``(B, *spatial)`` float tensor.
        size: the output size in axis order (one entry per spatial axis).

    Returns:
        The resized maps, in ``maps``' dtype (float32 for non-float input).
    """
    dtype = maps.dtype if maps.is_floating_point() else torch.float32
    result = maps.to(dtype)
    for axis, target in enumerate(size, start=1):
        source = result.shape[axis]
        if source == target:
            continue
        matrix = _spline_zoom_matrix(source, int(target)).to(device=result.device, dtype=dtype)
        result = torch.movedim(torch.movedim(result, axis, -1) @ matrix.T, -1, axis)
    return result


def resize_cam_tensor(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize ``(B, *spatial)`` maps to ``size`` (in axis order, ``(H, W)`` or ``(D, H, W)``), unscaled.

    2-D maps: bilinear, half-pixel centres (identical to ``cv2.resize``), differentiable, on the maps' device.
    3-D maps: the cubic spline of ``scipy.ndimage.zoom``, as the reference does, computed in torch on the
    maps' device (:func:`spline_zoom`).
    """
    size = tuple(int(side) for side in size)
    if len(size) != maps.ndim - 1:
        raise ValueError(f"size must have one entry per spatial axis of the maps {tuple(maps.shape[1:])}; got {size}")
    if any(side < 1 for side in size):
        raise ValueError(f"size must hold positive sides; got {size}")
    if tuple(maps.shape[1:]) == size:
        return maps
    if maps.ndim == 3:
        return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return spline_zoom(maps, size)


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
