"""Finer-CAM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.core import CAMWrapper, Target
from pytorch_grad_cam.core.checks import check_int, check_real
from pytorch_grad_cam.core.targets import FinerWeightedTarget, contrast_with_similar
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
        e.g. for every noisy copy of :class:`NoiseTunnel`). The classes of every image are ranked at once: one
        wait for the device per call, however many images."""
        return similar_classes_target(alpha, comparison_categories, target_idx).resolve_all(outputs, batch_size)


class _SimilarClassesTarget:
    """A target that contrasts, on each output it is given, the target class with its most similar ones.

    Called on one image's output, it ranks the classes and scores them on the device (no wait for the device);
    :meth:`resolve_all` fixes the classes of a whole batch as :class:`FinerWeightedTarget` objects.
    """

    def __init__(self, alpha: float, ranks: list[int], target_idx: int | None) -> None:
        self.alpha, self.ranks, self.target_idx = alpha, ranks, target_idx

    def resolve_all(self, outputs: Any, batch_size: int) -> list[Target]:
        """The :class:`FinerWeightedTarget` of every image of a batch of outputs (one wait for the device).

        Raises:
            ValueError: when the outputs hold no vector of class scores per image, or too few classes.
        """
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs
        if isinstance(logits, torch.Tensor) and logits.ndim == 2:
            if logits.shape[0] != batch_size:
                raise ValueError(
                    f"FinerCAM with targets=None needs one row of class scores per image: {batch_size} image(s), "
                    f"but the model output has shape {tuple(logits.shape)}"
                )
            rows = logits.detach()
        else:  # one vector for every image (or no scores at all: the error names what was given)
            rows = self._scores(logits).unsqueeze(0).expand(batch_size, -1)
        order = self._order(rows)
        chosen = torch.stack([order[:, rank] for rank in (0, *self.ranks)], dim=1).tolist()
        return [FinerWeightedTarget(classes[0], classes[1:], self.alpha) for classes in chosen]

    def _scores(self, logits: Any) -> torch.Tensor:
        """The detached ``(num_classes,)`` scores of one image; ``ValueError`` for anything else."""
        if not isinstance(logits, torch.Tensor) or logits.ndim != 1:
            raise ValueError(
                "FinerCAM with targets=None needs a vector of class scores per image; got "
                f"{type(logits).__name__}{'' if not isinstance(logits, torch.Tensor) else tuple(logits.shape)}"
            )
        return logits.detach()

    def _order(self, scores: torch.Tensor) -> torch.Tensor:
        """The classes of ``(..., num_classes)`` scores ranked by ``|y_k - y_t|`` (the target first), on their
        device.

        Raises:
            ValueError: when a comparison rank or ``target_idx`` does not fit the number of classes.
        """
        num_classes = scores.shape[-1]
        if max(self.ranks) >= num_classes:
            raise ValueError(
                f"comparison_categories must be ranks below the number of classes ({num_classes}); got {self.ranks}"
            )
        if self.target_idx is not None and not -num_classes <= self.target_idx < num_classes:
            raise ValueError(f"target_idx must be in [0, {num_classes}); got {self.target_idx}")
        if self.target_idx is None:
            reference = scores.max(dim=-1, keepdim=True).values
        else:
            reference = scores.select(-1, self.target_idx).unsqueeze(-1)
        return torch.argsort((scores - reference).abs(), dim=-1, stable=True)

    def __call__(self, model_output: Any) -> torch.Tensor:
        """:class:`FinerWeightedTarget`'s score of one image's output, its classes chosen on that output, all on
        the device: ``Σ_j p_j (y_t - alpha · y_j) / (Σ_j p_j + 1e-9)``."""
        logits = model_output["logits"] if isinstance(model_output, Mapping) else model_output
        order = self._order(self._scores(logits))
        # the classes as index tensors on the device (views of the ranking stacked: no copy from the host)
        comparison = torch.stack([order[rank] for rank in self.ranks])
        return contrast_with_similar(logits, order[:1], comparison, float(self.alpha))

    def __repr__(self) -> str:
        return (
            f"similar_classes_target(alpha={self.alpha}, comparison_categories={self.ranks}, "
            f"target_idx={self.target_idx})"
        )


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
