"""ARCC: the harmonic mean of ROAD, Coherency and (1 - Complexity).

Complexity and Coherency come from ADCC (Poppi et al. 2021, "Revisiting The Evaluation of Class Activation
Mapping for Explainability: A Novel Metric and Experimental Analysis", https://arxiv.org/abs/2104.10252); ARCC
replaces ADCC's Average Drop by ROAD (Rong et al. 2022, https://arxiv.org/abs/2202.00449):

    Complexity(m)   = ||m||_1 / (H W)
    Coherency(m)    = (ρ(m, CAM(x ⊙ m)) + 1) / 2            (ρ: Pearson correlation over pixels)
    ROAD'(m)        = clip(2 · ROADCombined(m), 0, 1)
    ARCC(m)         = 3 / (1 / Coherency + 1 / (1 - Complexity) + 1 / ROAD')

Each term is in [0, 1]; higher ARCC is better.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.core.checks import as_tensor, check_callable, check_input_tensor, check_model, check_targets
from pytorch_grad_cam.core.model import eval_mode, model_input
from pytorch_grad_cam.core.types import Maps, Targets
from pytorch_grad_cam.metrics.perturbation_confidence import check_cams, score_batches
from pytorch_grad_cam.metrics.road import ROADCombined

__all__ = ["ARCC", "Coherency", "Complexity", "batch_pearson_coherency"]

_EPS = 1e-8


_BASE_METHOD_EXAMPLE = "a CAM object such as GradCAM(model, layers)"


def batch_pearson_coherency(A: np.ndarray | torch.Tensor, B: np.ndarray | torch.Tensor) -> np.ndarray:
    """Pearson correlation of each pair of maps, ``ρ_i = cov(a_i, b_i) / (σ(a_i) σ(b_i) + 1e-8)``.

    Args:
        A: ``(B, ...)`` maps.
        B: ``(B, ...)`` maps, the same shape as ``A``.

    Returns:
        ``np.ndarray`` ``(B,)`` of correlations in [-1, 1].
    """
    a, b = as_tensor(A, "A"), as_tensor(B, "B")
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(
            f"A and B must be batches of maps of the same shape; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a = a.reshape(a.shape[0], -1).double()
    b = b.to(a.device).reshape(b.shape[0], -1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    dof = a.shape[1] - 1
    cov = (a * b).sum(dim=1) / dof
    std = torch.sqrt((a**2).sum(dim=1) / dof) * torch.sqrt((b**2).sum(dim=1) / dof)
    return (cov / (std + _EPS)).cpu().numpy()


class Complexity:
    """The mean absolute value of the map, ``||m||_1 / (H W)``: 0 for an empty map, 1 for a full one."""

    def __call__(self, grayscale_cams: Maps) -> np.ndarray:
        cams = as_tensor(grayscale_cams, "grayscale_cams")
        if cams.ndim < 2:
            raise ValueError(f"grayscale_cams must have shape (B, H, W); got {tuple(cams.shape)}")
        if not bool(torch.isfinite(cams).all()):
            raise ValueError("grayscale_cams contains NaN or inf values")
        return cams.reshape(cams.shape[0], -1).double().abs().mean(dim=1).cpu().numpy()


class Coherency:
    """``(ρ(m, CAM(x ⊙ m)) + 1) / 2``: the map of the image masked by its own map should be the same map."""

    def __call__(
        self,
        input_tensor: torch.Tensor,
        grayscale_cams: Maps,
        targets: Targets,
        model: nn.Module,
        base_method: Callable[..., np.ndarray | torch.Tensor],
    ) -> np.ndarray:
        """Args: the batch, its maps, the targets, the model (unused: ``base_method`` holds it), and the CAM
        object that made the maps."""
        check_callable(base_method, "base_method", allow_none=False, example=_BASE_METHOD_EXAMPLE)
        input_tensor = check_input_tensor(input_tensor, (4, 5))
        cams = check_cams(grayscale_cams, input_tensor, "grayscale_cams")
        masked = input_tensor * cams[:, None].to(input_tensor.dtype)
        masked_cams = base_method(input_tensor=masked, targets=targets)
        return (batch_pearson_coherency(masked_cams, cams) + 1) / 2


class ARCC:
    """ARCC, ``3 / (1/Coherency + 1/(1 - Complexity) + 1/clip(2 ROADCombined, 0, 1))`` per image.

    Args:
        base_method: the CAM object that made the maps (used again for Coherency).
        road_percentiles: the percentiles of :class:`ROADCombined`.
    """

    def __init__(
        self,
        base_method: Callable[..., np.ndarray | torch.Tensor],
        road_percentiles: Sequence[float] = (20, 40, 60, 80),
    ) -> None:
        check_callable(base_method, "base_method", allow_none=False, example=_BASE_METHOD_EXAMPLE)
        self.complexity = Complexity()
        self.coherency = Coherency()
        self.road = ROADCombined(percentiles=list(road_percentiles))
        self.base_method = base_method

    def __call__(
        self, input_tensor: torch.Tensor, grayscale_cams: Maps, targets: Targets, model: nn.Module
    ) -> np.ndarray:
        """ARCC per image, ``(B,)``; ``targets=None`` fixes the top class of each unperturbed image."""
        model = check_model(model)
        input_tensor = check_input_tensor(input_tensor, (4,))
        checked = check_targets(targets, input_tensor.shape[0])
        if checked is None:
            with eval_mode(model):
                _, checked = score_batches(model, model_input(input_tensor, model), None, None)
        complexity = self.complexity(check_cams(grayscale_cams, input_tensor, "grayscale_cams"))
        coherency = self.coherency(input_tensor, grayscale_cams, checked, model, self.base_method)
        road_scores: np.ndarray = self.road(input_tensor, grayscale_cams, checked, model)  # type: ignore[assignment]  # an array without return_visualization
        road = np.clip(road_scores * 2, 0, 1)
        return 3 / (1 / (coherency + _EPS) + 1 / ((1 - complexity) + _EPS) + 1 / (road + _EPS))
