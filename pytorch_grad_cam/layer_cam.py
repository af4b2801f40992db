"""LayerCAM."""

from __future__ import annotations

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, Target


class LayerCAM(BaseCAM):
    """LayerCAM — Jiang et al. 2021, https://ieeexplore.ieee.org/document/9462463

    Positive gradients weight each position separately: ``map = ReLU(Σ_c ReLU(∂y/∂A_c) ⊙ A_c)``, which
    stays reliable on shallow layers.
    """

    def get_cam_image(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        weighted = grads.clamp_min(0) * activations
        return self.reduce_channels(weighted, eigen_smooth)
