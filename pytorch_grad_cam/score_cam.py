"""Score-CAM."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pytorch_grad_cam.core import LayerRecord
from pytorch_grad_cam.core.outputs import check_finite_scores, output_rows, row_scores
from pytorch_grad_cam.core.perturbation import PerturbationCAM, progress_bar
from pytorch_grad_cam.core.scaling import min_max_scale

#: ``vary(masks, sample)``: the ``sample``-th variant of a batch of masks ``(k, *spatial)``; ``sample`` is a
#: ``(k,)`` long tensor of variant indices in ``[0, num_samples)``.
MaskVariant = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ScoreCAM(PerturbationCAM):
    """Score-CAM — Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks", https://arxiv.org/abs/1910.01279

    Gradient-free. Each channel ``A_c``, upsampled to the input size and min-max normalised to
    ``M_c = (up(A_c) - min) / (max - min + 1e-8)``, masks the input; the target score of the masked input
    ``s_c = y(x ⊙ M_c)`` gives the weight ``w_c = softmax_c(s_c)``;  ``map = ReLU(Σ_c w_c A_c)``.

    The masked inputs are built and evaluated ``batch_size`` at a time on the model's device under
    ``torch.no_grad()`` (at most one batch of them exists at any time), without hooks; not under inference mode,
    whose tensors a model may cache for a later gradient call (YOLO caches its anchors per input shape).

    Args:
        model: the network to explain.
        target_layers: the layers whose channels give the masks.
        reshape_transform: see :class:`BaseCAM`.
        batch_size: masked inputs per forward pass (keyword; also settable as ``cam.batch_size``); 16.
        progress: show a tqdm progress bar over the batches (keyword).
        **kwargs: passed to :class:`BaseCAM`.
    """

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        return torch.softmax(self.mask_scores(layer), dim=-1)

    def mask_scores(self, layer: LayerRecord, num_samples: int = 1, vary: MaskVariant | None = None) -> torch.Tensor:
        """``s[b, c] = (1/n) Σ_i y_b(x_b ⊙ vary_i(M_c))``: the target scores of the inputs masked by each channel's
        mask ``M_c`` (upsampled activation, min-max normalised) or by ``n`` variants of it (SS-CAM, IS-CAM).

        The ``B · C · n`` masked inputs of the whole batch are built and evaluated ``batch_size`` at a time (a
        forward pass can hold copies of several images) under ``torch.no_grad()``, without hooks and without
        waiting for the device between passes.

        Returns:
            float32 ``(B, C)`` on the activations' device.
        """
        input_tensor, targets, activations = layer.input_tensor, layer.targets, layer.activations
        images, channels = activations.shape[:2]
        spatial = input_tensor.shape[2:]
        # as the reference: bilinear with aligned corners in 2-D, trilinear (corners not aligned) in 3-D
        mode, align = ("bilinear", True) if len(spatial) == 2 else ("trilinear", False)
        step = self.batch_size
        pairs = channels * num_samples  # masked inputs per image
        total = images * pairs
        device = activations.device
        scores = torch.zeros(images * channels, device=device)
        with torch.no_grad(), progress_bar(-(-total // step), self.progress, type(self).__name__) as bar:
            for start in range(0, total, step):
                stop = min(start + step, total)
                flat = torch.arange(start, stop, device=device)
                image, pair = flat // pairs, flat % pairs
                channel, sample = pair // num_samples, pair % num_samples
                chunk = activations[image, channel][:, None]
                masks = min_max_scale(
                    F.interpolate(chunk, size=spatial, mode=mode, align_corners=align)[:, 0], eps=1e-8
                )
                if vary is not None:
                    masks = vary(masks, sample)
                masked = input_tensor[image] * masks[:, None].to(input_tensor.dtype)
                outputs = self.model(masked)
                for first in range(start // pairs, (stop - 1) // pairs + 1):  # the images this pass holds copies of
                    rows = slice(max(start, first * pairs) - start, min(stop, (first + 1) * pairs) - start)
                    count = rows.stop - rows.start
                    part = outputs if count == stop - start else output_rows(outputs, rows, stop - start)
                    scored = row_scores(targets[first], part, count, check=False)
                    scores.index_add_(0, (image * channels + channel)[rows], scored)
                bar.update()
        scores = scores.view(images, channels)
        check_finite_scores(scores, targets)
        return scores.clone() / num_samples
