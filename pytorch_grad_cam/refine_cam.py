"""RefineCAM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.base_cam import BaseCAM, CAMWrapper, Target
from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus
from pytorch_grad_cam.utils.image import scale_cam_tensor


class RefineCAM(CAMWrapper):
    """RefineCAM — hierarchical refinement of a CAM across layers, https://arxiv.org/abs/2605.14641

    The base method's map of every target layer is computed (one forward and one backward for all of
    them), each is scaled to [0, 1], and the maps are multiplied:

    ``map = scale(Π_l scale(ReLU(map_l)))``

    A location stays bright only where every layer agrees, so the coarse deep layers denoise the sharp but
    noisy early ones. Equal to the reference, which runs the base method once per layer.

    Args:
        model: the network to explain.
        target_layers: the layers whose maps are multiplied (typically from deep to early).
        reshape_transform: as for the base method.
        base_method: the CAM class giving the per-layer maps (any :class:`BaseCAM` subclass).
        **kwargs: further constructor arguments of ``base_method`` (e.g. ``compute_input_gradient``).
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        base_method: type[BaseCAM] = GradCAMPlusPlus,
        **kwargs: Any,
    ) -> None:
        self.base_cam = self.build_base(base_method, model, target_layers, reshape_transform, **kwargs)
        # The base method does everything but combine the layers: the product replaces its mean.
        self.base_cam.aggregate_multi_layers = self.aggregate_multi_layers  # type: ignore[method-assign]

    @staticmethod
    def aggregate_multi_layers(cam_per_target_layer: list[torch.Tensor]) -> torch.Tensor:
        """The product of the per-layer maps ``(B, 1, *spatial)``, each scaled to [0, 1], scaled again."""
        per_layer = torch.stack([scale_cam_tensor(cam[:, 0].clamp_min(0)) for cam in cam_per_target_layer])
        return scale_cam_tensor(per_layer.prod(dim=0))


    def __call__(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        eigen_smooth: bool = False,
        aug_smooth: bool = False,
    ) -> np.ndarray:
        """The refined CAMs of a batch as ``np.float32`` ``(B, H, W)``, each in [0, 1].

        Args:
            input_tensor: ``(B, C, H, W)`` (or ``(B, C, D, H, W)``) input.
            targets: one target per image, or ``None`` for each image's top class.
            eigen_smooth: as for the base method.
            aug_smooth: average the refined maps over the base method's test-time augmentations.
        """
        return self.compute(input_tensor, targets, eigen_smooth, aug_smooth).detach().cpu().numpy()

    def forward(
        self, input_tensor: torch.Tensor, targets: Sequence[Target] | None = None, eigen_smooth: bool = False
    ) -> np.ndarray:
        """Reference name of :meth:`__call__`."""
        return self(input_tensor, targets, eigen_smooth)

    def compute(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        eigen_smooth: bool = False,
        aug_smooth: bool = False,
    ) -> torch.Tensor:
        """Same as calling the object, but returns a float32 tensor on the model's device."""
        return self.base_cam.compute(input_tensor, targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)

