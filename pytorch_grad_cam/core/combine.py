"""How the maps of several target layers become one map: the named ways a CAM combines its layers.

A combiner takes the per-layer maps ``(B, *layer spatial)`` (after the ReLU, each at its layer's own
resolution) and the input's spatial size ``(H, W)`` / ``(D, H, W)``, and returns the final ``(B, *size)``
map in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from pytorch_grad_cam.core.scaling import scale_cam_tensor

LayerCombiner = Callable[[list[torch.Tensor], Sequence[int]], torch.Tensor]


def scaled_layers(maps: list[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """Every layer's map min-max scaled and resized to ``size``, stacked: ``(B, layers, *size)``."""
    return torch.stack([scale_cam_tensor(cam, size) for cam in maps], dim=1)


def mean_of_scaled(maps: list[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """The reference's combination: ``scale(mean_l ReLU(scale(up(map_l))))``."""
    layers = []
    for cam in maps:
        scaled = scale_cam_tensor(cam, size)
        # A scaled map is >= 0 (or NaN), and a 2-D map is resized bilinearly, by sums of its values with weights
        # >= 0: the ReLU would change nothing (the cubic spline of 3-D maps can overshoot below 0, so it stays).
        keep = cam.ndim == 3 and not scaled.requires_grad
        layers.append(scaled if keep else scaled.clamp_min(0))
    # the mean of one map is that map: no stacking nor averaging pass for the usual single target layer
    combined = layers[0] if len(layers) == 1 else torch.stack(layers, dim=1).mean(dim=1)
    return scale_cam_tensor(combined)


def product_of_scaled(maps: list[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """RefineCAM's combination: ``scale(Π_l scale(ReLU(scale(up(map_l)))))``: bright only where every layer
    agrees, so coarse deep layers denoise sharp early ones."""
    per_layer = torch.stack([scale_cam_tensor(cam.clamp_min(0)) for cam in scaled_layers(maps, size).unbind(1)])
    return scale_cam_tensor(per_layer.prod(dim=0))


def coarse_to_fine(maps: list[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """Poly-CAM's combination (Englebert et al. 2022, https://arxiv.org/abs/2204.13359), 2-D maps.

    Sorted from the coarsest to the finest, ``M_coarsest = S_coarsest`` and
    ``M_l = up(M_{l+1}) ⊙ S_l / (avg_k(S_l) + ε)``, ``avg_k`` the local mean over ``k × k`` (``k`` the smallest
    odd size ``≥`` the resolution ratio of the two layers); the finest ``M`` is scaled and resized.
    """
    if any(cam.ndim != 3 for cam in maps):
        raise ValueError(
            "coarse_to_fine (PolyCAM) needs 2-D inputs (B, C, H, W) and 2-D layer maps; got maps of shapes "
            f"{[tuple(cam.shape) for cam in maps]}"
        )
    ordered = sorted(maps, key=lambda cam: cam.shape[-2] * cam.shape[-1])
    combined = ordered[0]
    for fine in ordered[1:]:
        ratio = max(fine.shape[-2] / combined.shape[-2], fine.shape[-1] / combined.shape[-1])
        kernel = 2 * (int(ratio) // 2) + 1
        local = F.avg_pool2d(fine[:, None], kernel, stride=1, padding=kernel // 2, count_include_pad=False)
        coarse = F.interpolate(combined[:, None], size=fine.shape[-2:], mode="bilinear", align_corners=False)
        combined = (coarse * fine[:, None] / (local + 1e-8))[:, 0]
    return mean_of_scaled([combined], size)
