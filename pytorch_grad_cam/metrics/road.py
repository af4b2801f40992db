"""ROAD: RemOve And Debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for Attribution
Methods", https://arxiv.org/abs/2202.00449).

Removing pixels by overwriting them with a constant leaks the shape of the removed region to the model. ROAD
replaces them with a *noisy linear imputation*: every removed pixel takes the weighted mean of its neighbours,

    x_u = Σ_{v ∈ N(u)} w_v x_v / Σ_{v ∈ N(u)} w_v     (N(u): the in-image neighbours of u)

which for the removed pixels ``U`` is a sparse linear system ``A x_U = b`` (known neighbours go to ``b``), solved
with ``scipy.sparse.linalg.spsolve``; Gaussian noise ``σ ε`` is added to the solution. The neighbour weights
default to 1/6 for the four direct neighbours and 1/12 for the four diagonal ones.

* MoRF (most relevant first): impute the pixels whose CAM is at or above its p-th percentile; a good map
  makes the score fall — ``ROADMostRelevantFirst`` returns ``s(x_MoRF) - s(x)``, lower is better.
* LeRF (least relevant first): impute the pixels with the lowest CAM values; a good map keeps the score —
  higher is better.
* ``ROADCombined = mean_p (LeRF_p - MoRF_p) / 2``, higher is better.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pytorch_grad_cam.core.checks import check_int, check_real, describe
from pytorch_grad_cam.core.model import eval_mode
from pytorch_grad_cam.core.types import Maps, Targets
from pytorch_grad_cam.metrics.perturbation_confidence import (
    AveragerAcrossThresholds,
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)

__all__ = [
    "NoisyLinearImputer",
    "ROADCombined",
    "ROADLeastRelevantFirst",
    "ROADLeastRelevantFirstAverage",
    "ROADMostRelevantFirst",
    "ROADMostRelevantFirstAverage",
    "neighbors_weights",
]

#: ``((row offset, column offset), weight)`` of the neighbours a removed pixel is interpolated from.
neighbors_weights: list[tuple[tuple[int, int], float]] = [
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
]

_DEFAULT_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def _check_weighting(weighting: Any) -> list[tuple[tuple[int, int], float]]:
    expected = "a list of ((row offset, column offset), weight) pairs, e.g. [((0, 1), 0.5), ((0, -1), 0.5)]"
    if isinstance(weighting, (str, bytes)) or not isinstance(weighting, Sequence) or len(weighting) == 0:
        raise TypeError(f"weighting must be {expected}; got {describe(weighting)}")
    checked = []
    for index, entry in enumerate(weighting):
        try:
            (dy, dx), weight = entry
        except (TypeError, ValueError):
            raise TypeError(
                f"weighting[{index}] must be ((row offset, column offset), weight); got {entry!r}"
            ) from None
        dy = check_int(dy, f"weighting[{index}] row offset")
        dx = check_int(dx, f"weighting[{index}] column offset")
        if (dy, dx) == (0, 0):
            raise ValueError(f"weighting[{index}] offset must not be (0, 0) (a pixel is not its own neighbour)")
        checked.append(((dy, dx), check_real(weight, f"weighting[{index}] weight", 0, low_open=True)))
    if len({offset for offset, _ in checked}) != len(checked):
        raise ValueError(f"weighting must not repeat an offset; got {[offset for offset, _ in checked]}")
    return checked


class NoisyLinearImputer:
    """Noisy linear imputation of the removed pixels of an image (the ROAD imputer).

    Every removed pixel ``u`` satisfies ``Σ_{v ∈ N(u)} w_v (x_v - x_u) = 0`` over its in-image neighbours (known
    neighbours are constants, removed ones unknowns), i.e. it is the weighted mean of its neighbours; the sparse
    system is solved once for all channels, then ``noise · ε`` (ε ~ N(0, 1), from torch's generator) is added.
    A group of removed pixels with no known pixel around it has nothing to be interpolated from and is set
    to ``0`` + noise (with a warning).

    Args:
        noise: standard deviation of the added noise (0 for none).
        weighting: ``((row offset, column offset), weight)`` of the neighbours (the reference accepted this
            argument but always used :data:`neighbors_weights`; here it is honoured).
    """

    def __init__(self, noise: float = 0.01, weighting: Sequence[tuple[tuple[int, int], float]] = neighbors_weights):
        self.noise = check_real(noise, "noise", 0)
        self.weighting = _check_weighting(weighting)

    def system(self, keep: np.ndarray, image: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        """The sparse system of one image.

        Args:
            keep: ``(H, W)`` bool, ``True`` on known pixels.
            image: ``(C, H, W)`` float64.

        Returns:
            ``A`` (N × N, CSC), ``b`` (N × C) and the flat indices of the N removed pixels (row-major order).
        """
        from scipy.sparse import coo_matrix  # scipy is imported when ROAD runs, not with the package

        height, width = keep.shape
        flat_keep = keep.reshape(-1)
        flat_image = image.reshape(image.shape[0], -1)
        unknown = np.flatnonzero(~flat_keep)
        count = unknown.size
        variable = np.full(flat_keep.size, -1, dtype=np.int64)
        variable[unknown] = np.arange(count)
        rows, cols = unknown // width, unknown % width
        diagonal = np.zeros(count)
        rhs = np.zeros((count, image.shape[0]))
        entry_rows, entry_cols, entry_values = [], [], []
        for (dy, dx), weight in self.weighting:
            r, c = rows + dy, cols + dx
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            equation = np.flatnonzero(inside)
            neighbour = r[inside] * width + c[inside]
            diagonal[equation] -= weight
            known = flat_keep[neighbour]
            rhs[equation[known]] -= weight * flat_image[:, neighbour[known]].T
            entry_rows.append(equation[~known])
            entry_cols.append(variable[neighbour[~known]])
            entry_values.append(np.full(int((~known).sum()), weight))
        entry_rows.append(np.arange(count))
        entry_cols.append(np.arange(count))
        entry_values.append(diagonal)
        matrix = coo_matrix(
            (np.concatenate(entry_values), (np.concatenate(entry_rows), np.concatenate(entry_cols))),
            shape=(count, count),
        ).tocsc()
        return matrix, rhs, unknown

    def _solve(self, keep: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The noiseless imputed values ``(N, C)`` and the flat indices of the removed pixels."""
        from scipy.sparse import diags
        from scipy.sparse.csgraph import connected_components
        from scipy.sparse.linalg import spsolve

        matrix, rhs, unknown = self.system(keep, image)
        # A group of removed pixels with no known pixel around it makes the system singular: pin it to 0.
        _, labels = connected_components(matrix, directed=False)
        anchored = np.zeros(labels.max() + 1, dtype=bool)
        anchored[labels[self._has_known_neighbour(keep, unknown)]] = True
        floating = ~anchored[labels]
        if floating.any():
            warnings.warn(
                f"NoisyLinearImputer: {int(floating.sum())} removed pixel(s) have no known pixel to be interpolated "
                "from (e.g. every pixel was removed); they are set to 0 (+ noise)",
                stacklevel=4,
            )
            matrix = (diags((~floating).astype(np.float64)) @ matrix + diags(floating.astype(np.float64))).tocsc()
            rhs[floating] = 0
        solution = spsolve(matrix, rhs)
        return np.asarray(solution).reshape(unknown.size, image.shape[0]), unknown

    def _has_known_neighbour(self, keep: np.ndarray, unknown: np.ndarray) -> np.ndarray:
        """Whether each removed pixel has at least one known in-image neighbour."""
        height, width = keep.shape
        rows, cols = unknown // width, unknown % width
        found = np.zeros(unknown.size, dtype=bool)
        flat_keep = keep.reshape(-1)
        for (dy, dx), _ in self.weighting:
            r, c = rows + dy, cols + dx
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            found[inside] |= flat_keep[r[inside] * width + c[inside]]
        return found

    def impute_batch(self, images: torch.Tensor, keep_masks: torch.Tensor) -> torch.Tensor:
        """Impute the pixels where ``keep_masks == 0`` in every image of ``(B, C, H, W)`` ``images``.

        The systems are solved on the CPU with scipy; the noise is drawn image by image from torch's CPU
        generator (the reference's order); the result is on ``images``' device, in its dtype.
        """
        host_images = images.detach().to("cpu", torch.float64).numpy()
        host_keep = (keep_masks.detach().cpu() != 0).numpy()
        results = []
        for image, keep in zip(host_images, host_keep):
            filled = torch.from_numpy(image.reshape(image.shape[0], -1)).float()
            if not keep.all():
                values, unknown = self._solve(keep, image)
                imputed = torch.from_numpy(values).float().t()
                filled[:, torch.from_numpy(unknown)] = imputed + self.noise * torch.randn_like(imputed)
            results.append(filled.reshape(image.shape))
        return torch.stack(results).to(device=images.device, dtype=images.dtype)

    def __call__(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Impute one image ``(C, H, W)`` where ``mask`` ``(H, W)`` is 0 (the reference's interface)."""
        if not isinstance(img, torch.Tensor) or img.ndim != 3:
            raise ValueError(f"img must be a (C, H, W) tensor; got {describe(img)}")
        mask = torch.as_tensor(mask)
        if tuple(mask.shape) != tuple(img.shape[1:]):
            raise ValueError(
                f"mask must have the image's spatial shape {tuple(img.shape[1:])}; got {tuple(mask.shape)}"
            )
        return self.impute_batch(img[None], mask[None])[0]


class _ROADMetric(PerturbationConfidenceMetric):
    """A ROAD metric: the score change when :attr:`removal` imputes the pixels at or above a percentile of the
    map (2-D images only)."""

    input_ndims = (4,)
    #: The perturbation, :class:`RemoveMostRelevantFirst` or :class:`RemoveLeastRelevantFirst`.
    removal: type[RemoveMostRelevantFirst] | type[RemoveLeastRelevantFirst]

    #: The percentile when none is given.
    default_percentile: float

    def __init__(
        self, percentile: float | str | None = None, *, batch_size: int | None = None, imputer: Any = None
    ) -> None:
        chosen = self.default_percentile if percentile is None else percentile
        imputer = imputer if imputer is not None else NoisyLinearImputer()
        super().__init__(self.removal(chosen, imputer), batch_size=batch_size)


class ROADMostRelevantFirst(_ROADMetric):
    """``s(impute(x, cam ≥ P_p(cam))) - s(x)``: the score change when the most relevant pixels are imputed.

    Args:
        percentile: the pixels at or above this percentile of the map are imputed (``'auto'``: Otsu); 80.
        batch_size: images per forward pass (``None``: the whole batch).
        imputer: the imputer (default :class:`NoisyLinearImputer` with noise 0.01).
    """

    removal = RemoveMostRelevantFirst
    default_percentile = 80


class ROADLeastRelevantFirst(_ROADMetric):
    """``s(impute(x, 1 - cam ≥ P_p(1 - cam))) - s(x)``: the score change when the least relevant pixels go.

    Args:
        percentile: the pixels at or above this percentile of ``1 - cam`` are imputed (``'auto'``: Otsu); 20.
        batch_size: images per forward pass (``None``: the whole batch).
        imputer: the imputer (default :class:`NoisyLinearImputer` with noise 0.01).
    """

    removal = RemoveLeastRelevantFirst
    default_percentile = 20


class ROADMostRelevantFirstAverage(AveragerAcrossThresholds):
    """:class:`ROADMostRelevantFirst` averaged over ``percentiles`` (the unperturbed scores computed once)."""

    def __init__(self, percentiles: Sequence[float] = _DEFAULT_PERCENTILES) -> None:
        super().__init__(ROADMostRelevantFirst, percentiles)


class ROADLeastRelevantFirstAverage(AveragerAcrossThresholds):
    """:class:`ROADLeastRelevantFirst` averaged over ``percentiles`` (the unperturbed scores computed once)."""

    def __init__(self, percentiles: Sequence[float] = _DEFAULT_PERCENTILES) -> None:
        super().__init__(ROADLeastRelevantFirst, percentiles)


class ROADCombined:
    """``(mean_p LeRF_p - mean_p MoRF_p) / 2`` — higher is better.

    The unperturbed scores are computed once for both halves and every percentile.

    Args:
        percentiles: the percentiles averaged over.
    """

    def __init__(self, percentiles: Sequence[float] = _DEFAULT_PERCENTILES) -> None:
        self.percentiles = list(percentiles)
        self.morf_averager = ROADMostRelevantFirstAverage(self.percentiles)
        self.lerf_averager = ROADLeastRelevantFirstAverage(self.percentiles)

    def __call__(
        self, input_tensor: Tensor, cams: Maps, targets: Targets, model: nn.Module, return_visualization: bool = False
    ) -> np.ndarray | tuple[np.ndarray, dict[str, torch.Tensor]]:
        """The combined ROAD score per image, ``np.float32`` ``(B,)``.

        With ``return_visualization`` also ``{"least_relevant_first": (P, B, C, H, W),
        "most_relevant_first": (P, B, C, H, W)}`` imputed images.
        """
        first = self.lerf_averager.metrics[0]
        inputs, cam_tensor, checked, model = first.check_call(input_tensor, cams, targets, model)
        with eval_mode(model):
            baseline = first.baseline_scores(inputs, checked, model)
            lerf, lerf_images = self.lerf_averager.score_changes(
                inputs, cam_tensor, baseline[1], model, baseline, return_visualization
            )
            morf, morf_images = self.morf_averager.score_changes(
                inputs, cam_tensor, baseline[1], model, baseline, return_visualization
            )
        result = ((lerf.mean(dim=0) - morf.mean(dim=0)) / 2).cpu().numpy().astype(np.float32)
        if lerf_images is not None and morf_images is not None:  # kept exactly when return_visualization
            return result, {"least_relevant_first": lerf_images, "most_relevant_first": morf_images}
        return result
