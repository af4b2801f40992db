"""Localisation against ground-truth masks, beside the pointing game: relevance mass accuracy and relevance rank
accuracy (Arras et al. 2022, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of neural network
explanations", https://arxiv.org/abs/2003.07258).

* Relevance mass accuracy: the share of the map's positive relevance inside the mask,

      mass_i = Σ_p ReLU(cam_i(p)) mask_i(p) / Σ_p ReLU(cam_i(p))

  (on non-negative maps, the energy-based pointing game).

* Relevance rank accuracy: with ``K = |mask_i|``, the share of the ``K`` highest-ranked pixels that lie inside
  the mask,

      rank_i = |top_K(cam_i) ∩ mask_i| / K

  Pixels tied with the ``K``-th value share the remaining places equally (the expected value over random
  tie-breaking), so a uniform map scores the chance level ``K / (H·W)``.

Both accept numpy arrays or torch tensors (computed in torch on the maps' device) and return numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from pytorch_grad_cam.core.types import Maps
from pytorch_grad_cam.metrics.pointing_game import check_maps, check_maps_and_masks, energy_pointing_game

__all__ = ["relevance_mass_accuracy", "relevance_rank_accuracy"]


def relevance_mass_accuracy(cams: Maps, masks: np.ndarray | torch.Tensor) -> np.ndarray:
    """The share of each map's positive relevance inside its mask (Arras et al. 2022,
    https://arxiv.org/abs/2003.07258): ``Σ_p ReLU(cam) · mask / Σ_p ReLU(cam)``.

    Args:
        cams: ``(B, H, W)`` maps (numpy or torch); negative values count as 0.
        masks: ``(B, H, W)`` bool ground-truth masks (or 0/1 values).

    Returns:
        ``np.ndarray`` of float64 in [0, 1], ``(B,)``; 0 (with a warning) for a map with no positive value.
    """
    return energy_pointing_game(check_maps(cams, "cams").clamp_min(0), masks)


def relevance_rank_accuracy(cams: Maps, masks: np.ndarray | torch.Tensor) -> np.ndarray:
    """The share of the ``K = |mask|`` highest-ranked pixels of each map that lie inside its mask (Arras et al.
    2022, https://arxiv.org/abs/2003.07258): ``|top_K(cam) ∩ mask| / K``, ties at the ``K``-th value shared.

    Args:
        cams: ``(B, H, W)`` maps (numpy or torch).
        masks: ``(B, H, W)`` bool ground-truth masks (or 0/1 values).

    Returns:
        ``np.ndarray`` of float64 in [0, 1], ``(B,)``; 0 (with a warning) for an empty mask.
    """
    cam_tensor, mask_tensor = check_maps_and_masks(cams, masks)
    flat = cam_tensor.flatten(1)
    inside = mask_tensor.flatten(1)
    sizes = inside.sum(dim=1)
    ordered = flat.sort(dim=1, descending=True).values
    kth = ordered.gather(1, (sizes - 1).clamp_min(0)[:, None])
    above, tied = flat > kth, flat == kth
    places_left = (sizes - above.sum(dim=1)).to(flat.dtype)
    hits = (above & inside).sum(dim=1) + places_left * (tied & inside).sum(dim=1) / tied.sum(dim=1)
    accuracy = torch.where(sizes > 0, hits / sizes.clamp_min(1), torch.zeros_like(hits))
    return accuracy.cpu().numpy().astype(np.float64)
