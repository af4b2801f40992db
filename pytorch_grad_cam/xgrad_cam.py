"""XGrad-CAM."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord


class XGradCAM(BaseCAM):
    """XGrad-CAM — Fu et al. 2020, https://arxiv.org/abs/2008.02312

    ``w_c = Σ_ij (A_c,ij / (Σ_ij A_c,ij + ε)) · ∂y/∂A_c,ij``: gradients averaged with the normalised
    activations as weights (the axioms of sensitivity and conservation);  ``map = ReLU(Σ_c w_c A_c)``.
    """

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        activations, spatial = layer.activations, layer.spatial_axes
        sum_activations = activations.sum(dim=spatial, keepdim=True)
        return (layer.gradients * activations / (sum_activations + 1e-7)).sum(dim=spatial)
