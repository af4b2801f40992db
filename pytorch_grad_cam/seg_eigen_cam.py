"""Seg-Eigen-CAM."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import LayerRecord
from pytorch_grad_cam.core.needs import GRADIENTS
from pytorch_grad_cam.eigen_cam import EigenCAM


class SegEigenCAM(EigenCAM):
    """Seg-Eigen-CAM — Chung & Ying 2025, Appl. Sci. 15(13) 7562, https://doi.org/10.3390/app15137562

    Eigen-CAM for segmentation models: the first principal component of ``|∂y/∂A| ⊙ A`` (Eq. 10, gradient
    magnitudes keep pixel-wise importance of both signs) with the sign corrected so that the
    larger-magnitude lobe is positive (Eq. 13): ``orientation="lobe"`` by default (``"norm"``, ``"energy"`` and
    ``"raw"`` as in :class:`~pytorch_grad_cam.EigenCAM`).
    """

    needs = GRADIENTS
    default_orientation = "lobe"

    def eigen_input(self, layer: LayerRecord) -> torch.Tensor:
        return layer.gradients.abs() * layer.activations
