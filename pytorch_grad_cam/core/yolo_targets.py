"""Targets for single-stage YOLO detectors (ultralytics YOLOv8 and later), read from the raw model output.

An ultralytics detection model (``YOLO("yolov8n.pt").model``) in eval mode returns, before any NMS,
``(predictions, raw)``: ``predictions`` is ``(B, 4 + nc, A)`` (per anchor ``A``: the box centre, width and
height in input pixels, then the ``nc`` class probabilities; segmentation models append mask coefficients and
return ``((predictions, prototypes), raw)``) and ``raw`` is a dict of the head's raw tensors (``scores``:
``(B, nc, A)`` class logits, ...). End-to-end heads (YOLOv10 / YOLO26 with ``end2end=True``) return
``(B, K, 6 + extra)`` rows of ``x1, y1, x2, y2, score, class`` instead. Both stay inside autograd, so a score
read from them can be explained by gradient methods; NMS is not differentiable and is not needed.

:class:`YOLOBoxScoreTarget` is the YOLO counterpart of ``FasterRCNNBoxScoreTarget``; :func:`yolo_detections`
runs a plain NMS on the same output to give the boxes the model detected, to be explained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from pytorch_grad_cam.core.checks import check_bool, check_int, check_real, describe
from pytorch_grad_cam.core.outputs import output_for_image
from pytorch_grad_cam.core.targets import box_iou, center_to_corners, reference_boxes


class YOLOPredictions(NamedTuple):
    """One image's predictions before NMS, in autograd.

    Attributes:
        boxes: ``(N, 4)`` boxes ``(x1, y1, x2, y2)`` in input pixels.
        scores: ``(N, nc)`` class probabilities (end-to-end rows: the row's score in its class' column, else 0).
        allowed: ``None``, or (end-to-end rows) the ``(N, nc)`` mask of the one class each row predicts.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    allowed: torch.Tensor | None = None


def _raw_class_scores(raw: Mapping[str, Any]) -> torch.Tensor | None:
    """The head's raw ``scores`` tensor (``(nc, A)`` for one image) inside ``raw``, if there is one."""
    if isinstance(raw.get("scores"), torch.Tensor):
        return raw["scores"]
    for key in ("one2one", "one2many"):  # YOLOv10 / YOLO26 dual heads
        head = raw.get(key)
        if isinstance(head, Mapping) and isinstance(head.get("scores"), torch.Tensor):
            return head["scores"]
    return None


def yolo_predictions(model_output: Any, num_classes: int | None = None, name: str = "model_output") -> YOLOPredictions:
    """One image's YOLO output as ``(boxes (N, 4) xyxy in input pixels, class scores (N, nc))``, in autograd.

    Accepts the eval-mode output of an ultralytics model for one image: ``(predictions, raw)``,
    ``((predictions, prototypes), raw)`` (segmentation) or the predictions alone (export mode).

    Args:
        model_output: one image's output (what a target receives).
        num_classes: the number of classes ``nc``; ``None`` reads it from ``raw["scores"]`` (or, for the
            predictions alone, takes every row after the box as a class).
        name: the caller's name, for error messages.

    Raises:
        TypeError: for an output that is not one of these structures (e.g. the training-mode dict).
        ValueError: for predictions of an unexpected shape.
    """
    if num_classes is not None:
        num_classes = check_int(num_classes, "num_classes", minimum=1)
    raw: Mapping[str, Any] | None = None
    predictions = model_output
    if isinstance(predictions, (list, tuple)) and predictions:
        if len(predictions) > 1 and isinstance(predictions[1], Mapping):
            raw = predictions[1]
        predictions = predictions[0]
        if isinstance(predictions, (list, tuple)) and predictions:  # segmentation: (predictions, prototypes)
            predictions = predictions[0]
    if not isinstance(predictions, torch.Tensor):
        raise TypeError(
            f"{name} expects one image's eval-mode output of an ultralytics YOLO model: (predictions, raw dict), "
            f"((predictions, prototypes), raw dict) or the predictions tensor; got {describe(model_output)}"
        )
    if predictions.ndim != 2:
        raise ValueError(
            f"{name} expects one image's predictions of shape (4 + classes, anchors) or (detections, 6); got "
            f"{tuple(predictions.shape)} (targets receive one image's output, without the batch axis)"
        )
    raw_scores = _raw_class_scores(raw) if raw is not None else None
    if num_classes is None and raw_scores is not None and raw_scores.ndim == 2:
        num_classes = int(raw_scores.shape[0])
    dense = raw_scores is None or predictions.shape[-1] == raw_scores.shape[-1]
    if dense:
        classes = predictions.shape[0] - 4 if num_classes is None else num_classes
        if classes < 1 or predictions.shape[0] < 4 + classes:
            raise ValueError(
                f"{name} expects predictions of shape (4 + classes, anchors) with at least one class; got "
                f"{tuple(predictions.shape)}"
            )
        return YOLOPredictions(center_to_corners(predictions[:4].T), predictions[4 : 4 + classes].T)
    if predictions.shape[-1] < 6:
        raise ValueError(
            f"{name} expects end-to-end predictions of shape (detections, 6 + extra) [x1, y1, x2, y2, score, "
            f"class]; got {tuple(predictions.shape)}"
        )
    row_classes = predictions[:, 5].detach().round().long()
    largest = int(row_classes.max()) if len(row_classes) else 0
    classes = largest + 1 if num_classes is None else num_classes
    if bool(((row_classes < 0) | (row_classes >= classes)).any()):
        raise ValueError(
            f"{name} expects end-to-end class indices in [0, {classes}) in column 5; got {row_classes.tolist()}"
        )
    allowed = torch.nn.functional.one_hot(row_classes, classes).bool()
    return YOLOPredictions(predictions[:, :4], allowed.to(predictions.dtype) * predictions[:, 4:5], allowed)


class YOLOBoxScoreTarget:
    """How strongly a YOLO detector still predicts reference boxes: ``Σ_k max_{n: IoU(b_n, B_k) ≥ t} s_n[c_k]``.

    For every reference box ``B_k`` of label ``c_k``, the predictions ``n`` (anchors, before NMS) whose box
    ``b_n`` overlaps it with ``IoU ≥ iou_threshold`` are candidates, and the best candidate's probability of
    class ``c_k``, ``s_n[c_k]``, is the box's score (plus that candidate's IoU with ``include_iou=True``, as
    ``FasterRCNNBoxScoreTarget`` adds it). A reference box without a candidate contributes 0; the sum over the
    boxes is returned, a zero scalar still connected to the output when nothing matches. For end-to-end
    outputs (rows ``x1, y1, x2, y2, score, class``) only rows of class ``c_k`` are candidates.

    The score is read from the raw output (see :func:`yolo_predictions`), so gradients reach the image; use it
    with the output of an ultralytics model in eval mode, e.g. ``GradCAM(yolo.model, [yolo.model.model[-2]])``.

    Args:
        labels: ``(K,)`` class indices of the reference boxes.
        bounding_boxes: ``(K, 4)`` reference boxes ``(x1, y1, x2, y2)`` in input pixels (e.g. the ``boxes``
            of :func:`yolo_detections`).
        iou_threshold: the minimum IoU (inclusive) for a prediction to count for a reference box.
        include_iou: add the best candidate's IoU to its class probability.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        bounding_boxes: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
        iou_threshold: float = 0.5,
        *,
        include_iou: bool = False,
    ) -> None:
        self._boxes, self._labels = reference_boxes(labels, bounding_boxes)
        self.labels = labels
        self.bounding_boxes = bounding_boxes
        self.iou_threshold = check_real(iou_threshold, "iou_threshold", 0.0, 1.0)
        self.include_iou = check_bool(include_iou, "include_iou")

    def __call__(self, model_output: Any) -> torch.Tensor:
        name = type(self).__name__
        predicted = yolo_predictions(model_output, name=name)
        scores = predicted.scores
        zero = scores.sum() * 0.0
        if len(self._boxes) == 0 or scores.shape[0] == 0:
            return zero
        num_classes = scores.shape[1]
        if int(self._labels.max()) >= num_classes:
            raise ValueError(
                f"{name} labels must be in [0, {num_classes}) for a model with {num_classes} classes; got "
                f"{self._labels.tolist()}"
            )
        reference = self._boxes.to(device=scores.device, dtype=predicted.boxes.dtype)
        ious = box_iou(reference, predicted.boxes)  # (K, N)
        class_scores = scores[:, self._labels.to(scores.device)].T  # (K, N)
        candidates = ious >= self.iou_threshold
        if predicted.allowed is not None:
            candidates = candidates & predicted.allowed[:, self._labels.to(scores.device)].T
        values = class_scores + ious if self.include_iou else class_scores
        floor = torch.finfo(values.dtype).min
        best = torch.where(candidates, values, torch.full_like(values, floor)).max(dim=1).values
        matched = candidates.any(dim=1)
        return zero + torch.where(matched, best, torch.zeros_like(best)).sum()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self._boxes)} boxes, iou_threshold={self.iou_threshold}, "
            f"include_iou={self.include_iou})"
        )


def _batch_size(outputs: Any) -> int:
    first = outputs
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if not isinstance(first, torch.Tensor) or first.ndim != 3:
        raise TypeError(
            "outputs must be the batched eval-mode output of an ultralytics YOLO model (its predictions of shape "
            f"(B, 4 + classes, anchors) first); got {describe(outputs)}"
        )
    return int(first.shape[0])


def yolo_detections(
    outputs: Any, score_threshold: float = 0.25, iou_threshold: float = 0.45, max_detections: int = 100
) -> list[dict[str, torch.Tensor]]:
    """What a YOLO model detected: per image, the boxes left by a per-class NMS over its raw output.

    Each prediction keeps its best class (``label``, ``score``); those with ``score > score_threshold`` go
    through ``torchvision.ops.batched_nms`` (per class, ``iou_threshold``) and the ``max_detections`` best are
    kept. The boxes are the ones to explain: ``YOLOBoxScoreTarget(d["labels"], d["boxes"])``. Random-weight
    models give low scores: pass ``score_threshold=0``.

    Args:
        outputs: the batched output of the model in eval mode (``model(x)`` or ``cam.outputs``).
        score_threshold: the minimum class probability (exclusive).
        iou_threshold: boxes of one class overlapping a better one by more than this IoU are dropped.
        max_detections: the most boxes kept per image.

    Returns:
        One dict per image with ``boxes`` ``(K, 4)`` (x1, y1, x2, y2 in input pixels), ``labels`` ``(K,)``
        (int64) and ``scores`` ``(K,)``, detached, best first.
    """
    check_real(score_threshold, "score_threshold", 0.0, 1.0)
    check_real(iou_threshold, "iou_threshold", 0.0, 1.0)
    max_detections = check_int(max_detections, "max_detections", minimum=1)
    from torchvision.ops import batched_nms

    detections = []
    for index in range(_batch_size(outputs)):
        predicted = yolo_predictions(output_for_image(outputs, index), name="yolo_detections")
        boxes = predicted.boxes.detach()
        scores, labels = predicted.scores.detach().max(dim=1)
        keep = scores > score_threshold
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        kept = batched_nms(boxes.float(), scores.float(), labels, iou_threshold)[:max_detections]
        detections.append({"boxes": boxes[kept], "labels": labels[kept], "scores": scores[kept]})
    return detections
