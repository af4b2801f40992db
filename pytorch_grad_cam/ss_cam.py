"""SS-CAM (smoothed Score-CAM), and the averaged mask scores it shares with IS-CAM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam.base_cam import Target
from pytorch_grad_cam.score_cam import ScoreCAM
from pytorch_grad_cam.smooth_grad_cam_plusplus import check_noise_level
from pytorch_grad_cam.utils.perturbation import check_batch_size, progress_bar, target_scores

#: ``vary(masks, sample)``: the ``sample``-th variant of a batch of masks ``(k, *spatial)``; ``sample`` is a
#: ``(k,)`` long tensor of variant indices in ``[0, num_samples)``.
MaskVariant = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def averaged_mask_scores(
    cam: ScoreCAM,
    input_tensor: torch.Tensor,
    targets: list[Target],
    activations: torch.Tensor,
    num_samples: int,
    vary: MaskVariant,
) -> torch.Tensor:
    """``s̄[b, c] = (1/n) Σ_i y_b(x_b ⊙ vary_i(M_c))``: the target scores of the inputs masked by ``n`` variants
    of each channel's Score-CAM mask ``M_c`` (upsampled activation, min-max normalised), averaged.

    The ``C · n`` masked inputs of an image are evaluated ``cam.batch_size`` at a time under
    ``torch.inference_mode()``, with a progress bar when ``cam.progress`` is true.

    Returns:
        float32 ``(B, C)`` on the activations' device.
    """
    images, channels = activations.shape[:2]
    spatial = input_tensor.shape[2:]
    # Score-CAM's masks: bilinear with aligned corners in 2-D, trilinear (corners not aligned) in 3-D
    mode, align = ("bilinear", True) if len(spatial) == 2 else ("trilinear", False)
    view = (-1,) + (1,) * len(spatial)
    step = cam.batch_size
    pairs = channels * num_samples
    scores = torch.zeros(images, channels, device=activations.device)
    with torch.inference_mode(), progress_bar(images * -(-pairs // step), cam.progress, type(cam).__name__) as bar:
        for image in range(images):
            for start in range(0, pairs, step):
                pair = torch.arange(start, min(start + step, pairs), device=activations.device)
                channel, sample = pair // num_samples, pair % num_samples
                chunk = activations[image, channel][None]
                masks = F.interpolate(chunk, size=spatial, mode=mode, align_corners=align)[0]
                flat = masks.reshape(masks.shape[0], -1)
                low, high = flat.min(dim=1).values, flat.max(dim=1).values
                masks = (masks - low.view(view)) / (high - low + 1e-8).view(view)
                masked = input_tensor[image : image + 1] * vary(masks, sample)[:, None].to(input_tensor.dtype)
                outputs = cam.model(masked)
                scores[image].index_add_(0, channel, target_scores(targets[image], outputs, masks.shape[0]))
                bar.update()
    return scores.clone() / num_samples


class SSCAM(ScoreCAM):
    """SS-CAM — Wang et al. 2020, "SS-CAM: Smoothed Score-CAM for Sharper Visual Feature Localization",
    https://arxiv.org/abs/2006.14255

    Score-CAM with each channel's mask smoothed by Gaussian noise: with the Score-CAM mask
    ``M_c = norm(up(A_c))`` and ``ε_i ~ N(0, std²)`` per pixel,
    ``w_c = softmax_c((1/n) Σ_i y(x ⊙ (M_c + ε_i)))``;  ``map = ReLU(Σ_c w_c A_c)``.
    With ``std=0`` it is Score-CAM. Costs ``n`` times Score-CAM's forward passes.

    Args:
        model: the network to explain.
        target_layers: the layers whose channels give the masks.
        reshape_transform: see :class:`BaseCAM`.
        num_samples: noisy copies ``n`` of every mask.
        std: standard deviation of the noise added to the masks (which lie in [0, 1]).
        **kwargs: passed to :class:`ScoreCAM` (``batch_size``, ``progress``) and :class:`BaseCAM`.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        num_samples: int = 35,
        std: float = 2.0,
        **kwargs: Any,
    ) -> None:
        self.num_samples = check_batch_size(num_samples, "num_samples")
        self.std = check_noise_level(std, "std")
        super().__init__(model, target_layers, reshape_transform, **kwargs)

    def get_cam_weights(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor | None,
    ) -> torch.Tensor:
        def noisy(masks: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
            return masks + self.std * torch.randn_like(masks)

        return torch.softmax(
            averaged_mask_scores(self, input_tensor, targets, activations, self.num_samples, noisy), dim=-1
        )
