"""Deletion / insertion AUC and the pointing games on hand-built cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn

from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC, auc, gaussian_blur
from pytorch_grad_cam.metrics.pointing_game import energy_pointing_game, pointing_game
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

SIZE = 8
# the region the model looks at: every other column, half of the pixels, spread evenly over the rows
REGION = torch.zeros(SIZE, SIZE, dtype=torch.bool)
REGION[:, 1::2] = True


class RegionMean(nn.Module):
    """Logits ``[scale · mean of channel 0 over REGION, 0]``: the score depends on the region's pixels only."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.dropout = nn.Dropout(0.5)  # must be off during the metric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.dropout(x[:, 0])[:, REGION].mean(dim=1)
        return torch.stack([self.scale * mean, torch.zeros_like(mean)], dim=1)


def _maps() -> dict[str, torch.Tensor]:
    perfect = REGION.float()
    return {"perfect": perfect, "inverted": 1 - perfect, "uniform": torch.full((SIZE, SIZE), 0.5)}


IMAGES = torch.ones(2, 3, SIZE, SIZE)
TARGETS = [ClassifierOutputTarget(0), ClassifierOutputTarget(0)]

# n_steps = 8 removes one row (8 pixels) per step. perfect: the 32 region pixels go in steps 1-4, the score falls
# 1, .75, .5, .25, 0, 0, 0, 0, 0 -> AUC 1/4; inverted: the region goes last -> 3/4; uniform (ties in row-major
# order): 4 region pixels per row -> a straight line -> 1/2. Insertion mirrors it.
DELETION = {"perfect": 0.25, "inverted": 0.75, "uniform": 0.5}
INSERTION = {"perfect": 0.75, "inverted": 0.25, "uniform": 0.5}


@pytest.mark.parametrize("name", ["perfect", "inverted", "uniform"])
def test_deletion_and_insertion_known_answers(name):
    model = RegionMean().train()
    cams = _maps()[name].expand(2, SIZE, SIZE)
    deletion = DeletionAUC(n_steps=8, baseline=0.0, score="raw")(IMAGES, cams, TARGETS, model)
    insertion = InsertionAUC(n_steps=8, baseline=0.0, score="raw")(IMAGES, cams.numpy(), TARGETS, model)
    assert deletion.dtype == np.float32 and deletion.shape == (2,)
    np.testing.assert_allclose(deletion, DELETION[name], atol=1e-6)
    np.testing.assert_allclose(insertion, INSERTION[name], atol=1e-6)
    assert model.training and model.dropout.training and hook_count(model) == 0


def test_deletion_curve_with_softmax_probability():
    model = RegionMean(scale=4.0)
    cams = _maps()["perfect"].expand(2, SIZE, SIZE)
    result, curves = DeletionAUC(n_steps=8)(IMAGES, cams, TARGETS, model, return_curves=True)
    mean = np.array([1, 0.75, 0.5, 0.25, 0, 0, 0, 0, 0])
    expected = 1 / (1 + np.exp(-4 * mean))  # softmax of [4 m, 0], class 0
    np.testing.assert_allclose(curves, np.stack([expected, expected]), atol=1e-6)
    np.testing.assert_allclose(result, np.trapezoid(expected, dx=1 / 8), atol=1e-6)
    np.testing.assert_allclose(auc(curves), result, atol=1e-6)


def test_targets_none_batch_size_and_tensor_baseline_agree():
    model = RegionMean(scale=-2.0)  # the top class is 1 (logit 0 > -2 m)
    cams = torch.rand(2, SIZE, SIZE)
    images = torch.rand(2, 3, SIZE, SIZE)
    original = images.clone()
    explicit = InsertionAUC(n_steps=5, baseline=0.25)(images, cams, [ClassifierOutputTarget(1)] * 2, model)
    implicit = InsertionAUC(n_steps=5, baseline=torch.full((3, 1, 1), 0.25), batch_size=4)(images, cams, None, model)
    whole = InsertionAUC(n_steps=5, baseline=0.25, batch_size=None)(images, cams, None, model)
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    np.testing.assert_allclose(whole, explicit, atol=1e-6)
    assert torch.equal(images, original)


def test_the_last_point_of_each_curve_is_the_other_image():
    model = RegionMean(scale=3.0).eval()
    images = torch.rand(1, 3, SIZE, SIZE)
    cams = torch.rand(1, SIZE, SIZE)
    with torch.no_grad():
        full = model(images).softmax(dim=1)[0, 0].item()
        blurred = model(gaussian_blur(images)).softmax(dim=1)[0, 0].item()
    _, deletion = DeletionAUC(n_steps=4, baseline="blur")(images, cams, TARGETS[:1], model, return_curves=True)
    _, insertion = InsertionAUC(n_steps=4)(images, cams, TARGETS[:1], model, return_curves=True)
    np.testing.assert_allclose([deletion[0, 0], deletion[0, -1]], [full, blurred], atol=1e-6)
    np.testing.assert_allclose([insertion[0, 0], insertion[0, -1]], [blurred, full], atol=1e-6)


def test_gaussian_blur_hand_values():
    constant = torch.full((1, 2, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(constant), constant)
    delta = torch.zeros(1, 1, 21, 21)
    delta[0, 0, 10, 10] = 1
    blurred = gaussian_blur(delta, kernel_size=5, sigma=1.0)
    g = np.exp(-(np.arange(-2, 3) ** 2) / 2)
    g /= g.sum()
    expected = np.zeros((21, 21))
    expected[8:13, 8:13] = np.outer(g, g)
    np.testing.assert_allclose(blurred[0, 0].numpy(), expected, atol=1e-7)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: DeletionAUC(n_steps=0), ValueError, "n_steps .* got 0"),
        (lambda: DeletionAUC(n_steps=2.5), TypeError, "n_steps"),
        (lambda: InsertionAUC(baseline="noise"), ValueError, "baseline .*'noise'"),
        (lambda: InsertionAUC(baseline=[0.0]), TypeError, "baseline"),
        (lambda: DeletionAUC(score="logit"), ValueError, "score .*'logit'"),
        (lambda: InsertionAUC(blur_kernel_size=4), ValueError, "kernel_size .* 4"),
        (lambda: DeletionAUC()(IMAGES, torch.rand(2, 4, 4), TARGETS, RegionMean()), ValueError, r"cams must have"),
        (lambda: DeletionAUC()(IMAGES[0], torch.rand(2, 8, 8), TARGETS, RegionMean()), ValueError, "input_tensor"),
        (lambda: DeletionAUC()(IMAGES, torch.rand(2, 8, 8), TARGETS * 2, RegionMean()), ValueError, "got 4 target"),
        (
            lambda: DeletionAUC(baseline=torch.zeros(5))(IMAGES, torch.rand(2, 8, 8), TARGETS, RegionMean()),
            ValueError,
            "baseline must broadcast",
        ),
        (lambda: auc(np.zeros(3)), ValueError, "curves"),
    ],
)
def test_deletion_insertion_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------------------------------- pointing game
def _mask() -> np.ndarray:
    mask = np.zeros((2, 10, 12), dtype=bool)
    mask[:, 2:5, 3:6] = True
    return mask


def test_pointing_game_perfect_inverted_uniform():
    mask = _mask()
    perfect = mask.astype(np.float32) + np.random.rand(2, 10, 12).astype(np.float32) * 0.1
    inverted = 1 - perfect
    uniform = np.full((2, 10, 12), 0.3, np.float32)
    hits = pointing_game(np.concatenate([perfect, inverted, uniform]), np.concatenate([mask] * 3))
    assert hits.dtype == np.bool_
    np.testing.assert_array_equal(hits, [True, True, False, False, False, False])
    # a flat map only hits a mask that covers the whole image
    assert pointing_game(uniform, np.ones_like(mask)).all()


def test_pointing_game_tolerance_is_euclidean():
    mask = np.zeros((1, 12, 12), dtype=bool)
    mask[0, 2:4, 2:4] = True
    straight = np.zeros((1, 12, 12), np.float32)
    straight[0, 3, 6] = 1  # 3 pixels right of the mask
    diagonal = np.zeros((1, 12, 12), np.float32)
    diagonal[0, 5, 5] = 1  # (2, 2) from the corner (3, 3): distance 2.83
    assert [pointing_game(straight, mask, t)[0] for t in (0, 2, 2.99, 3)] == [False, False, False, True]
    assert [pointing_game(diagonal, mask, t)[0] for t in (2, 2.8, 2.9, 15)] == [False, False, True, True]


def test_pointing_game_ties_must_all_hit_and_inputs_may_be_torch():
    mask = _mask()
    cams = np.zeros((2, 10, 12), np.float32)
    cams[0, 3, 4] = cams[0, 2, 3] = 1  # two maxima on the object
    cams[1, 3, 4] = cams[1, 8, 10] = 1  # one on it, one far away
    np.testing.assert_array_equal(pointing_game(cams, mask), [True, False])
    np.testing.assert_array_equal(pointing_game(torch.from_numpy(cams), torch.from_numpy(mask).int()), [True, False])
    np.testing.assert_array_equal(pointing_game(cams, mask, tolerance=8), [True, True])


def test_energy_pointing_game_hand_values():
    mask = _mask()  # 9 of 120 pixels
    perfect = mask.astype(np.float32)
    uniform = np.full((2, 10, 12), 0.3, np.float32)
    mixed = np.zeros((2, 10, 12), np.float32)
    mixed[:, 3, 3] = 3
    mixed[:, 9, 9] = 1
    result = energy_pointing_game(np.concatenate([perfect, 1 - perfect, uniform, mixed]), np.concatenate([mask] * 4))
    assert result.dtype == np.float64
    np.testing.assert_allclose(result, [1, 1, 0, 0, 9 / 120, 9 / 120, 0.75, 0.75], atol=1e-12)
    torch_result = energy_pointing_game(torch.from_numpy(mixed), torch.from_numpy(mask))
    np.testing.assert_allclose(torch_result, 0.75, atol=1e-12)


def test_empty_mask_and_zero_map_warn():
    mask = _mask()
    mask[1] = False
    cams = np.random.rand(2, 10, 12)
    with pytest.warns(UserWarning, match=r"image\(s\) \[1\] are empty"):
        hits = pointing_game(cams, mask, tolerance=100)
    assert hits[0] and not hits[1]
    with pytest.warns(UserWarning, match="zero everywhere"):
        energy = energy_pointing_game(np.zeros((2, 10, 12)), _mask())
    np.testing.assert_array_equal(energy, [0, 0])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: pointing_game(m.tolist(), m), TypeError, "cams must be a torch tensor or a numpy array; got list"),
        (lambda m: pointing_game(np.zeros((10, 12)), m[0]), ValueError, r"cams must have shape \(B, H, W\)"),
        (lambda m: pointing_game(np.zeros((2, 10, 11)), m), ValueError, r"masks must have the shape.*\(2, 10, 12\)"),
        (lambda m: pointing_game(np.zeros((2, 10, 12)), m * 2.5), ValueError, "masks must be boolean"),
        (lambda m: pointing_game(np.zeros((2, 10, 12)), m, tolerance=-1), ValueError, "tolerance .* got -1"),
        (lambda m: pointing_game(np.zeros((2, 10, 12)), m, tolerance="15"), TypeError, "tolerance"),
        (lambda m: pointing_game(np.full((2, 10, 12), np.nan), m), ValueError, "NaN"),
        (lambda m: energy_pointing_game(-np.ones((2, 10, 12)), m), ValueError, "non-negative.*-1"),
        (lambda m: energy_pointing_game(np.ones((2, 10, 12)), "mask"), TypeError, "masks must be"),
    ],
)
def test_pointing_game_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call(_mask())
