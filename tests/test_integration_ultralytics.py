"""ultralytics YOLO (v8 and later) explained for real: detection and segmentation models built offline from
their YAML configurations (random weights, re-initialised so that scores and gradients are not vanishing),
:class:`YOLOBoxScoreTarget` checked against scores computed by hand from the raw output, and the methods run
on a layer named by hand (detectors are not classifiers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from integration_checks import check_map, model_flags, run_method
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.core.outputs import output_for_image
from pytorch_grad_cam.core.yolo_targets import YOLOBoxScoreTarget, yolo_detections, yolo_predictions

SIZE = 64
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ultralytics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The ``YOLO`` class, imported offline with its settings in a temporary folder; the global state its import
    changes (torch / OpenCV threads, torch / numpy print options) is restored after the module."""
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    numpy_print = np.get_printoptions()
    torch_print = dict(vars(torch._tensor_str.PRINT_OPTS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YOLO_OFFLINE", "1")
        patch.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics")))
        try:
            module = pytest.importorskip("ultralytics")
        finally:
            torch.set_num_threads(threads)
        yield module.YOLO
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv2_threads)
    np.set_printoptions(**numpy_print)
    for key, value in torch_print.items():
        setattr(torch._tensor_str.PRINT_OPTS, key, value)


def build(yolo: Any, config: str, seed: int = 0) -> nn.Module:
    """``YOLO(config).model`` with Kaiming-normal convolutions and zero biases, so the class probabilities sit
    near 0.5 and the gradients are far from zero (ultralytics' own init makes them vanish at random weights)."""
    torch.manual_seed(seed)
    model = yolo(config).model
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.weight.requires_grad:
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model.eval()


@pytest.fixture(scope="module")
def detector(ultralytics: Any) -> nn.Module:
    return build(ultralytics, "yolov8n.yaml")


@pytest.fixture(scope="module")
def segmenter(ultralytics: Any) -> nn.Module:
    return build(ultralytics, "yolov8n-seg.yaml", seed=1)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def own_boxes(model: nn.Module, x: torch.Tensor, count: int = 3) -> tuple[Any, list[YOLOBoxScoreTarget]]:
    """The model's output and one target per image on its own ``count`` best detections."""
    with torch.no_grad():
        output = model(x)
    detections = yolo_detections(output, score_threshold=0.0, max_detections=count)
    return output, [YOLOBoxScoreTarget(d["labels"], d["boxes"]) for d in detections]


# ------------------------------------------------------------------------------------- by hand
def iou_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score_by_hand(
    predictions: np.ndarray, classes: int, labels: list[int], boxes: np.ndarray, threshold: float, with_iou: bool
) -> float:
    """``Σ_k max over anchors with IoU ≥ t of p[4 + c_k]`` from one image's ``(4 + nc (+ masks), A)`` array."""
    centre, size = predictions[:2].T, predictions[2:4].T
    anchors = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    total = 0.0
    for label, box in zip(labels, boxes):
        best = None
        for n, anchor in enumerate(anchors):
            overlap = iou_by_hand(box, anchor)
            if overlap >= threshold:
                value = predictions[4 + label, n] + (overlap if with_iou else 0.0)
                best = value if best is None else max(best, value)
        total += 0.0 if best is None else best
    assert predictions.shape[0] >= 4 + classes
    return total


# ---------------------------------------------------------------------------------- the target
@pytest.mark.parametrize("include_iou", [False, True])
def test_target_equals_the_score_by_hand(detector: nn.Module, images: torch.Tensor, include_iou: bool) -> None:
    with torch.no_grad():
        output = detector(images)
    predictions = output[0].numpy()
    rng = np.random.default_rng(0)
    for index in range(2):
        detections = yolo_detections(output, score_threshold=0.0, max_detections=4)[index]
        # the model's own boxes (IoU 1 with their anchor), a jittered copy and a box nothing overlaps
        own = detections["boxes"].numpy()
        jittered = own[:2] + rng.uniform(-0.02, 0.02, size=(2, 4))
        boxes = np.concatenate([own, jittered, [[500.0, 500.0, 510.0, 510.0]]]).astype(np.float32)
        labels = [*detections["labels"].tolist(), 5, 7, 1]
        target = YOLOBoxScoreTarget(labels, boxes, iou_threshold=0.3, include_iou=include_iou)
        score = target(output_for_image(output, index))
        expected = score_by_hand(predictions[index], 80, labels, boxes, 0.3, include_iou)
        assert float(score) == pytest.approx(expected, rel=1e-5)
        assert float(score) > 0.4 * len(own)  # the own boxes match with probabilities near 0.5


def test_target_without_a_match_is_a_connected_zero(detector: nn.Module, images: torch.Tensor) -> None:
    output = detector(images[:1])
    far = YOLOBoxScoreTarget([3], [[900.0, 900.0, 950.0, 950.0]])
    empty = YOLOBoxScoreTarget([], np.zeros((0, 4)))
    for target in (far, empty):
        score = target(output_for_image(output, 0))
        assert score.ndim == 0 and float(score.detach()) == 0.0
        assert score.requires_grad  # still part of the graph: a backward gives zero gradients, not an error
        (grad,) = torch.autograd.grad(score, output[0])
        assert float(grad.abs().sum()) == 0.0


def test_detections_are_the_top_classes_after_nms(detector: nn.Module, images: torch.Tensor) -> None:
    with torch.no_grad():
        output = detector(images)
    detections = yolo_detections(output, score_threshold=0.0, iou_threshold=0.45, max_detections=5)
    assert len(detections) == 2
    for index, found in enumerate(detections):
        predicted = yolo_predictions(output_for_image(output, index))
        assert found["boxes"].shape == (5, 4) and found["labels"].dtype == torch.int64
        assert torch.all(found["scores"][:-1] >= found["scores"][1:])  # best first
        best_scores, best_labels = predicted.scores.max(dim=1)
        assert float(found["scores"][0]) == pytest.approx(float(best_scores.max()))
        for box, label, score in zip(found["boxes"], found["labels"], found["scores"]):
            anchor = int(torch.nonzero((predicted.boxes == box).all(dim=1))[0, 0])
            assert int(best_labels[anchor]) == int(label) and float(best_scores[anchor]) == float(score)
    strict = yolo_detections(output, score_threshold=0.99)
    assert all(len(found["boxes"]) == 0 for found in strict)


def test_target_and_helper_errors(detector: nn.Module, images: torch.Tensor) -> None:
    with torch.no_grad():
        output = detector(images[:1])
    one = output_for_image(output, 0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 80\)"):
        YOLOBoxScoreTarget([80], [[0, 0, 8, 8]])(one)
    with pytest.raises(ValueError, match=r"bounding_boxes must have shape \(K, 4\)"):
        YOLOBoxScoreTarget([1], [[0, 0, 8]])
    with pytest.raises(ValueError, match="labels must have one entry per bounding box"):
        YOLOBoxScoreTarget([1, 2], [[0, 0, 8, 8]])
    with pytest.raises(ValueError, match="labels must be integer"):
        YOLOBoxScoreTarget([1.5], [[0, 0, 8, 8]])
    with pytest.raises(TypeError, match="bounding_boxes must be"):
        YOLOBoxScoreTarget([1], "boxes")
    with pytest.raises(ValueError, match="iou_threshold"):
        YOLOBoxScoreTarget([1], [[0, 0, 8, 8]], iou_threshold=1.5)
    with pytest.raises(TypeError, match="include_iou"):
        YOLOBoxScoreTarget([1], [[0, 0, 8, 8]], include_iou="yes")
    with pytest.raises(TypeError, match="eval-mode output"):
        YOLOBoxScoreTarget([1], [[0, 0, 8, 8]])({"boxes": torch.zeros(64, 84)})  # the training-mode dict
    with pytest.raises(ValueError, match="without the batch axis"):
        YOLOBoxScoreTarget([1], [[0, 0, 8, 8]])(output)  # the whole batch instead of one image
    with pytest.raises(TypeError, match="outputs must be the batched"):
        yolo_detections(torch.zeros(3))
    with pytest.raises(ValueError, match="max_detections"):
        yolo_detections(output, max_detections=0)


# ------------------------------------------------------------------------------------ the methods
METHODS = {
    "GradCAM": {},
    "GradCAMPlusPlus": {},
    "HiResCAM": {},
    "LayerCAM": {},
    "EigenCAM": {},
    "ScoreCAM": {"batch_size": 64, "progress": False},
    "AblationCAM": {"batch_size": 64, "progress": False},
    "FullGrad": {},
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_methods_on_yolov8n_detection(detector: nn.Module, images: torch.Tensor, name: str) -> None:
    batch = images[:1] if name in ("ScoreCAM", "AblationCAM") else images  # one forward per channel and image
    _, targets = own_boxes(detector, batch)
    assert not all(model_flags(detector)[1])  # the DFL convolution is frozen by ultralytics: it must stay so
    layers = [] if name == "FullGrad" else [detector.model[15]]  # the P3 neck output (stride 8, 64 channels)
    chosen = None if name == "EigenCAM" else targets
    _, outputs = run_method(getattr(pgc, name), detector, layers, batch, chosen, **METHODS[name])
    assert outputs[0].shape == (len(batch), 84, 84)


def test_the_map_follows_the_explained_box(detector: nn.Module, images: torch.Tensor) -> None:
    """Two different detections of one image give two different Grad-CAM maps."""
    output, _ = own_boxes(detector, images[:1])
    found = yolo_detections(output, score_threshold=0.0, max_detections=2)[0]
    with pgc.HiResCAM(detector, [detector.model[15]]) as cam:
        maps = [
            cam(images[:1], [YOLOBoxScoreTarget(found["labels"][i : i + 1], found["boxes"][i : i + 1])])[0]
            for i in range(2)
        ]
    assert np.abs(maps[0] - maps[1]).max() > 0.2


def test_gradient_free_call_before_a_gradient_call(ultralytics: Any, images: torch.Tensor) -> None:
    """The Detect head caches its anchors per input shape: a gradient-free call (run without autograd)
    followed by a gradient call on the same shape must still work, with the same numbers."""
    model = build(ultralytics, "yolov8n.yaml", seed=2)
    _, targets = own_boxes(model, images)
    layer = [model.model[15]]
    grad = pgc.GradCAM(model, layer)(images, targets)
    eigen = pgc.EigenCAM(model, layer)(images)
    again = pgc.GradCAM(model, layer)(images, targets)
    for cam in (eigen, grad, again):
        check_map(cam, (2, SIZE, SIZE))
    np.testing.assert_allclose(again, grad, atol=1e-5)


@pytest.mark.parametrize("name", ["ScoreCAM", "GroupCAM", "AblationCAM"])
def test_perturbation_call_before_a_gradient_call(ultralytics: Any, images: torch.Tensor, name: str) -> None:
    """The perturbed batches run under torch.no_grad(), not inference mode: the Detect head caches its anchors
    per input shape, and inference tensors in that cache would break a later gradient call on the same shape."""
    model = build(ultralytics, "yolov8n.yaml", seed=2)
    _, targets = own_boxes(model, images)
    layer = [model.model[15]]
    # perturbed batches of 2 copies of one image: the anchors are cached for the shape of ``images``
    perturbed = getattr(pgc, name)(model, layer, batch_size=2, progress=False)(images[:1], targets[:1])
    check_map(perturbed, (1, SIZE, SIZE))
    check_map(pgc.GradCAM(model, layer)(images, targets), (2, SIZE, SIZE))


def test_targets_none_names_the_yolo_target(detector: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"YOLOBoxScoreTarget\(labels, bounding_boxes\)"):
        pgc.GradCAM(detector, [detector.model[15]])(images)


# ---------------------------------------------------------------------------------- segmentation
def test_segmentation_model(segmenter: nn.Module, images: torch.Tensor) -> None:
    """yolov8n-seg returns ((predictions with 32 mask coefficients, prototypes), raw dict): the target reads
    the 80 classes only (the number read from the raw dict), and the methods run on it."""
    output, targets = own_boxes(segmenter, images)
    assert output[0][0].shape == (2, 4 + 80 + 32, 84)
    predictions = output[0][0].numpy()
    labels = targets[0].labels.tolist()
    boxes = targets[0].bounding_boxes.numpy()
    expected = score_by_hand(predictions[0], 80, labels, boxes, 0.5, False)
    assert float(targets[0](output_for_image(output, 0))) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 80\)"):
        YOLOBoxScoreTarget([90], [[0, 0, 8, 8]])(output_for_image(output, 0))  # a mask-coefficient row
    for method in ("GradCAM", "EigenCAM", "LayerCAM"):
        chosen = None if method == "EigenCAM" else targets
        run_method(getattr(pgc, method), segmenter, [segmenter.model[15]], images, chosen)


# ----------------------------------------------------------------------------------- end to end
def test_end_to_end_head(ultralytics: Any, images: torch.Tensor) -> None:
    """YOLOv10's one-to-one head with ``end2end=True`` returns ``(B, K, 6)`` rows x1, y1, x2, y2, score,
    class: only rows of the reference label are candidates, and the gradient reaches the image."""
    model = build(ultralytics, "yolov10n.yaml", seed=4)
    model.model[-1].end2end = True
    with torch.no_grad():
        output = model(images[:1])
    rows = output[0][0]
    assert rows.ndim == 2 and rows.shape[1] == 6
    found = yolo_detections(output, score_threshold=0.0, max_detections=2)[0]
    target = YOLOBoxScoreTarget(found["labels"], found["boxes"], iou_threshold=0.5)
    expected = 0.0
    for box, label in zip(found["boxes"].numpy(), found["labels"].tolist()):
        values = [float(row[4]) for row in rows.numpy() if int(row[5]) == label and iou_by_hand(box, row[:4]) >= 0.5]
        expected += max(values)
    assert float(target(output_for_image(output, 0))) == pytest.approx(expected, rel=1e-5)
    run_method(pgc.GradCAM, model, [model.model[16]], images[:1], [target])
