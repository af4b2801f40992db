"""Model targets: callables that turn one image's model output into the scalar (or map) to explain.

Every target receives the output of *one* image: ``output[i]`` for a tensor output, or the same
structure with every tensor indexed ``[i]`` for dict / ModelOutput / tuple outputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.core.checks import check_int, check_real

#: A target: maps one image's model output to the score (a tensor, summed if not scalar) to explain.
Target = Callable[[Any], torch.Tensor]


def _logits(model_output: Any, name: str) -> torch.Tensor:
    """Return the classification scores inside ``model_output`` (a tensor or a mapping with ``logits``)."""
    if isinstance(model_output, Mapping) and "logits" in model_output:
        model_output = model_output["logits"]
    if not isinstance(model_output, torch.Tensor):
        raise TypeError(
            f"{name} expects the model output to be a tensor of class scores (or a mapping with a "
            f"'logits' entry); got {type(model_output).__name__}"
        )
    return model_output


def _check_category(category: int, model_output: torch.Tensor, name: str) -> None:
    num_classes = model_output.shape[-1]
    if not -num_classes <= category < num_classes:
        raise ValueError(
            f"{name} category must be in [0, {num_classes}) for a model output with {num_classes} "
            f"classes; got {category}"
        )


class ClassifierOutputTarget:
    """The raw score (logit) of one category: ``out[c]`` (``out[:, c]`` on a 2-D output)."""

    def __init__(self, category: int) -> None:
        self.category = check_int(category, "category")

    def __call__(self, model_output: Any) -> torch.Tensor:
        scores = _logits(model_output, type(self).__name__)
        _check_category(self.category, scores, type(self).__name__)
        if scores.ndim == 1:
            return scores[self.category]
        return scores[:, self.category]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.category})"


def _as_float_tensor(value: Any, name: str) -> torch.Tensor:
    """A numpy array / tensor / nested sequence of numbers as a tensor (kept on its device if a tensor)."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a numpy array, a torch tensor or a sequence of numbers; got {type(value).__name__}"
        ) from error


class ClassifierOutputSoftmaxTarget:
    """The softmax probability of one category: ``softmax(out)[c]`` (``[:, c]`` on a 2-D output)."""

    def __init__(self, category: int) -> None:
        self.category = check_int(category, "category")

    def __call__(self, model_output: Any) -> torch.Tensor:
        scores = _logits(model_output, type(self).__name__)
        _check_category(self.category, scores, type(self).__name__)
        probabilities = torch.softmax(scores, dim=-1)
        return probabilities[..., self.category]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.category})"


class ClassifierOutputReST:
    """Logit minus cross-entropy ("ReST", Zhang et al. 2025, https://arxiv.org/abs/2501.06261).

    ``out[c] - CE(out, c) = 2 out[c] - logsumexp(out)`` for one image. On a 2-D ``(N, K)`` output the
    cross-entropy is averaged over the rows, as ``torch.nn.functional.cross_entropy`` does in the reference:
    ``out[:, c] - mean_n CE(out[n], c)``.
    """

    def __init__(self, category: int) -> None:
        self.category = check_int(category, "category")

    def __call__(self, model_output: Any) -> torch.Tensor:
        scores = _logits(model_output, type(self).__name__)
        _check_category(self.category, scores, type(self).__name__)
        logit = scores[..., self.category]
        cross_entropy = torch.logsumexp(scores, dim=-1) - logit
        if scores.ndim == 1:
            return logit - cross_entropy
        return logit - cross_entropy.mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.category})"


class BinaryClassifierOutputTarget:
    """The single logit of a binary classifier, signed by the class: ``out`` for category 1, else ``-out``.

    As in the reference, every category other than 1 counts as the negative class; a category other than
    0 or 1 is accepted with a warning.
    """

    def __init__(self, category: int) -> None:
        self.category = check_int(category, "category")
        if self.category not in (0, 1):
            warnings.warn(
                f"BinaryClassifierOutputTarget category should be 0 (negative) or 1 (positive); got "
                f"{self.category}, treated as the negative class",
                stacklevel=2,
            )

    def __call__(self, model_output: Any) -> torch.Tensor:
        scores = _logits(model_output, type(self).__name__)
        return scores if self.category == 1 else -scores

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.category})"


class SoftmaxOutputTarget:
    """All softmax probabilities of the output: ``softmax(out, dim=-1)`` (summed by the CAM)."""

    def __call__(self, model_output: Any) -> torch.Tensor:
        return torch.softmax(_logits(model_output, type(self).__name__), dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RawScoresOutputTarget:
    """The model output itself (summed by the CAM), e.g. for regression or embedding models."""

    def __call__(self, model_output: Any) -> Any:
        return model_output

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SemanticSegmentationTarget:
    """The summed score of one category over a spatial mask: ``(out[c] * mask).sum()``.

    The output of one image is a ``(C, H, W)`` score map, or ``(C, D, H, W)`` for volumes (or a mapping whose
    ``"out"`` entry is one, as torchvision segmentation models return). The mask is moved to the output's
    device and dtype at call time.

    Args:
        category: the class channel ``c`` of the score map.
        mask: ``(H, W)`` (or ``(D, H, W)``) numpy array or tensor, usually binary.
    """

    def __init__(self, category: int, mask: np.ndarray | torch.Tensor) -> None:
        self.category = check_int(category, "category")
        if not isinstance(mask, (np.ndarray, torch.Tensor)):
            raise TypeError(
                f"mask must be a numpy array or a torch tensor of shape (H, W) or (D, H, W); got {type(mask).__name__}"
            )
        mask = torch.from_numpy(np.array(mask)) if isinstance(mask, np.ndarray) else mask.detach().clone()
        if mask.ndim not in (2, 3):
            raise ValueError(f"mask must have shape (H, W) or (D, H, W); got {tuple(mask.shape)}")
        self.mask = mask

    def __call__(self, model_output: Any) -> torch.Tensor:
        name = type(self).__name__
        if isinstance(model_output, Mapping) and "out" in model_output:
            model_output = model_output["out"]
        if not isinstance(model_output, torch.Tensor) or model_output.ndim != self.mask.ndim + 1:
            is_tensor = isinstance(model_output, torch.Tensor)
            got = tuple(model_output.shape) if is_tensor else type(model_output).__name__
            layout = "(C, H, W)" if self.mask.ndim == 2 else "(C, D, H, W)"
            raise ValueError(f"{name} expects one image's score map of shape {layout}; got {got}")
        num_classes = model_output.shape[0]
        if not -num_classes <= self.category < num_classes:
            raise ValueError(
                f"{name} category must be in [0, {num_classes}) for a score map with {num_classes} channels; "
                f"got {self.category}"
            )
        if tuple(self.mask.shape) != tuple(model_output.shape[1:]):
            raise ValueError(
                f"{name} mask shape must equal the score map's spatial shape "
                f"{tuple(model_output.shape[1:])}; got {tuple(self.mask.shape)}"
            )
        dtype = model_output.dtype if model_output.is_floating_point() else torch.float32
        mask = self.mask.to(device=model_output.device, dtype=dtype)
        return (model_output[self.category] * mask).sum()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.category}, mask of shape {tuple(self.mask.shape)})"


class FasterRCNNBoxScoreTarget:
    """How well the detections still match reference boxes: ``Σ_k [match_k] (IoU_k + score_k)``.

    For every reference box ``k`` the detection with the highest IoU is taken; it counts (its IoU plus its
    classification score) when that IoU exceeds ``iou_threshold`` and its label equals the reference label.
    The output of one image is a torchvision detection dict with ``boxes`` ``(N, 4)``, ``labels`` ``(N,)``
    and ``scores`` ``(N,)``. Everything is computed on the output's device; no detection gives a zero scalar.

    Args:
        labels: ``(K,)`` reference labels.
        bounding_boxes: ``(K, 4)`` reference boxes in ``(x1, y1, x2, y2)`` format.
        iou_threshold: the minimum IoU (exclusive) for a detection to match a reference box.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        bounding_boxes: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
        iou_threshold: float = 0.5,
    ) -> None:
        boxes = _as_float_tensor(bounding_boxes, "bounding_boxes")
        if boxes.numel() == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"bounding_boxes must have shape (K, 4); got {tuple(boxes.shape)}")
        label_tensor = _as_float_tensor(labels, "labels").reshape(-1)
        if label_tensor.numel() != boxes.shape[0]:
            raise ValueError(
                f"labels must have one entry per bounding box ({boxes.shape[0]}); got {label_tensor.numel()}"
            )
        check_real(iou_threshold, "iou_threshold", 0.0, 1.0)
        self.labels = labels
        self.bounding_boxes = bounding_boxes
        self.iou_threshold = float(iou_threshold)
        self._boxes = boxes
        self._labels = label_tensor.long()

    def __call__(self, model_outputs: Any) -> torch.Tensor:
        name = type(self).__name__
        if not isinstance(model_outputs, Mapping) or not {"boxes", "labels", "scores"} <= set(model_outputs):
            raise TypeError(
                f"{name} expects one image's detection dict with 'boxes', 'labels' and 'scores'; got "
                f"{type(model_outputs).__name__}"
            )
        out_boxes = model_outputs["boxes"]
        out_labels = model_outputs["labels"]
        out_scores = model_outputs["scores"]
        device = out_boxes.device
        zero = out_scores.sum() * 0.0 if out_scores.is_floating_point() else torch.zeros((), device=device)
        if len(out_boxes) == 0 or len(self._boxes) == 0:
            return zero
        reference = self._boxes.to(device=device, dtype=out_boxes.dtype)
        from torchvision.ops import box_iou

        ious = box_iou(reference, out_boxes)  # (K, N)
        best_iou, best = ious.max(dim=1)
        matched = (best_iou > self.iou_threshold) & (out_labels[best] == self._labels.to(device))
        box_scores = torch.where(matched, best_iou + out_scores[best], torch.zeros_like(best_iou))
        return zero + box_scores.sum()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._boxes)} boxes, iou_threshold={self.iou_threshold})"


class SimilarityToConceptTarget:
    """Cosine similarity of the output embedding to a concept embedding: ``<out, f> / (|out| |f|)``.

    Args:
        features: the concept embedding, same shape as one image's output (usually ``(D,)``); moved to
            the output's device and dtype at call time.
    """

    def __init__(self, features: np.ndarray | torch.Tensor) -> None:
        if not isinstance(features, (np.ndarray, torch.Tensor)):
            raise TypeError(f"features must be a numpy array or a torch tensor; got {type(features).__name__}")
        if isinstance(features, np.ndarray):
            features = torch.from_numpy(np.array(features))
        features = features.detach()
        if features.numel() == 0:
            raise ValueError("features must hold at least one value; got an empty array")
        self.features = features

    def __call__(self, model_output: Any) -> torch.Tensor:
        if not isinstance(model_output, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects an embedding tensor; got {type(model_output).__name__}")
        if model_output.shape != self.features.shape:
            raise ValueError(
                f"{type(self).__name__} features shape {tuple(self.features.shape)} must equal the shape of "
                f"one image's output; got {tuple(model_output.shape)}"
            )
        features = self.features.to(device=model_output.device, dtype=model_output.dtype)
        return F.cosine_similarity(model_output.reshape(-1), features.reshape(-1), dim=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(features of shape {tuple(self.features.shape)})"


class FinerWeightedTarget:
    """Main-category score contrasted with similar categories (Finer-CAM, https://arxiv.org/abs/2501.11309).

    With ``p = softmax(out)`` and comparison categories ``j``::

        score = Σ_j p_j (out[main] - alpha · out[j]) / (Σ_j p_j + 1e-9)

    Args:
        main_category: the category to explain.
        comparison_categories: the categories it is contrasted with (at least one).
        alpha: the comparison strength (0 gives the plain logit of ``main_category``).
    """

    def __init__(self, main_category: int, comparison_categories: Sequence[int], alpha: float) -> None:
        self.main_category = check_int(main_category, "main_category")
        if isinstance(comparison_categories, (str, bytes)) or not isinstance(
            comparison_categories, (Sequence, np.ndarray, torch.Tensor)
        ):
            raise TypeError(
                f"comparison_categories must be a list of integer class indices; got "
                f"{type(comparison_categories).__name__}"
            )
        self.comparison_categories = [
            check_int(c, f"comparison_categories[{i}]") for i, c in enumerate(comparison_categories)
        ]
        if not self.comparison_categories:
            raise ValueError("comparison_categories must hold at least one class index; got an empty list")
        check_real(alpha, "alpha")
        self.alpha = float(alpha)

    def __call__(self, model_output: Any) -> torch.Tensor:
        name = type(self).__name__
        scores = _logits(model_output, name)
        for category in (self.main_category, *self.comparison_categories):
            _check_category(category, scores, name)
        index = torch.tensor(self.comparison_categories, device=scores.device)
        main = scores[..., self.main_category]
        others = scores.index_select(-1, index)
        weights = torch.softmax(scores, dim=-1).index_select(-1, index)
        numerator = (weights * (main.unsqueeze(-1) - self.alpha * others)).sum(dim=-1)
        return numerator / (weights.sum(dim=-1) + 1e-9)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.main_category}, {self.comparison_categories}, alpha={self.alpha})"
