"""Random CAM, a baseline."""

from __future__ import annotations

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, Target
from pytorch_grad_cam.core.needs import CLASS_AGNOSTIC


class RandomCAM(BaseCAM):
    """A sanity baseline: channel weights drawn uniformly from [-1, 1] (torch's global generator, so
    ``torch.manual_seed`` makes it repeatable);  ``map = ReLU(Σ_c w_c A_c)``. Any method worth using must
    score clearly better than this on a localisation metric.
    """

    needs = CLASS_AGNOSTIC

    def get_cam_weights(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor | None,
    ) -> torch.Tensor:
        weights = torch.rand(activations.shape[:2], dtype=activations.dtype)
        return (2 * weights - 1).to(activations.device)
