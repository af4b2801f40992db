"""Seg-Eigen-CAM."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core import LayerRecord
from pytorch_grad_cam.core.needs import GRADIENTS
from pytorch_grad_cam.core.types import Reshape, TargetLayers
from pytorch_grad_cam.eigen_cam import EigenCAM


class SegEigenCAM(EigenCAM):
    """Seg-Eigen-CAM — Chung & Ying 2025, Appl. Sci. 15(13) 7562, https://doi.org/10.3390/app15137562

    Eigen-CAM for segmentation models: the first principal component of ``|∂y/∂A| ⊙ A`` (Eq. 10, gradient
    magnitudes keep pixel-wise importance of both signs) with the sign corrected so that the
    larger-magnitude lobe is positive (Eq. 13).
    """

    needs = GRADIENTS

    def __init__(
        self,
        model: nn.Module,
        target_layers: TargetLayers,
        reshape_transform: Reshape = None,
        sign_correction: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, target_layers, reshape_transform, sign_correction, **kwargs)

    def eigen_input(self, layer: LayerRecord) -> torch.Tensor:
        return layer.gradients.abs() * layer.activations
