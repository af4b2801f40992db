"""Ablation layers: the outputs of a target layer with one channel switched off per batch row (AblationCAM)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core.checks import as_tensor
from pytorch_grad_cam.utils.svd_on_activations import project_on_first_component

#: Offset below the minimum used to switch off a channel of a layer whose outputs can be negative.
ABLATION_OFFSET = 1e7


class AblationLayer(nn.Module):
    """Switches off one channel per batch row of a layer output: ``(N, C, *spatial)`` by default, or any layout
    with the channels on :attr:`channel_axis` (``-1`` for channels-last maps ``(N, h, w, C)`` and transformer
    tokens ``(N, tokens, C)``). :class:`~pytorch_grad_cam.AblationCAM` sets the axis from the layer's layout (the
    axis its ``reshape_transform`` turns into channels), so one ablation layer serves every layout.

    Row ``i`` of the batch prepared by :meth:`set_next_batch` gets channel ``indices[i]`` set to 0 when the
    layer's minimum is 0 (ReLU outputs, as in the paper), otherwise to ``min - 1e7`` so that the channel sits
    far below every other value. The reference lowered that value further for every row of a batch (its
    minimum was taken after the previous rows were ablated), which made results depend on ``batch_size``;
    here every row gets the same value.
    """

    indices: torch.Tensor
    activations: Any
    #: The axis of the layer output holding the channels (1: ``(N, C, *spatial)``; -1: channels last, tokens).
    channel_axis: int = 1
    #: The value of an ablated channel for the batch prepared by :meth:`set_next_batch`.
    _value: torch.Tensor | None = None

    # ------------------------------------------------------------------------------ channel selection
    def objectiveness_mask_from_svd(self, activations: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
        """Boolean map of the positions where ``|first principal component|``, min-max scaled, exceeds
        ``threshold`` (an EigenCAM-style "objectness" mask of one image's ``(C, *spatial)`` activations)."""
        activations = as_tensor(activations, "activations").float()
        projection = project_on_first_component(activations[None])[0].abs()
        projection = projection - projection.min()
        return projection / projection.max() > threshold

    def activations_to_be_ablated(
        self, activations: torch.Tensor, ratio_channels_to_ablate: float = 1.0
    ) -> torch.Tensor:
        """The channels of one image's ``(C, *spatial)`` activations worth ablating (also kept in ``indices``).

        With ``ratio_channels_to_ablate == 1`` every channel. Otherwise each channel is scored by the share of
        its (min-max scaled, absolute) mass inside :meth:`objectiveness_mask_from_svd`, and the
        ``int(C * ratio)`` highest- and lowest-scoring channels are kept, each channel once, in increasing
        order (the reference could list a channel twice for ratios above 0.5).
        """
        activations = as_tensor(activations, "activations")
        channels = activations.shape[0]
        if ratio_channels_to_ablate >= 1.0:
            self.indices = torch.arange(channels, device=activations.device)
            return self.indices
        mask = self.objectiveness_mask_from_svd(activations)
        flat = activations.float().abs().reshape(channels, -1)
        flat = flat - flat.min(dim=1, keepdim=True).values
        flat = flat / flat.max(dim=1, keepdim=True).values
        scores = torch.nan_to_num((flat * mask.reshape(1, -1)).sum(dim=1) / flat.sum(dim=1), nan=0.0)
        count = int(channels * ratio_channels_to_ablate)
        order = torch.argsort(scores)
        self.indices = torch.unique(torch.cat([order[channels - count :], order[:count]]))
        return self.indices

    # --------------------------------------------------------------------------------- the ablation
    def set_next_batch(self, input_batch_index: int, activations: Any, num_channels_to_ablate: int) -> None:
        """Prepare ``num_channels_to_ablate`` copies of image ``input_batch_index`` of the layer output."""
        row = activations[input_batch_index : input_batch_index + 1]
        self.activations = row.repeat(num_channels_to_ablate, *([1] * (row.ndim - 1)))
        self._value = self._ablation_value_of(row)

    @staticmethod
    def _ablation_value_of(activations: torch.Tensor) -> torch.Tensor:
        """:meth:`ablation_value` as a 0-d tensor of the activations' dtype on their device (no wait for the device).
        Subtracting in that dtype rounds once, as casting the Python float does, so the value written is the same;
        float64 is avoided because MPS has none."""
        low = activations.min()
        return torch.where(low == 0, torch.zeros_like(low), low - ABLATION_OFFSET)

    @staticmethod
    def ablation_value(activations: torch.Tensor) -> float:
        """0 for a layer whose minimum is 0, else ``min - 1e7`` (in double precision, on the host)."""
        low = float(activations.min())
        return 0.0 if low == 0 else low - ABLATION_OFFSET

    def forward(self, x: Any = None) -> Any:
        """The prepared batch with channel ``indices[i]`` (on :attr:`channel_axis`) of row ``i`` ablated (``x`` is
        not read)."""
        output = self.activations
        axis = self.channel_axis % output.ndim
        if axis == 0:
            raise ValueError("AblationLayer.channel_axis cannot be the batch axis 0")
        rows = torch.arange(output.shape[0], device=output.device)
        channels = self.indices[: output.shape[0]].to(output.device)
        value = self._value
        if value is None or value.device != output.device:  # activations set directly, not by set_next_batch
            value = self._ablation_value_of(output)
        output[(rows,) + (slice(None),) * (axis - 1) + (channels,)] = value.to(output.dtype)
        self._value = None
        return output


class AblationLayerVit(AblationLayer):
    """:class:`AblationLayer` for transformer tokens ``(N, tokens, C)`` (and channels-last maps): the channels
    are on the last axis."""

    channel_axis = -1


class AblationLayerFasterRCNN(AblationLayer):
    """:class:`AblationLayer` for a feature-pyramid backbone returning an ordered dict of ``(N, C_k, h_k, w_k)``
    levels: the channels are numbered level after level (in the dict's order, as the
    ``fasterrcnn_reshape_transform`` concatenates them), and an ablated channel is set to -1000."""

    #: Value of an ablated channel, as in the reference.
    ablated_value: float = -1000.0

    def set_next_batch(self, input_batch_index: int, activations: Any, num_channels_to_ablate: int) -> None:
        if not isinstance(activations, Mapping):
            raise TypeError(
                f"AblationLayerFasterRCNN needs the layer output to be a dict of feature maps; got "
                f"{type(activations).__name__}"
            )
        self.activations = OrderedDict(
            (key, value[input_batch_index : input_batch_index + 1].repeat(num_channels_to_ablate, 1, 1, 1))
            for key, value in activations.items()
        )

    def forward(self, x: Any = None) -> Any:
        result = self.activations
        levels = list(result.values())
        count = levels[0].shape[0]
        ends = torch.tensor([level.shape[1] for level in levels]).cumsum(0).tolist()
        for row, channel in enumerate(self.indices[:count].tolist()):
            level = next(i for i, end in enumerate(ends) if channel < end)
            start = ends[level - 1] if level else 0
            levels[level][row, channel - start] = self.ablated_value
        return result
