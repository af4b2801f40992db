"""Ablation-CAM over several layers at once: channel ``c`` is switched off in every target layer together.

The reference (grad-cam 1.5.7) ships this module, but its ``AblationCAM`` raises ``TypeError`` on every call;
this one works, and gives the numbers the reference's code computes once its call errors are bypassed. For
Ablation-CAM layer by layer use :class:`pytorch_grad_cam.AblationCAM`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM, LayerRecord
from pytorch_grad_cam.core.checks import check_callable, describe
from pytorch_grad_cam.core.outputs import check_finite_scores, row_scores, target_scores
from pytorch_grad_cam.core.perturbation import PerturbationCAM, progress_bar
from pytorch_grad_cam.core.recording import replaced_output
from pytorch_grad_cam.core.types import Reshape
from pytorch_grad_cam.utils.find_layers import replace_layer_recursive

__all__ = ["AblationCAM", "AblationLayer", "BaseCAM", "common_channel_count", "replace_layer_recursive"]

#: Offset below the layer's minimum used to switch off a channel of a layer whose outputs can be negative.
ABLATION_OFFSET = 1e5


class AblationLayer(nn.Module):
    """A layer whose output has one channel switched off per batch row: row ``i`` of ``layer(x)`` gets channel
    ``indices[i]`` set to 0 when the output's minimum is 0 (ReLU outputs, as in the paper), otherwise to
    ``min - 1e5``, far below every other value.

    The value is taken from the output before any row is changed, so every row gets the same one (the
    reference lowered it for each further row, which made results depend on the batch size).

    Args:
        layer: the module whose output is ablated.
        reshape_transform: ``None`` for ``(N, C, *spatial)`` outputs; any transform means transformer tokens
            ``(N, tokens, C)``, whose channels are on the last axis (as in the reference).
        indices: the channel switched off in each row (rows beyond ``len(indices)`` are left as they are).
    """

    def __init__(self, layer: nn.Module, reshape_transform: Reshape, indices: Sequence[int] | torch.Tensor) -> None:
        super().__init__()
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module; got {describe(layer)}")
        self.layer = layer
        self.reshape_transform = check_callable(reshape_transform, "reshape_transform")
        self.indices = indices

    def forward(self, x: Any) -> torch.Tensor:
        return self.ablate(self.layer(x))

    def ablate(self, output: torch.Tensor) -> torch.Tensor:
        """``output`` (a new tensor) with channel ``indices[i]`` of row ``i`` switched off."""
        if not isinstance(output, torch.Tensor) or output.ndim < 2:
            raise TypeError(f"AblationLayer needs a (N, C, ...) tensor output from its layer; got {describe(output)}")
        indices = torch.as_tensor(self.indices, dtype=torch.long, device=output.device)
        rows = torch.arange(min(len(indices), output.shape[0]), device=output.device)
        low = output.min()
        value = torch.zeros_like(low) if low == 0 else low - ABLATION_OFFSET
        result = output.clone()
        if self.reshape_transform is None:
            result[rows, indices[: len(rows)]] = value
        else:
            result[rows, ..., indices[: len(rows)]] = value
        return result


class AblationCAM(PerturbationCAM):
    """Ablation-CAM with the channels of all target layers switched off together — Desai & Ramaswamy 2020,
    "Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free Localization",
    https://openaccess.thecvf.com/content_WACV_2020/papers/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.pdf

    Gradient-free. With ``y`` the target score and ``y_c`` the score when channel ``c`` is switched off in
    *every* target layer at once (see :class:`AblationLayer`):

    ``w_c = (y - y_c) / |y|``,  ``map_l = ReLU(Σ_c w_c A^l_c)`` for each target layer ``l``,

    and the layers' maps are combined as by every method (mean of the min-max scaled maps). The target layers
    must have the same number of channels (the reference asked for the same output shape). With one layer
    this is :class:`pytorch_grad_cam.AblationCAM` (with the reference's ablation value). The reference divides
    by ``y``, which turns the weights around for a negative score; ``|y|`` gives the same numbers for a
    positive one.

    Every batch of ablated copies runs through the whole model; the weights are computed once per call and
    serve every layer.

    Args:
        model: the network to explain.
        target_layers: the layers ablated together.
        reshape_transform: see :class:`BaseCAM`; with one, the layers' raw outputs are taken as transformer
            tokens ``(N, tokens, C)``.
        batch_size: ablated channels per forward pass (also settable as ``cam.batch_size``).
        progress: show a tqdm progress bar over the batches.
        **kwargs: passed to :class:`BaseCAM`.
    """

    default_batch_size = 32

    #: The joint weights computed for the first target layer (every layer shares them).
    joint_weights: torch.Tensor | None = None

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        if layer.index > 0 and self.joint_weights is not None:
            return self.joint_weights  # the ablations of the first layer's turn serve every layer
        input_tensor, targets = layer.input_tensor, layer.targets
        raw = self.activations_and_grads.raw_activations
        channels = common_channel_count(raw, self.reshape_transform is not None)
        device = layer.activations.device
        original = target_scores(targets, self.outputs).to(device)
        ablated = torch.empty(input_tensor.shape[0], channels, device=device)
        batches = input_tensor.shape[0] * -(-channels // self.batch_size)
        with torch.no_grad(), progress_bar(batches, self.progress, "AblationCAM (multilayer)") as bar:
            for image, target in enumerate(targets):
                for start in range(0, channels, self.batch_size):
                    chosen = torch.arange(start, min(start + self.batch_size, channels))
                    copies = input_tensor[image : image + 1].repeat(len(chosen), *([1] * (input_tensor.ndim - 1)))
                    with ExitStack() as stack:
                        for target_layer in self.target_layers:
                            ablation = AblationLayer(target_layer, self.reshape_transform, chosen)
                            stack.enter_context(replaced_output(target_layer, ablation.ablate))
                        outputs = self.model(copies)
                    ablated[image, chosen] = row_scores(target, outputs, len(chosen), check=False).to(device)
                    bar.update()
        check_finite_scores(ablated, targets)
        self.joint_weights = (original[:, None] - ablated) / original[:, None].abs()
        return self.joint_weights


def common_channel_count(layer_outputs: Sequence[Any], channels_last: bool) -> int:
    """The number of channels the target layers' outputs share (axis 1, or the last axis with
    ``channels_last``).

    Raises:
        TypeError: when a layer output is not a tensor.
        ValueError: when the counts differ.
    """
    for index, output in enumerate(layer_outputs):
        if not isinstance(output, torch.Tensor) or output.ndim < 2:
            raise TypeError(
                f"the multilayer AblationCAM needs target_layers[{index}] to output a (N, C, ...) tensor; got "
                f"{describe(output)}"
            )
    counts = [output.shape[-1 if channels_last else 1] for output in layer_outputs]
    if len(set(counts)) != 1:
        raise ValueError(
            "the multilayer AblationCAM switches off channel c in every target layer together, so the target "
            f"layers must have the same number of channels; got {counts}. Use pytorch_grad_cam.AblationCAM to "
            "ablate each layer on its own"
        )
    return counts[0]
