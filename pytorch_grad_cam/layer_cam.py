"""LayerCAM."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord


class LayerCAM(BaseCAM):
    """LayerCAM — Jiang et al. 2021, https://ieeexplore.ieee.org/document/9462463

    Positive gradients weight each position separately: ``map = ReLU(Σ_c ReLU(∂y/∂A_c) ⊙ A_c)``, which
    stays reliable on shallow layers.
    """

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        return self.reduce_channels(layer.gradients.clamp_min(0) * layer.activations, eigen_smooth)
