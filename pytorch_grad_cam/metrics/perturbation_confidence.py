"""Perturbation-confidence metrics: how the target score changes when the input is perturbed by the CAM.

A metric perturbs every image of a batch according to its CAM (multiply by the map, remove the most or the
least relevant pixels, ...), runs the model on the perturbed batch and reports

    metric_i = target_i(model(perturb(x_i, cam_i))) - target_i(model(x_i))

(or the perturbed score alone with ``return_diff=False``). The perturbed batch is evaluated in one forward pass
(or in chunks of ``batch_size``) on the model's device, under ``torch.no_grad()``, with the model in eval mode
for the duration of the call (every module's ``training`` flag is restored afterwards).

This module also holds the pieces the other metrics share: the maps' validation (``as_tensor``,
:func:`check_cams`; the scalar checks are :mod:`pytorch_grad_cam.core.checks`), scoring of a batch with its
targets (:func:`score_batches`), and the percentile perturbations :class:`RemoveMostRelevantFirst` /
:class:`RemoveLeastRelevantFirst` that ROAD (Rong et al. 2022, https://arxiv.org/abs/2202.00449) is built on.

Differences from the reference release (numbers are otherwise identical): the model is in eval mode during
a call (the reference relied on the CAM constructor having left it so); ``targets=None`` scores the top class;
the averaged metrics and ``ROADCombined`` compute the unperturbed scores once; ``percentile='auto'`` (Otsu)
imputes the relevant side like a numeric percentile does (the reference imputed the opposite side);
``DropInConfidence`` / ``IncreaseInConfidence`` work with ``return_visualization=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pytorch_grad_cam.core.checks import (
    as_tensor,
    check_callable,
    check_input_tensor,
    check_model,
    check_positive_int,
    check_real,
    check_targets,
    describe,
)
from pytorch_grad_cam.core.model import eval_mode, model_input
from pytorch_grad_cam.core.outputs import default_targets, target_scores
from pytorch_grad_cam.core.targets import Target
from pytorch_grad_cam.core.types import Maps, Targets

Perturbation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "AveragerAcrossThresholds",
    "PerturbationConfidenceMetric",
    "RemoveLeastRelevantFirst",
    "RemoveMostRelevantFirst",
]


# --------------------------------------------------------------------------------------------- shared helpers
def check_cams(cams: Any, input_tensor: torch.Tensor, name: str = "cams") -> torch.Tensor:
    """``cams`` (numpy array or tensor, one map per image of ``input_tensor``) as a float32 tensor on the input's
    device; never a view of the caller's data that later code writes to."""
    if isinstance(cams, np.ndarray) and not (
        np.issubdtype(cams.dtype, np.floating) or np.issubdtype(cams.dtype, np.integer) or cams.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a real-valued array; got {describe(cams)}")
    cams = as_tensor(cams, name)
    expected = (input_tensor.shape[0], *input_tensor.shape[2:])
    if tuple(cams.shape) != expected:
        raise ValueError(
            f"{name} must have one map per image, of the input's spatial size: expected shape {expected}; "
            f"got {tuple(cams.shape)}"
        )
    cams = cams.to(device=input_tensor.device, dtype=torch.float32)
    if not torch.isfinite(cams).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return cams


def score_batches(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: Targets,
    batch_size: int | None,
    transform: Callable[[Any], Any] | None = None,
) -> tuple[torch.Tensor, list[Target]]:
    """Run ``model`` on ``inputs`` in chunks of ``batch_size`` and score every image with its target.

    Args:
        model: the classifier (its mode is the caller's business).
        inputs: ``(N, C, ...)`` images on the model's device.
        targets: one per image; ``None`` takes the top class of each image's output.
        batch_size: images per forward pass (``None``: all at once).
        transform: applied to each model output before the targets (e.g. a softmax).

    Returns:
        The float32 scores ``(N,)`` on the model's device, and the targets used.
    """
    size = inputs.shape[0] if batch_size is None else batch_size
    scores: list[torch.Tensor] = []
    used: list[Target] = []
    with torch.no_grad():
        for start in range(0, inputs.shape[0], size):
            outputs = model(model_input(inputs[start : start + size], model))
            if transform is not None:
                outputs = transform(outputs)
            chunk = default_targets(outputs) if targets is None else list(targets[start : start + size])
            scores.append(target_scores(chunk, outputs, start))
            used.extend(chunk)
    return torch.cat(scores), used


# ------------------------------------------------------------------------------------------------- the metric
def check_metric_call(
    input_tensor: Any, cams: Any, targets: Any, model: Any, input_ndims: Sequence[int] = (4, 5)
) -> tuple[torch.Tensor, torch.Tensor, list[Target] | None, nn.Module]:
    """The validated arguments of a metric call ``metric(input_tensor, cams, targets, model)``: the images on the
    model's device (in its dtype), their maps (float32, same device), the targets (``None`` stays ``None``) and
    the model."""
    model = check_model(model)
    input_tensor = check_input_tensor(input_tensor, input_ndims)
    checked = check_targets(targets, input_tensor.shape[0])
    inputs = model_input(input_tensor, model)
    return inputs, check_cams(cams, inputs), checked, model


class PerturbationConfidenceMetric:
    """The change of each image's target score when the image is perturbed according to its CAM.

    ``metric_i = target_i(f(perturbation(x_i, cam_i))) - target_i(f(x_i))``, or the first term alone with
    ``return_diff=False``.

    Args:
        perturbation: ``perturbation(image (C, H, W), cam (H, W)) -> perturbed image``, as in the reference. An
            object with a ``perturb_batch(images (B, C, H, W), cams (B, H, W))`` method is applied to the whole
            batch at once on the model's device; a plain callable is applied image by image on the CPU tensors,
            as the reference does.
        batch_size: evaluate the perturbed images in chunks of this many (``None``: the whole batch at once).
    """

    #: the numbers of axes of the images the metric takes: ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
    input_ndims: tuple[int, ...] = (4, 5)

    def __init__(self, perturbation: Perturbation, *, batch_size: int | None = None) -> None:
        if not callable(perturbation) and not hasattr(perturbation, "perturb_batch"):
            raise TypeError(f"perturbation must be callable; got {describe(perturbation)}")
        self.perturbation = perturbation
        self.batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)

    def __call__(
        self,
        input_tensor: Tensor,
        cams: Maps,
        targets: Targets,
        model: nn.Module,
        return_visualization: bool = False,
        return_diff: bool = True,
    ) -> np.ndarray | tuple[np.ndarray, torch.Tensor]:
        """Score a batch.

        Args:
            input_tensor: ``(B, C, H, W)`` images as the model takes them (never modified).
            cams: ``(B, H, W)`` maps, numpy or torch, e.g. the output of a CAM.
            targets: one callable per image (``ClassifierOutputTarget(c)``, ...); ``None`` scores the top class
                of each unperturbed image.
            model: the classifier; put in eval mode during the call, its flags restored afterwards.
            return_visualization: also return the perturbed batch (on the model's device).
            return_diff: return the change of score (``True``) or the perturbed score alone.

        Returns:
            ``np.float32`` array ``(B,)``, and the perturbed batch with ``return_visualization``.
        """
        inputs, cam_tensor, checked, model = self.check_call(input_tensor, cams, targets, model)
        with eval_mode(model):
            baseline = None
            if return_diff or checked is None:
                baseline, checked = self.baseline_scores(inputs, checked, model)
            perturbed = self.perturb(inputs, cam_tensor)
            after, _ = score_batches(model, perturbed, checked, self.batch_size)
        # ``baseline`` is always computed when ``return_diff``; the ``is not None`` test only narrows its type
        result = after - baseline if return_diff and baseline is not None else after
        scores = result.cpu().numpy().astype(np.float32)
        if return_visualization:
            return scores, perturbed
        return scores

    # ------------------------------------------------------------------------------------------ the steps
    def check_call(
        self, input_tensor: Any, cams: Any, targets: Any, model: Any
    ) -> tuple[torch.Tensor, torch.Tensor, list[Target] | None, nn.Module]:
        """:func:`check_metric_call` for this metric's input layouts."""
        return check_metric_call(input_tensor, cams, targets, model, self.input_ndims)

    def baseline_scores(
        self, inputs: torch.Tensor, targets: list[Target] | None, model: nn.Module
    ) -> tuple[torch.Tensor, list[Target]]:
        """The unperturbed scores, and the targets (the top classes when ``targets`` is ``None``)."""
        return score_batches(model, inputs, targets, self.batch_size)

    def perturb(self, inputs: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
        """The perturbed batch, on ``inputs``' device: batched when the perturbation supports it."""
        batched = getattr(self.perturbation, "perturb_batch", None)
        if batched is not None:
            return batched(inputs, cams).to(device=inputs.device, dtype=inputs.dtype)
        images = []
        for image, cam in zip(inputs, cams):
            # copies: a perturbation that writes in place must not reach the caller's tensors
            perturbed = self.perturbation(image.detach().cpu().clone(), cam.cpu().clone())
            images.append(torch.as_tensor(perturbed).to(device=inputs.device, dtype=inputs.dtype))
        return torch.stack(images)


# ---------------------------------------------------------------------------------- percentile perturbations
def otsu_threshold(values: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold of 8-bit levels (as ``cv2.threshold(..., THRESH_OTSU)`` computes it), in torch.

    ``t* = argmax_t ω(t)(1 - ω(t)) (μ_0(t) - μ_1(t))²`` over the 256 levels of ``values`` (uint8-like ints); a
    level ``v`` is foreground when ``v > t*``.
    """
    levels = values.reshape(-1).long().clamp(0, 255)
    hist = torch.bincount(levels, minlength=256).double()
    prob = hist / hist.sum()
    omega = prob.cumsum(0)
    mu = (prob * torch.arange(256, dtype=torch.float64, device=values.device)).cumsum(0)
    mu_total = mu[-1]
    between = (mu_total * omega - mu) ** 2 / (omega * (1 - omega))
    between = torch.where((omega > 0) & (omega < 1), between, torch.zeros_like(between))
    return between.argmax()


class RemoveMostRelevantFirst:
    """Replace the most relevant pixels (CAM at or above its ``percentile``-th percentile) with an imputation.

    The imputer receives the image and a keep-mask ``m`` with ``m = 1`` where ``cam < percentile(cam, p)`` and
    ``m = 0`` on the pixels to impute. ``percentile='auto'`` picks the threshold with Otsu's method on the map
    quantised to 8 bits and imputes the pixels above it.

    Args:
        percentile: in [0, 100], or ``'auto'``.
        imputer: ``imputer(image (C, H, W), keep_mask (H, W)) -> image``; an imputer with an
            ``impute_batch(images, keep_masks)`` method is given the whole batch.
    """

    def __init__(self, percentile: float | str, imputer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        if isinstance(percentile, str):
            if percentile != "auto":
                raise ValueError(f"percentile must be a number in [0, 100] or 'auto'; got {percentile!r}")
        else:
            check_real(percentile, "percentile", 0, 100)
        check_callable(imputer, "imputer", allow_none=False)
        self.percentile = percentile
        self.imputer = imputer

    def _relevance(self, cams: torch.Tensor) -> torch.Tensor:
        return cams

    def keep_masks(self, cams: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` float masks: 1 on the pixels kept, 0 on the pixels to impute."""
        relevance = self._relevance(cams.float())
        flat = relevance.reshape(relevance.shape[0], -1)
        if self.percentile == "auto":
            levels = (relevance * 255).clamp(0, 255).to(torch.uint8)  # truncation, as np.uint8 does
            thresholds = torch.stack([otsu_threshold(level) for level in levels])
            keep = levels.reshape(flat.shape).long() <= thresholds[:, None]
        else:
            # linear interpolation between the closest ranks, in float32, as numpy's percentile
            thresholds = torch.quantile(flat, float(self.percentile) / 100, dim=1, keepdim=True)
            keep = flat < thresholds
        return keep.reshape(relevance.shape).float()

    def perturb_batch(self, images: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
        """Impute the selected pixels of every image of ``(B, C, H, W)`` ``images``."""
        masks = self.keep_masks(cams)
        batched = getattr(self.imputer, "impute_batch", None)
        if batched is not None:
            return batched(images, masks)
        return torch.stack([torch.as_tensor(self.imputer(img, m)).to(images) for img, m in zip(images, masks)])

    def __call__(self, input_tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One image ``(C, H, W)`` and its CAM ``(H, W)`` (the reference's per-image interface)."""
        cam = torch.as_tensor(mask)
        return self.perturb_batch(input_tensor[None], cam[None].to(input_tensor.device))[0]


class RemoveLeastRelevantFirst(RemoveMostRelevantFirst):
    """Replace the least relevant pixels: :class:`RemoveMostRelevantFirst` applied to ``1 - cam``."""

    def _relevance(self, cams: torch.Tensor) -> torch.Tensor:
        return 1 - cams


# ------------------------------------------------------------------------------------------- averaging
class AveragerAcrossThresholds:
    """The mean of a percentile metric over several percentiles: ``(1/P) Σ_p metric_p``.

    The unperturbed scores are computed once and shared by every percentile.

    Args:
        imputer: a metric class built as ``imputer(percentile)`` (e.g. :class:`ROADMostRelevantFirst`); the
            reference's name for it is kept.
        percentiles: the percentiles to average over.
    """

    def __init__(
        self, imputer: Callable[[float], Any], percentiles: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90)
    ) -> None:
        check_callable(imputer, "imputer", allow_none=False, example="ROADMostRelevantFirst (a metric class)")
        if isinstance(percentiles, (str, bytes)) or not isinstance(percentiles, Sequence) or not percentiles:
            raise ValueError(f"percentiles must be a non-empty list of numbers in [0, 100]; got {percentiles!r}")
        self.imputer = imputer
        self.percentiles = list(percentiles)
        self.metrics = [imputer(p) for p in self.percentiles]

    def __call__(
        self, input_tensor: Tensor, cams: Maps, targets: Targets, model: nn.Module, return_visualization: bool = False
    ) -> np.ndarray | tuple[np.ndarray, torch.Tensor]:
        """The mean score change over the percentiles, ``np.float32`` ``(B,)``.

        With ``return_visualization`` also the perturbed images, ``(P, B, C, H, W)``.
        """
        scores, perturbed = self.score_changes(input_tensor, cams, targets, model, None, return_visualization)
        result = scores.mean(dim=0).cpu().numpy().astype(np.float32)
        if perturbed is not None:  # the images are kept exactly when return_visualization
            return result, perturbed
        return result

    def score_changes(
        self,
        input_tensor: Any,
        cams: Any,
        targets: Any,
        model: Any,
        baseline: tuple[torch.Tensor, list[Target]] | None,
        keep_images: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(P, B)`` score changes (and ``(P, B, C, H, W)`` perturbed images when ``keep_images``); the
        unperturbed scores and targets are ``baseline`` when given (as :meth:`PerturbationConfidenceMetric.
        baseline_scores` returns them), computed here otherwise."""
        metrics = [m for m in self.metrics if isinstance(m, PerturbationConfidenceMetric)]
        if len(metrics) != len(self.metrics):  # a foreign metric class: call it as the reference does
            results = [m(input_tensor, cams, targets, model, return_visualization=True) for m in self.metrics]
            images = torch.stack([r[1] for r in results]) if keep_images else None
            return torch.stack([torch.as_tensor(np.asarray(r[0])) for r in results]), images
        first = metrics[0]
        inputs, cam_tensor, checked, model = first.check_call(input_tensor, cams, targets, model)
        scores: list[torch.Tensor] = []
        kept: list[torch.Tensor] = []
        with eval_mode(model):
            if baseline is None:
                baseline = first.baseline_scores(inputs, checked, model)
            reference, checked = baseline
            for metric in metrics:
                perturbed = metric.perturb(inputs, cam_tensor)
                scores.append(score_batches(model, perturbed, checked, metric.batch_size)[0] - reference)
                if keep_images:
                    kept.append(perturbed)
        return torch.stack(scores), (torch.stack(kept) if keep_images else None)
