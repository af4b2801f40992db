"""Contrastive localisation (discriminative pointing game, relevance share) and the intervention test on hand-computed
cases: small maps whose maximum and positive mass are known, and a linear model whose predictions are known."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pytorch_grad_cam.metrics as metrics
from pytorch_grad_cam.metrics.intervention import InterventionResult, intervention_effect
from pytorch_grad_cam.metrics.localization import discriminative_pointing_game, relevance_share
from pytorch_grad_cam.metrics.pointing_game import pointing_game

pytestmark = pytest.mark.usefixtures("one_thread")

# 4 x 4 maps: the right region is the top-left 2 x 2 block, the wrong one the bottom-right 2 x 2 block.
RIGHT = np.zeros((4, 4), bool)
RIGHT[:2, :2] = True
WRONG = np.zeros((4, 4), bool)
WRONG[2:, 2:] = True


def _single(*pixels: tuple[int, int], value: float = 1.0) -> np.ndarray:
    """A 4 x 4 map of zeros with ``value`` at ``pixels``."""
    cam = np.zeros((4, 4))
    for row, col in pixels:
        cam[row, col] = value
    return cam


def _masks(count: int) -> tuple[np.ndarray, np.ndarray]:
    return np.broadcast_to(RIGHT, (count, 4, 4)).copy(), np.broadcast_to(WRONG, (count, 4, 4)).copy()


# ------------------------------------------------------------------------------ discriminative pointing game
def test_discriminative_pointing_game_hand_computed() -> None:
    cams = np.stack(
        [
            _single((0, 0)),  # the maximum on the right region: a hit
            _single((3, 3)),  # on the wrong region: a miss
            _single((0, 3)),  # on the background: a miss (on neither region)
            _single((0, 0), (3, 3)),  # a tie across both regions: not every maximum on the right region, a miss
            _single((0, 0), (1, 1)),  # a plateau inside the right region: a hit
            _single((1, 2), (2, 1)),  # a tie on the background: a miss
        ]
    )
    cams[:, 3, 0] = -2.0  # negative values change nothing
    right, wrong = _masks(len(cams))
    hits = discriminative_pointing_game(cams, right, wrong)
    assert hits.dtype == bool and hits.shape == (6,)
    np.testing.assert_array_equal(hits, [True, False, False, False, True, False])
    # the same answers from torch inputs, and from 0/1 masks
    torch_hits = discriminative_pointing_game(torch.from_numpy(cams), torch.from_numpy(right), wrong.astype(np.uint8))
    np.testing.assert_array_equal(torch_hits, hits)
    # a constant map ties everywhere: it points at nothing
    assert not discriminative_pointing_game(np.ones((1, 4, 4)), right[:1], wrong[:1])[0]


def test_discriminative_pointing_game_tolerance() -> None:
    # the maximum at (0, 2): 1 px from the right region's (0, 1), 2 px from the wrong region's (2, 2)
    cams = np.stack([_single((0, 2))] * 4)
    right, wrong = _masks(4)
    np.testing.assert_array_equal(
        [discriminative_pointing_game(cams[:1], right[:1], wrong[:1], tolerance=t)[0] for t in (0, 1, 1.9, 2)],
        [False, True, True, False],  # within 2 px of both regions: on the wrong one too
    )
    # the maximum at (0, 3): 2 px from the right region's (0, 1) and 2 px from the wrong region's (2, 3)
    corner = _single((0, 3))[None]
    assert [discriminative_pointing_game(corner, right[:1], wrong[:1], tolerance=t)[0] for t in (1, 2)] == [
        False,
        False,
    ]
    # the maximum at (1, 2): 1 px from the right region's (1, 1) and 1 px from the wrong region's (2, 2)
    assert not discriminative_pointing_game(_single((1, 2))[None], right[:1], wrong[:1], tolerance=1)[0]


def test_class_agnostic_map_hits_for_one_class_at_most() -> None:
    generator = np.random.default_rng(0)
    cams = generator.random((50, 4, 4))
    right, wrong = _masks(50)
    for_right = discriminative_pointing_game(cams, right, wrong)
    for_wrong = discriminative_pointing_game(cams, wrong, right)
    assert not (for_right & for_wrong).any()
    # a random map's maximum is on the right region with probability 4 / 16, on the wrong one as often
    assert 0 < for_right.sum() < 50 and 0 < for_wrong.sum() < 50
    np.testing.assert_array_equal(for_right, pointing_game(cams, right) & ~pointing_game(cams, wrong))


def test_discriminative_pointing_game_with_an_empty_wrong_region_is_the_pointing_game() -> None:
    cams = np.stack([_single((0, 0)), _single((3, 3))])
    right = _masks(2)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty wrong region is legitimate: no warning
        hits = discriminative_pointing_game(cams, right, np.zeros((2, 4, 4), bool))
    np.testing.assert_array_equal(hits, [True, False])
    # an empty right region is warned about, once
    with pytest.warns(UserWarning, match="empty") as caught:
        discriminative_pointing_game(cams, np.zeros((2, 4, 4), bool), right)
    assert len(caught) == 1


# ------------------------------------------------------------------------------------------ relevance share
def test_relevance_share_hand_computed() -> None:
    cams = np.zeros((5, 4, 4))
    # right: 2 + 1 = 3 (the -4 counts as 0); wrong: 1 (the -3 counts as 0); background 10 ignored -> 3 / 4
    cams[0, 0, 0], cams[0, 0, 1], cams[0, 1, 1] = 2.0, 1.0, -4.0
    cams[0, 2, 2], cams[0, 3, 3] = 1.0, -3.0
    cams[0, 0, 3] = 10.0
    # right 0.5, wrong 1.5 -> 1 / 4
    cams[1, 1, 0], cams[1, 2, 3], cams[1, 3, 2] = 0.5, 1.0, 0.5
    # no positive relevance in either region (negative inside, positive on the background only) -> 0.5
    cams[2, :2, :2], cams[2, 2:, 2:], cams[2, 0, 3] = -1.0, -2.0, 5.0
    # only the right region positive -> 1; only the wrong one -> 0
    cams[3, 0, 0] = 0.25
    cams[4, 3, 3] = 7.0
    right, wrong = _masks(5)
    share = relevance_share(cams, right, wrong)
    assert share.dtype == np.float64 and share.shape == (5,)
    np.testing.assert_allclose(share, [0.75, 0.25, 0.5, 1.0, 0.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        relevance_share(torch.from_numpy(cams).float(), torch.from_numpy(right), wrong.astype(np.int64)),
        share,
        atol=1e-7,
    )
    # scale-free
    np.testing.assert_allclose(relevance_share(1e-3 * cams, right, wrong), share, atol=1e-12)
    # all zero: 0.5
    np.testing.assert_array_equal(relevance_share(np.zeros((2, 4, 4)), *_masks(2)), [0.5, 0.5])


def test_class_agnostic_map_shares_add_up_to_one() -> None:
    generator = np.random.default_rng(1)
    cams = generator.normal(size=(20, 4, 4))
    right, wrong = _masks(20)
    cams[0, 2:, 2:] = -1.0  # the wrong region without positive relevance: share 1 for the right one, 0 swapped
    share, swapped = relevance_share(cams, right, wrong), relevance_share(cams, wrong, right)
    np.testing.assert_allclose(share + swapped, 1.0, atol=1e-12)
    assert share[0] == 1.0 and swapped[0] == 0.0
    assert ((share >= 0) & (share <= 1)).all()


def test_contrastive_scores_reject_bad_masks() -> None:
    cams = np.zeros((2, 4, 4))
    right, wrong = _masks(2)
    overlapping = wrong.copy()
    overlapping[1, 1, 1] = True  # a pixel of image 1 in both regions
    for score in (discriminative_pointing_game, relevance_share):
        with pytest.raises(ValueError, match=r"must not overlap; they do in image\(s\) \[1\]"):
            score(cams, right, overlapping)
        with pytest.raises(ValueError, match="masks must have the shape of cams"):
            score(cams, right[:, :3], wrong)
        with pytest.raises(ValueError, match="masks must have the shape of cams"):
            score(cams, right, wrong[:1])
        with pytest.raises(ValueError, match="cams must have shape"):
            score(cams[0], right[0], wrong[0])
        with pytest.raises(ValueError, match="boolean"):
            score(cams, right, 2 * wrong.astype(np.int64))
        with pytest.raises(ValueError, match="NaN"):
            score(np.full((2, 4, 4), np.nan), right, wrong)
        with pytest.raises(TypeError):
            score([[[0.0]]], right, wrong)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- intervention test
class PixelLogits(nn.Module):
    """Logits of a ``(B, 1, 2, 2)`` image: ``[x[0, 0], x[1, 1]]`` (a linear layer on the flattened pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x.flatten(1))


def _images(logits: list[list[float]]) -> torch.Tensor:
    """Images whose logits under :class:`PixelLogits` are ``logits``."""
    images = torch.zeros(len(logits), 1, 2, 2)
    images[:, 0, 0, 0] = torch.tensor([row[0] for row in logits])
    images[:, 0, 1, 1] = torch.tensor([row[1] for row in logits])
    images[:, 0, 0, 1] = 9.0  # pixels the model ignores
    return images


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


BEFORE = [[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]]  # predicted 0, 1, 0, 1
AFTER = [[0.0, 2.0], [0.0, 1.0], [3.0, 0.0], [1.0, 0.0]]  # predicted 1, 1, 0, 0
LABELS = [0, 1, 1, 1]


def test_intervention_effect_hand_computed() -> None:
    model = PixelLogits()
    result = intervention_effect(model, _images(BEFORE), _images(AFTER), np.array(LABELS), batch_size=3)
    assert isinstance(result, InterventionResult) and model.calls == 4  # two batches per set of images
    np.testing.assert_array_equal(result.labels, LABELS)
    np.testing.assert_array_equal(result.predicted_before, [0, 1, 0, 1])
    np.testing.assert_array_equal(result.predicted_after, [1, 1, 0, 0])
    for array in (result.labels, result.predicted_before, result.predicted_after):
        assert array.dtype == np.int64
    # the softmax probability of the true class of two logits (a, b): sigmoid(a - b) for class 0
    before = [_sigmoid(2), _sigmoid(1), _sigmoid(-1), _sigmoid(3)]
    after = [_sigmoid(-2), _sigmoid(1), _sigmoid(-3), _sigmoid(-1)]
    assert result.probability_before.dtype == np.float64 and result.probability_after.dtype == np.float64
    np.testing.assert_allclose(result.probability_before, before, rtol=1e-6)
    np.testing.assert_allclose(result.probability_after, after, rtol=1e-6)
    assert result.accuracy_before == 0.75 and result.accuracy_after == 0.25
    np.testing.assert_array_equal(result.flips, [True, False, False, True])
    assert result.flip_rate == 0.5
    assert result.probability_drop == pytest.approx(np.mean(np.subtract(before, after)), rel=1e-6)
    assert result.probability_drop == pytest.approx(0.41669, abs=1e-5)


def test_intervention_effect_identity_and_label_forms() -> None:
    model = PixelLogits()
    images = _images(BEFORE)
    same = intervention_effect(model, images, images.clone(), torch.tensor([[0], [1], [1], [1]]))
    assert same.flip_rate == 0.0 and same.probability_drop == 0.0
    assert same.accuracy_before == same.accuracy_after == 0.75
    np.testing.assert_array_equal(same.labels, LABELS)
    # one batch or one image per batch: the same figures
    one_by_one = intervention_effect(model, images, _images(AFTER), np.array(LABELS), batch_size=1)
    whole = intervention_effect(model, images, _images(AFTER), np.array(LABELS))
    np.testing.assert_allclose(one_by_one.probability_after, whole.probability_after, rtol=1e-7)
    assert one_by_one.flip_rate == whole.flip_rate == 0.5


def test_intervention_effect_bad_input() -> None:
    model, images, labels = PixelLogits(), _images(BEFORE), np.array(LABELS)
    with pytest.raises(ValueError, match="altered_images must have the shape of images"):
        intervention_effect(model, images, images[:3], labels)
    with pytest.raises(ValueError, match="altered_images must have the shape of images"):
        intervention_effect(model, images, images.reshape(4, 1, 1, 4), labels)
    with pytest.raises(TypeError, match="must be torch tensors"):
        intervention_effect(model, images.numpy(), images, labels)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be torch tensors"):
        intervention_effect(model, images, images.numpy(), labels)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"labels must hold one class per image \(4\); got 3"):
        intervention_effect(model, images, images, np.array([0, 1, 1]))
    with pytest.raises(TypeError, match="labels must be a torch tensor or a numpy array"):
        intervention_effect(model, images, images, [0, 1, 1, 1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        intervention_effect(model, images, images, labels, batch_size=0)
    with pytest.raises(ValueError, match="model must return class scores"):
        intervention_effect(lambda x: x.flatten(), images, images, labels)  # type: ignore[arg-type]


def test_exported_from_metrics() -> None:
    assert metrics.discriminative_pointing_game is discriminative_pointing_game
    assert metrics.relevance_share is relevance_share
    assert metrics.intervention_effect is intervention_effect
    assert metrics.InterventionResult is InterventionResult
    for name in ("discriminative_pointing_game", "relevance_share", "intervention_effect", "InterventionResult"):
        assert name in metrics.__all__
