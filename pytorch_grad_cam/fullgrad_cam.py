"""FullGrad."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.base_cam import BaseCAM, Target, _detached
from pytorch_grad_cam.utils.image import resize_cam_tensor, scale_cam_tensor
from pytorch_grad_cam.utils.svd_on_activations import project_on_first_component
from pytorch_grad_cam.utils.validation import describe

_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _has_bias(module: nn.Module) -> bool:
    if isinstance(module, (*_CONVOLUTIONS, nn.Linear)):
        return module.bias is not None
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.affine and module.bias is not None
    return False


def _bias_layers(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if _has_bias(module)]


class FullGrad(BaseCAM):
    """FullGrad — Srinivas & Fleuret 2019, "Full-Gradient Representation for Neural Network Visualization",
    https://arxiv.org/abs/1905.00780

    ``map = ψ(|∇_x y ⊙ x|) + Σ_layers Σ_c ψ(|∇_{z_l} y ⊙ b_l|_c)``, where ``z_l`` is the output of a layer
    with a bias ``b_l`` (convolutions, batch norms with their folded bias ``b - μ γ / sqrt(σ² + ε)``, and
    linear layers applied to a channels-last map), and ``ψ`` min-max scales each channel of each image and
    resizes it to the input size; the sum is min-max scaled at the end.

    ``target_layers`` is ignored (a warning says so when it is not empty): every layer with a bias is used.
    Biases and layers are read at call time. A bias layer that does not contribute to the target score
    (never called, or off the path to the output) adds nothing; one called several times adds each call.
    Resizing is linear, so each layer's scaled channels are summed at their own resolution and resized once
    (the same numbers as resizing every channel, without the per-channel copies).
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module] = (),
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(target_layers, (list, tuple, nn.ModuleList)):
            raise TypeError(f"target_layers must be a list (ignored by FullGrad); got {describe(target_layers)}")
        if len(target_layers) > 0:
            warnings.warn(
                "target_layers is ignored by FullGrad: every layer with a bias is used", UserWarning, stacklevel=2
            )
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {describe(model)}")
        layers = _bias_layers(model)
        if not layers:
            raise ValueError(
                "FullGrad needs a model with at least one layer with a bias (Conv1d/2d/3d, BatchNorm, Linear); "
                "this model has none"
            )
        super().__init__(model, layers, reshape_transform, compute_input_gradient=True, **kwargs)

    @staticmethod
    def get_bias_data(layer: nn.Module) -> torch.Tensor:
        """The layer's bias as it acts in eval mode (batch norms fold in their running statistics)."""
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.running_mean is not None:
            weight = layer.weight if layer.weight is not None else torch.ones_like(layer.running_mean)
            return layer.bias - layer.running_mean * weight / torch.sqrt(layer.running_var + layer.eps)
        return layer.bias

    def _forward(self, input_tensor: torch.Tensor, targets: list[Target] | None, eigen_smooth: bool) -> torch.Tensor:
        spatial_dims = input_tensor.ndim - 2
        recorded: list[tuple[nn.Module, torch.Tensor]] = []

        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                # a tensor hook gives the gradient of this output even if a later op changes it in place
                output.register_hook(lambda grad: recorded.append((module, grad)))

        handles = [layer.register_forward_hook(record) for layer in _bias_layers(self.model)]
        inputs = input_tensor.detach().requires_grad_(True)
        try:
            with torch.enable_grad():
                outputs = self.model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        self.outputs = _detached(outputs)
        if targets is None:
            targets = self._default_targets(outputs, input_tensor.shape[0])
        with torch.enable_grad():
            (input_grad,) = torch.autograd.grad(self._target_score(targets, outputs), inputs)

        size = tuple(input_tensor.shape[2:])
        target_size = self.get_target_width_height(input_tensor)
        input_part = (input_grad * inputs.detach()).abs().float()
        parts = [scale_cam_tensor(input_part.flatten(0, 1), target_size).reshape(input_part.shape)]
        for layer, grad in recorded:
            if self.reshape_transform is not None:
                grad = self.reshape_transform(grad)
            if isinstance(layer, nn.Linear):
                grad = grad.movedim(-1, 1)  # channels-last map → channels first
            if grad.ndim != spatial_dims + 2:
                continue  # not a map (e.g. the classifier): no spatial saliency
            bias = self.get_bias_data(layer).detach().to(grad.device, torch.float32)
            bias_grad = (grad.float() * bias[(...,) + (None,) * spatial_dims]).abs()
            scaled = scale_cam_tensor(bias_grad.flatten(0, 1)).reshape(bias_grad.shape)
            parts.append(resize_cam_tensor(scaled.sum(dim=1), size)[:, None])
        stacked = torch.cat(parts, dim=1)
        if eigen_smooth:
            small = tuple(max(1, side // 8) for side in target_size)
            shrunk = scale_cam_tensor(stacked.flatten(0, 1), small).reshape(*stacked.shape[:2], *reversed(small))
            return scale_cam_tensor(scale_cam_tensor(project_on_first_component(shrunk), target_size))
        return scale_cam_tensor(stacked.sum(dim=1))
