"""KPCA-CAM."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, LayerRecord
from pytorch_grad_cam.core.needs import CLASS_AGNOSTIC
from pytorch_grad_cam.core.projection import orient
from pytorch_grad_cam.core.types import Layers, Reshape
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_kernel


class KPCA_CAM(BaseCAM):
    """KPCA-CAM — Karmani et al. 2024, https://arxiv.org/abs/2410.00267

    Eigen-CAM with kernel PCA: ``map = ReLU(first kernel principal component of the centred activations)``,
    with scikit-learn's ``KernelPCA(kernel, gamma)``; gradient-free and class-agnostic. The component's sign is
    chosen by the keyword ``orientation`` (see :class:`~pytorch_grad_cam.EigenCAM`): ``"norm"`` (default) makes
    the map correlate positively with the activations' norm per position, ``"energy"`` with their channel sum,
    ``"lobe"`` makes its larger-magnitude
    lobe positive, ``"raw"`` keeps scikit-learn's sign (the reference release).
    """

    needs = CLASS_AGNOSTIC

    def __init__(
        self,
        model: nn.Module,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        kernel: str = "sigmoid",
        gamma: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.kernel = kernel
        self.gamma = gamma

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        projection = get_2d_projection_kernel(layer.activations, self.kernel, self.gamma)
        return orient(projection, layer.activations, self.orientation)
