"""Guided Grad-CAM: any CAM times guided backpropagation."""

from __future__ import annotations

from typing import Any

import torch

from pytorch_grad_cam.core import CAMWrapper
from pytorch_grad_cam.core.scaling import scale_cam_tensor
from pytorch_grad_cam.core.types import Targets
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.guided_backprop import guided_input_gradient


class GuidedGradCAM(CAMWrapper):
    """Guided Grad-CAM — Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", https://arxiv.org/abs/1610.02391 (Sec. 3.1)

    The base method's map ``L`` (Grad-CAM by default, upsampled) times guided backpropagation ``G = ∂y/∂x``
    through guided ReLUs (Springenberg et al. 2015, :class:`GuidedBackpropReLUModel`), reduced to one channel:
    ``map = norm(L ⊙ Σ_ch |G_ch|)`` (the magnitude divided by its maximum first, so that tiny gradients still
    give a full [0, 1] range). The signed, per-channel ``L ⊙ G`` of the paper is ``L[:, None] *
    cam.guided_gradients`` after a call (``guided_gradients``: ``(B, C, *spatial)`` float32 tensor), or the
    ready-to-save image ``cam_gb(grayscale_gradcam, guided_backprop)`` of :mod:`pytorch_grad_cam.guided_backprop`.

    Every ``nn.ReLU`` of the model is swapped for a guided one during the guided pass and put back after; the
    functional ReLUs its ``forward`` calls (``torch.relu``, ``F.relu``, ``x.relu()``) are guided too.

    Args:
        model: the network to explain.
        target_layers: the layers of the base method.
        reshape_transform: as for the base method.
        base_method: a CAM class (built with the arguments above and ``kwargs``) or a CAM object.
        **kwargs: further constructor arguments of ``base_method``.
    """

    default_base_method = GradCAM
    guided_gradients: torch.Tensor | None = None

    @property
    def requires_autograd(self) -> bool:
        return True  # the guided backward pass, whatever the wrapped method needs

    def explain(
        self, input_tensor: torch.Tensor, targets: Targets, *, aug_smooth: bool, eigen_smooth: bool, **options: Any
    ) -> torch.Tensor:
        cam = self.base_cam.compute(input_tensor, targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, **options)
        defaults = lambda outputs, batch: self.default_targets(outputs, batch, **options)  # noqa: E731
        self.guided_gradients = guided_input_gradient(self.model, input_tensor, targets, defaults).float()
        magnitude = self.guided_gradients.abs().sum(dim=1)
        peak = magnitude.flatten(1).max(dim=1).values.view((-1,) + (1,) * (magnitude.ndim - 1))
        return scale_cam_tensor(cam * magnitude / peak.clamp_min(torch.finfo(torch.float32).tiny))
