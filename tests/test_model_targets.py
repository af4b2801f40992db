"""Model targets: golden numbers of the reference release, hand-computed cases and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pytorch_grad_cam.core.outputs import default_targets, output_for_image, target_scores
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputReST,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    DetrBoxScoreTarget,
    FasterRCNNBoxScoreTarget,
    FinerWeightedTarget,
    ImageTextSimilarityTarget,
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
    with pytest.raises(
        ValueError,
        match=r"mask shape must equal .*\(8, 8\) \(or be larger on every axis, to be resized to it\); got \(4, 4\)",
    ):
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
    with pytest.raises(ValueError, match=r"bounding_boxes must have shape \(K, 4\) in .*; got \(2, 3\)"):
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


# ------------------------------------------------------------------------- structured outputs, per image
def test_output_for_image_splits_only_tensors_batched_by_image() -> None:
    """open_clip's 0-d logit_scale and text features of another batch size pass whole (issue 14)."""
    image_features, text_features, scale = torch.randn(2, 4), torch.randn(3, 4), torch.tensor(14.3)
    first = output_for_image((image_features, text_features, scale), 0, 2)
    assert torch.equal(first[0], image_features[0])
    assert first[1] is text_features and first[2] is scale
    assert output_for_image((image_features, None, scale), 1, 2)[1] is None
    mapping = {"image_features": image_features, "text_features": text_features, "logit_scale": scale}
    second = output_for_image(mapping, 1, 2)
    assert torch.equal(second["image_features"], image_features[1])
    assert second["text_features"] is text_features and second["logit_scale"] is scale


def test_output_for_image_keeps_text_entries_whole() -> None:
    """Text entries of an image-text output pass whole even when there are as many texts as images."""
    output = {
        "image_embeds": torch.randn(2, 4),
        "text_embeds": torch.randn(2, 4),
        "logits_per_image": torch.randn(2, 2),
        "logits_per_text": torch.randn(2, 2),
    }
    part = output_for_image(output, 1, 2)
    assert torch.equal(part["image_embeds"], output["image_embeds"][1])
    assert torch.equal(part["logits_per_image"], output["logits_per_image"][1])
    assert part["text_embeds"] is output["text_embeds"] and part["logits_per_text"] is output["logits_per_text"]


def test_output_for_image_on_tensors() -> None:
    assert torch.equal(output_for_image(LOGITS, 1, 2), LOGITS[1])
    with pytest.raises(ValueError, match=r"returned a tensor of shape \(\) .* has no row for image 0"):
        output_for_image(torch.tensor(1.0), 0, 1)


def test_target_scores_on_an_open_clip_like_tuple() -> None:
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    outputs = (features, None, torch.tensor(10.0))
    target = SimilarityToConceptTarget(torch.tensor([1.0, 1.0]))
    np.testing.assert_allclose(target_scores([target, target], outputs).numpy(), [1 / math.sqrt(2)] * 2, atol=1e-6)


@pytest.mark.parametrize(
    ("outputs", "hint"),
    [
        (torch.zeros(2, 3, 8, 8), r"one SemanticSegmentationTarget\(category, mask\) per image"),
        ({"logits": torch.zeros(2, 3, 4, 4)}, r"one SemanticSegmentationTarget\(category, mask\) per image"),
        ({"out": torch.zeros(2, 3, 8, 8), "aux": torch.zeros(2, 3, 8, 8)}, "one SemanticSegmentationTarget"),
        (
            {"logits": torch.zeros(2, 5, 4), "pred_boxes": torch.zeros(2, 5, 4)},
            r"one DetrBoxScoreTarget\(labels, bounding_boxes, image_size=\(H, W\)\) per image",
        ),
        (
            [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0), "scores": torch.zeros(0)}] * 2,
            r"one FasterRCNNBoxScoreTarget\(labels, bounding_boxes\) per image",
        ),
        ((torch.zeros(2, 8), None, torch.tensor(1.0)), r"ImageTextSimilarityTarget\(text_features\)"),
        ((torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 4, 4)), "one SemanticSegmentationTarget"),
        ({"image_embeds": torch.zeros(2, 8)}, r"ImageTextSimilarityTarget\(text_features\)"),
        (torch.zeros(2, 84, 100), r"ClassifierOutputTarget\(category\) on a \(B, num_classes\) output"),
    ],
)
def test_targets_none_hint_per_output_kind(outputs: object, hint: str) -> None:
    """targets=None on a non-classifier output names the targets that suit it (issue 14)."""
    with pytest.raises(
        ValueError, match="targets=None explains the top class .* pass targets explicitly, e.g. " + hint
    ):
        default_targets(outputs, 2)


def test_targets_none_message_describes_structured_outputs() -> None:
    with pytest.raises(ValueError, match=r"returned a dict with entries logits \(2, 5, 4\), pred_boxes \(2, 5, 4\);"):
        default_targets({"logits": torch.zeros(2, 5, 4), "pred_boxes": torch.zeros(2, 5, 4)}, 2)
    with pytest.raises(ValueError, match=r"returned a tuple of \(2, 8\), NoneType, \(\);"):
        default_targets((torch.zeros(2, 8), None, torch.tensor(1.0)), 2)


# ---------------------------------------------------------------------------- mappings with logits
def test_classifier_targets_read_logits_entries() -> None:
    for target in (
        ClassifierOutputTarget(2),
        ClassifierOutputSoftmaxTarget(2),
        ClassifierOutputReST(2),
        BinaryClassifierOutputTarget(0),
        SoftmaxOutputTarget(),
        RawScoresOutputTarget(),
    ):
        np.testing.assert_allclose(target({"logits": LOGITS[1]}).numpy(), target(LOGITS[1]).numpy())


def test_semantic_segmentation_reads_logits() -> None:
    scores, mask = _segmentation_case()
    expected = SemanticSegmentationTarget(1, mask)(scores)
    assert SemanticSegmentationTarget(1, mask)({"logits": scores}).item() == pytest.approx(expected.item())
    # "out" (torchvision) is read first
    assert SemanticSegmentationTarget(1, mask)({"out": scores, "logits": -scores}).item() == pytest.approx(
        expected.item()
    )


def test_semantic_segmentation_resizes_a_larger_mask_to_the_score_map() -> None:
    """A mask at the input's size is resized (nearest) to a coarser score map (SegFormer: a quarter)."""
    scores = torch.linspace(0, 1, 3 * 4 * 6).reshape(3, 4, 6)
    large = np.zeros((16, 24), dtype=np.float32)
    large[4:12, 8:20] = 1  # whole 4 × 4 blocks: rows 1..2, columns 2..4 of the score map
    small = np.zeros((4, 6), dtype=np.float32)
    small[1:3, 2:5] = 1
    expected = scores[2, 1:3, 2:5].sum().item()
    assert SemanticSegmentationTarget(2, large)(scores).item() == pytest.approx(expected, abs=1e-6)
    assert SemanticSegmentationTarget(2, small)(scores).item() == pytest.approx(expected, abs=1e-6)
    np.testing.assert_array_equal(SemanticSegmentationTarget(2, large).mask_for((4, 6)).numpy(), small)
    boolean = SemanticSegmentationTarget(2, torch.from_numpy(large > 0))
    assert boolean(scores).item() == pytest.approx(expected, abs=1e-6)


# --------------------------------------------------------------------------------- DETR-style boxes
def _detr_output(requires_grad: bool = False) -> dict[str, torch.Tensor]:
    """Three queries over 2 classes + "no object": query 0 is class 1 at the box (0.1, 0.1)-(0.5, 0.5),
    query 1 class 0 at the same box, query 2 class 1 elsewhere."""
    logits = torch.tensor([[0.0, 2.0, 0.5], [3.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=requires_grad)
    boxes = torch.tensor(
        [[0.3, 0.3, 0.4, 0.4], [0.3, 0.3, 0.4, 0.4], [0.8, 0.8, 0.2, 0.2]], requires_grad=requires_grad
    )
    return {"logits": logits, "pred_boxes": boxes}


def test_detr_box_score_is_iou_plus_the_matched_querys_class_probability() -> None:
    output = _detr_output(requires_grad=True)
    probabilities = torch.softmax(output["logits"].detach(), dim=-1)
    # the reference box (0.1, 0.1, 0.5, 0.4) covers 0.12 of the query's 0.16: IoU 0.75
    target = DetrBoxScoreTarget([1], [[0.1, 0.1, 0.5, 0.4]])
    value = target(output)
    assert value.ndim == 0
    assert value.item() == pytest.approx(0.75 + probabilities[0, 1].item(), abs=1e-6)
    logits_grad, boxes_grad = torch.autograd.grad(value, [output["logits"], output["pred_boxes"]])
    assert logits_grad[0].abs().sum() > 0 and logits_grad[1:].abs().sum() == 0
    assert boxes_grad[0].abs().sum() > 0 and boxes_grad[1:].abs().sum() == 0
    # class 0: query 1 at the same box; pixel boxes of a 200 × 100 (H × W) image give the same numbers
    in_pixels = DetrBoxScoreTarget(torch.tensor([0]), np.array([[10.0, 20.0, 50.0, 80.0]]), image_size=(200, 100))
    assert in_pixels(output).item() == pytest.approx(0.75 + probabilities[1, 0].item(), abs=1e-6)


def test_detr_box_score_matches_within_the_reference_label() -> None:
    """Query 1 (class 0) overlaps the box as well as query 0 (class 1): the class decides, then the IoU."""
    output = _detr_output()
    both = DetrBoxScoreTarget([1, 0], [[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]])
    probabilities = torch.softmax(output["logits"], dim=-1)
    expected = 2.0 + probabilities[0, 1].item() + probabilities[1, 0].item()
    assert both(output).item() == pytest.approx(expected, abs=1e-6)
    # IoU 0.375 does not match at the default threshold 0.5; it does at 0.3
    low = [[0.1, 0.1, 0.5, 0.25]]
    assert DetrBoxScoreTarget([1], low)(output).item() == 0.0
    assert DetrBoxScoreTarget([1], low, iou_threshold=0.3)(output).item() == pytest.approx(
        0.375 + probabilities[0, 1].item(), abs=1e-6
    )
    assert DetrBoxScoreTarget([0], [[0.7, 0.7, 0.9, 0.9]])(output).item() == 0.0  # query 2 is class 1
    sigmoid = DetrBoxScoreTarget([1], [[0.1, 0.1, 0.5, 0.5]], activation="sigmoid")
    assert sigmoid(output).item() == pytest.approx(1.0 + torch.sigmoid(torch.tensor(2.0)).item(), abs=1e-6)
    empty = DetrBoxScoreTarget([], np.zeros((0, 4)))(output)
    assert empty.shape == () and empty.item() == 0.0


def test_detr_box_score_bad_input() -> None:
    with pytest.raises(ValueError, match=r"labels must have one entry per bounding box \(2\); got 1"):
        DetrBoxScoreTarget([1], np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"labels must be integer class indices >= 0; got \[1.5\]"):
        DetrBoxScoreTarget([1.5], np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"bounding_boxes must have shape \(K, 4\) in .*; got \(1, 3\)"):
        DetrBoxScoreTarget([1], np.zeros((1, 3)))
    with pytest.raises(TypeError, match=r"image_size must be None or a pair \(H, W\) of integers; got int 224"):
        DetrBoxScoreTarget([1], np.zeros((1, 4)), image_size=224)
    with pytest.raises(ValueError, match=r"image_size\[1\] must be an integer >= 1; got 0"):
        DetrBoxScoreTarget([1], np.zeros((1, 4)), image_size=(10, 0))
    with pytest.raises(ValueError, match="activation must be one of 'softmax', 'sigmoid'; got 'relu'"):
        DetrBoxScoreTarget([1], np.zeros((1, 4)), activation="relu")
    with pytest.raises(TypeError, match="DETR-style output with 'logits' and 'pred_boxes' entries; got Tensor"):
        DetrBoxScoreTarget([1], np.zeros((1, 4)))(LOGITS[0])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\) for a model with 2 classes; got \[2\]"):
        DetrBoxScoreTarget([2], np.zeros((1, 4)))(_detr_output())


# ------------------------------------------------------------------------------ image-text similarity
def test_image_text_similarity_hand_computed() -> None:
    texts = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    image = torch.tensor([3.0, 0.0, 0.0])
    cosines = torch.tensor([1.0, 1 / math.sqrt(2), 0.0])
    assert ImageTextSimilarityTarget(texts, 1)(image).item() == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    assert ImageTextSimilarityTarget(texts[2].numpy())(image).item() == pytest.approx(0.0, abs=1e-7)
    probability = torch.softmax(100 * cosines, dim=0)[1].item()
    assert ImageTextSimilarityTarget(texts, 1, softmax=True)(image).item() == pytest.approx(probability, rel=1e-5)
    # the embedding and the logit scale are read from the model's own outputs
    scaled = torch.softmax(10 * cosines, dim=0)[2].item()
    target = ImageTextSimilarityTarget(texts, 2, softmax=True)
    assert target((image, None, torch.tensor(10.0))).item() == pytest.approx(scaled, rel=1e-5)
    assert target({"image_features": image, "logit_scale": torch.tensor(10.0)}).item() == pytest.approx(
        scaled, rel=1e-5
    )
    fixed = ImageTextSimilarityTarget(texts, 2, softmax=True, logit_scale=10)
    assert fixed({"image_embeds": image}).item() == pytest.approx(scaled, rel=1e-5)
    assert SimilarityToConceptTarget(texts[1])({"image_embeds": image}).item() == pytest.approx(1 / math.sqrt(2))


def test_image_text_similarity_bad_input() -> None:
    with pytest.raises(TypeError, match=r"text_features must be a numpy array or a torch tensor .* got list"):
        ImageTextSimilarityTarget([1.0, 2.0])
    with pytest.raises(ValueError, match=r"text_features must have shape \(D,\) or \(T, D\) .* got \(1, 2, 3\)"):
        ImageTextSimilarityTarget(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"text_index must be in \[0, 2\) for 2 texts; got 2"):
        ImageTextSimilarityTarget(torch.zeros(2, 3), 2)
    with pytest.raises(TypeError, match="softmax must be True or False; got int 1"):
        ImageTextSimilarityTarget(torch.zeros(2, 3), softmax=1)
    with pytest.raises(ValueError, match=r"logit_scale must be a positive number; got 0"):
        ImageTextSimilarityTarget(torch.zeros(2, 3), logit_scale=0)
    target = ImageTextSimilarityTarget(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"need one image embedding of shape \(3,\); got \(4,\)"):
        target(torch.ones(4))
    with pytest.raises(TypeError, match=r"expects an image embedding: .* got dict"):
        target({"logits": torch.ones(3)})


# ---------------------------------------------------------------- many perturbed copies scored at once
def test_classifier_targets_score_rows_as_they_score_each_row() -> None:
    from pytorch_grad_cam.core.outputs import row_scores
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    torch.manual_seed(0)
    outputs = torch.randn(5, 7)
    for target in (ClassifierOutputTarget(3), ClassifierOutputSoftmaxTarget(6), ClassifierOutputTarget(-1)):
        expected = torch.stack([target(row).float() for row in outputs])
        torch.testing.assert_close(target.score_rows(outputs, 5), expected)
        torch.testing.assert_close(row_scores(target, outputs, 5), expected)
    assert ClassifierOutputTarget(3).score_rows(outputs[0], 1) is None  # not a (count, classes) output
    with pytest.raises(ValueError, match="category must be in"):
        row_scores(ClassifierOutputTarget(9), outputs, 5)


def test_unchecked_row_scores_are_checked_once_later() -> None:
    from pytorch_grad_cam.core.outputs import check_finite_scores, row_scores

    outputs = torch.zeros(3, 4)
    outputs[1, 2] = float("nan")
    target = ClassifierOutputTarget(2)
    with pytest.raises(ValueError, match=r"a target \(ClassifierOutputTarget\(2\)\) returned a non-finite score"):
        row_scores(target, outputs, 3)
    scores = row_scores(target, outputs, 3, check=False)
    assert torch.isnan(scores[1])
    with pytest.raises(
        ValueError, match=r"targets\[1\] \(ClassifierOutputTarget\(2\)\) returned a non-finite score \(nan\)"
    ):
        check_finite_scores(torch.stack([torch.zeros(3), scores]), [target, target])
