"""Ablation-CAM."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from pytorch_grad_cam.ablation_layer import AblationLayer
from pytorch_grad_cam.core import LayerRecord, Target
from pytorch_grad_cam.core.checks import check_choice, check_real
from pytorch_grad_cam.core.layers import channel_axis_of
from pytorch_grad_cam.core.outputs import check_finite_scores, map_tensors, row_scores, target_scores
from pytorch_grad_cam.core.perturbation import ActivationShapeError, PerturbationCAM, check_same_layout, progress_bar
from pytorch_grad_cam.core.recording import replaced_output
from pytorch_grad_cam.core.types import Layers, Reshape
from pytorch_grad_cam.utils.layer_split import ChannelShortcut, LayerSplit, split_at

Strategy = Literal["auto", "fast", "full"]
_STRATEGIES: tuple[Strategy, ...] = ("auto", "fast", "full")


class AblationCAM(PerturbationCAM):
    """Ablation-CAM — Desai & Ramaswamy 2020, "Ablation-CAM: Visual Explanations for Deep Convolutional
    Network via Gradient-free Localization", WACV 2020,
    https://openaccess.thecvf.com/content_WACV_2020/papers/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.pdf

    Gradient-free. ``y`` is the target score and ``y_c`` the score with channel ``A_c`` of the target layer
    switched off (see :class:`AblationLayer`):  ``w_c = (y - y_c) / |y|``;  ``map = ReLU(Σ_c w_c A_c)``.
    The reference divides by ``y``, which turns every weight around when the score is negative; dividing by
    ``|y|`` keeps "the score drops without this channel" positive (identical numbers for positive scores).

    Speed: one forward pass of the model, plus what follows the target layer once per ablated channel. By default
    (``strategy="auto"``) the model is cut at the target layer with ``torch.fx`` (traced once per model and layer,
    and reused by later calls and other CAM objects); each batch of ablated layer outputs runs through what
    follows the layer only, fed with the layer output recorded in the forward pass (and the model input). Only
    when that part also reads other values of the network before the layer (a skip connection over it) does the
    network up to the layer run once more, for the whole batch. On every call the cut model must first give the
    model's own score for the first image from its recorded layer output (no extra forward pass); when the model
    cannot be cut, or that check fails, every batch runs through the whole model (the layer's output replaced by
    a forward hook), as the reference does.

    When what follows the layer starts with operations that act on each channel alone (``avgpool``, ``relu``,
    ``flatten``), those run once instead of on every copy, and ``nn.Linear`` modules after them are applied to the
    ablated channel's entries alone (``y_c = y + W[:, c] (q_c - p_c)``, see :meth:`LayerSplit.channel_shortcut`):
    for ``layer4`` of a ResNet no copy of the layer output is built at all and a call costs about one forward pass.
    The shortcut's scores are checked on every call against real copies of the first image for two channels.

    Args:
        model: the network to explain.
        target_layers: the layers whose channels are ablated (``None``: chosen at the first call, see
            :class:`BaseCAM`).
        reshape_transform: see :class:`BaseCAM`; the ablation itself works on the raw layer output.
        ablation_layer: how a channel is switched off: :class:`AblationLayer` (the default) or
            :class:`AblationLayerVit` switch off one channel of the layer output, on the axis that holds the
            channels — found from the layout (1 for ``(N, C, h, w)`` maps; the last axis for channels-last maps
            and tokens, whose ``reshape_transform``, automatic or given, moves it first);
            :class:`AblationLayerFasterRCNN` for feature pyramids.
        batch_size: ablated channels per forward pass (also settable as ``cam.batch_size``).
        ratio_channels_to_ablate: share of the channels ablated, in (0, 1]; the others get weight 0.
        strategy: ``"auto"``, ``"fast"`` (the cut model only; an error when it cannot be used) or ``"full"``
            (the whole model for every batch).
        progress: show a tqdm progress bar over the batches.
        **kwargs: passed to :class:`BaseCAM`.

    After a call, ``fast_path_used[i]`` tells whether ``target_layers[i]`` went through the cut model, and
    ``shortcut_used[i]`` whether it took the shortcut.
    """

    default_batch_size = 32

    def __init__(
        self,
        model: nn.Module,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        ablation_layer: AblationLayer | None = None,
        batch_size: int = 32,
        ratio_channels_to_ablate: float = 1.0,
        *,
        strategy: Strategy = "auto",
        progress: bool = True,
        **kwargs: Any,
    ) -> None:
        ratio = check_real(ratio_channels_to_ablate, "ratio_channels_to_ablate", 0.0, 1.0, low_open=True)
        self.strategy: Strategy = check_choice(strategy, "strategy", _STRATEGIES)
        ablation_layer = AblationLayer() if ablation_layer is None else ablation_layer
        if not (callable(ablation_layer) and hasattr(ablation_layer, "set_next_batch")):
            raise TypeError(
                "ablation_layer must be an AblationLayer (or AblationLayerVit / AblationLayerFasterRCNN); got "
                f"{type(ablation_layer).__name__}"
            )
        super().__init__(model, target_layers, reshape_transform, batch_size=batch_size, progress=progress, **kwargs)
        self.ablation_layer = ablation_layer
        self.ratio_channels_to_ablate = ratio
        self.fast_path_used: list[bool] = []
        self.shortcut_used: list[bool] = []

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        input_tensor, targets, activations = layer.input_tensor, layer.targets, layer.activations
        raw, target_layer = layer.raw_activations, layer.layer
        if layer.index == 0:
            self.fast_path_used, self.shortcut_used = [], []
        layer_name = f"target_layers[{layer.index}]"
        images, channels = activations.shape[:2]
        self._follow_layout(raw, channels)
        original = target_scores(targets, self.outputs).to(activations.device)
        ablated_scores = original[:, None].repeat(1, channels)

        with torch.no_grad():  # not inference mode: a model may cache tensors for later calls (YOLO's anchors)
            split, carried = self._cut_model(target_layer, input_tensor, raw, targets[0], original[0], layer_name)
            picks = [
                torch.as_tensor(
                    self.ablation_layer.activations_to_be_ablated(activations[i], self.ratio_channels_to_ablate)
                ).long()
                for i in range(images)
            ]
            shortcut = self._shortcut(split, carried, raw, targets[0], picks[0])
            batches = sum(-(-len(pick) // self.batch_size) for pick in picks)
            with progress_bar(batches, self.progress, "AblationCAM") as bar:
                for image in range(images):
                    rows = LayerSplit.image_rows(carried, image, images)
                    for start in range(0, len(picks[image]), self.batch_size):
                        chosen = picks[image][start : start + self.batch_size]
                        if shortcut is not None:
                            outputs = shortcut.outputs(image, chosen.to(activations.device))
                        elif split is not None:
                            outputs = split.tail(self._ablated_batch(raw, image, chosen), rows, len(chosen))
                        else:
                            one_image = input_tensor[image : image + 1]
                            batch = self._ablated_batch(raw, image, chosen)
                            outputs = self._full_run(one_image, batch, len(chosen), target_layer, layer_name)
                        scores = row_scores(targets[image], outputs, len(chosen), check=False)
                        ablated_scores[image, chosen.to(ablated_scores.device)] = scores.to(ablated_scores.device)
                        bar.update()
        check_finite_scores(ablated_scores, targets)
        self.fast_path_used.append(split is not None)
        self.shortcut_used.append(shortcut is not None)
        original = original[:, None].clone()
        return (original - ablated_scores.clone()) / original.abs()

    def _follow_layout(self, raw: Any, channels: int) -> None:
        """Point the ablation layer at the axis of the raw layer output that holds the channels: 1 for
        ``(B, C, h, w)`` maps, the last axis for channels-last maps and tokens (the axis the reshape transform,
        automatic or given, turns into channels). An ablation layer with its own ``forward`` is left alone."""
        layer = self.ablation_layer
        if not isinstance(layer, AblationLayer) or type(layer).forward is not AblationLayer.forward:
            return
        axis = channel_axis_of(self.reshape_transform, raw, channels)
        if axis is not None:
            layer.channel_axis = axis
        elif isinstance(raw, torch.Tensor) and raw.shape[layer.channel_axis % raw.ndim] != channels:
            raise ValueError(
                f"AblationCAM cannot tell which axis of the target layer's output {tuple(raw.shape)} holds the "
                f"{channels} channels of its reshaped activations; set ablation_layer.channel_axis"
            )

    def _ablated_batch(self, raw: Any, image: int, chosen: torch.Tensor) -> Any:
        """Copies of image ``image``'s layer output, row ``i`` with channel ``chosen[i]`` switched off."""
        self.ablation_layer.set_next_batch(image, raw, len(chosen))
        self.ablation_layer.indices = chosen
        return self.ablation_layer(None)

    # ------------------------------------------------------------------------------ the two paths
    def _cut_model(
        self, layer: nn.Module, inputs: torch.Tensor, raw: Any, target: Target, score: torch.Tensor, layer_name: str
    ) -> tuple[LayerSplit | None, list[Any]]:
        """The model cut at ``layer`` (traced once per model and layer, see :func:`split_at`) and the values its
        tail needs, once it has reproduced the model's own score for the first image; ``(None, [])`` for the full
        re-run. A cut model traced by an earlier call that no longer agrees (modules swapped since) is traced again.
        """
        if self.strategy == "full":
            return None, []
        reason = ""
        for retrace in (False, True):
            try:
                split, reused = split_at(self.model, layer, retrace=retrace)
            except ValueError as error:
                reason = str(error)
                break
            carried = split.carried(inputs, raw)
            if split.needs_head:
                check_same_layout(raw, carried[split.cut_index], layer_name)
            if self._reproduces(split, carried, len(inputs), raw, target, score):
                return split, carried
            reason = "the cut model does not give the model's own score for the first image"
            if not reused:
                break
        if self.strategy == "fast":
            raise ValueError(f"strategy='fast' cannot cut the model at the target layer: {reason}")
        return None, []

    def _shortcut(
        self, split: LayerSplit | None, carried: list[Any], raw: Any, target: Target, picks: torch.Tensor
    ) -> ChannelShortcut | None:
        """The cut model's :meth:`~LayerSplit.channel_shortcut` for the layer output ``raw``, used when the ablation
        layer is the default one on axis 1 and its scores for the first two channels of the first image equal those
        of the tail run on real ablated copies; ``None`` otherwise (the copies run through the tail)."""
        layer = self.ablation_layer
        default = all(
            getattr(type(layer), name) is getattr(AblationLayer, name)
            for name in ("forward", "set_next_batch", "_ablation_value_of")
        )
        if split is None or not default or not isinstance(raw, torch.Tensor) or layer.channel_axis % raw.ndim != 1:
            return None
        values = torch.cat([AblationLayer._ablation_value_of(raw[i : i + 1]).reshape(1) for i in range(len(raw))])
        try:
            shortcut = split.channel_shortcut(raw, values)
            if shortcut is None:
                return None
            chosen = picks[:2]
            rows = LayerSplit.image_rows(carried, 0, len(raw))
            real = row_scores(target, split.tail(self._ablated_batch(raw, 0, chosen), rows, len(chosen)), len(chosen))
            quick = row_scores(target, shortcut.outputs(0, chosen.to(raw.device)), len(chosen))
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            if isinstance(error, ActivationShapeError):
                raise
            return None
        scale = max(1.0, float(real.abs().max()))
        return shortcut if torch.allclose(quick, real, rtol=1e-4, atol=1e-4 * scale) else None

    @staticmethod
    def _reproduces(
        split: LayerSplit, carried: list[Any], images: int, raw: Any, target: Target, score: torch.Tensor
    ) -> bool:
        """Whether the cut model, given two copies of the first image's own layer output (a batch shaped as the
        ablated ones, the carried values expanded as for them), gives the model's score ``score`` in both rows:
        checked on every call without running the model again."""
        count = 2
        own = map_tensors(raw, lambda tensor: tensor[:1].expand(count, *tensor.shape[1:]).clone())
        rows = LayerSplit.image_rows(carried, 0, images)
        try:
            got = row_scores(target, split.tail(own, rows, count), count)
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            if isinstance(error, ActivationShapeError):
                raise
            return False
        scale = max(1.0, float(score.abs()))
        return torch.allclose(got, score.expand(count), rtol=1e-4, atol=1e-4 * scale)

    def _full_run(self, image: torch.Tensor, ablated: Any, count: int, layer: nn.Module, layer_name: str) -> Any:
        """The whole model on ``count`` copies of ``image``, with ``layer``'s output replaced by ``ablated``."""

        def replace(output: Any) -> Any:
            check_same_layout(output, ablated, layer_name)
            return ablated

        with replaced_output(layer, replace):
            return self.model(image.repeat(count, *([1] * (image.ndim - 1))))
