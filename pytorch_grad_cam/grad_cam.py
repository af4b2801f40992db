"""Grad-CAM."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord


class GradCAM(BaseCAM):
    """Grad-CAM — Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391

    ``w_c = mean over positions of ∂y/∂A_c``;  ``map = ReLU(Σ_c w_c A_c)``.
    """

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        return layer.gradients.mean(dim=layer.spatial_axes)
