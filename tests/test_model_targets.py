"""Model targets: golden numbers of the reference release, hand-computed cases and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputReST,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    FasterRCNNBoxScoreTarget,
    FinerWeightedTarget,
    RawScoresOutputTarget,
    SemanticSegmentationTarget,
    SimilarityToConceptTarget,
    SoftmaxOutputTarget,
)

LOGITS = torch.linspace(-2, 2, 10).reshape(2, 5)


def _segmentation_case() -> tuple[torch.Tensor, np.ndarray]:
    mask = np.zeros((8, 8), dtype=np.float32)
    mask[2:5, 3:7] = 1
    return torch.linspace(0, 1, 192).reshape(3, 8, 8), mask


@pytest.mark.parametrize("target_class", [ClassifierOutputTarget, ClassifierOutputSoftmaxTarget, ClassifierOutputReST])
def test_classifier_targets_match_golden(golden: dict[str, np.ndarray], target_class: type) -> None:
    values = np.array([target_class(2)(row).numpy() for row in LOGITS])
    np.testing.assert_allclose(values, golden[f"target/{target_class.__name__}"], atol=1e-5)


def test_binary_target_matches_golden(golden: dict[str, np.ndarray]) -> None:
    with pytest.warns(UserWarning, match="category should be 0 .* or 1"):
        target = BinaryClassifierOutputTarget(2)
    values = np.array([target(row).numpy() for row in LOGITS])
    np.testing.assert_allclose(values, golden["target/BinaryClassifierOutputTarget"], atol=1e-5)


def test_binary_target_sign() -> None:
    logit = torch.tensor([0.75])
    assert BinaryClassifierOutputTarget(1)(logit).item() == 0.75
    assert BinaryClassifierOutputTarget(0)(logit).item() == -0.75


def test_raw_scores_matches_golden(golden: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(
        RawScoresOutputTarget()(LOGITS).numpy(), golden["target/RawScoresOutputTarget"], atol=1e-5
    )


@pytest.mark.parametrize("as_tensor", [False, True])
def test_semantic_segmentation_matches_golden(golden: dict[str, np.ndarray], as_tensor: bool) -> None:
    scores, mask = _segmentation_case()
    target = SemanticSegmentationTarget(1, torch.from_numpy(mask) if as_tensor else mask)
    value = target(scores)
    assert value.ndim == 0
    np.testing.assert_allclose(value.item(), golden["target/SemanticSegmentationTarget"], atol=1e-5)
    # mapping outputs (torchvision segmentation models return {"out": ...}) and float64 outputs work too
    np.testing.assert_allclose(target({"out": scores.double()}).item(), value.item(), atol=1e-5)


def test_semantic_segmentation_keeps_its_own_mask_copy() -> None:
    scores, mask = _segmentation_case()
    target = SemanticSegmentationTarget(0, mask)
    mask[:] = 0
    # channel 0 of linspace(0, 1, 192) at rows 2..4, cols 3..6: (8r + c) / 191
    expected = sum((8 * r + c) / 191 for r in range(2, 5) for c in range(3, 7))
    assert target(scores).item() == pytest.approx(expected, abs=1e-5)


def test_semantic_segmentation_bad_input() -> None:
    scores, mask = _segmentation_case()
    with pytest.raises(ValueError, match=r"mask shape must equal .*\(8, 8\); got \(4, 4\)"):
        SemanticSegmentationTarget(1, np.ones((4, 4), dtype=np.float32))(scores)
    with pytest.raises(ValueError, match=r"category must be in \[0, 3\) .* got 5"):
        SemanticSegmentationTarget(5, mask)(scores)
    with pytest.raises(ValueError, match=r"mask must have shape \(H, W\) or \(D, H, W\); got \(1, 1, 8, 8\)"):
        SemanticSegmentationTarget(1, mask[None, None])
    with pytest.raises(ValueError, match=r"score map of shape \(C, D, H, W\); got \(3, 8, 8\)"):
        SemanticSegmentationTarget(1, mask[None])(scores)
    with pytest.raises(TypeError, match="mask must be a numpy array or a torch tensor"):
        SemanticSegmentationTarget(1, [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"score map of shape \(C, H, W\); got \(5,\)"):
        SemanticSegmentationTarget(1, mask)(LOGITS[0])


def test_semantic_segmentation_on_a_volume() -> None:
    scores = torch.linspace(0, 1, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    mask = np.zeros((3, 4, 5), dtype=np.float32)
    mask[1, 2:4, 0:2] = 1
    expected = scores[1, 1, 2:4, 0:2].sum().item()
    assert SemanticSegmentationTarget(1, mask)(scores).item() == pytest.approx(expected, abs=1e-6)


def test_classifier_targets_on_2d_output() -> None:
    np.testing.assert_allclose(ClassifierOutputTarget(2)(LOGITS).numpy(), LOGITS[:, 2].numpy())
    softmax = torch.softmax(LOGITS, dim=-1)[:, 2]
    np.testing.assert_allclose(ClassifierOutputSoftmaxTarget(2)(LOGITS).numpy(), softmax.numpy())
    # ReST on a batch subtracts the mean cross-entropy of the rows, as torch's cross_entropy does
    cross_entropy = [math.log(sum(math.exp(v) for v in row)) - row[2] for row in LOGITS.tolist()]
    expected = LOGITS[:, 2].numpy() - np.mean(cross_entropy)
    np.testing.assert_allclose(ClassifierOutputReST(2)(LOGITS).numpy(), expected, atol=1e-6)


def test_rest_hand_computed() -> None:
    row = [1.0, 2.0, 0.5]
    expected = 2 * row[1] - math.log(sum(math.exp(v) for v in row))
    assert ClassifierOutputReST(1)(torch.tensor(row)).item() == pytest.approx(expected, abs=1e-6)


def test_softmax_output_target() -> None:
    probabilities = SoftmaxOutputTarget()(LOGITS[0])
    expected = np.exp(LOGITS[0].numpy()) / np.exp(LOGITS[0].numpy()).sum()
    np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-6)


def test_category_validation() -> None:
    with pytest.raises(TypeError, match=r"category must be an integer; got float 2.5"):
        ClassifierOutputSoftmaxTarget(2.5)
    with pytest.raises(TypeError, match=r"category must be an integer; got str '1'"):
        ClassifierOutputReST("1")
    with pytest.raises(ValueError, match=r"category must be in \[0, 5\) .* got 7"):
        ClassifierOutputSoftmaxTarget(7)(LOGITS[0])
    assert ClassifierOutputSoftmaxTarget(np.int64(1)).category == 1


def _detections(requires_grad: bool = False) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
        "labels": torch.tensor([1, 2]),
        "scores": torch.tensor([0.9, 0.8], requires_grad=requires_grad),
    }


def test_fasterrcnn_matching_box() -> None:
    detections = _detections(requires_grad=True)
    # IoU of [0, 0, 10, 8] with [0, 0, 10, 10] is 80 / 100 = 0.8; the score adds 0.9
    value = FasterRCNNBoxScoreTarget([1], np.array([[0.0, 0.0, 10.0, 8.0]]))(detections)
    assert value.ndim == 0
    assert value.item() == pytest.approx(0.8 + 0.9, abs=1e-6)
    (grad,) = torch.autograd.grad(value, detections["scores"])
    np.testing.assert_allclose(grad.numpy(), [1.0, 0.0])
    both = FasterRCNNBoxScoreTarget(torch.tensor([1, 2]), [[0.0, 0.0, 10.0, 8.0], [20.0, 20.0, 30.0, 30.0]])(detections)
    assert both.item() == pytest.approx(0.8 + 0.9 + 1.0 + 0.8, abs=1e-6)


def test_fasterrcnn_wrong_label_or_low_iou_scores_zero() -> None:
    detections = _detections()
    assert FasterRCNNBoxScoreTarget([2], np.array([[0.0, 0.0, 10.0, 8.0]]))(detections).item() == 0.0
    # IoU exactly 0.5 is not above the threshold
    assert FasterRCNNBoxScoreTarget([1], np.array([[0.0, 0.0, 10.0, 5.0]]))(detections).item() == 0.0
    relaxed = FasterRCNNBoxScoreTarget([1], np.array([[0.0, 0.0, 10.0, 5.0]]), iou_threshold=0.4)
    assert relaxed(detections).item() == pytest.approx(0.5 + 0.9, abs=1e-6)


def test_fasterrcnn_empty_detections_give_zero_scalar() -> None:
    empty = {
        "boxes": torch.zeros((0, 4), dtype=torch.float64),
        "labels": torch.zeros(0, dtype=torch.int64),
        "scores": torch.zeros(0, dtype=torch.float64),
    }
    value = FasterRCNNBoxScoreTarget([1], np.array([[0.0, 0.0, 10.0, 8.0]]))(empty)
    assert value.shape == () and value.item() == 0.0
    assert value.device == empty["boxes"].device and value.dtype == torch.float64


def test_fasterrcnn_bad_input() -> None:
    with pytest.raises(ValueError, match=r"labels must have one entry per bounding box \(2\); got 1"):
        FasterRCNNBoxScoreTarget([1], np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"bounding_boxes must have shape \(K, 4\); got \(2, 3\)"):
        FasterRCNNBoxScoreTarget([1, 2], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"iou_threshold must be a number in \[0, 1\]; got 1.5"):
        FasterRCNNBoxScoreTarget([1], np.zeros((1, 4)), iou_threshold=1.5)
    with pytest.raises(TypeError, match="detection dict with 'boxes', 'labels' and 'scores'; got Tensor"):
        FasterRCNNBoxScoreTarget([1], np.zeros((1, 4)))(LOGITS[0])


def test_similarity_to_concept() -> None:
    target = SimilarityToConceptTarget(np.array([1.0, 1.0, 0.0], dtype=np.float32))
    assert target(torch.tensor([2.0, 0.0, 0.0])).item() == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    assert target(torch.tensor([0.0, 0.0, 3.0])).item() == pytest.approx(0.0, abs=1e-7)
    assert target(torch.tensor([-1.0, -1.0, 0.0], dtype=torch.float64)).item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match=r"features shape \(3,\) must equal .* got \(4,\)"):
        target(torch.ones(4))
    with pytest.raises(TypeError, match="features must be a numpy array or a torch tensor; got list"):
        SimilarityToConceptTarget([1.0, 0.0])


def test_finer_weighted_target_hand_computed() -> None:
    logits = [1.0, 2.0, 3.0, 0.0]
    exp = [math.exp(v) for v in logits]
    p = [e / sum(exp) for e in exp]
    alpha = 0.5
    expected = (p[0] * (3.0 - alpha * 1.0) + p[1] * (3.0 - alpha * 2.0)) / (p[0] + p[1] + 1e-9)
    target = FinerWeightedTarget(2, [0, 1], alpha)
    assert target(torch.tensor(logits)).item() == pytest.approx(expected, abs=1e-6)
    # alpha = 0 gives the main logit; a batch of rows is handled row by row
    assert FinerWeightedTarget(2, [0, 1], 0)(torch.tensor(logits)).item() == pytest.approx(3.0, abs=1e-6)
    batch = torch.tensor([logits, logits[::-1]])
    rows = [target(row).item() for row in batch]
    np.testing.assert_allclose(target(batch).numpy(), rows, atol=1e-6)


def test_finer_weighted_target_bad_input() -> None:
    with pytest.raises(ValueError, match="comparison_categories must hold at least one class index"):
        FinerWeightedTarget(1, [], 1.0)
    with pytest.raises(TypeError, match=r"comparison_categories\[1\] must be an integer; got float"):
        FinerWeightedTarget(1, [0, 1.5], 1.0)
    with pytest.raises(TypeError, match="alpha must be a real number; got str 'x'"):
        FinerWeightedTarget(1, [0], "x")
    with pytest.raises(ValueError, match=r"category must be in \[0, 4\) .* got 9"):
        FinerWeightedTarget(1, [0, 9], 1.0)(torch.zeros(4))
