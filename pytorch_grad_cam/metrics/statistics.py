"""Uncertainty of metric means: bootstrap confidence intervals and paired comparisons of two methods.

A metric scored per image (a pointing-game hit, a deletion AUC, ...) is summarised by its mean over ``N``
images; these functions say how far that mean can be trusted (Efron & Tibshirani 1993, "An Introduction to the
Bootstrap", the percentile interval):

* :func:`bootstrap_interval`: resample the ``N`` scores with replacement ``resamples`` times; the interval is
  the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled means,

      mean* _r = (1/N) Σ_i s[j_ri],   j_ri ~ U{0, ..., N-1},   CI = [q_(α/2)(mean*), q_(1-α/2)(mean*)]

* :func:`paired_bootstrap`: two methods scored on the *same* images are compared through the per-image
  differences ``d_i = a_i - b_i`` (a paired design: the image-to-image variation common to both cancels); they
  are *distinguishable* at that confidence when the bootstrap interval of ``mean(d)`` excludes 0.

Both are deterministic for a given ``seed`` (numpy's ``default_rng``) and accept numpy arrays, torch tensors or
sequences of numbers (bools count as 0 / 1, so pointing-game hits can be passed as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.core.checks import check_int, check_real, describe

__all__ = ["BootstrapInterval", "PairedComparison", "bootstrap_interval", "paired_bootstrap"]

#: Default number of bootstrap resamples: the quantiles of a 95 % interval move by well under 1 % of its width.
DEFAULT_RESAMPLES = 10_000
#: Resampled indices generated per chunk (bounds the memory to a few tens of MB whatever ``N`` and ``resamples``).
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class BootstrapInterval:
    """A mean with its bootstrap percentile confidence interval.

    Attributes:
        mean: the mean of the ``n`` scores.
        low: the lower end of the interval.
        high: the upper end of the interval.
        confidence: the interval's nominal coverage, e.g. ``0.95``.
        n: the number of scores.
        resamples: the number of bootstrap resamples.
    """

    mean: float
    low: float
    high: float
    confidence: float
    n: int
    resamples: int

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return self.low <= value <= self.high

    def format(self, digits: int = 3) -> str:
        """``"mean [low, high]"`` with ``digits`` decimals, e.g. ``"0.980 [0.950, 1.000]"``."""
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class PairedComparison:
    """The paired bootstrap comparison of two methods' scores on the same images.

    Attributes:
        difference: the mean of ``scores_a - scores_b`` with its bootstrap interval.
        distinguishable: whether that interval excludes 0 (``low > 0`` or ``high < 0``).
    """

    difference: BootstrapInterval
    distinguishable: bool

    @property
    def better(self) -> str | None:
        """``"a"`` or ``"b"``, the method with the larger mean when they are distinguishable, else ``None``."""
        if not self.distinguishable:
            return None
        return "a" if self.difference.mean > 0 else "b"


def as_scores(value: Any, name: str) -> np.ndarray:
    """``value`` (a 1-D numpy array, tensor or sequence of real numbers or bools) as a float64 numpy vector.

    Raises:
        TypeError: for anything else, or values that are not real numbers.
        ValueError: for an empty, non-1-D input, or NaN / inf values.
    """
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers; got a tensor of dtype {value.dtype}")
        array = value.detach().cpu().to(torch.float64).numpy()
    elif isinstance(value, (np.ndarray, list, tuple)):
        array = np.asarray(value)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
            raise TypeError(f"{name} must hold real numbers; got {describe(value)} of dtype {array.dtype}")
        if np.iscomplexobj(array):
            raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}")
        array = array.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a 1-D numpy array, tensor or sequence of numbers; got {describe(value)}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per image); got shape {tuple(array.shape)}")
    if array.size == 0:
        raise ValueError(f"{name} must hold at least one score; got none")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return array


def _check_settings(confidence: Any, resamples: Any, seed: Any) -> tuple[float, int, int | None]:
    confidence = check_real(confidence, "confidence", 0, 1, low_open=True, high_open=True)
    resamples = check_int(resamples, "resamples", minimum=1)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    return confidence, resamples, seed


def _resampled_means(scores: np.ndarray, resamples: int, seed: int | None) -> np.ndarray:
    """``resamples`` means of ``scores`` resampled with replacement, in chunks of bounded memory."""
    n = scores.size
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = scores[indices].mean(axis=1)
    return means


def _interval(scores: np.ndarray, confidence: float, resamples: int, seed: int | None) -> BootstrapInterval:
    mean = float(scores.mean())
    if np.all(scores == scores[0]):  # every resample is the same multiset: a zero-width interval, exactly
        return BootstrapInterval(mean, mean, mean, confidence, scores.size, resamples)
    means = _resampled_means(scores, resamples, seed)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    # The quantiles of the means lie within [min, max] of the scores; the mean itself is inside the interval
    # except in degenerate floating-point cases, which are clamped.
    return BootstrapInterval(mean, float(min(low, mean)), float(max(high, mean)), confidence, scores.size, resamples)


def bootstrap_interval(
    scores: Any, confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int | None = 0
) -> BootstrapInterval:
    """The mean of per-image ``scores`` with its bootstrap percentile confidence interval.

    ``resamples`` resamples of the ``N`` scores are drawn with replacement; the interval runs from the
    ``(1 - confidence) / 2`` to the ``(1 + confidence) / 2`` quantile of their means (Efron & Tibshirani 1993).
    Constant scores give a zero-width interval.

    Args:
        scores: ``(N,)`` per-image scores (numpy array, tensor or sequence of numbers; bools count as 0 / 1).
        confidence: the nominal coverage, in (0, 1).
        resamples: the number of bootstrap resamples (>= 1).
        seed: seed of numpy's ``default_rng`` (non-negative int); ``None`` for fresh randomness.

    Returns:
        A :class:`BootstrapInterval` (``mean``, ``low``, ``high``, ``confidence``, ``n``, ``resamples``).

    Raises:
        TypeError: for scores that are not real numbers, or settings of the wrong type.
        ValueError: for empty or non-1-D scores, NaN / inf, a confidence outside (0, 1), ``resamples < 1`` or a
            negative seed.

    Example:
        >>> bootstrap_interval([1.0, 1.0, 1.0]).format()
        '1.000 [1.000, 1.000]'
    """
    values = as_scores(scores, "scores")
    confidence, resamples, seed = _check_settings(confidence, resamples, seed)
    return _interval(values, confidence, resamples, seed)


def paired_bootstrap(
    scores_a: Any, scores_b: Any, confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int | None = 0
) -> PairedComparison:
    """Whether two methods scored on the same images are distinguishable: the paired bootstrap of their difference.

    The per-image differences ``d_i = scores_a[i] - scores_b[i]`` are resampled as in
    :func:`bootstrap_interval`; the methods are distinguishable at ``confidence`` when the interval of
    ``mean(d)`` excludes 0. Identical scores give ``d = 0`` and are never distinguishable.

    Args:
        scores_a: ``(N,)`` per-image scores of the first method.
        scores_b: ``(N,)`` per-image scores of the second method, on the same images in the same order.
        confidence: the nominal coverage of the interval, in (0, 1).
        resamples: the number of bootstrap resamples (>= 1).
        seed: seed of numpy's ``default_rng`` (non-negative int); ``None`` for fresh randomness.

    Returns:
        A :class:`PairedComparison`: ``difference`` (the interval of ``mean(a - b)``) and ``distinguishable``.

    Raises:
        TypeError: for scores that are not real numbers, or settings of the wrong type.
        ValueError: for empty or non-1-D scores, NaN / inf, scores of different lengths, a confidence outside
            (0, 1), ``resamples < 1`` or a negative seed.
    """
    a = as_scores(scores_a, "scores_a")
    b = as_scores(scores_b, "scores_b")
    if a.size != b.size:
        raise ValueError(
            f"scores_b must hold one score per image of scores_a ({a.size}); got {b.size} (a paired comparison "
            "needs both methods scored on the same images)"
        )
    confidence, resamples, seed = _check_settings(confidence, resamples, seed)
    difference = _interval(a - b, confidence, resamples, seed)
    return PairedComparison(difference, difference.low > 0 or difference.high < 0)
