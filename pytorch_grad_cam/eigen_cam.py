"""Eigen-CAM."""

from __future__ import annotations

from typing import Any

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord
from pytorch_grad_cam.core.checks import check_bool
from pytorch_grad_cam.core.needs import CLASS_AGNOSTIC
from pytorch_grad_cam.core.projection import project_on_first_component


class EigenCAM(BaseCAM):
    """Eigen-CAM — Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299

    The first principal component of the activations, class-agnostic and gradient-free:
    ``map = ReLU(X v1)`` with ``X`` the centred (positions × channels) activations and ``v1`` its top right
    singular vector. The SVD's sign is arbitrary; the keyword ``sign_correction=True`` makes the
    larger-magnitude lobe positive (Seg-Eigen-CAM, Eq. 13) so the map follows the object. The default
    (:attr:`default_sign_correction`, ``False``) matches the reference release.
    """

    needs = CLASS_AGNOSTIC
    #: ``sign_correction`` when it is not given.
    default_sign_correction = False

    def __init__(self, *args: Any, sign_correction: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        chosen = self.default_sign_correction if sign_correction is None else sign_correction
        self.sign_correction = check_bool(chosen, "sign_correction")

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        return project_on_first_component(self.eigen_input(layer), self.sign_correction)

    def eigen_input(self, layer: LayerRecord) -> torch.Tensor:
        """What the SVD decomposes: the activations themselves."""
        return layer.activations
