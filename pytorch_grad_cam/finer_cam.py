"""Finer-CAM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.core import CAMWrapper, Target
from pytorch_grad_cam.core.checks import check_int, check_real
from pytorch_grad_cam.core.targets import FinerWeightedTarget
from pytorch_grad_cam.core.types import Targets
from pytorch_grad_cam.grad_cam import GradCAM

#: The default positions (in the similarity ranking) of the classes the target is compared with.
DEFAULT_COMPARISON_CATEGORIES = (1, 2, 3)


class FinerCAM(CAMWrapper):
    """Finer-CAM — Zhang et al. 2025, https://arxiv.org/abs/2501.11309

    Explains what sets the target class apart from the classes the model finds most similar to it. The
    classes of an image are ranked by ``|y_k - y_t|`` (``y_t`` the top logit, or that of ``target_idx``);
    the target is the first of that ranking and the comparison classes ``j`` are those at the ranks in
    ``comparison_categories``. The base method (GradCAM by default) then explains

    ``score = Σ_j p_j (y_t - alpha · y_j) / Σ_j p_j``,  ``p = softmax(y)``  (:class:`FinerWeightedTarget`)

    instead of the plain logit ``y_t``. ``alpha = 0`` gives the base method's map of the top class.

    ``cam(input_tensor, targets, eigen_smooth, alpha, comparison_categories, target_idx)`` takes its options
    in the reference's order (``aug_smooth`` by keyword); with explicit ``targets`` the comparison options are
    not used.

    Args:
        model: the network to explain.
        target_layers: the layers to explain (as for the base method).
        reshape_transform: as for the base method.
        base_method: the CAM doing the work: a CAM class (built with the arguments above and ``kwargs``) or a
            CAM object.
        **kwargs: further constructor arguments of ``base_method``.
    """

    call_flags = ("eigen_smooth", "alpha", "comparison_categories", "target_idx", "aug_smooth")
    default_base_method = GradCAM

    def explain(
        self,
        input_tensor: torch.Tensor,
        targets: Targets,
        *,
        aug_smooth: bool,
        eigen_smooth: bool,
        alpha: float = 1,
        comparison_categories: Sequence[int] | None = None,
        target_idx: int | None = None,
        **options: Any,
    ) -> torch.Tensor:
        if options:
            raise TypeError(f"FinerCAM got unexpected options: {', '.join(sorted(options))}")
        if targets is None:
            targets = [similar_classes_target(alpha, comparison_categories, target_idx)] * input_tensor.shape[0]
        return self.base_cam.compute(input_tensor, targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)

    def default_targets(
        self,
        outputs: Any,
        batch_size: int,
        alpha: float = 1,
        comparison_categories: Sequence[int] | None = None,
        target_idx: int | None = None,
        **options: Any,
    ) -> list[Target]:
        """One :class:`FinerWeightedTarget` per image, its classes ranked on these outputs (fixed from then on,
        e.g. for every noisy copy of :class:`NoiseTunnel`)."""
        target = similar_classes_target(alpha, comparison_categories, target_idx)
        return [target.resolve(outputs, index) for index in range(batch_size)]


class _SimilarClassesTarget:
    """A target that contrasts, on each output it is given, the target class with its most similar ones."""

    def __init__(self, alpha: float, ranks: list[int], target_idx: int | None) -> None:
        self.alpha, self.ranks, self.target_idx = alpha, ranks, target_idx

    def resolve(self, outputs: Any, index: int) -> FinerWeightedTarget:
        """The :class:`FinerWeightedTarget` of image ``index`` of a batch of outputs."""
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs
        return self._weighted(logits[index] if isinstance(logits, torch.Tensor) and logits.ndim == 2 else logits)

    def _weighted(self, logits: Any) -> FinerWeightedTarget:
        if not isinstance(logits, torch.Tensor) or logits.ndim != 1:
            raise ValueError(
                "FinerCAM with targets=None needs a vector of class scores per image; got "
                f"{type(logits).__name__}{'' if not isinstance(logits, torch.Tensor) else tuple(logits.shape)}"
            )
        scores = logits.detach()
        num_classes = scores.shape[0]
        if max(self.ranks) >= num_classes:
            raise ValueError(
                f"comparison_categories must be ranks below the number of classes ({num_classes}); got {self.ranks}"
            )
        if self.target_idx is not None and not -num_classes <= self.target_idx < num_classes:
            raise ValueError(f"target_idx must be in [0, {num_classes}); got {self.target_idx}")
        reference = scores.max() if self.target_idx is None else scores[self.target_idx]
        order = torch.argsort((scores - reference).abs(), stable=True).tolist()
        return FinerWeightedTarget(order[0], [order[rank] for rank in self.ranks], self.alpha)

    def __call__(self, model_output: Any) -> torch.Tensor:
        logits = model_output["logits"] if isinstance(model_output, Mapping) else model_output
        return self._weighted(logits)(model_output)


def similar_classes_target(
    alpha: float = 1, comparison_categories: Sequence[int] | None = None, target_idx: int | None = None
) -> _SimilarClassesTarget:
    """A target that, given one image's output, contrasts its target class with its most similar ones."""
    if comparison_categories is None:
        comparison_categories = DEFAULT_COMPARISON_CATEGORIES
    if isinstance(comparison_categories, (str, bytes)) or not isinstance(comparison_categories, (Sequence, np.ndarray)):
        raise TypeError(
            f"comparison_categories must be a sequence of integer ranks, e.g. (1, 2, 3); got {comparison_categories!r}"
        )
    ranks = [check_int(rank, f"comparison_categories[{i}]") for i, rank in enumerate(comparison_categories)]
    if not ranks:
        raise ValueError("comparison_categories must hold at least one rank, e.g. (1, 2, 3); got an empty sequence")
    if min(ranks) < 1:
        raise ValueError(f"comparison_categories must hold ranks >= 1 (rank 0 is the target class itself); got {ranks}")
    alpha = check_real(alpha, "alpha")
    return _SimilarClassesTarget(alpha, ranks, None if target_idx is None else check_int(target_idx, "target_idx"))
