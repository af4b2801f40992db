"""Grad-CAM element-wise."""

from __future__ import annotations

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, Target


class GradCAMElementWise(BaseCAM):
    """Element-wise Grad-CAM — a HiResCAM variant that applies the ReLU before the channel sum
    (https://arxiv.org/abs/2011.08891 for the element-wise product).

    ``map = ReLU(Σ_c ReLU(∂y/∂A_c ⊙ A_c))``.
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
        elementwise = (grads * activations).clamp_min(0)
        return self.reduce_channels(elementwise, eigen_smooth)
