"""Eigen-Grad-CAM."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import LayerRecord
from pytorch_grad_cam.core.needs import GRADIENTS
from pytorch_grad_cam.eigen_cam import EigenCAM


class EigenGradCAM(EigenCAM):
    """Eigen-Grad-CAM — Eigen-CAM (https://arxiv.org/abs/2008.00299) on the gradient-weighted activations:
    ``map = ReLU(first principal component of ∂y/∂A ⊙ A)``; class-discriminative, unlike Eigen-CAM. The sign of
    the component is chosen by ``orientation`` as in :class:`~pytorch_grad_cam.EigenCAM` (default ``"norm"``:
    the map correlates positively with the norm of ``∂y/∂A ⊙ A`` per position; ``"energy"``: with
    ``Σ_c ∂y/∂A_c A_c``, HiResCAM's map; ``"raw"``: the reference's SVD sign).
    """

    needs = GRADIENTS

    def eigen_input(self, layer: LayerRecord) -> torch.Tensor:
        return layer.gradients * layer.activations
