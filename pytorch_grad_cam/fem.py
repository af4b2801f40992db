"""FEM, the Feature Explanation Method."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, LayerRecord
from pytorch_grad_cam.core.needs import CLASS_AGNOSTIC
from pytorch_grad_cam.core.types import Layers, Reshape


class FEM(BaseCAM):
    """FEM — Fuad et al. 2020, "Features understanding in 3D CNNs for actions recognition in video",
    IPTA 2020, https://hal.science/hal-02963298/document

    Gradient-free: a channel's weight is the fraction of its positions above the k-sigma threshold
    ``mean_c + k · std_c``;  ``map = ReLU(Σ_c w_c A_c)``.
    """

    needs = CLASS_AGNOSTIC

    def __init__(
        self,
        model: nn.Module,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        k: float = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.k = k

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        activations, spatial = layer.activations, layer.spatial_axes
        mean = activations.mean(dim=spatial, keepdim=True)
        std = activations.std(dim=spatial, keepdim=True, unbiased=False)
        weights = (activations > mean + self.k * std).float().mean(dim=spatial, keepdim=True)
        return (weights * activations).sum(dim=1)
