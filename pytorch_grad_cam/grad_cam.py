"""Grad-CAM."""

from __future__ import annotations

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, Target


class GradCAM(BaseCAM):
    """Grad-CAM — Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391

    ``w_c = mean over positions of ∂y/∂A_c``;  ``map = ReLU(Σ_c w_c A_c)``.
    """

    def get_cam_weights(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor,
    ) -> torch.Tensor:
        return grads.mean(dim=tuple(range(2, grads.ndim)))
