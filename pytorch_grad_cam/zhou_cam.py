"""CAM: the original class activation map (Zhou et al. 2016)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam.core import BaseCAM, LayerRecord
from pytorch_grad_cam.core.checks import describe
from pytorch_grad_cam.core.needs import ACTIVATIONS_ONLY


class CAM(BaseCAM):
    """CAM — Zhou et al. 2016, "Learning Deep Features for Discriminative Localization",
    https://arxiv.org/abs/1512.04150

    For a network that ends in global average pooling of the target layer followed by one linear layer
    ``y = W · GAP(A) + b``, the weight of channel ``c`` is the classifier's weight of the explained class:
    ``w_c = W[k, c]``;  ``map = ReLU(Σ_c w_c A_c)``. Gradient-free: no backward pass.

    For a target other than a class logit, ``w = (∂t/∂y) · W`` (exact for any target that is linear in the
    logits, e.g. :class:`ClassifierOutputTarget`; a linearisation at the model output otherwise).

    On such a network CAM equals Grad-CAM and HiResCAM (their gradients are ``W[k] / (h·w)``).

    Args:
        *args: ``model``, ``target_layers``, ``reshape_transform``, as :class:`BaseCAM`.
        fc_layer: (keyword) the linear classifier; by default the model's last ``nn.Linear`` module.
        **kwargs: passed to :class:`BaseCAM`.

    Raises:
        ValueError: when the model has no ``nn.Linear`` layer, or (at call time) when its output is not
            ``fc_layer(GAP(target layer output))``.
    """

    needs = ACTIVATIONS_ONLY

    def __init__(self, *args: Any, fc_layer: nn.Linear | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model = self.model
        if fc_layer is None:
            linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
            if not linears:
                raise ValueError(
                    "CAM needs a model ending in global average pooling and a linear classifier, but "
                    f"{type(model).__name__} has no nn.Linear layer; use GradCAM instead"
                )
            fc_layer = linears[-1]
        elif not isinstance(fc_layer, nn.Linear):
            raise TypeError(f"fc_layer must be a torch.nn.Linear; got {describe(fc_layer)}")
        elif all(module is not fc_layer for module in model.modules()):
            raise ValueError("fc_layer is not a submodule of the model; pass the model's own classifier layer")
        self.fc_layer = fc_layer

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        activations, targets = layer.activations, layer.targets
        weight = self.fc_layer.weight.detach().to(activations.device, torch.float32)
        self._check_gap_linear_head(activations, weight)
        with torch.inference_mode(False), torch.enable_grad():
            logits = self.outputs.detach().clone().float().requires_grad_(True)
            score = torch.stack([target(logits[index]).sum() for index, target in enumerate(targets)]).sum()
            (slopes,) = torch.autograd.grad(score, logits, allow_unused=True)
        if slopes is None:
            return torch.zeros(activations.shape[:2], device=activations.device)
        return slopes.to(activations.device) @ weight

    def _check_gap_linear_head(self, activations: torch.Tensor, weight: torch.Tensor) -> None:
        """Raise unless the last model output is ``fc_layer(mean over space of activations)``."""
        channels = activations.shape[1]
        if weight.shape[1] != channels:
            raise ValueError(
                f"CAM needs the target layer to feed the classifier through global average pooling, but the "
                f"target layer has {channels} channels and fc_layer expects {weight.shape[1]} features; pick "
                "the last feature layer (or pass fc_layer), or use GradCAM"
            )
        outputs = self.outputs
        if not isinstance(outputs, torch.Tensor) or outputs.shape != (activations.shape[0], weight.shape[0]):
            raise ValueError(
                f"CAM needs a classifier returning (B, {weight.shape[0]}) scores from fc_layer; the model "
                f"returned {describe(outputs)}; use GradCAM instead"
            )
        pooled = activations.flatten(2).mean(dim=2)
        bias = self.fc_layer.bias
        expected = F.linear(pooled, weight, None if bias is None else bias.detach().to(pooled.device, torch.float32))
        received = outputs.to(expected.device, torch.float32)
        error = (expected - received).abs().max().item()
        if error > 1e-3 * (1.0 + received.abs().max().item()):
            raise ValueError(
                "CAM needs a model whose output is fc_layer(global average pooling of the target layer), but "
                f"the output differs from it by up to {error:.4g}: this model has no GAP + linear head at this "
                "layer. Pick the layer that feeds the pooling (or pass fc_layer), or use GradCAM"
            )
