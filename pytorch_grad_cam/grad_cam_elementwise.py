"""Grad-CAM element-wise."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord


class GradCAMElementWise(BaseCAM):
    """Element-wise Grad-CAM — a HiResCAM variant that applies the ReLU before the channel sum
    (https://arxiv.org/abs/2011.08891 for the element-wise product).

    ``map = ReLU(Σ_c ReLU(∂y/∂A_c ⊙ A_c))``.
    """

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        return self.reduce_channels((layer.gradients * layer.activations).clamp_min(0), eigen_smooth)
