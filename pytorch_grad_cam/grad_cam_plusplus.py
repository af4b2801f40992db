"""Grad-CAM++."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++ — Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063

    With ``g = ∂y/∂A`` (Eq. 19, exponential output): ``α = g² / (2g² + Σ_ij A · g³ + ε)`` (0 where
    ``g = 0``), ``w_c = Σ_ij α · ReLU(g)``;  ``map = ReLU(Σ_c w_c A_c)``.
    """

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        grads, spatial = layer.gradients, layer.spatial_axes
        grads_2 = grads.pow(2)
        sum_activations = layer.activations.sum(dim=spatial, keepdim=True)
        alpha = grads_2 / (2 * grads_2 + sum_activations * grads_2 * grads + 1e-6)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (alpha * grads.clamp_min(0)).sum(dim=spatial)
