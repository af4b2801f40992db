"""SS-CAM (smoothed Score-CAM)."""

from __future__ import annotations

from typing import Any

import torch

from pytorch_grad_cam.core import LayerRecord
from pytorch_grad_cam.core.checks import check_positive_int, check_real
from pytorch_grad_cam.score_cam import ScoreCAM


class SSCAM(ScoreCAM):
    """SS-CAM — Wang et al. 2020, "SS-CAM: Smoothed Score-CAM for Sharper Visual Feature Localization",
    https://arxiv.org/abs/2006.14255

    Score-CAM with each channel's mask smoothed by Gaussian noise: with the Score-CAM mask
    ``M_c = norm(up(A_c))`` and ``ε_i ~ N(0, std²)`` per pixel,
    ``w_c = softmax_c((1/n) Σ_i y(x ⊙ (M_c + ε_i)))``;  ``map = ReLU(Σ_c w_c A_c)``.
    With ``std=0`` it is Score-CAM. Costs ``n`` times Score-CAM's forward passes.

    Args:
        *args: ``model``, ``target_layers``, ``reshape_transform``, as :class:`BaseCAM`; the options are keywords.
        num_samples: noisy copies ``n`` of every mask.
        std: standard deviation of the noise added to the masks (which lie in [0, 1]).
        **kwargs: passed to :class:`ScoreCAM` (``batch_size``, ``progress``) and :class:`BaseCAM`.
    """

    def __init__(self, *args: Any, num_samples: int = 35, std: float = 2.0, **kwargs: Any) -> None:
        self.num_samples = check_positive_int(num_samples, "num_samples")
        self.std = check_real(std, "std", 0.0)
        super().__init__(*args, **kwargs)

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        def noisy(masks: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
            return masks + self.std * torch.randn_like(masks)

        return torch.softmax(self.mask_scores(layer, self.num_samples, noisy), dim=-1)
