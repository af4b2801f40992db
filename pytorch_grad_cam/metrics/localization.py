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

For scenes with a region the map should *not* point at (the object of another class, a shortcut's uninformative
shape, a distractor object), two contrastive scores:

* Discriminative pointing game: the map's maximum lies on the right region and not on the wrong one,

      hit_i = pointing_game(cam_i, right_i) ∧ ¬ pointing_game(cam_i, wrong_i)

  In a scene of two objects of different classes where each class is explained in turn, a class-agnostic map
  (the same map for both classes) can hit for one of the two at most: its mean is at most 0.5.

* Relevance share: the part of the positive relevance in the two regions that lies in the right one,

      share_i = Σ_p ReLU(cam_i) right_i / (Σ_p ReLU(cam_i) right_i + Σ_p ReLU(cam_i) wrong_i)

  0.5 when neither region holds positive relevance; a class-agnostic map's shares for the two classes of a
  scene add up to 1.

All accept numpy arrays or torch tensors (computed in torch on the maps' device) and return numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from pytorch_grad_cam.core.checks import check_real
from pytorch_grad_cam.core.types import Maps
from pytorch_grad_cam.metrics.pointing_game import check_maps, check_maps_and_masks, energy_pointing_game, pointing_hits

__all__ = ["discriminative_pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy", "relevance_share"]


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


def _check_regions(
    cams: Maps, right_masks: np.ndarray | torch.Tensor, wrong_masks: np.ndarray | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated maps, right masks (empty ones warned about) and wrong masks (may be empty), disjoint."""
    cam_tensor, right = check_maps_and_masks(cams, right_masks, "right_masks")
    _, wrong = check_maps_and_masks(cam_tensor, wrong_masks, "wrong_masks", warn_empty=False)
    overlap = (right & wrong).flatten(1).any(dim=1)
    if overlap.any():
        raise ValueError(
            f"right_masks and wrong_masks must not overlap; they do in image(s) "
            f"{torch.nonzero(overlap).flatten().tolist()}"
        )
    return cam_tensor, right, wrong


def discriminative_pointing_game(
    cams: Maps, right_masks: np.ndarray | torch.Tensor, wrong_masks: np.ndarray | torch.Tensor, tolerance: float = 0
) -> np.ndarray:
    """Whether each map's maximum lies on the right region and not on the wrong one:
    ``pointing_game(cam, right) ∧ ¬ pointing_game(cam, wrong)`` (both with ``tolerance``; see
    :func:`~pytorch_grad_cam.metrics.pointing_game.pointing_game` for ties).

    Args:
        cams: ``(B, H, W)`` maps (numpy or torch).
        right_masks: ``(B, H, W)`` bool masks of what the map should point at (the explained class's object).
        wrong_masks: ``(B, H, W)`` bool masks of what it should not point at (another class's object, a
            distractor), disjoint from ``right_masks``.
        tolerance: the distance in pixels within which a maximum still counts as on a region.

    Returns:
        ``np.ndarray`` of bool, ``(B,)``.

    Raises:
        ValueError: if the masks do not have the maps' shape, or overlap.
    """
    tolerance = check_real(tolerance, "tolerance", 0)
    cam_tensor, right, wrong = _check_regions(cams, right_masks, wrong_masks)
    hits = pointing_hits(cam_tensor, right, tolerance) & ~pointing_hits(cam_tensor, wrong, tolerance)
    return hits.cpu().numpy()


def relevance_share(
    cams: Maps, right_masks: np.ndarray | torch.Tensor, wrong_masks: np.ndarray | torch.Tensor
) -> np.ndarray:
    """The share of the positive relevance of the two regions that lies in the right one:
    ``Σ ReLU(cam) · right / (Σ ReLU(cam) · right + Σ ReLU(cam) · wrong)``.

    Args:
        cams: ``(B, H, W)`` maps (numpy or torch); negative values count as 0.
        right_masks: ``(B, H, W)`` bool masks of what the map should point at.
        wrong_masks: ``(B, H, W)`` bool masks of what it should not point at, disjoint from ``right_masks``.

    Returns:
        ``np.ndarray`` of float64 in [0, 1], ``(B,)``; 0.5 where neither region holds positive relevance.

    Raises:
        ValueError: if the masks do not have the maps' shape, or overlap.
    """
    cam_tensor, right, wrong = _check_regions(cams, right_masks, wrong_masks)
    positive = cam_tensor.clamp_min(0)
    inside = (positive * right).flatten(1).sum(dim=1)
    total = inside + (positive * wrong).flatten(1).sum(dim=1)
    share = torch.where(total > 0, inside / total.clamp_min(torch.finfo(total.dtype).tiny), 0.5)
    return share.cpu().numpy().astype(np.float64)
