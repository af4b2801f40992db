"""Guided Grad-CAM as one CAM object."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pytorch_grad_cam.base_cam import Target, eval_mode
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
from pytorch_grad_cam.utils.image import scale_cam_tensor


class GuidedGradCAM(GradCAM):
    """Guided Grad-CAM — Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", https://arxiv.org/abs/1610.02391 (Sec. 3.1)

    The Grad-CAM map ``L`` (upsampled) times guided backpropagation ``G = ∂y/∂x`` through guided ReLUs
    (Springenberg et al. 2015, :class:`GuidedBackpropReLUModel`), reduced to one channel:
    ``map = norm(L ⊙ Σ_ch |G_ch|)`` (the magnitude divided by its maximum first, so that tiny
    gradients still give a full [0, 1] range). The signed, per-channel ``L ⊙ G`` of the paper is ``L[:, None] *
    cam.guided_gradients`` after a call (``guided_gradients``: ``(B, C, *spatial)`` float32 tensor), or the
    ready-to-save image ``cam_gb(grayscale_gradcam, guided_backprop)`` of :mod:`pytorch_grad_cam.guided_backprop`.

    Every ``nn.ReLU`` of the model is swapped for a guided one during the guided pass and put back after.
    Arguments as :class:`BaseCAM`.
    """

    guided_gradients: torch.Tensor | None = None

    def compute(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        grad_cam = super().compute(input_tensor, targets, aug_smooth, eigen_smooth)
        clean = self._prepare_input(input_tensor).detach().requires_grad_(True)
        checked = self._check_targets(targets, clean.shape[0])
        guided = GuidedBackpropReLUModel(self.model)
        with eval_mode(self.model), guided._guided_relus(), torch.enable_grad():
            outputs = self.model(clean)
            if checked is None:
                checked = self._default_targets(outputs, clean.shape[0])
            (gradient,) = torch.autograd.grad(self._target_score(checked, outputs), clean)
        self.guided_gradients = gradient.detach().float()
        magnitude = self.guided_gradients.abs().sum(dim=1)
        peak = magnitude.flatten(1).max(dim=1).values.view((-1,) + (1,) * (magnitude.ndim - 1))
        return scale_cam_tensor(grad_cam * magnitude / peak.clamp_min(torch.finfo(torch.float32).tiny))
