"""Score-CAM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam.base_cam import BaseCAM, Target
from pytorch_grad_cam.utils.perturbation import BatchSize, progress_bar, target_scores


class ScoreCAM(BaseCAM):
    """Score-CAM — Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks", https://arxiv.org/abs/1910.01279

    Gradient-free. Each channel ``A_c``, upsampled to the input size and min-max normalised to
    ``M_c = (up(A_c) - min) / (max - min + 1e-8)``, masks the input; the target score of the masked input
    ``s_c = y(x ⊙ M_c)`` gives the weight ``w_c = softmax_c(s_c)``;  ``map = ReLU(Σ_c w_c A_c)``.

    The masked inputs are built and evaluated ``batch_size`` at a time on the model's device under
    ``torch.inference_mode()`` (at most one batch of them exists at any time), without hooks.

    Args:
        model: the network to explain.
        target_layers: the layers whose channels give the masks.
        reshape_transform: see :class:`BaseCAM`.
        batch_size: masked inputs per forward pass (also settable as ``cam.batch_size``).
        progress: show a tqdm progress bar over the batches.
        **kwargs: passed to :class:`BaseCAM`.
    """

    uses_gradients = False
    batch_size = BatchSize()

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        batch_size: int = 16,
        progress: bool = True,
        **kwargs: Any,
    ) -> None:
        self.batch_size = batch_size
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.progress = progress

    def get_cam_weights(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor | None,
    ) -> torch.Tensor:
        images, channels = activations.shape[:2]
        spatial = input_tensor.shape[2:]
        # as the reference: bilinear with aligned corners in 2-D, trilinear (corners not aligned) in 3-D
        mode, align = ("bilinear", True) if len(spatial) == 2 else ("trilinear", False)
        step = self.batch_size
        scores = torch.empty(images, channels, device=activations.device)
        batches = images * -(-channels // step)
        with torch.inference_mode(), progress_bar(batches, self.progress, "ScoreCAM") as bar:
            for image in range(images):
                for start in range(0, channels, step):
                    chunk = activations[image : image + 1, start : start + step]
                    masks = F.interpolate(chunk, size=spatial, mode=mode, align_corners=align)[0]
                    flat = masks.reshape(masks.shape[0], -1)
                    low = flat.min(dim=1).values
                    high = flat.max(dim=1).values
                    view = (-1,) + (1,) * len(spatial)
                    masks = (masks - low.view(view)) / (high - low + 1e-8).view(view)
                    masked = input_tensor[image : image + 1] * masks[:, None].to(input_tensor.dtype)
                    outputs = self.model(masked)
                    scores[image, start : start + step] = target_scores(targets[image], outputs, masks.shape[0])
                    bar.update()
        return torch.softmax(scores.clone(), dim=-1)
