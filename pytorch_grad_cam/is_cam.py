"""IS-CAM (integrated Score-CAM)."""

from __future__ import annotations

from typing import Any

import torch

from pytorch_grad_cam.core import LayerRecord
from pytorch_grad_cam.core.checks import check_positive_int
from pytorch_grad_cam.score_cam import ScoreCAM


class ISCAM(ScoreCAM):
    """IS-CAM — Naidu et al. 2020, "IS-CAM: Integrated Score-CAM for axiomatic-based explanations",
    https://arxiv.org/abs/2010.03023

    Score-CAM with each channel's score integrated along the path from no mask to the full mask (a Riemann
    sum, as in Integrated Gradients): with the Score-CAM mask ``M_c = norm(up(A_c))``,
    ``w_c = softmax_c((1/n) Σ_{i=1..n} y(x ⊙ (i/n) M_c))``;  ``map = ReLU(Σ_c w_c A_c)``.
    With ``num_samples=1`` it is Score-CAM. Costs ``n`` times Score-CAM's forward passes.

    Args:
        *args: ``model``, ``target_layers``, ``reshape_transform``, as :class:`BaseCAM`; the options are keywords.
        num_samples: integration steps ``n``.
        **kwargs: passed to :class:`ScoreCAM` (``batch_size``, ``progress``) and :class:`BaseCAM`.
    """

    def __init__(self, *args: Any, num_samples: int = 10, **kwargs: Any) -> None:
        self.num_samples = check_positive_int(num_samples, "num_samples")
        super().__init__(*args, **kwargs)

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        spatial = (1,) * len(layer.spatial_axes)

        def scaled(masks: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
            return masks * ((sample + 1).float() / self.num_samples).view(-1, *spatial)

        return torch.softmax(self.mask_scores(layer, self.num_samples, scaled), dim=-1)
