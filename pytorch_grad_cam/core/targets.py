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

from pytorch_grad_cam.core.checks import check_bool, check_choice, check_int, check_real, describe

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


def _score_rows(target: Callable[[Any], torch.Tensor], model_output: Any, count: int) -> torch.Tensor | None:
    """A per-class target's scores of ``count`` images at once, float32 ``(count,)``: for a ``(count, classes)``
    output, calling the target on the whole output gives the column it would take from each row. ``None`` for any
    other output (the caller then scores row by row)."""
    scores = _logits(model_output, type(target).__name__)
    if scores.ndim != 2 or scores.shape[0] != count:
        return None
    return target(model_output).float()


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

    def score_rows(self, model_output: Any, count: int) -> torch.Tensor | None:
        return _score_rows(self, model_output, count)

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

    def score_rows(self, model_output: Any, count: int) -> torch.Tensor | None:
        return _score_rows(self, model_output, count)

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
    """The model output itself (summed by the CAM), e.g. for regression or embedding models; the ``logits``
    entry of a mapping output (Hugging Face ``ModelOutput``) that has one."""

    def __call__(self, model_output: Any) -> Any:
        if isinstance(model_output, Mapping) and "logits" in model_output:
            return model_output["logits"]
        return model_output

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SemanticSegmentationTarget:
    """The summed score of one category over a spatial mask: ``(out[c] * mask).sum()``.

    The output of one image is a ``(C, H, W)`` score map, or ``(C, D, H, W)`` for volumes, or a mapping whose
    ``"out"`` entry (torchvision segmentation models) or ``"logits"`` entry (Hugging Face
    ``SegformerForSemanticSegmentation``, ``UperNetForSemanticSegmentation``, ...) is one. The mask is moved to
    the output's device and dtype at call time.

    Score maps coarser than the input (SegFormer's logits are at a quarter of the input's size) take a mask at
    either size: a mask larger than the score map on every axis (e.g. drawn at the input's size) is resized to
    the score map's size with nearest-neighbour interpolation (``F.interpolate(mode="nearest-exact")``, which
    keeps a binary mask binary) before the sum; a mask at the score map's size is used as it is.

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
        if isinstance(model_output, Mapping):
            model_output = next((model_output[key] for key in ("out", "logits") if key in model_output), model_output)
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
        dtype = model_output.dtype if model_output.is_floating_point() else torch.float32
        mask = self.mask_for(tuple(model_output.shape[1:])).to(device=model_output.device, dtype=dtype)
        return (model_output[self.category] * mask).sum()

    def mask_for(self, size: tuple[int, ...]) -> torch.Tensor:
        """The mask at a score map's spatial ``size``: itself, or resized (nearest) when it is larger.

        Raises:
            ValueError: when the mask is smaller than the score map on some axis.
        """
        if tuple(self.mask.shape) == size:
            return self.mask
        if any(have < want for have, want in zip(self.mask.shape, size)):
            raise ValueError(
                f"{type(self).__name__} mask shape must equal the score map's spatial shape {size} (or be larger "
                f"on every axis, to be resized to it); got {tuple(self.mask.shape)}"
            )
        resized = F.interpolate(self.mask[None, None].float(), size=size, mode="nearest-exact")[0, 0]
        return resized.to(self.mask.dtype) if self.mask.is_floating_point() else resized

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.category}, mask of shape {tuple(self.mask.shape)})"


def reference_boxes(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    bounding_boxes: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference boxes of a detection target as a float ``(K, 4)`` tensor of ``x1, y1, x2, y2`` and their
    labels as a long ``(K,)`` tensor.

    Raises:
        TypeError: either argument is not array-like.
        ValueError: the boxes are not ``(K, 4)`` or not finite, or the labels are not one class index ``>= 0``
            per box.
    """
    boxes = _as_float_tensor(bounding_boxes, "bounding_boxes").float()
    if boxes.numel() == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"bounding_boxes must have shape (K, 4) in (x1, y1, x2, y2); got {tuple(boxes.shape)}")
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError("bounding_boxes must hold finite coordinates; got NaN or infinity")
    values = _as_float_tensor(labels, "labels").reshape(-1)
    if values.numel() != boxes.shape[0]:
        raise ValueError(f"labels must have one entry per bounding box ({boxes.shape[0]}); got {values.numel()}")
    if bool((values != values.round()).any()) or bool((values < 0).any()):
        raise ValueError(f"labels must be integer class indices >= 0; got {values.tolist()}")
    return boxes, values.long()


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
        self._boxes, self._labels = reference_boxes(labels, bounding_boxes)
        check_real(iou_threshold, "iou_threshold", 0.0, 1.0)
        self.labels = labels
        self.bounding_boxes = bounding_boxes
        self.iou_threshold = float(iou_threshold)

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


def box_iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The ``(K, N)`` intersection over union of ``(K, 4)`` and ``(N, 4)`` boxes ``(x1, y1, x2, y2)``,
    differentiable; an empty union (two boxes of zero area) gives 0 where ``torchvision.ops.box_iou`` gives NaN."""
    area_first = (first[:, 2:] - first[:, :2]).clamp(min=0).prod(dim=-1)
    area_second = (second[:, 2:] - second[:, :2]).clamp(min=0).prod(dim=-1)
    top_left = torch.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = torch.minimum(first[:, None, 2:], second[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = area_first[:, None] + area_second[None, :] - intersection
    return intersection / union.clamp(min=torch.finfo(union.dtype).tiny)


def center_to_corners(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` boxes ``(cx, cy, w, h)`` as ``(x1, y1, x2, y2)``."""
    center, half = boxes[..., :2], boxes[..., 2:4] / 2
    return torch.cat([center - half, center + half], dim=-1)


class DetrBoxScoreTarget:
    """How well the queries of a DETR-style detector still match reference boxes:
    ``Σ_k [match_k] (IoU_k + p_k)``.

    The output of one image is a mapping (a Hugging Face ``ModelOutput`` of ``DetrForObjectDetection``,
    ``ConditionalDetrForObjectDetection``, ``DeformableDetrForObjectDetection``, ``YolosForObjectDetection``,
    ``RTDetrForObjectDetection``, ...) with ``logits`` ``(Q, num_classes [+ 1])`` and ``pred_boxes`` ``(Q, 4)``,
    normalised ``(cx, cy, w, h)`` (Carion et al. 2020, https://arxiv.org/abs/2005.12872). As the Hugging Face
    post-processing does, each query's class probabilities are ``softmax(logits)`` without the last ("no
    object") class, or ``sigmoid(logits)`` for models trained with a focal loss (Deformable DETR, RT-DETR); its
    label is the most probable class and its score that probability.

    As :class:`FasterRCNNBoxScoreTarget` does for torchvision detections, each reference box ``k`` is matched to
    one query, which counts (its IoU plus its score ``p_k``) when the IoU exceeds ``iou_threshold``. DETR keeps
    every query (there is no non-maximum suppression), so near-duplicate queries of other classes often overlap
    a box: the match is the query *of the reference label* with the highest IoU (torchvision's target takes the
    highest IoU first and then checks the label). Everything is computed on the output's device.

    Args:
        labels: ``(K,)`` reference class indices (the model's ``id2label`` keys, "no object" excluded).
        bounding_boxes: ``(K, 4)`` reference boxes ``(x1, y1, x2, y2)``: in pixels of an ``image_size`` image
            when ``image_size`` is given, else normalised to ``[0, 1]``.
        iou_threshold: the minimum IoU (exclusive) for a query to match a reference box.
        image_size: ``(H, W)`` of the image the pixel boxes refer to; ``None`` for normalised boxes.
        activation: ``"softmax"`` (the last class means "no object") or ``"sigmoid"``.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        bounding_boxes: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
        iou_threshold: float = 0.5,
        image_size: tuple[int, int] | None = None,
        activation: str = "softmax",
    ) -> None:
        boxes, self._labels = reference_boxes(labels, bounding_boxes)
        check_real(iou_threshold, "iou_threshold", 0.0, 1.0)
        if image_size is not None:
            if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
                raise TypeError(f"image_size must be None or a pair (H, W) of integers; got {describe(image_size)}")
            height, width = (check_int(side, f"image_size[{i}]", minimum=1) for i, side in enumerate(image_size))
            boxes = boxes / boxes.new_tensor([width, height, width, height])
        self.activation = check_choice(activation, "activation", ("softmax", "sigmoid"))
        self.labels = labels
        self.bounding_boxes = bounding_boxes
        self.iou_threshold = float(iou_threshold)
        self.image_size = None if image_size is None else (height, width)
        self._boxes = boxes  # normalised (x1, y1, x2, y2)

    def class_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """``(Q, num_classes)`` class probabilities of every query ("no object" dropped after a softmax)."""
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)[..., :-1]

    def __call__(self, model_output: Any) -> torch.Tensor:
        name = type(self).__name__
        if not isinstance(model_output, Mapping) or not {"logits", "pred_boxes"} <= set(model_output):
            raise TypeError(
                f"{name} expects one image's DETR-style output with 'logits' and 'pred_boxes' entries; got "
                f"{type(model_output).__name__}"
            )
        logits, pred_boxes = model_output["logits"], model_output["pred_boxes"]
        if logits.ndim != 2 or pred_boxes.ndim != 2 or pred_boxes.shape != (logits.shape[0], 4):
            raise ValueError(
                f"{name} expects one image's logits (Q, classes) and pred_boxes (Q, 4); got "
                f"{tuple(logits.shape)} and {tuple(pred_boxes.shape)}"
            )
        probabilities = self.class_scores(logits)
        zero = probabilities.sum() * 0.0
        if len(self._boxes) == 0 or logits.shape[0] == 0:
            return zero
        num_classes = probabilities.shape[-1]
        if int(self._labels.max()) >= num_classes:
            raise ValueError(
                f"{name} labels must be in [0, {num_classes}) for a model with {num_classes} classes; got "
                f"{self._labels.tolist()}"
            )
        scores, predicted = probabilities.max(dim=-1)  # (Q,)
        reference = self._boxes.to(device=pred_boxes.device, dtype=pred_boxes.dtype)
        ious = box_iou(reference, center_to_corners(pred_boxes))  # (K, Q)
        same_label = predicted[None, :] == self._labels.to(pred_boxes.device)[:, None]
        best_iou, best = torch.where(same_label, ious, torch.full_like(ious, -1.0)).max(dim=1)
        matched = best_iou > self.iou_threshold
        box_scores = torch.where(matched, best_iou + scores[best], torch.zeros_like(best_iou))
        return zero + box_scores.sum()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._boxes)} boxes, iou_threshold={self.iou_threshold})"


def image_embedding(model_output: Any, name: str) -> torch.Tensor:
    """The image embedding inside one image's output of an image(-text) model.

    Read from a tensor (itself), a mapping's ``image_embeds`` (Hugging Face ``CLIPVisionModelWithProjection``,
    ``CLIPModel``, ``SiglipModel``) or ``image_features`` entry (open_clip with ``output_dict=True``), or a
    tuple's first element (open_clip's ``(image_features, text_features, logit_scale[, logit_bias])``).

    Raises:
        TypeError: when the output holds no image embedding.
    """
    embedding = model_output
    if isinstance(model_output, Mapping):
        embedding = next((model_output[key] for key in ("image_embeds", "image_features") if key in model_output), None)
    elif isinstance(model_output, (list, tuple)) and model_output:
        embedding = model_output[0]
    if not isinstance(embedding, torch.Tensor):
        raise TypeError(
            f"{name} expects an image embedding: a tensor, a mapping with an 'image_embeds' or 'image_features' "
            f"entry, or an open_clip tuple (image_features, text_features, logit_scale); got "
            f"{type(model_output).__name__}"
        )
    return embedding


def _logit_scale(model_output: Any) -> torch.Tensor | None:
    """The (exponentiated) ``logit_scale`` an open_clip output carries, if any."""
    if isinstance(model_output, Mapping):
        scale = model_output.get("logit_scale")
    elif isinstance(model_output, (list, tuple)) and len(model_output) >= 3:
        scale = model_output[2]
    else:
        scale = None
    return scale.detach() if isinstance(scale, torch.Tensor) and scale.ndim == 0 else None


class ImageTextSimilarityTarget:
    """CLIP image-text similarity of one image to text prompts (Radford et al. 2021, CLIP,
    https://arxiv.org/abs/2103.00020).

    With ``e`` the image embedding and ``t_j`` the text embeddings, both normalised as CLIP does
    (``e / |e|``, ``t_j / |t_j|``), the cosine similarities are ``s_j = <e, t_j> / (|e| |t_j|)``; the score is
    ``s_i`` for ``i = text_index`` or, with ``softmax=True``, CLIP's zero-shot probability
    ``softmax_j(λ s_j)[i]`` with the logit scale ``λ``.

    The image embedding is read from the model's own output (see :func:`image_embedding`): a tensor, Hugging
    Face ``image_embeds`` (``CLIPVisionModelWithProjection``) or open_clip's ``model(image)`` tuple, so no
    wrapper is needed. Text embeddings come from ``open_clip_model.encode_text(tokens)``,
    ``CLIPModel.get_text_features(...)`` or ``CLIPTextModelWithProjection(...).text_embeds``, computed once.

    Args:
        text_features: ``(D,)`` or ``(T, D)`` text embeddings (numpy array or tensor; normalised here).
        text_index: the prompt ``i`` whose similarity is explained.
        softmax: explain the softmax probability over the ``T`` prompts instead of the raw cosine.
        logit_scale: ``λ`` for ``softmax=True``; ``None`` reads it from the model output when it carries one
            (open_clip's ``logit_scale``, already exponentiated), else uses 100 (trained CLIP models' value).
    """

    def __init__(
        self,
        text_features: np.ndarray | torch.Tensor,
        text_index: int = 0,
        softmax: bool = False,
        logit_scale: float | None = None,
    ) -> None:
        if not isinstance(text_features, (np.ndarray, torch.Tensor)):
            raise TypeError(
                f"text_features must be a numpy array or a torch tensor of shape (D,) or (T, D); got "
                f"{describe(text_features)}"
            )
        features = torch.from_numpy(np.array(text_features)) if isinstance(text_features, np.ndarray) else text_features
        features = features.detach()
        if features.ndim == 1:
            features = features[None]
        if features.ndim != 2 or features.numel() == 0:
            raise ValueError(f"text_features must have shape (D,) or (T, D) with T, D > 0; got {tuple(features.shape)}")
        self.text_index = check_int(text_index, "text_index")
        if not -features.shape[0] <= self.text_index < features.shape[0]:
            raise ValueError(
                f"text_index must be in [0, {features.shape[0]}) for {features.shape[0]} texts; got {text_index}"
            )
        self.softmax = check_bool(softmax, "softmax")
        if logit_scale is not None:
            check_real(logit_scale, "logit_scale", 0.0, low_open=True)
        self.logit_scale = None if logit_scale is None else float(logit_scale)
        self.text_features = features

    def similarities(self, model_output: Any) -> torch.Tensor:
        """The ``(T,)`` cosine similarities of one image's embedding to every text."""
        name = type(self).__name__
        embedding = image_embedding(model_output, name)
        if embedding.shape != self.text_features.shape[1:]:
            raise ValueError(
                f"{name} text_features of shape {tuple(self.text_features.shape)} need one image embedding of "
                f"shape ({self.text_features.shape[1]},); got {tuple(embedding.shape)}"
            )
        dtype = embedding.dtype if embedding.is_floating_point() else torch.float32
        texts = F.normalize(self.text_features.to(device=embedding.device, dtype=dtype), dim=-1)
        return texts @ F.normalize(embedding.to(dtype), dim=-1)

    def probabilities(self, model_output: Any) -> torch.Tensor:
        """The ``(T,)`` zero-shot probabilities ``softmax_j(λ s_j)`` of one image over every text."""
        scale = self.logit_scale if self.logit_scale is not None else _logit_scale(model_output)
        scale = 100.0 if scale is None else scale
        return torch.softmax(self.similarities(model_output) * scale, dim=-1)

    def __call__(self, model_output: Any) -> torch.Tensor:
        if self.softmax:
            return self.probabilities(model_output)[self.text_index]
        return self.similarities(model_output)[self.text_index]

    def __repr__(self) -> str:
        options = f", softmax=True, logit_scale={self.logit_scale}" if self.softmax else ""
        return (
            f"{type(self).__name__}(text_features of shape {tuple(self.text_features.shape)}, "
            f"text_index={self.text_index}{options})"
        )


class SimilarityToConceptTarget:
    """Cosine similarity of the output embedding to a concept embedding: ``<out, f> / (|out| |f|)``.

    ``out`` is one image's output when it is a tensor, else the image embedding inside it (Hugging Face
    ``image_embeds``, open_clip's ``image_features`` or the first element of its output tuple; see
    :func:`image_embedding`). :class:`ImageTextSimilarityTarget` also takes several prompts.

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
        model_output = image_embedding(model_output, type(self).__name__)
        if model_output.shape != self.features.shape:
            raise ValueError(
                f"{type(self).__name__} features shape {tuple(self.features.shape)} must equal the shape of "
                f"one image's output; got {tuple(model_output.shape)}"
            )
        features = self.features.to(device=model_output.device, dtype=model_output.dtype)
        return F.cosine_similarity(model_output.reshape(-1), features.reshape(-1), dim=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(features of shape {tuple(self.features.shape)})"


def contrast_with_similar(scores: torch.Tensor, main: torch.Tensor, others: torch.Tensor, alpha: float) -> torch.Tensor:
    """Finer-CAM's score of ``(..., num_classes)`` scores: ``Σ_j p_j (y[main] - alpha · y[j]) / (Σ_j p_j + 1e-9)``
    with ``p = softmax(y)`` and ``j`` in ``others``; ``main`` (one index) and ``others`` are index tensors on the
    scores' device."""
    weights = torch.softmax(scores, dim=-1).index_select(-1, others)
    numerator = (weights * (scores.index_select(-1, main) - alpha * scores.index_select(-1, others))).sum(dim=-1)
    return numerator / (weights.sum(dim=-1) + 1e-9)


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
        main = torch.tensor([self.main_category], device=scores.device)
        others = torch.tensor(self.comparison_categories, device=scores.device)
        return contrast_with_similar(scores, main, others, self.alpha)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.main_category}, {self.comparison_categories}, alpha={self.alpha})"
