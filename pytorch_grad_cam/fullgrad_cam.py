"""FullGrad."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, Needs
from pytorch_grad_cam.core.checks import check_bool, check_model, check_target_layers
from pytorch_grad_cam.core.layers import TokenGrid, TokenGridReshape, solve_token_grid
from pytorch_grad_cam.core.projection import project_on_first_component
from pytorch_grad_cam.core.scaling import resize_cam_tensor, scale_cam_tensor
from pytorch_grad_cam.core.types import Layers, Reshape

#: The reference's bias layers: 2-D convolutions and batch norms.
REFERENCE_BIAS_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.BatchNorm2d)
#: Every layer type with a bias whose output can be a map: also 1-D / 3-D convolutions and batch norms, and
#: linear layers (channels-last maps, transformer tokens).
ALL_BIAS_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.modules.batchnorm._BatchNorm,
    nn.Linear,
)


class FullGrad(BaseCAM):
    """FullGrad — Srinivas & Fleuret 2019, "Full-Gradient Representation for Neural Network Visualization",
    https://arxiv.org/abs/1905.00780

    ``map = ψ(|∇_x y ⊙ x|) + Σ_layers Σ_c ψ(|∇_{z_l} y ⊙ b_l|_c)``, where ``z_l`` is the output of a layer
    with a bias ``b_l`` (batch norms with their folded bias ``b - μ γ / sqrt(σ² + ε)``), and ``ψ`` min-max
    scales each channel of each image and resizes it to the input size; the sum is min-max scaled at the end.

    The bias layers are, as in the reference, the ``nn.Conv2d`` and ``nn.BatchNorm2d`` layers with a bias;
    ``all_bias_layers=True`` adds 1-D / 3-D convolutions and batch norms and ``nn.Linear`` layers. A layer's
    output gradient is used as a map in its own layout: channels first for convolutions and batch norms;
    for a linear layer, channels last (Swin, ConvNeXt), or transformer tokens ``(B, N, C)`` turned into a map by
    ``reshape_transform`` or, without one, each layer on its own patch grid of the input (``h = H / p``,
    ``w = W / p``, the extra tokens dropped; see :func:`~pytorch_grad_cam.core.layers.solve_token_grid`, which
    raises ``ValueError`` when a layer's tokens fit several grids). A linear output that is no map of the input
    (the classifier's, a class-attention query) adds nothing.

    ``target_layers`` is ignored (a warning says so when it is not empty); :meth:`bias_layers` lists the
    layers used. A model without bias layers gets the input-gradient part alone, as in the reference. Biases
    and layers are read at call time. A bias layer that does not contribute to the target score (never
    called, or off the path to the output) adds nothing; one called several times adds each call. Resizing is
    linear, so each layer's scaled channels are summed at their own resolution and resized once (the same
    numbers as resizing every channel, without the per-channel copies).
    """

    needs = Needs(layer_gradients=False, input_gradient=True, bias_gradients=True)
    layers_optional = True

    def __init__(
        self,
        model: nn.Module,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        *,
        all_bias_layers: bool = False,
        **kwargs: Any,
    ) -> None:
        if check_target_layers([] if target_layers is None else target_layers, check_model(model), allow_empty=True):
            warnings.warn(
                "target_layers is ignored by FullGrad: every layer with a bias is used", UserWarning, stacklevel=2
            )
        self.layer_types = ALL_BIAS_LAYERS if check_bool(all_bias_layers, "all_bias_layers") else REFERENCE_BIAS_LAYERS
        super().__init__(model, [], reshape_transform, **kwargs)

    def bias_layers(self) -> list[nn.Module]:
        return [
            module
            for module in self.model.modules()
            if isinstance(module, self.layer_types) and getattr(module, "bias", None) is not None
        ]

    @staticmethod
    def get_bias_data(layer: nn.Module) -> torch.Tensor:
        """The layer's bias as it acts in eval mode (batch norms fold in their running statistics)."""
        bias: torch.Tensor = layer.bias  # type: ignore[assignment]
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            mean, var = layer.running_mean, layer.running_var
            if mean is not None and var is not None:
                weight = layer.weight if layer.weight is not None else torch.ones_like(mean)
                return bias - mean * weight / torch.sqrt(var + layer.eps)
        return bias

    def bias_map(
        self,
        layer: nn.Module,
        grad: torch.Tensor,
        spatial_dims: int,
        input_size: tuple[int, ...] | None = None,
        grid: TokenGrid | None = None,
    ) -> torch.Tensor | None:
        """``∇_z y`` of one bias layer as a channels-first map ``(B, C, *spatial)``, or ``None`` if it is none.

        Tokens ``(B, N, C)`` of a linear layer go through ``reshape_transform`` or, without one (and given the
        input's spatial ``input_size``), onto their patch ``grid`` of the input (solved for every token layer at
        once by :meth:`_token_grids`); without a grid they are no map of the input.
        """
        if isinstance(layer, nn.Linear):
            if grad.ndim == 3 and spatial_dims == 2 and self.reshape_transform is not None:
                grad = self.reshape_transform(grad)  # transformer tokens → (B, C, h, w)
            elif grad.ndim == 3 and spatial_dims == 2 and input_size is not None:
                if grid is None:
                    return None  # no map of the input (e.g. a class-attention query)
                grad = TokenGridReshape(grid, input_size)(grad)
            else:
                grad = grad.movedim(-1, 1)  # a channels-last map → channels first
        return grad if grad.ndim == spatial_dims + 2 else None

    @staticmethod
    def _map_grid(layer: nn.Module, grad: torch.Tensor, batch: int) -> tuple[int, int] | None:
        """The ``(h, w)`` grid of a bias layer's 2-D map: ``(B, C, h, w)``, or ``(B, h, w, C)`` for a linear layer
        (Swin's patch merging); ``None`` for anything else."""
        if grad.ndim != 4 or grad.shape[0] != batch:
            return None
        return (grad.shape[1], grad.shape[2]) if isinstance(layer, nn.Linear) else (grad.shape[2], grad.shape[3])

    def _token_grids(
        self,
        gradients: list[tuple[nn.Module, torch.Tensor]],
        grids: list[tuple[int, int] | None],
        size: tuple[int, ...],
        batch: int,
    ) -> dict[int, TokenGrid | None]:
        """The patch grid of every token layer (a linear layer's ``(B, N, C)`` output, no ``reshape_transform``),
        by index in ``gradients`` (backward order), solved in forward order: the evidence of a layer is the grids
        of the maps before it (channel maps and the token layers solved so far, the most recent first) and the
        extra tokens of the token layers before it. ``grids`` gets the solved grids."""
        found: dict[int, TokenGrid | None] = {}
        if self.reshape_transform is not None or len(size) != 2:
            return found
        extras: list[int] = []
        for index in reversed(range(len(gradients))):
            layer, grad = gradients[index]
            if not isinstance(layer, nn.Linear) or grad.ndim != 3 or grad.shape[0] != batch:
                continue
            evidence = [grid for grid in grids[index + 1 :] if grid is not None]
            what = f"the {type(layer).__name__} layer"
            grid = solve_token_grid(grad.shape[1], size, evidence, what=what, extra_evidence=extras[::-1])
            found[index] = grid
            if grid is not None:
                grids[index] = (grid.height, grid.width)
                extras.append(grid.extra)
        return found

    def combine_layers(self, maps: list[torch.Tensor], input_tensor: torch.Tensor, eigen_smooth: bool) -> torch.Tensor:
        record = self.activations_and_grads
        size = tuple(input_tensor.shape[2:])
        spatial_dims = len(size)
        input_part = (record.input_gradient * input_tensor.detach()).abs().float()  # type: ignore[operator]
        parts = [scale_cam_tensor(input_part.flatten(0, 1), size).reshape(input_part.shape)]
        batch = input_tensor.shape[0]
        gradients = record.bias_gradients
        # the 2-D grids of the maps (channels first, or a linear layer's channels-last map), in backward order: the
        # evidence of a token layer is the grids of the maps before it in the forward pass, the most recent first
        grids = [self._map_grid(layer, g, batch) for layer, g in gradients]
        token_grids = self._token_grids(gradients, grids, size, batch)
        for index, (layer, grad) in enumerate(gradients):
            if grad.ndim == 0 or grad.shape[0] != batch:
                continue  # not one row per image (e.g. attention windows): no map of the input
            channels_first = self.bias_map(layer, grad, spatial_dims, size, grid=token_grids.get(index))
            if channels_first is None:
                continue  # not a map (e.g. the classifier): no spatial saliency
            bias = self.get_bias_data(layer).detach().to(grad.device, torch.float32)
            bias_grad = (channels_first.float() * bias[(...,) + (None,) * spatial_dims]).abs()
            scaled = scale_cam_tensor(bias_grad.flatten(0, 1)).reshape(bias_grad.shape)
            parts.append(resize_cam_tensor(scaled.sum(dim=1), size)[:, None])
        stacked = torch.cat(parts, dim=1)
        if eigen_smooth:
            small = tuple(max(1, side // 8) for side in size)
            shrunk = scale_cam_tensor(stacked.flatten(0, 1), small).reshape(*stacked.shape[:2], *small)
            projection = project_on_first_component(shrunk, orientation=self.orientation)
            return scale_cam_tensor(scale_cam_tensor(projection, size))
        return scale_cam_tensor(stacked.sum(dim=1))
