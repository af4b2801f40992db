"""RefineCAM."""

from __future__ import annotations

from typing import Any

import torch

from pytorch_grad_cam.core import CAMWrapper
from pytorch_grad_cam.core.combine import product_of_scaled
from pytorch_grad_cam.core.types import Targets
from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus


class RefineCAM(CAMWrapper):
    """RefineCAM — hierarchical refinement of a CAM across layers, https://arxiv.org/abs/2605.14641

    The base method's map of every target layer is computed (one forward and one backward for all of
    them), each is scaled to [0, 1], and the maps are multiplied
    (:func:`~pytorch_grad_cam.core.combine.product_of_scaled`):

    ``map = scale(Π_l scale(ReLU(map_l)))``

    A location stays bright only where every layer agrees, so the coarse deep layers denoise the sharp but
    noisy early ones. Equal to the reference, which runs the base method once per layer.

    ``cam(input_tensor, targets, eigen_smooth, aug_smooth)`` takes its options in the reference's order.

    Args:
        model: the network to explain.
        target_layers: the layers whose maps are multiplied (typically from deep to early).
        reshape_transform: as for the base method.
        base_method: the CAM giving the per-layer maps: a CAM class (built with the arguments above and
            ``kwargs``; any method of the library, a wrapper such as :class:`GuidedGradCAM` included) or a CAM
            object (then the other arguments are left out).
        **kwargs: further constructor arguments of ``base_method`` (e.g. ``compute_input_gradient``).
    """

    call_flags = ("eigen_smooth", "aug_smooth")
    default_base_method = GradCAMPlusPlus
    base_layer_combiner = staticmethod(product_of_scaled)

    def explain(
        self, input_tensor: torch.Tensor, targets: Targets, *, aug_smooth: bool, eigen_smooth: bool, **options: Any
    ) -> torch.Tensor:
        return self.base_cam.compute(input_tensor, targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, **options)
