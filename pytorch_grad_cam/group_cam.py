"""Group-CAM."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pytorch_grad_cam.core import LayerRecord
from pytorch_grad_cam.core.checks import check_positive_int, check_real
from pytorch_grad_cam.core.filters import gaussian_blur
from pytorch_grad_cam.core.needs import GRADIENTS
from pytorch_grad_cam.core.outputs import check_finite_scores, row_scores
from pytorch_grad_cam.core.perturbation import PerturbationCAM, progress_bar
from pytorch_grad_cam.core.scaling import min_max_scale


class GroupCAM(PerturbationCAM):
    """Group-CAM — Zhang et al. 2021, "Group-CAM: Group Score-Weighted Visual Explanations for Deep
    Convolutional Networks", https://arxiv.org/abs/2103.13859

    The Grad-CAM-weighted channels ``α_c A_c`` (``α_c`` = mean gradient) are split into ``G`` groups of
    consecutive channels; each group map ``S_g = ReLU(Σ_{c∈g} α_c A_c)`` is denoised (values below its
    ``percentile``-th percentile set to 0), upsampled and min-max normalised to a mask ``M_g``. Each mask keeps
    its part of the image and blurs the rest, ``x_g = x ⊙ M_g + blur(x) ⊙ (1 − M_g)``; the weight of the group
    is the score it restores, ``w_g = ReLU(y(x_g) − y(blur(x)))``;  ``map = ReLU(Σ_g w_g M_g)``.
    ``G + 1`` forward passes per image, ``batch_size`` at a time. 2-D inputs only.

    Args:
        *args: ``model``, ``target_layers``, ``reshape_transform``, as :class:`BaseCAM`.
        groups: (this and the other options are keywords) number of channel groups ``G`` (at most the number
            of channels; fewer channels give one group per channel).
        percentile: the denoising percentile in [0, 100) (the paper's θ = 70).
        blur_kernel_size: odd size of the Gaussian blur of the baseline image (paper: 51).
        blur_sigma: its standard deviation in pixels (paper: 50).
        **kwargs: ``batch_size`` (masked inputs per forward pass, 16), ``progress``, and :class:`BaseCAM`'s
            arguments.
    """

    input_ndims = (4,)
    needs = GRADIENTS

    def __init__(
        self,
        *args: Any,
        groups: int = 32,
        percentile: float = 70.0,
        blur_kernel_size: int = 51,
        blur_sigma: float = 50.0,
        **kwargs: Any,
    ) -> None:
        self.groups = check_positive_int(groups, "groups")
        self.percentile = check_real(percentile, "percentile", 0.0, 100.0, high_open=True)
        self.blur_kernel_size = check_positive_int(blur_kernel_size, "blur_kernel_size")
        if self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be odd; got {blur_kernel_size}")
        self.blur_sigma = check_real(blur_sigma, "blur_sigma", 0.0, low_open=True)
        super().__init__(*args, **kwargs)

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        input_tensor, targets, activations = layer.input_tensor, layer.targets, layer.activations
        images, channels = activations.shape[:2]
        weighted = layer.gradients.mean(dim=(2, 3), keepdim=True) * activations
        groups = torch.stack([part.sum(dim=1) for part in weighted.tensor_split(min(self.groups, channels), dim=1)], 1)
        groups = groups.clamp_min(0)
        threshold = torch.quantile(groups.flatten(2), self.percentile / 100, dim=2)[..., None, None]
        groups = torch.where(groups >= threshold, groups, torch.zeros_like(groups))
        masks = F.interpolate(groups, size=input_tensor.shape[2:], mode="bilinear", align_corners=False)
        masks = min_max_scale(masks, eps=1e-8, start_dim=2)

        count = masks.shape[1]
        step = self.batch_size
        gains = torch.empty(images, count, device=activations.device)
        with torch.no_grad(), progress_bar(images * -(-count // step), self.progress, "GroupCAM") as bar:
            blurred = gaussian_blur(input_tensor, self.blur_kernel_size, self.blur_sigma)
            for image in range(images):
                base = row_scores(targets[image], self.model(blurred[image : image + 1]), 1, check=False)
                for start in range(0, count, step):
                    mask = masks[image, start : start + step, None].to(input_tensor.dtype)
                    mixed = input_tensor[image : image + 1] * mask + blurred[image : image + 1] * (1 - mask)
                    scores = row_scores(targets[image], self.model(mixed), mask.shape[0], check=False)
                    gains[image, start : start + step] = (scores - base).clamp_min(0)
                    bar.update()
        check_finite_scores(gains, targets)
        return (gains.clone()[..., None, None] * masks).sum(dim=1)
