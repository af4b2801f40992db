"""Model outputs and target scores: per-image slices of any output structure, and the scores targets give.

A model output may be a tensor, a mapping (dict, Hugging Face ``ModelOutput``), a (named) tuple or a list of
per-image mappings (torchvision detectors). Every target receives the output of *one* image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from pytorch_grad_cam.core.checks import describe, require_finite
from pytorch_grad_cam.core.targets import ClassifierOutputTarget, Target


def map_tensors(output: Any, function: Callable[[torch.Tensor], Any]) -> Any:
    """``output`` with ``function`` applied to every tensor inside it, keeping its structure.

    Mappings (dicts, Hugging Face ``ModelOutput``) are rebuilt as their own type when it takes keyword
    arguments (else as a dict), namedtuples as themselves, lists and tuples as their type.
    """
    return _map(output, function, keep_whole=lambda key: False)


def _map(output: Any, function: Callable[[torch.Tensor], Any], keep_whole: Callable[[Any], bool]) -> Any:
    """:func:`map_tensors`, leaving the mapping entries whose key ``keep_whole`` accepts as they are."""
    if isinstance(output, torch.Tensor):
        return function(output)
    if isinstance(output, Mapping):
        items = {key: value if keep_whole(key) else _map(value, function, keep_whole) for key, value in output.items()}
        try:
            return type(output)(**items)
        except TypeError:
            return items
    if isinstance(output, (list, tuple)):
        items_list = [_map(item, function, keep_whole) for item in output]
        return type(output)(*items_list) if hasattr(output, "_fields") else type(output)(items_list)
    return output


def detached(output: Any) -> Any:
    """``output`` with every tensor detached."""
    return map_tensors(output, torch.Tensor.detach)


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside ``value`` (a tensor, mapping or sequence, nested), in order."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)


def is_text_entry(key: Any) -> bool:
    """Whether a mapping entry holds the text side of an image-text model, batched by text prompt rather than
    by image: ``text_embeds``, ``text_model_output``, ``logits_per_text`` (Hugging Face CLIP / SigLIP),
    ``text_features`` (open_clip with ``output_dict=True``)."""
    return isinstance(key, str) and (key.startswith("text_") or key == "logits_per_text")


def output_for_image(output: Any, index: int, batch_size: int | None = None) -> Any:
    """The part of a batched model output that belongs to image ``index``.

    * a tensor output is indexed ``[index]``;
    * a list or tuple of per-image mappings (torchvision detection models) gives its ``index``-th element;
    * a mapping (dict, Hugging Face ``ModelOutput``) or a (named) tuple keeps its structure, with every tensor
      that is batched by image indexed ``[index]``: tensors with at least one axis whose first axis has
      ``batch_size`` entries (any first axis when ``batch_size`` is ``None``). Other tensors pass whole: 0-d
      ones (open_clip's ``logit_scale``), text features of another batch size, and the text entries of a
      mapping (:func:`is_text_entry`; so text batched like the images is not split either).

    Args:
        output: the model's output for the whole batch.
        index: the image's position in the batch.
        batch_size: the number of images in the batch.

    Raises:
        ValueError: when a tensor output has no row ``index``.
    """
    if isinstance(output, torch.Tensor):
        if output.ndim == 0 or not -output.shape[0] <= index < output.shape[0]:
            raise ValueError(
                f"the model returned {describe(output)}, which has no row for image {index} of the batch; a "
                "tensor output needs one row per image"
            )
        return output[index]
    if isinstance(output, (list, tuple)) and output and all(isinstance(item, Mapping) for item in output):
        return output[index]

    return _batched_part(output, index, batch_size)


def output_rows(output: Any, rows: slice, batch_size: int) -> Any:
    """The rows ``rows`` of a model output for a batch of ``batch_size`` inputs, keeping its structure (what
    :func:`output_for_image` keeps for one image, here for several: the part of a batch of perturbed copies of
    several images that belongs to one of them)."""
    if isinstance(output, (list, tuple)) and output and all(isinstance(item, Mapping) for item in output):
        return output[rows]
    return _batched_part(output, rows, batch_size)


def _batched_part(output: Any, index: int | slice, batch_size: int | None) -> Any:
    """``output`` with every tensor batched by input indexed ``[index]`` (see :func:`output_for_image`)."""

    def part(tensor: torch.Tensor) -> torch.Tensor:
        batched = tensor.ndim >= 1 and (batch_size is None or tensor.shape[0] == batch_size)
        return tensor[index] if batched else tensor

    return _map(output, part, keep_whole=is_text_entry)


def target_scores(targets: Sequence[Target], outputs: Any, first_index: int | None = 0) -> torch.Tensor:
    """``[targets[i](output of image i)]`` as a float32 ``(B,)`` tensor; a non-scalar score is summed.

    ``first_index`` is the batch position of ``targets[0]`` for error messages (``None``: the same target is
    applied to every row, e.g. to the perturbed copies of one image).

    Raises:
        TypeError: when a target does not return a tensor.
        ValueError: when a score is NaN or infinite (no map can be computed from it).
    """
    stacked = _scores(targets, outputs, first_index)
    check_finite_scores(stacked, targets, first_index)
    return stacked


def lone_target_rows(targets: Sequence[Target], outputs: Any) -> torch.Tensor | None:
    """:func:`target_scores` of a batch of one image whose target scores rows itself (``target.score_rows``, e.g.
    :class:`ClassifierOutputTarget` on a ``(1, num_classes)`` tensor output: one column of it), in fewer
    operations: float32 ``(1,)``, checked like :func:`target_scores` (the same errors). ``None`` for any other
    targets or output.

    The same values and gradients as :func:`target_scores`, except that a score of ``-0.0`` keeps its sign here
    (``target_scores`` sums each image's score, which makes it ``0.0``): their sums, which
    :meth:`~pytorch_grad_cam.core.base.BaseCAM.target_score` differentiates, are the same number.
    """
    if len(targets) != 1 or not isinstance(outputs, torch.Tensor):
        return None
    score_rows = getattr(targets[0], "score_rows", None)
    rows = score_rows(outputs, 1) if callable(score_rows) else None
    if rows is not None:
        check_finite_scores(rows, targets)
    return rows


def _target_name(index: int, first_index: int | None) -> str:
    return "a target" if first_index is None else f"targets[{first_index + index}]"


def _scores(targets: Sequence[Target], outputs: Any, first_index: int | None) -> torch.Tensor:
    """:func:`target_scores` without the finiteness check."""
    scores = []
    for index, target in enumerate(targets):
        score = target(output_for_image(outputs, index, len(targets)))
        if not isinstance(score, torch.Tensor):
            raise TypeError(f"{_target_name(index, first_index)} must return a torch.Tensor; got {describe(score)}")
        scores.append(score.float().sum())
    return torch.stack(scores)


def check_finite_scores(scores: torch.Tensor, targets: Sequence[Target], first_index: int | None = 0) -> None:
    """Raise when a score is NaN or infinite; row ``i`` of ``scores`` (``(B,)``, or ``(B, k)`` for the scores of
    ``k`` perturbed copies of each image) came from ``targets[i]``. One wait for the device, however many scores
    (none inside :func:`~pytorch_grad_cam.core.checks.deferred_checks`: decided at its end).

    Raises:
        ValueError: naming the target and the value.
    """

    def error() -> ValueError:
        finite = torch.isfinite(scores.detach())
        position = (~finite).nonzero()[0]
        index = int(position[0])
        return ValueError(
            f"{_target_name(index, first_index)} ({targets[index]!r}) returned a non-finite score "
            f"({float(scores.detach()[tuple(position)])}); a CAM needs a finite score: check the target and the "
            "model output"
        )

    require_finite(scores, error)


def row_scores(target: Target, outputs: Any, count: int, *, check: bool = True) -> torch.Tensor:
    """One ``target`` applied to each of the ``count`` rows of a batch of perturbed copies of one image, as a
    float32 ``(count,)`` tensor: in one operation when the target scores rows itself (``target.score_rows``, e.g.
    :class:`~pytorch_grad_cam.utils.model_targets.ClassifierOutputTarget` on ``(count, classes)`` outputs),
    else row by row.

    Args:
        target: the target of the image the copies were made from.
        outputs: the model output for the copies.
        count: the number of copies.
        check: check that the scores are finite (a wait for the device); the callers that score many batches pass
            ``False`` and call :func:`check_finite_scores` once on all of them.

    Raises:
        ValueError: when a tensor output does not hold ``count`` rows, or (``check``) a score is not finite.
    """
    if isinstance(outputs, torch.Tensor) and (outputs.ndim == 0 or outputs.shape[0] != count):
        raise ValueError(
            f"the model returned an output of shape {tuple(outputs.shape)} for a batch of {count} perturbed "
            f"inputs; one output row per input is needed"
        )
    score_rows = getattr(target, "score_rows", None)
    rows = score_rows(outputs, count) if callable(score_rows) else None
    scores = _scores([target] * count, outputs, None) if rows is None else rows
    if check:
        check_finite_scores(scores, [target] * count, None)
    return scores


def default_targets(outputs: Any, batch_size: int | None = None) -> list[Target]:
    """``targets=None``: one :class:`ClassifierOutputTarget` on the top class of each image.

    The output must be a ``(B, num_classes)`` tensor, or a mapping (e.g. a Hugging Face ``ModelOutput``) whose
    ``logits`` entry is one.

    Raises:
        ValueError: for any other output, with the targets that suit its kind (:func:`targets_hint`).
    """
    scores = outputs["logits"] if isinstance(outputs, Mapping) and "logits" in outputs else outputs
    rows_ok = batch_size is None or (isinstance(scores, torch.Tensor) and scores.shape[0] == batch_size)
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or not rows_ok:
        raise ValueError(
            "targets=None explains the top class of a (B, num_classes) classification output, but the model "
            f"returned {describe_output(outputs)}; pass targets explicitly, e.g. {targets_hint(outputs)}"
        )
    return [ClassifierOutputTarget(int(category)) for category in scores.argmax(dim=-1).tolist()]


def describe_output(outputs: Any) -> str:
    """A short description of a model output for error messages: a tensor's shape and dtype, a mapping's or a
    tuple's entries with their shapes."""

    def shape(value: Any) -> str:
        return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__

    if isinstance(outputs, Mapping):
        entries = ", ".join(f"{key} {shape(value)}" for key, value in outputs.items())
        return f"a {type(outputs).__name__} with entries {entries or 'none'}"
    if isinstance(outputs, (list, tuple)) and not (outputs and all(isinstance(item, Mapping) for item in outputs)):
        return f"a {type(outputs).__name__} of {', '.join(shape(item) for item in outputs) or 'nothing'}"
    return describe(outputs)


#: Mapping entries holding the image embedding of an image-text model.
IMAGE_EMBEDDING_KEYS = ("image_embeds", "image_features")


def targets_hint(outputs: Any) -> str:
    """The model targets that suit a (non-classifier) model output, for the ``targets=None`` error."""
    if (
        isinstance(outputs, (list, tuple))
        and outputs
        and all(isinstance(item, Mapping) and "boxes" in item for item in outputs)
    ):
        return (
            "one FasterRCNNBoxScoreTarget(labels, bounding_boxes) per image for torchvision detection outputs "
            "(dicts of boxes, labels and scores)"
        )
    if (
        isinstance(outputs, (list, tuple))
        and len(outputs) == 2
        and isinstance(outputs[1], Mapping)
        and {"boxes", "scores", "feats"} <= set(outputs[1])
    ):
        return (
            "one YOLOBoxScoreTarget(labels, bounding_boxes) per image for ultralytics YOLO outputs (boxes from "
            "yolo_detections(outputs) explain what the model detected)"
        )
    if isinstance(outputs, Mapping):
        if "pred_boxes" in outputs:
            return (
                "one DetrBoxScoreTarget(labels, bounding_boxes, image_size=(H, W)) per image for DETR-style "
                "detection outputs (logits and pred_boxes)"
            )
        if any(key in outputs for key in IMAGE_EMBEDDING_KEYS):
            return "ImageTextSimilarityTarget(text_features) for image embeddings of an image-text model"
        maps = [outputs[key] for key in ("out", "logits") if key in outputs]
    elif isinstance(outputs, tuple) and outputs and isinstance(outputs[0], torch.Tensor) and outputs[0].ndim == 2:
        if any(isinstance(item, torch.Tensor) and item.ndim == 0 for item in outputs[1:]):
            # open_clip: (image_features, text_features or None, logit_scale[, logit_bias])
            return "ImageTextSimilarityTarget(text_features) for image embeddings of an image-text model"
        maps = list(outputs)
    elif isinstance(outputs, (list, tuple)):
        maps = list(outputs)  # e.g. (main score map, auxiliary score map)
    else:
        maps = [outputs]
    if any(isinstance(value, torch.Tensor) and value.ndim >= 4 for value in maps):
        return "one SemanticSegmentationTarget(category, mask) per image for segmentation score maps"
    return (
        "ClassifierOutputTarget(category) on a (B, num_classes) output, RawScoresOutputTarget(), or any callable "
        "that maps one image's output to the score to explain"
    )


class UnavailableTarget:
    """Stands in for the default targets of an output that has none; raises ``ValueError`` when used."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, model_output: Any) -> torch.Tensor:
        raise ValueError(self.message)
