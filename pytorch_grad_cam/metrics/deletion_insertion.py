"""Deletion and insertion AUC (Petsiuk et al. 2018, RISE, https://arxiv.org/abs/1806.07421).

Pixels are ranked by decreasing saliency (ties in row-major order). At step ``k = 0 … n`` the first
``⌊k N / n⌋`` of the ``N`` pixels are

* **deleted**: replaced by a baseline (a constant, default 0; or a blurred copy of the image), starting from
  the image — a good map makes the score fall fast, *lower* AUC is better;
* **inserted**: copied from the image into the baseline (default: the image blurred with a Gaussian of size 11,
  σ = 5, as in RISE), starting from the baseline — a good map makes the score rise fast, *higher* AUC is better.

The curve ``p_k`` is the target's score on the softmax of the output (the class probability for a
``ClassifierOutputTarget``), or the raw target score with ``score="raw"``; the AUC is its trapezoid over
``x_k = k / n``:

    AUC = (1/n) [p_0 / 2 + p_1 + … + p_{n-1} + p_n / 2]

All ``B (n + 1)`` images are built on the model's device and evaluated in chunks of ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pytorch_grad_cam.core.checks import check_choice, check_positive_int, check_real, describe
from pytorch_grad_cam.core.filters import gaussian_blur
from pytorch_grad_cam.core.model import eval_mode
from pytorch_grad_cam.core.targets import Target
from pytorch_grad_cam.core.types import Maps, Targets
from pytorch_grad_cam.metrics.perturbation_confidence import check_metric_call, score_batches

__all__ = ["DeletionAUC", "InsertionAUC", "auc", "gaussian_blur"]


def auc(curves: np.ndarray | torch.Tensor) -> np.ndarray:
    """The trapezoid area under ``(B, n + 1)`` curves sampled at ``x = 0, 1/n, …, 1``."""
    curves = torch.as_tensor(curves, dtype=torch.float64)
    if curves.ndim != 2 or curves.shape[1] < 2:
        raise ValueError(f"curves must have shape (B, n + 1) with n >= 1; got {tuple(curves.shape)}")
    return torch.trapezoid(curves, dx=1 / (curves.shape[1] - 1), dim=1).cpu().numpy()


def _softmax(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.float().softmax(dim=-1)
    if isinstance(outputs, Mapping) and "logits" in outputs:
        return {**outputs, "logits": outputs["logits"].float().softmax(dim=-1)}
    raise TypeError(
        f"score='softmax' needs a tensor of class scores (or a mapping with 'logits') from the model; got "
        f"{describe(outputs)}; use score='raw'"
    )


class _PixelOrderMetric:
    """Shared machinery of :class:`DeletionAUC` and :class:`InsertionAUC`."""

    inserts: bool = False
    default_baseline: float | str = 0.0

    def __init__(
        self,
        n_steps: int = 50,
        baseline: float | str | torch.Tensor | None = None,
        *,
        score: str = "softmax",
        batch_size: int | None = 64,
        blur_kernel_size: int = 11,
        blur_sigma: float = 5.0,
    ) -> None:
        self.n_steps = check_positive_int(n_steps, "n_steps")
        baseline = self.default_baseline if baseline is None else baseline
        if isinstance(baseline, str):
            if baseline != "blur":
                raise ValueError(f"baseline must be a number, a tensor or 'blur'; got {baseline!r}")
        elif not isinstance(baseline, torch.Tensor):
            check_real(baseline, "baseline")
        self.baseline = baseline
        self.score = check_choice(score, "score", ("softmax", "raw"))
        self.batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)
        self.blur_kernel_size = blur_kernel_size
        self.blur_sigma = blur_sigma
        if isinstance(baseline, str):  # validate the blur parameters now
            gaussian_blur(torch.zeros(1, 1, 1, 1), blur_kernel_size, blur_sigma)

    def baseline_images(self, inputs: torch.Tensor) -> torch.Tensor:
        """The fully deleted images ``(B, C, H, W)``: the constant, the given tensor, or the blurred images."""
        if isinstance(self.baseline, str):
            return gaussian_blur(inputs, self.blur_kernel_size, self.blur_sigma)
        value = torch.as_tensor(self.baseline, device=inputs.device, dtype=inputs.dtype)
        try:
            return torch.broadcast_to(value, inputs.shape)
        except RuntimeError:
            raise ValueError(
                f"baseline must broadcast to input_tensor's shape {tuple(inputs.shape)}; got {tuple(value.shape)}"
            ) from None

    def __call__(
        self, input_tensor: Tensor, cams: Maps, targets: Targets, model: nn.Module, return_curves: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The AUC of each image.

        Args:
            input_tensor: ``(B, C, H, W)`` images as the model takes them (never modified).
            cams: ``(B, H, W)`` saliency maps (numpy or torch).
            targets: one callable per image; ``None`` takes the top class of each image.
            model: the classifier; in eval mode during the call, its flags restored afterwards.
            return_curves: also return the ``(B, n_steps + 1)`` score curves.

        Returns:
            ``np.float32`` AUCs ``(B,)`` (and the ``np.float32`` curves).
        """
        inputs, cam_tensor, checked, model = check_metric_call(input_tensor, cams, targets, model, (4,))
        transform = _softmax if self.score == "softmax" else None
        with eval_mode(model):
            if checked is None:
                _, checked = score_batches(model, inputs, None, self.batch_size)
            curves = self._curves(inputs, cam_tensor, checked, model, transform)
        result = auc(curves).astype(np.float32)
        if return_curves:
            return result, curves.cpu().numpy().astype(np.float32)
        return result

    def _curves(
        self, inputs: torch.Tensor, cams: torch.Tensor, targets: list[Target], model: nn.Module, transform: Any
    ) -> torch.Tensor:
        batch, steps = inputs.shape[0], self.n_steps + 1
        pixels = cams[0].numel()
        order = torch.argsort(cams.reshape(batch, -1), dim=1, descending=True, stable=True)
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(pixels, device=order.device).expand(batch, -1))
        counts = torch.arange(steps, device=inputs.device) * pixels // self.n_steps
        baseline = self.baseline_images(inputs)
        source, start = (inputs, baseline) if self.inserts else (baseline, inputs)
        chunk = steps * batch if self.batch_size is None else self.batch_size
        scores = []
        for first in range(0, batch * steps, chunk):
            index = torch.arange(first, min(first + chunk, batch * steps), device=inputs.device)
            image, step = index // steps, index % steps
            changed = (ranks[image] < counts[step][:, None]).reshape(-1, 1, *inputs.shape[2:])
            perturbed = torch.where(changed, source[image], start[image])
            chunk_targets = [targets[i] for i in image.tolist()]
            scores.append(score_batches(model, perturbed, chunk_targets, None, transform)[0])
        return torch.cat(scores).reshape(batch, steps)


class DeletionAUC(_PixelOrderMetric):
    """Deletion AUC: the target's probability as the most salient pixels are deleted first (lower is better).

    Args:
        n_steps: number of deletion steps (the curve has ``n_steps + 1`` points).
        baseline: what a deleted pixel becomes: a number (default 0, the dataset mean of a normalised image),
            a tensor broadcastable to the input, or ``'blur'`` (the image blurred).
        score: ``'softmax'`` (the target applied to the softmax of the output) or ``'raw'``.
        batch_size: images per forward pass (``None``: all ``B (n_steps + 1)`` at once).
        blur_kernel_size: Gaussian size for ``baseline='blur'``.
        blur_sigma: Gaussian σ for ``baseline='blur'``.
    """

    inserts = False
    default_baseline = 0.0


class InsertionAUC(_PixelOrderMetric):
    """Insertion AUC: the target's probability as the most salient pixels are inserted first (higher is better).

    Args:
        n_steps: number of insertion steps (the curve has ``n_steps + 1`` points).
        baseline: the starting image: ``'blur'`` (default, the image blurred as in RISE), a number, or a tensor
            broadcastable to the input.
        score: ``'softmax'`` (the target applied to the softmax of the output) or ``'raw'``.
        batch_size: images per forward pass (``None``: all ``B (n_steps + 1)`` at once).
        blur_kernel_size: Gaussian size for ``baseline='blur'``.
        blur_sigma: Gaussian σ for ``baseline='blur'``.
    """

    inserts = True
    default_baseline = "blur"
