"""The reference's metrics: golden numbers (tests/data/GOLDEN.md, ``metric/*``), hand-built cases, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import build_tiny_cnn, hook_count
from torch import nn

from pytorch_grad_cam.metrics.arcc import ARCC, Coherency, Complexity, batch_pearson_coherency
from pytorch_grad_cam.metrics.cam_mult_image import (
    CamMultImageConfidenceChange,
    DropInConfidence,
    IncreaseInConfidence,
    multiply_tensor_with_cam,
)
from pytorch_grad_cam.metrics.perturbation_confidence import (
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
    otsu_threshold,
)
from pytorch_grad_cam.metrics.road import (
    NoisyLinearImputer,
    ROADCombined,
    ROADLeastRelevantFirst,
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirst,
    ROADMostRelevantFirstAverage,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


@pytest.fixture
def metric_model() -> nn.Sequential:
    """The golden model of the metric entries: the tiny CNN with its last Linear weight and bias times 30."""
    model = build_tiny_cnn()
    with torch.no_grad():
        model[-1].weight.mul_(30)
        model[-1].bias.mul_(30)
    return model


def _seed() -> None:
    torch.manual_seed(1)
    np.random.seed(1)


# ----------------------------------------------------------------------------------------------- golden
GOLDEN_METRICS = [
    ("metric/CamMultImageConfidenceChange", CamMultImageConfidenceChange, 1e-5),
    ("metric/ROADMostRelevantFirst_p50", lambda: ROADMostRelevantFirst(50), 3e-3),
    ("metric/ROADLeastRelevantFirst_p50", lambda: ROADLeastRelevantFirst(50), 3e-3),
    ("metric/ROADCombined_20_60", lambda: ROADCombined([20, 60]), 3e-3),
]


@pytest.mark.parametrize(("key", "factory", "atol"), GOLDEN_METRICS, ids=[g[0] for g in GOLDEN_METRICS])
def test_golden(key, factory, atol, metric_model, golden_input, golden):
    _seed()
    result = factory()(golden_input, golden["metric/cam"], TARGETS, metric_model)
    assert result.dtype == np.float32 and result.shape == (2,)
    np.testing.assert_allclose(result, golden[key], rtol=0, atol=atol)


def test_drop_and_increase_in_confidence_follow_the_golden_change(metric_model, golden_input, golden):
    change = golden["metric/CamMultImageConfidenceChange"]
    drop = DropInConfidence()(golden_input, golden["metric/cam"], TARGETS, metric_model)
    increase = IncreaseInConfidence()(golden_input, golden["metric/cam"], TARGETS, metric_model)
    np.testing.assert_allclose(drop, np.maximum(-change, 0), atol=1e-5)
    np.testing.assert_array_equal(increase, np.float32(change > 0))
    # a map of zeros removes the image: the change is the score of a black image minus the score
    zeros = np.zeros_like(golden["metric/cam"])
    with torch.no_grad():
        out, black = metric_model(golden_input), metric_model(torch.zeros_like(golden_input))
    expected = np.array([black[0, 1] - out[0, 1], black[1, 3] - out[1, 3]])
    np.testing.assert_allclose(
        DropInConfidence()(golden_input, zeros, TARGETS, metric_model), np.maximum(-expected, 0), atol=1e-4
    )
    np.testing.assert_array_equal(
        IncreaseInConfidence()(golden_input, zeros, TARGETS, metric_model), np.float32(expected > 0)
    )


def test_average_of_one_percentile_equals_the_single_metric(metric_model, golden_input, golden):
    cam = golden["metric/cam"]
    _seed()
    morf = ROADMostRelevantFirstAverage([50])(golden_input, cam, TARGETS, metric_model)
    np.testing.assert_allclose(morf, golden["metric/ROADMostRelevantFirst_p50"], atol=3e-3)
    _seed()
    lerf = ROADLeastRelevantFirstAverage([50])(golden_input, cam, TARGETS, metric_model)
    np.testing.assert_allclose(lerf, golden["metric/ROADLeastRelevantFirst_p50"], atol=3e-3)


def test_road_combined_is_half_the_difference_of_its_averages(metric_model, golden_input, golden):
    cam = golden["metric/cam"]
    _seed()  # the reference's order: LeRF over the percentiles, then MoRF (the noise follows the same draws)
    lerf = ROADLeastRelevantFirstAverage([20, 60])(golden_input, cam, TARGETS, metric_model)
    morf = ROADMostRelevantFirstAverage([20, 60])(golden_input, cam, TARGETS, metric_model)
    np.testing.assert_allclose((lerf - morf) / 2, golden["metric/ROADCombined_20_60"], atol=1e-6)


def test_road_combined_runs_the_unperturbed_batch_once(metric_model, golden_input, golden):
    batches = []
    handle = metric_model.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        ROADCombined([20, 60])(golden_input, golden["metric/cam"], TARGETS, metric_model)
    finally:
        handle.remove()
    assert batches == [2] * 5  # 1 unperturbed + 2 percentiles x (LeRF, MoRF); the reference ran 8


def test_return_visualization(metric_model, golden_input, golden):
    cam = golden["metric/cam"]
    scores, images = CamMultImageConfidenceChange()(golden_input, cam, TARGETS, metric_model, return_visualization=True)
    np.testing.assert_allclose(scores, golden["metric/CamMultImageConfidenceChange"], atol=1e-5)
    torch.testing.assert_close(images, golden_input * torch.from_numpy(cam)[:, None])
    scores, images = DropInConfidence()(golden_input, cam, TARGETS, metric_model, return_visualization=True)
    assert images.shape == golden_input.shape and (scores >= 0).all()
    _seed()
    scores, images = ROADMostRelevantFirst(50)(golden_input, cam, TARGETS, metric_model, return_visualization=True)
    np.testing.assert_allclose(scores, golden["metric/ROADMostRelevantFirst_p50"], atol=3e-3)
    kept = torch.from_numpy(cam < np.percentile(cam, 50, axis=(1, 2), keepdims=True))[:, None].expand_as(images)
    torch.testing.assert_close(images[kept], golden_input[kept])  # only the top half of the map was imputed
    assert not torch.allclose(images[~kept], golden_input[~kept])
    _seed()
    scores, images = ROADCombined([20, 60])(golden_input, cam, TARGETS, metric_model, return_visualization=True)
    np.testing.assert_allclose(scores, golden["metric/ROADCombined_20_60"], atol=3e-3)
    assert images["least_relevant_first"].shape == images["most_relevant_first"].shape == (2, 2, 3, 24, 28)
    scores, images = ROADLeastRelevantFirstAverage([20, 60])(
        golden_input, cam, TARGETS, metric_model, return_visualization=True
    )
    assert images.shape == (2, 2, 3, 24, 28)


def test_return_diff_false_gives_the_perturbed_score(metric_model, golden_input, golden):
    cam = golden["metric/cam"]
    perturbed = CamMultImageConfidenceChange()(golden_input, cam, TARGETS, metric_model, return_diff=False)
    with torch.no_grad():
        out = metric_model(golden_input * torch.from_numpy(cam)[:, None])
    np.testing.assert_allclose(perturbed, [out[0, 1], out[1, 3]], atol=1e-5)


def test_targets_none_batch_size_and_torch_cams(metric_model, golden_input, golden):
    cam = golden["metric/cam"]
    with torch.no_grad():
        top = metric_model(golden_input).argmax(dim=1).tolist()
    explicit = CamMultImageConfidenceChange()(golden_input, cam, [ClassifierOutputTarget(c) for c in top], metric_model)
    implicit = CamMultImageConfidenceChange()(golden_input, cam, None, metric_model)
    chunked = CamMultImageConfidenceChange(batch_size=1)(golden_input, torch.from_numpy(cam), None, metric_model)
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    np.testing.assert_allclose(chunked, explicit, atol=1e-5)


def test_plain_callable_perturbation_is_applied_per_image(metric_model, golden_input, golden):
    cam = golden["metric/cam"]
    seen = []

    def perturbation(image, mask):
        seen.append((tuple(image.shape), tuple(mask.shape)))
        return multiply_tensor_with_cam(image, mask)

    result = PerturbationConfidenceMetric(perturbation)(golden_input, cam, TARGETS, metric_model)
    np.testing.assert_allclose(result, golden["metric/CamMultImageConfidenceChange"], atol=1e-5)
    assert seen == [((3, 24, 28), (24, 28))] * 2


def test_state_is_restored_and_inputs_untouched(metric_model, golden_input, golden):
    metric_model.train()
    cam = golden["metric/cam"].copy()
    image = golden_input.clone()
    _seed()
    ROADCombined([50])(golden_input, cam, TARGETS, metric_model)
    CamMultImageConfidenceChange()(golden_input, cam, TARGETS, metric_model)
    assert all(module.training for module in metric_model.modules())
    assert hook_count(metric_model) == 0
    torch.testing.assert_close(golden_input, image, rtol=0, atol=0)
    np.testing.assert_array_equal(cam, golden["metric/cam"])


def test_training_flag_restored_when_the_model_raises(golden_input, golden):
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        CamMultImageConfidenceChange()(golden_input, golden["metric/cam"], TARGETS, model)
    assert model.training and model.linear.training


# ---------------------------------------------------------------------------------------- the imputer
def _ramp(height: int = 7, width: int = 9) -> torch.Tensor:
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([rows * 10.0 + cols, 3.0 * cols - rows, torch.full((height, width), 5.0)])


def test_imputer_reproduces_a_linear_image():
    image = _ramp()
    mask = torch.ones(7, 9)
    mask[2:5, 3:7] = 0  # an interior hole: the weighted mean of neighbours is exact for linear images
    filled = NoisyLinearImputer(noise=0)(image, mask)
    torch.testing.assert_close(filled, image, atol=1e-4, rtol=0)


def test_imputer_single_pixel_values_and_weighting_is_honoured():
    rows, cols = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    image = (rows * 10 + cols**2)[None]
    mask = torch.ones(5, 5)
    mask[2, 2] = 0
    default = NoisyLinearImputer(noise=0)(image, mask)
    horizontal = NoisyLinearImputer(noise=0, weighting=[((0, 1), 1.0), ((0, -1), 1.0)])(image, mask)
    vertical = NoisyLinearImputer(noise=0, weighting=[((1, 0), 0.5), ((-1, 0), 0.5)])(image, mask)
    # neighbours: up 14, down 34, left 21, right 29; diagonals 11, 19, 31, 39
    assert default[0, 2, 2].item() == pytest.approx((14 + 34 + 21 + 29) / 6 + (11 + 19 + 31 + 39) / 12, abs=1e-5)
    assert horizontal[0, 2, 2].item() == pytest.approx(25.0, abs=1e-5)
    assert vertical[0, 2, 2].item() == pytest.approx(24.0, abs=1e-5)
    for out in (default, horizontal, vertical):
        assert torch.equal(out[mask[None] == 1], image[mask[None] == 1])


def test_imputer_corner_uses_the_neighbours_inside_the_image():
    image = torch.arange(16.0).reshape(1, 4, 4)
    mask = torch.ones(4, 4)
    mask[0, 0] = 0
    filled = NoisyLinearImputer(noise=0)(image, mask)
    expected = (1 / 6 * 1 + 1 / 6 * 4 + 1 / 12 * 5) / (1 / 6 + 1 / 6 + 1 / 12)
    assert filled[0, 0, 0].item() == pytest.approx(expected, abs=1e-5)


def test_imputer_noise_only_on_removed_pixels_and_caller_untouched():
    image = _ramp()
    original = image.clone()
    mask = torch.ones(7, 9)
    mask[1:6, 2:8] = 0
    torch.manual_seed(0)
    noisy = NoisyLinearImputer(noise=0.5)(image, mask)
    clean = NoisyLinearImputer(noise=0)(image, mask)
    removed = (mask == 0)[None].expand_as(image)
    assert torch.equal(noisy[~removed], image[~removed])
    assert 0.3 < (noisy - clean)[removed].std().item() < 0.7
    assert torch.equal(image, original)


def test_imputer_with_nothing_known_warns_and_fills_zeros():
    image = _ramp(4, 4)
    with pytest.warns(UserWarning, match="no known pixel"):
        filled = NoisyLinearImputer(noise=0)(image, torch.zeros(4, 4))
    assert torch.equal(filled, torch.zeros_like(image))


def test_percentile_masks_match_numpy():
    cams = torch.rand(3, 10, 13)
    cams[0, :4] = 0  # ties at the minimum
    for percentile in (0, 10, 35.5, 50, 90, 100):
        keep = RemoveMostRelevantFirst(percentile, NoisyLinearImputer()).keep_masks(cams)
        expected = np.stack([c < np.percentile(c, percentile) for c in cams.numpy()])
        np.testing.assert_array_equal(keep.numpy() == 1, expected)
        keep = RemoveLeastRelevantFirst(percentile, NoisyLinearImputer()).keep_masks(cams)
        expected = np.stack([1 - c < np.percentile(1 - c, percentile) for c in cams.numpy()])
        np.testing.assert_array_equal(keep.numpy() == 1, expected)


def test_otsu_threshold_matches_opencv_and_auto_removes_the_high_part():
    generator = np.random.default_rng(0)
    for _ in range(5):
        levels = np.concatenate([generator.normal(60, 15, 300), generator.normal(180, 20, 200)]).clip(0, 255)
        levels = levels.astype(np.uint8)
        expected, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        assert otsu_threshold(torch.from_numpy(levels)).item() == int(expected)
    cam = torch.zeros(1, 6, 6)
    cam[0, :2] = 0.9
    morf = RemoveMostRelevantFirst("auto", NoisyLinearImputer()).keep_masks(cam)[0]
    lerf = RemoveLeastRelevantFirst("auto", NoisyLinearImputer()).keep_masks(cam)[0]
    assert torch.equal(morf, (cam[0] < 0.5).float())  # the high part is imputed (the reference imputed the low)
    assert torch.equal(lerf, (cam[0] > 0.5).float())


# --------------------------------------------------------------------------------------------------- ARCC
def test_complexity_and_pearson_hand_values():
    cams = np.stack([np.full((4, 5), 0.5, np.float32), np.eye(4, 5, dtype=np.float32)])
    np.testing.assert_allclose(Complexity()(cams), [0.5, 4 / 20], atol=1e-7)
    a = np.random.rand(3, 6, 6)
    np.testing.assert_allclose(batch_pearson_coherency(a, a), 1, atol=1e-6)
    np.testing.assert_allclose(batch_pearson_coherency(a, 1 - a), -1, atol=1e-6)
    np.testing.assert_allclose(batch_pearson_coherency(a, 2 * a + 3), 1, atol=1e-6)


def test_coherency_and_arcc_follow_their_formula(metric_model, golden_input, golden):
    cam = golden["metric/cam"]
    seen = []

    def same_map(input_tensor, targets):  # a CAM that returns the same map on the masked image
        seen.append(input_tensor.clone())
        return cam.copy()

    coherency = Coherency()(golden_input, cam, TARGETS, metric_model, same_map)
    np.testing.assert_allclose(coherency, 1, atol=1e-6)
    torch.testing.assert_close(seen[0], golden_input * torch.from_numpy(cam)[:, None])
    _seed()
    arcc = ARCC(same_map, road_percentiles=[20, 60])(golden_input, cam, TARGETS, metric_model)
    road = np.clip(golden["metric/ROADCombined_20_60"] * 2, 0, 1)
    complexity = cam.reshape(2, -1).mean(axis=1)
    expected = 3 / (1 / (1 + 1e-8) + 1 / (1 - complexity + 1e-8) + 1 / (road + 1e-8))
    np.testing.assert_allclose(arcc, expected, rtol=1e-4, atol=1e-7)
    assert 0.1 < arcc[1] < 0.5
    assert arcc[0] < 1e-6  # ROAD is negative for image 0: ARCC collapses to 0


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m, x, c: CamMultImageConfidenceChange()(x.numpy(), c, TARGETS, m), TypeError, "input_tensor"),
        (lambda m, x, c: CamMultImageConfidenceChange()(x[0], c, TARGETS, m), ValueError, r"input_tensor must have"),
        (lambda m, x, c: CamMultImageConfidenceChange()(x, c[:, :5], TARGETS, m), ValueError, r"cams .*\(2, 24, 28\)"),
        (lambda m, x, c: CamMultImageConfidenceChange()(x, list(c), TARGETS, m), TypeError, "cams must be"),
        (lambda m, x, c: CamMultImageConfidenceChange()(x, c * np.nan, TARGETS, m), ValueError, "cams contains NaN"),
        (lambda m, x, c: CamMultImageConfidenceChange()(x, c, TARGETS[:1], m), ValueError, "got 1 target"),
        (lambda m, x, c: CamMultImageConfidenceChange()(x, c, ClassifierOutputTarget(1), m), TypeError, "targets must"),
        (lambda m, x, c: CamMultImageConfidenceChange()(x, c, [1, 3], m), TypeError, r"targets\[0\] must be callable"),
        (lambda m, x, c: CamMultImageConfidenceChange()(x, c, TARGETS, "model"), TypeError, "model must be"),
        (lambda m, x, c: ROADMostRelevantFirst(50)(x[:, :, None], c, TARGETS, m), ValueError, r"\(B, C, H, W\)"),
        (lambda m, x, c: ROADMostRelevantFirst(120), ValueError, r"percentile .*\[0, 100\].*got 120"),
        (lambda m, x, c: ROADLeastRelevantFirst("otsu"), ValueError, "percentile .*'otsu'"),
        (lambda m, x, c: ROADMostRelevantFirst([50]), TypeError, "percentile must be"),
        (lambda m, x, c: ROADCombined([])(x, c, TARGETS, m), ValueError, "percentiles must be"),
        (lambda m, x, c: CamMultImageConfidenceChange(batch_size=0), ValueError, "batch_size .* got 0"),
        (lambda m, x, c: NoisyLinearImputer(noise=-1), ValueError, "noise .* got -1"),
        (lambda m, x, c: NoisyLinearImputer(weighting=[(0, 1)]), TypeError, r"weighting\[0\]"),
        (lambda m, x, c: NoisyLinearImputer(weighting=[((0, 0), 1.0)]), ValueError, r"\(0, 0\)"),
        (lambda m, x, c: NoisyLinearImputer(weighting=[((0, 1), -1.0)]), ValueError, "positive"),
        (lambda m, x, c: ARCC("gradcam"), TypeError, "base_method"),
    ],
)
def test_bad_input(call, error, message, metric_model, golden_input, golden):
    with pytest.raises(error, match=message):
        call(metric_model, golden_input, golden["metric/cam"])
