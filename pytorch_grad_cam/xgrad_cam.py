"""XGrad-CAM."""

from __future__ import annotations

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, Target


class XGradCAM(BaseCAM):
    """XGrad-CAM — Fu et al. 2020, https://arxiv.org/abs/2008.02312

    ``w_c = Σ_ij (A_c,ij / (Σ_ij A_c,ij + ε)) · ∂y/∂A_c,ij``: gradients averaged with the normalised
    activations as weights (the axioms of sensitivity and conservation);  ``map = ReLU(Σ_c w_c A_c)``.
    """

    def get_cam_weights(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor,
    ) -> torch.Tensor:
        spatial = tuple(range(2, grads.ndim))
        sum_activations = activations.sum(dim=spatial, keepdim=True)
        return (grads * activations / (sum_activations + 1e-7)).sum(dim=spatial)
