"""Smooth Grad-CAM++."""

from __future__ import annotations

from typing import Any

import torch

from pytorch_grad_cam.core import ActivationsAndGradients, BaseCAM, LayerRecord
from pytorch_grad_cam.core.checks import check_bool, check_positive_int, check_real
from pytorch_grad_cam.core.needs import Needs
from pytorch_grad_cam.core.perturbation import BatchSize, noise_scale, progress_bar


class SmoothGradCAMPlusPlus(BaseCAM):
    """Smooth Grad-CAM++ — Omeiza et al. 2019, "Smooth Grad-CAM++: An Enhanced Inference Level Visualization
    Technique for Deep Convolutional Neural Network Models", https://arxiv.org/abs/1908.01224

    Grad-CAM++ with each power of the gradient averaged over ``n`` noisy copies of the input
    ``x + ε_i``, ``ε_i ~ N(0, σ²)``, ``σ = noise_level · (max x − min x)`` (SmoothGrad, Smilkov et al. 2017):
    ``D_p = (1/n) Σ_i (∂y/∂A (x + ε_i))^p`` for ``p = 1, 2, 3``;
    ``α = D_2 / (2 D_2 + Σ_ij A · D_3)`` (0 where ``D_2 = 0``), ``w_c = Σ_ij α · ReLU(D_1)``;
    ``map = ReLU(Σ_c w_c A_c)`` with the activations ``A`` of the clean input.
    With ``noise_level=0`` it is Grad-CAM++.

    Args:
        *args: ``model``, ``target_layers``, ``reshape_transform``, as :class:`BaseCAM`; the options are keywords.
        num_samples: number of noisy copies ``n`` of the batch.
        noise_level: the noise standard deviation as a fraction of each image's value range.
        progress: show a tqdm progress bar over the noisy copies.
        batch_size: images per forward and backward pass: the noisy copies of a batch of ``B`` images go
            ``max(1, batch_size // B)`` at a time (16: all 8 copies of one image in one pass, 2 copies of a batch
            of 8). The noise and the result are the same whatever it is; a larger one is faster on a CPU and
            holds more in memory.
        **kwargs: passed to :class:`BaseCAM`.
    """

    #: The clean pass gives the activations only; the noisy passes differentiate, each with its own recorder.
    needs = Needs(layer_gradients=False, autograd=True)

    batch_size = BatchSize()

    def __init__(
        self,
        *args: Any,
        num_samples: int = 8,
        noise_level: float = 0.15,
        progress: bool = True,
        batch_size: int = 16,
        **kwargs: Any,
    ) -> None:
        self.num_samples = check_positive_int(num_samples, "num_samples")
        self.noise_level = check_real(noise_level, "noise_level", 0.0)
        self.batch_size = batch_size
        super().__init__(*args, **kwargs)
        self.progress = check_bool(progress, "progress")

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        input_tensor, activations = layer.input_tensor, layer.activations
        recorder = ActivationsAndGradients(self.model, [layer.layer], self.reshape_transform, graph_from_layers=True)
        sigma = noise_scale(input_tensor, self.noise_level)
        moments = torch.zeros((3, *activations.shape), device=activations.device)
        powers = torch.arange(1, 4, device=activations.device).view((3,) + (1,) * activations.ndim)
        images = input_tensor.shape[0]
        per_pass = max(1, min(self.num_samples, self.batch_size // images))  # noisy copies of the batch per pass
        with progress_bar(self.num_samples, self.progress, type(self).__name__) as bar, torch.enable_grad():
            for start in range(0, self.num_samples, per_pass):
                copies = min(per_pass, self.num_samples - start)
                noise = [torch.randn_like(input_tensor) * sigma for _ in range(copies)]  # as one copy at a time
                outputs = recorder(torch.cat([input_tensor + each for each in noise]))
                (gradient,) = recorder.compute_gradients(self.target_score(list(layer.targets) * copies, outputs))
                gradient = gradient.float().unflatten(0, (copies, images))
                moments += gradient.unsqueeze(1).pow(powers).sum(dim=0)
                bar.update(copies)
        first, second, third = moments / self.num_samples
        spatial = layer.spatial_axes
        sum_activations = activations.sum(dim=spatial, keepdim=True)
        alpha = second / (2 * second + sum_activations * third + 1e-6)
        alpha = torch.where(second != 0, alpha, torch.zeros_like(alpha))
        return (alpha * first.clamp_min(0)).sum(dim=spatial)
