"""Eigen-CAM."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord
from pytorch_grad_cam.core.needs import CLASS_AGNOSTIC
from pytorch_grad_cam.core.projection import Orientation, project_on_first_component, resolve_orientation


class EigenCAM(BaseCAM):
    """Eigen-CAM — Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299

    The first principal component of the activations, class-agnostic and gradient-free:
    ``map = ReLU(X v1)`` with ``X`` the centred (positions × channels) activations and ``v1`` its top right
    singular vector.

    The SVD's sign of ``v1`` is arbitrary (torch and numpy disagree on some layers). The keyword
    ``orientation`` fixes it (:func:`~pytorch_grad_cam.core.projection.orient`):

    * ``"norm"`` (the default, :attr:`default_orientation`): ``X v1`` correlates positively with the activations'
      norm per position ``‖A_n‖₂`` (the component points where the activations are large);
    * ``"energy"``: ``X v1`` correlates positively with the channel sum ``Σ_c A_c``, i.e. ``v1``'s loadings sum
      to a positive number;
    * ``"lobe"``: the larger-magnitude lobe is positive (Seg-Eigen-CAM, Eq. 13);
    * ``"raw"``: the SVD's own sign, as the reference release (grad-cam 1.5.7).

    ``sign_correction=True`` / ``False`` (the keyword before ``orientation``) still work and mean ``"lobe"`` /
    ``"raw"``; give one of the two keywords, not both.
    """

    needs = CLASS_AGNOSTIC
    #: The former class-level default: when a subclass sets it to a bool, it replaces :attr:`default_orientation`
    #: (``True`` → ``"lobe"``, ``False`` → ``"raw"``).
    default_sign_correction: ClassVar[bool | None] = None

    def __init__(
        self, *args: Any, orientation: Orientation | None = None, sign_correction: bool | None = None, **kwargs: Any
    ) -> None:
        default = self.default_orientation
        if self.default_sign_correction is not None:
            default = "lobe" if self.default_sign_correction else "raw"
        super().__init__(*args, orientation=resolve_orientation(orientation, sign_correction, default), **kwargs)

    @property
    def sign_correction(self) -> bool:
        """Whether the larger-magnitude lobe is made positive (``orientation == "lobe"``; former keyword)."""
        return self.orientation == "lobe"

    @sign_correction.setter
    def sign_correction(self, value: bool) -> None:
        self.orientation = resolve_orientation(None, value, self.orientation)

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        return project_on_first_component(self.eigen_input(layer), orientation=self.orientation)

    def eigen_input(self, layer: LayerRecord) -> torch.Tensor:
        """What the SVD decomposes: the activations themselves."""
        return layer.activations
