"""HiResCAM."""

from __future__ import annotations

import warnings

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord


class HiResCAM(BaseCAM):
    """HiResCAM — Draelos & Carin 2020, https://arxiv.org/abs/2011.08891

    ``map = ReLU(Σ_c ∂y/∂A_c ⊙ A_c)``: the element-wise product keeps where each gradient acts, so the map
    provably reflects the locations the model used (unlike Grad-CAM's spatial average).
    """

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        if eigen_smooth:
            warnings.warn("HiResCAM's faithfulness guarantee does not hold when eigen_smooth is applied", stacklevel=2)
        return self.reduce_channels(layer.gradients * layer.activations, eigen_smooth)
