"""Model targets: callables that turn one image's model output into the scalar (or map) to explain.

Every target receives the output of *one* image: ``output[i]`` for a tensor output, or the same
structure with every tensor indexed ``[i]`` for dict / ModelOutput / tuple outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


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
        self.category = int(category)

    def __call__(self, model_output: Any) -> torch.Tensor:
        scores = _logits(model_output, type(self).__name__)
        _check_category(self.category, scores, type(self).__name__)
        if scores.ndim == 1:
            return scores[self.category]
        return scores[:, self.category]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.category})"
