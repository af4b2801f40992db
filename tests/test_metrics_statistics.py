"""metrics.statistics: bootstrap intervals of a mean and paired bootstrap comparisons, on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytorch_grad_cam.metrics import BootstrapInterval, PairedComparison, bootstrap_interval, paired_bootstrap


def test_constant_scores_give_a_zero_width_interval() -> None:
    interval = bootstrap_interval([0.25] * 7)
    assert (interval.mean, interval.low, interval.high) == (0.25, 0.25, 0.25)
    assert interval.width == 0 and interval.n == 7 and interval.confidence == 0.95
    assert interval.format() == "0.250 [0.250, 0.250]"
    assert bootstrap_interval(np.ones(1)).format(2) == "1.00 [1.00, 1.00]"  # a single score


def test_interval_of_two_values_by_hand() -> None:
    # Scores {0, 1}: a resampled mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so the 2.5 % and
    # 97.5 % quantiles of many resampled means are 0 and 1.
    interval = bootstrap_interval([0, 1], resamples=20_000, seed=3)
    assert (interval.mean, interval.low, interval.high) == (0.5, 0.0, 1.0)
    # 40 % interval: the 30 % and 70 % quantiles fall on the 0.5 atom (it holds the mass from 25 % to 75 %).
    half = bootstrap_interval([0, 1], confidence=0.4, resamples=20_000, seed=3)
    assert (half.low, half.high) == (0.5, 0.5)


def test_bools_numpy_torch_and_lists_agree_and_seed_is_deterministic() -> None:
    hits = np.array([True, False, True, True, False, True, True, True])
    a = bootstrap_interval(hits, resamples=500, seed=1)
    b = bootstrap_interval(hits.astype(float).tolist(), resamples=500, seed=1)
    c = bootstrap_interval(torch.tensor(hits, dtype=torch.float32), resamples=500, seed=1)
    assert a == b == c
    assert a.mean == 0.75 and a.low <= 0.75 <= a.high and a.low >= 0 and a.high <= 1
    assert bootstrap_interval(hits, resamples=500, seed=1) == a


def test_interval_lies_within_the_scores_range_and_narrows_with_n() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_interval(rng.normal(size=20), resamples=2000)
    large = bootstrap_interval(rng.normal(size=2000), resamples=2000)
    assert large.width < small.width / 5  # ~ 1 / sqrt(N): sqrt(100) = 10
    assert large.low < large.mean < large.high


def test_coverage_on_normal_samples() -> None:
    # 300 samples of N(0.3, 1), n = 100 each: the 95 % interval should hold the true mean ~95 % of the time
    # (the percentile bootstrap under-covers slightly at small n); binomial sd of the share ≈ 0.013.
    rng = np.random.default_rng(12345)
    covered = [
        bootstrap_interval(rng.normal(0.3, 1.0, size=100), resamples=1000, seed=trial).contains(0.3)
        for trial in range(300)
    ]
    assert 0.91 <= np.mean(covered) <= 0.99
    # A 50 % interval covers about half as often.
    covered_half = [
        bootstrap_interval(rng.normal(0.3, 1.0, size=100), confidence=0.5, resamples=1000, seed=trial).contains(0.3)
        for trial in range(300)
    ]
    assert 0.40 <= np.mean(covered_half) <= 0.60


def test_identical_scores_are_not_distinguishable() -> None:
    scores = np.random.default_rng(1).uniform(size=50)
    comparison = paired_bootstrap(scores, scores.copy())
    assert isinstance(comparison, PairedComparison)
    assert not comparison.distinguishable and comparison.better is None
    assert (comparison.difference.mean, comparison.difference.low, comparison.difference.high) == (0.0, 0.0, 0.0)


def test_clearly_shifted_scores_are_distinguishable() -> None:
    rng = np.random.default_rng(2)
    b = rng.normal(size=60)
    a = b + 0.5 + rng.normal(scale=0.1, size=60)  # paired: a beats b on every image by about 0.5
    comparison = paired_bootstrap(a, b)
    assert comparison.distinguishable and comparison.better == "a"
    assert 0.4 < comparison.difference.low < comparison.difference.mean < comparison.difference.high < 0.6
    reverse = paired_bootstrap(b, a)
    assert reverse.distinguishable and reverse.better == "b"
    assert reverse.difference.high < 0


def test_pairing_matters_and_noise_is_not_distinguishable() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(scale=5.0, size=40)  # large image-to-image variation, common to both methods
    shifted = base + 0.2
    # Unpaired, the 0.2 shift is lost in the spread; paired, it is exact on every image.
    assert bootstrap_interval(base).contains(float(shifted.mean()))
    assert paired_bootstrap(shifted, base).distinguishable
    # Two independent noisy methods with the same mean: the interval of the difference holds 0.
    a, b = rng.normal(size=40), rng.normal(size=40)
    a, b = a - a.mean(), b - b.mean()
    assert not paired_bootstrap(a, b).distinguishable


def test_one_different_image_of_many_hits() -> None:
    # Pointing-game hits differing on one image of 100: the difference 0.01 is not distinguishable from 0.
    a = np.ones(100, dtype=bool)
    b = a.copy()
    b[7] = False
    comparison = paired_bootstrap(a, b)
    assert comparison.difference.mean == pytest.approx(0.01)
    assert comparison.difference.low == 0.0 and not comparison.distinguishable


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="scores must hold at least one"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="scores must be 1-D"):
        bootstrap_interval(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="scores contains NaN"):
        bootstrap_interval([1.0, float("nan")])
    with pytest.raises(TypeError, match="scores must"):
        bootstrap_interval("0.5")
    with pytest.raises(TypeError, match="scores must hold real numbers"):
        bootstrap_interval(["a", "b"])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([1.0, 2.0], confidence=0)
    with pytest.raises(TypeError, match="confidence"):
        bootstrap_interval([1.0, 2.0], confidence="95%")
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval([1.0, 2.0], resamples=0)
    with pytest.raises(TypeError, match="resamples"):
        bootstrap_interval([1.0, 2.0], resamples=10.5)
    with pytest.raises(ValueError, match="seed"):
        bootstrap_interval([1.0, 2.0], seed=-1)
    with pytest.raises(ValueError, match="scores_b must hold one score per image"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="scores_a contains NaN"):
        paired_bootstrap([float("inf"), 2.0], [1.0, 2.0])
    with pytest.raises(TypeError, match="scores_b"):
        paired_bootstrap([1.0, 2.0], None)


def test_seed_none_runs_and_result_type() -> None:
    interval = bootstrap_interval([0.0, 1.0, 2.0], resamples=50, seed=None)
    assert isinstance(interval, BootstrapInterval) and interval.resamples == 50
    assert 0.0 <= interval.low <= interval.mean == 1.0 <= interval.high <= 2.0
