"""Finer-CAM."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.base_cam import BaseCAM, CAMWrapper, Target
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

#: The default positions (in the similarity ranking) of the classes the target is compared with.
DEFAULT_COMPARISON_CATEGORIES = (1, 2, 3)


def _check_index(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    return int(value)


class FinerCAM(CAMWrapper):
    """Finer-CAM — Zhang et al. 2025, https://arxiv.org/abs/2501.11309

    Explains what sets the target class apart from the classes the model finds most similar to it. The
    classes of an image are ranked by ``|y_k - y_t|`` (``y_t`` the top logit, or that of ``target_idx``);
    the target is the first of that ranking and the comparison classes ``j`` are those at the ranks in
    ``comparison_categories``. The base method (GradCAM by default) then explains

    ``score = Σ_j p_j (y_t - alpha · y_j) / Σ_j p_j``,  ``p = softmax(y)``  (:class:`FinerWeightedTarget`)

    instead of the plain logit ``y_t``. ``alpha = 0`` gives the base method's map of the top class.

    Args:
        model: the network to explain.
        target_layers: the layers to explain (as for the base method).
        reshape_transform: as for the base method.
        base_method: the CAM class doing the work (any :class:`BaseCAM` subclass).
        **kwargs: further constructor arguments of ``base_method``.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        base_method: type[BaseCAM] = GradCAM,
        **kwargs: Any,
    ) -> None:
        self.base_cam = self.build_base(base_method, model, target_layers, reshape_transform, **kwargs)

    @property
    def compute_input_gradient(self) -> bool:
        return self.base_cam.compute_input_gradient

    @property
    def uses_gradients(self) -> bool:
        return self.base_cam.uses_gradients


    def __call__(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        eigen_smooth: bool = False,
        alpha: float = 1,
        comparison_categories: Sequence[int] | None = None,
        target_idx: int | None = None,
        aug_smooth: bool = False,
    ) -> np.ndarray:
        """The Finer-CAMs of a batch as ``np.float32`` ``(B, H, W)``, each in [0, 1].

        Args:
            input_tensor: ``(B, C, H, W)`` (or ``(B, C, D, H, W)``) input.
            targets: explicit targets (then ``alpha``, ``comparison_categories`` and ``target_idx`` are not
                used); ``None`` builds one :class:`FinerWeightedTarget` per image from its own output.
            eigen_smooth: as for the base method.
            alpha: the comparison strength.
            comparison_categories: ranks (0 = the target itself) of the classes to compare with; default
                ``(1, 2, 3)``, the three classes whose logits are closest to the target's.
            target_idx: the class to explain; ``None`` takes each image's top class.
            aug_smooth: as for the base method.
        """
        cam = self.compute(input_tensor, targets, eigen_smooth, alpha, comparison_categories, target_idx, aug_smooth)
        return cam.detach().cpu().numpy()

    def forward(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        eigen_smooth: bool = False,
        alpha: float = 1,
        comparison_categories: Sequence[int] | None = None,
        target_idx: int | None = None,
    ) -> np.ndarray:
        """Reference name of :meth:`__call__` (without augmentation smoothing)."""
        return self(input_tensor, targets, eigen_smooth, alpha, comparison_categories, target_idx)

    def compute(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        eigen_smooth: bool = False,
        alpha: float = 1,
        comparison_categories: Sequence[int] | None = None,
        target_idx: int | None = None,
        aug_smooth: bool = False,
    ) -> torch.Tensor:
        """Same as calling the object, but returns a float32 tensor on the model's device."""
        if targets is None:
            target = self.similar_classes_target(alpha, comparison_categories, target_idx)
            batch = input_tensor.shape[0] if isinstance(input_tensor, torch.Tensor) and input_tensor.ndim else 0
            targets = [target] * batch
        return self.base_cam.compute(input_tensor, targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)

    @staticmethod
    def similar_classes_target(
        alpha: float = 1, comparison_categories: Sequence[int] | None = None, target_idx: int | None = None
    ) -> Target:
        """A target that, given one image's output, contrasts its target class with its most similar ones."""
        if comparison_categories is None:
            comparison_categories = DEFAULT_COMPARISON_CATEGORIES
        if isinstance(comparison_categories, (str, bytes)) or not isinstance(
            comparison_categories, (Sequence, np.ndarray)
        ):
            raise TypeError(
                "comparison_categories must be a sequence of integer ranks, e.g. (1, 2, 3); got "
                f"{comparison_categories!r}"
            )
        ranks = [_check_index(rank, f"comparison_categories[{i}]") for i, rank in enumerate(comparison_categories)]
        if not ranks:
            raise ValueError("comparison_categories must hold at least one rank, e.g. (1, 2, 3); got an empty sequence")
        if min(ranks) < 1:
            raise ValueError(
                "comparison_categories must hold ranks >= 1 (rank 0 is the target class itself); "
                f"got {list(comparison_categories)}"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"alpha must be a real number; got {alpha!r}")
        if target_idx is not None:
            target_idx = _check_index(target_idx, "target_idx")

        def target(model_output: Any) -> torch.Tensor:
            logits = model_output["logits"] if isinstance(model_output, Mapping) else model_output
            if not isinstance(logits, torch.Tensor) or logits.ndim != 1:
                raise ValueError(
                    "FinerCAM with targets=None needs a vector of class scores per image; got "
                    f"{type(logits).__name__}{'' if not isinstance(logits, torch.Tensor) else tuple(logits.shape)}"
                )
            scores = logits.detach()
            num_classes = scores.shape[0]
            if max(ranks) >= num_classes:
                raise ValueError(
                    f"comparison_categories must be ranks below the number of classes ({num_classes}); got "
                    f"{list(ranks)}"
                )
            if target_idx is not None and not -num_classes <= target_idx < num_classes:
                raise ValueError(f"target_idx must be in [0, {num_classes}); got {target_idx}")
            reference = scores.max() if target_idx is None else scores[target_idx]
            order = torch.argsort((scores - reference).abs(), stable=True).tolist()
            return FinerWeightedTarget(order[0], [order[rank] for rank in ranks], alpha)(model_output)

        return target

