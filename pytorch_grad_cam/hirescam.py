"""HiResCAM."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, Target


class HiResCAM(BaseCAM):
    """HiResCAM — Draelos & Carin 2020, https://arxiv.org/abs/2011.08891

    ``map = ReLU(Σ_c ∂y/∂A_c ⊙ A_c)``: the element-wise product keeps where each gradient acts, so the map
    provably reflects the locations the model used (unlike Grad-CAM's spatial average).
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
        elementwise = grads * activations
        if eigen_smooth:
            warnings.warn(
                "HiResCAM's faithfulness guarantee does not hold when eigen_smooth is applied", stacklevel=2
            )
        return self.reduce_channels(elementwise, eigen_smooth)
