"""Model outputs and target scores: per-image slices of any output structure, and the scores targets give.

A model output may be a tensor, a mapping (dict, Hugging Face ``ModelOutput``), a (named) tuple or a list of
per-image mappings (torchvision detectors). Every target receives the output of *one* image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from pytorch_grad_cam.core.checks import describe
from pytorch_grad_cam.core.targets import ClassifierOutputTarget, Target


def map_tensors(output: Any, function: Callable[[torch.Tensor], Any]) -> Any:
    """``output`` with ``function`` applied to every tensor inside it, keeping its structure.

    Mappings (dicts, Hugging Face ``ModelOutput``) are rebuilt as their own type when it takes keyword
    arguments (else as a dict), namedtuples as themselves, lists and tuples as their type.
    """
    if isinstance(output, torch.Tensor):
        return function(output)
    if isinstance(output, Mapping):
        items = {key: map_tensors(value, function) for key, value in output.items()}
        try:
            return type(output)(**items)
        except TypeError:
            return items
    if isinstance(output, (list, tuple)):
        items_list = [map_tensors(item, function) for item in output]
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


def output_for_image(output: Any, index: int) -> Any:
    """The part of a batched model output that belongs to image ``index``.

    Tensors are indexed ``[index]``; mappings (dicts, Hugging Face ``ModelOutput``) and tuples keep their
    structure with every tensor indexed; a list or tuple of per-image mappings (torchvision detection
    models) gives its ``index``-th element.
    """
    if isinstance(output, (list, tuple)) and output and all(isinstance(item, Mapping) for item in output):
        return output[index]
    return map_tensors(output, lambda tensor: tensor[index])


def target_scores(targets: Sequence[Target], outputs: Any, first_index: int | None = 0) -> torch.Tensor:
    """``[targets[i](output of image i)]`` as a float32 ``(B,)`` tensor; a non-scalar score is summed.

    ``first_index`` is the batch position of ``targets[0]`` for error messages (``None``: the same target is
    applied to every row, e.g. to the perturbed copies of one image).

    Raises:
        TypeError: when a target does not return a tensor.
        ValueError: when a score is NaN or infinite (no map can be computed from it).
    """

    def name(index: int) -> str:
        return "a target" if first_index is None else f"targets[{first_index + index}]"

    scores = []
    for index, target in enumerate(targets):
        score = target(output_for_image(outputs, index))
        if not isinstance(score, torch.Tensor):
            raise TypeError(f"{name(index)} must return a torch.Tensor; got {describe(score)}")
        scores.append(score.float().sum())
    stacked = torch.stack(scores)
    finite = torch.isfinite(stacked.detach())
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0, 0])
        raise ValueError(
            f"{name(index)} ({targets[index]!r}) returned a non-finite score ({float(stacked.detach()[index])}); a CAM "
            "needs a finite score: check the target and the model output"
        )
    return stacked


def row_scores(target: Target, outputs: Any, count: int) -> torch.Tensor:
    """One ``target`` applied to each of the ``count`` rows of a batch of perturbed copies of one image.

    Raises:
        ValueError: when a tensor output does not hold ``count`` rows.
    """
    if isinstance(outputs, torch.Tensor) and (outputs.ndim == 0 or outputs.shape[0] != count):
        raise ValueError(
            f"the model returned an output of shape {tuple(outputs.shape)} for a batch of {count} perturbed "
            f"inputs; one output row per input is needed"
        )
    return target_scores([target] * count, outputs, first_index=None)


def default_targets(outputs: Any, batch_size: int | None = None) -> list[Target]:
    """``targets=None``: one :class:`ClassifierOutputTarget` on the top class of each image.

    The output must be a ``(B, num_classes)`` tensor, or a mapping (e.g. a Hugging Face ``ModelOutput``) whose
    ``logits`` entry is one.
    """
    scores = outputs["logits"] if isinstance(outputs, Mapping) and "logits" in outputs else outputs
    rows_ok = batch_size is None or (isinstance(scores, torch.Tensor) and scores.shape[0] == batch_size)
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or not rows_ok:
        raise ValueError(
            "targets=None explains the top class of a (B, num_classes) classification output, but the model "
            f"returned {describe(outputs)}; pass targets explicitly, e.g. "
            "[SemanticSegmentationTarget(category, mask)]"
        )
    return [ClassifierOutputTarget(int(category)) for category in scores.argmax(dim=-1).tolist()]


class UnavailableTarget:
    """Stands in for the default targets of an output that has none; raises ``ValueError`` when used."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, model_output: Any) -> torch.Tensor:
        raise ValueError(self.message)
