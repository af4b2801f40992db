"""Random CAM, a baseline."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord
from pytorch_grad_cam.core.needs import CLASS_AGNOSTIC


class RandomCAM(BaseCAM):
    """A sanity baseline: channel weights drawn uniformly from [-1, 1] (torch's global generator, so
    ``torch.manual_seed`` makes it repeatable);  ``map = ReLU(Σ_c w_c A_c)``. Any method worth using must
    score clearly better than this on a localisation metric.
    """

    needs = CLASS_AGNOSTIC

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        weights = torch.rand(layer.activations.shape[:2], dtype=layer.activations.dtype)
        return (2 * weights - 1).to(layer.activations.device)
