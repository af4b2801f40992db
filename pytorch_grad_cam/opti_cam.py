"""Opti-CAM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from pytorch_grad_cam.core import BaseCAM, LayerRecord, Needs
from pytorch_grad_cam.core.checks import check_bool, check_choice, check_positive_int, check_real
from pytorch_grad_cam.core.outputs import target_scores
from pytorch_grad_cam.core.perturbation import progress_bar
from pytorch_grad_cam.core.scaling import min_max_scale

OBJECTIVES = ("mask", "diff")


class OptiCAM(BaseCAM):
    """Opti-CAM — Zhang et al. 2024, "Opti-CAM: Optimizing saliency maps for interpretability",
    https://arxiv.org/abs/2301.07002

    Per-image channel weights found by gradient ascent: with ``u ∈ R^C`` (one vector per image, starting at
    0), ``w = softmax(u)`` and the saliency ``S(u) = norm(up(Σ_c w_c A_c))`` (upsampled to the input, min-max
    normalised), maximise

    * ``objective="mask"``: ``F(u) = y(x ⊙ S(u))``, the target score of the masked image (the paper's choice);
    * ``objective="diff"``: ``F(u) = −|y(x) − y(x ⊙ S(u))|``;

    with Adam (``iterations`` steps at ``learning_rate``); the best ``u`` seen is kept.
    ``map = ReLU(Σ_c softmax(u*)_c A_c)``. One forward and backward pass per iteration (all images together).

    After a call, ``objective_history`` holds ``F`` at every iteration, a float32 tensor
    ``(iterations + 1, B)`` (for the last target layer).

    Args:
        *args: ``model``, ``target_layers``, ``reshape_transform``, as :class:`BaseCAM`.
        iterations: number of Adam steps (this and the other options are keywords).
        learning_rate: Adam's learning rate.
        objective: ``"mask"`` or ``"diff"``.
        progress: show a tqdm progress bar over the iterations.
        **kwargs: passed to :class:`BaseCAM`.
    """

    needs = Needs(layer_gradients=False, autograd=True)

    def __init__(
        self,
        *args: Any,
        iterations: int = 50,
        learning_rate: float = 0.1,
        objective: str = "mask",
        progress: bool = True,
        **kwargs: Any,
    ) -> None:
        self.iterations = check_positive_int(iterations, "iterations")
        self.learning_rate = check_real(learning_rate, "learning_rate", 0.0, low_open=True)
        self.objective = check_choice(objective, "objective", OBJECTIVES)
        super().__init__(*args, **kwargs)
        self.progress = check_bool(progress, "progress")
        self.objective_history: torch.Tensor | None = None

    def saliency(self, weights: torch.Tensor, activations: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """``S = norm(up(Σ_c softmax(u)_c A_c))``, ``(B, 1, *size)`` in [0, 1], differentiable in ``weights``."""
        cam = (torch.softmax(weights, dim=1)[(...,) + (None,) * (activations.ndim - 2)] * activations).sum(1)
        mode = "bilinear" if activations.ndim == 4 else "trilinear"
        cam = F.interpolate(cam[:, None], size=tuple(size), mode=mode, align_corners=False)
        return min_max_scale(cam, eps=1e-8)

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        input_tensor, targets, activations = layer.input_tensor, layer.targets, layer.activations.detach()
        clean = target_scores(targets, self.outputs).to(activations.device)
        weights = torch.zeros(activations.shape[:2], device=activations.device, requires_grad=True)
        optimizer = torch.optim.Adam([weights], lr=self.learning_rate)
        history = []
        best_value = torch.full_like(clean, -torch.inf)
        best = weights.detach().clone()
        with torch.enable_grad(), progress_bar(self.iterations + 1, self.progress, "OptiCAM") as bar:
            for step in range(self.iterations + 1):
                mask = self.saliency(weights, activations, input_tensor.shape[2:]).to(input_tensor.dtype)
                scores = target_scores(targets, self.model(input_tensor * mask))
                value = scores if self.objective == "mask" else -(scores - clean).abs()
                history.append(value.detach())
                better = value.detach() > best_value
                best = torch.where(better[:, None], weights.detach(), best)
                best_value = torch.where(better, value.detach(), best_value)
                bar.update()
                if step == self.iterations:
                    break
                (weights.grad,) = torch.autograd.grad(-value.sum(), weights)
                optimizer.step()
        self.objective_history = torch.stack(history)
        return torch.softmax(best, dim=1)
