"""BaseCAM: the core of every layer-based CAM method.

One call, ``cam(input_tensor, targets=None, aug_smooth=False, eigen_smooth=False)``:

1. the input and targets are checked before any work (:class:`~pytorch_grad_cam.core.protocol.CAMMethod`);
2. one forward pass records what the method's :class:`~pytorch_grad_cam.core.needs.Needs` ask for
   (:mod:`pytorch_grad_cam.core.recording`, hooks removed in ``finally``);
3. ``targets=None`` → one :class:`ClassifierOutputTarget` on the top class of each image; each target
   receives its own image's output;
4. when the method needs gradients: the sum of the target scores, one ``torch.autograd.grad``;
5. per layer: ``w = channel_weights(layer)`` and ``map = ReLU(Σ_c w_c A_c)`` (or the method's own
   ``layer_map``), in float32 on the model's device;
6. the layers' maps are combined by :attr:`BaseCAM.layer_combiner` (the reference's mean of min-max scaled,
   resized maps by default) into a ``(B, *input spatial)`` map in [0, 1].

Without ``target_layers`` the first call chooses the layer (and, without ``reshape_transform``, the reshape of its
output) from one probe forward pass on its input (:mod:`pytorch_grad_cam.core.layers`); ``cam.target_layers``
holds it from then on and ``repr(cam)`` names it.

A method class declares :attr:`BaseCAM.needs` and implements :meth:`BaseCAM.channel_weights` (its ``w_c``) or
:meth:`BaseCAM.layer_map` (an element-wise map), each given the layer's :class:`LayerRecord`; nothing else.

Methods written for grad-cam 1.x override the reference hooks ``get_cam_weights`` / ``get_cam_image``
instead: they receive numpy arrays and may return numpy, as the reference does, unless they set
``torch_native = True`` (then float32 tensors on the model's device).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import nn

from pytorch_grad_cam.core.checks import (
    check_bool,
    check_callable,
    check_model,
    check_target_layers,
    require_finite,
    unless_on_device,
)
from pytorch_grad_cam.core.combine import LayerCombiner, mean_of_scaled
from pytorch_grad_cam.core.layers import (
    LayerChoice,
    TokenGridReshape,
    check_channels_first,
    choose_target_layer,
    is_channels_last,
)
from pytorch_grad_cam.core.model import model_device
from pytorch_grad_cam.core.needs import GRADIENTS, Needs
from pytorch_grad_cam.core.outputs import (
    UnavailableTarget,
    default_targets,
    detached,
    lone_target_rows,
    target_scores,
    tensors_in,
)
from pytorch_grad_cam.core.projection import (
    DEFAULT_ORIENTATION,
    Orientation,
    check_orientation,
    project_on_first_component,
)
from pytorch_grad_cam.core.protocol import CAMMethod
from pytorch_grad_cam.core.recording import (
    ActivationsAndGradients,
    LayerRecord,
    layer_name,
    twice_differentiable_attention,
)
from pytorch_grad_cam.core.scaling import scale_cam_tensor
from pytorch_grad_cam.core.targets import Target
from pytorch_grad_cam.core.types import Layers, Reshape, Targets


def _non_finite_output() -> ValueError:
    return ValueError("the model output contains NaN or inf values; no CAM can be computed from it")


class BaseCAM(CAMMethod):
    """Base class of every layer-based CAM method: recording, targets, backward, per-layer maps, combining
    and smoothing.

    Args:
        model: the network to explain; its ``training`` flags are set to eval during a call and restored.
        target_layers: list of modules whose outputs are explained (their maps are combined); ``None`` (the
            default) chooses one at the first call from a probe forward pass on its input: the last feature map
            of a CNN, the norm before the last attention of a vision transformer, the last stage of a Swin /
            ConvNeXt (see :mod:`pytorch_grad_cam.core.layers`); ``cam.target_layers`` holds it afterwards.
        reshape_transform: callable applied to each layer's output and gradient to give ``(B, C, h, w)``
            (or ``(B, C, d, h, w)``) maps, e.g. for vision transformers. With ``target_layers=None`` and no
            reshape, the reshape is chosen with the layer: none for ``(B, C, h, w)`` maps, a permute for
            channels-last ``(B, h, w, C)`` maps, the patch grid of the input for tokens ``(B, N, C)``.
        compute_input_gradient: also record the gradient of the input (reference argument).
        uses_gradients: whether the method needs the layer gradients; ``None`` takes the class's
            :attr:`needs` (reference argument).
        tta_transforms: the ttach transforms of ``aug_smooth`` (default: horizontal flip × multiply by
            0.9, 1, 1.1).
        detach: ``False`` keeps activations, gradients and the result differentiable; ``None`` (default)
            detaches unless the method needs second-order gradients.
        device: optional device string (``"cpu"``, ``"cuda:1"``, ``"mps"``, ``"hpu"``); when given, the model
            is moved there. By default the model's own device is used.
        use_cuda: deprecated (grad-cam < 1.4); ``True`` moves the model to CUDA when available.
        layer_combiner: how the layers' maps are combined (default: the class's :attr:`layer_combiner`).
        orientation: how the arbitrary sign of a principal component is chosen, for ``eigen_smooth`` and the
            EigenCAM family (:func:`~pytorch_grad_cam.core.projection.orient`): ``"norm"`` (the default, the
            class's :attr:`default_orientation`) makes the projection correlate positively with the per-position
            norm of what is decomposed; ``"energy"`` with its channel sum (for ``eigen_smooth``: with the method's
            own map); ``"lobe"`` makes the
            larger-magnitude lobe positive; ``"raw"`` keeps the SVD's sign, as the reference release.
    """

    #: What the method needs from the forward and backward pass.
    needs: Needs = GRADIENTS
    #: How the maps of several target layers are combined (see :mod:`pytorch_grad_cam.core.combine`).
    layer_combiner: LayerCombiner = staticmethod(mean_of_scaled)
    #: Whether ``get_cam_weights`` / ``get_cam_image`` take and return tensors; ``False`` (the default for
    #: subclasses outside this package, as grad-cam 1.x wrote them) passes numpy arrays.
    torch_native: ClassVar[bool] = True
    #: Whether the method can run without target layers (FullGrad uses every bias layer instead).
    layers_optional: ClassVar[bool] = False
    #: ``orientation`` when it is not given.
    default_orientation: ClassVar[Orientation] = DEFAULT_ORIENTATION

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "torch_native" not in cls.__dict__:
            cls.torch_native = cls.__module__.split(".")[0] == "pytorch_grad_cam"
        declared = cls.__dict__.get("uses_gradients")
        if isinstance(declared, bool):  # a 1.x-style class flag: fold it into the needs
            cls.needs = cls.needs.with_(layer_gradients=declared)
            delattr(cls, "uses_gradients")

    def __init__(
        self,
        model: nn.Module,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        compute_input_gradient: bool = False,
        uses_gradients: bool | None = None,
        tta_transforms: Any = None,
        detach: bool | None = None,
        *,
        device: str | torch.device | None = None,
        use_cuda: bool = False,
        layer_combiner: LayerCombiner | None = None,
        orientation: Orientation | None = None,
    ) -> None:
        self.model = check_model(model)
        #: How the sign of a principal component is chosen (``eigen_smooth``, the EigenCAM family).
        self.orientation: Orientation = check_orientation(
            self.default_orientation if orientation is None else orientation
        )
        #: Whether the target layer is chosen automatically (``target_layers=None``); :attr:`auto_choice` holds the
        #: choice after the first call.
        self.auto_layers = target_layers is None and not self.layers_optional
        self.auto_choice: LayerChoice | None = None
        given = [] if target_layers is None else target_layers
        self.target_layers = check_target_layers(given, model, allow_empty=self.layers_optional or self.auto_layers)
        self.reshape_transform = check_callable(reshape_transform, "reshape_transform")
        needs = type(self).needs
        if check_bool(compute_input_gradient, "compute_input_gradient"):
            needs = needs.with_(input_gradient=True)
        if uses_gradients is not None:
            needs = needs.with_(layer_gradients=check_bool(uses_gradients, "uses_gradients"))
        if detach is None:
            detach = not needs.second_order
        elif check_bool(detach, "detach") and needs.second_order:
            raise ValueError(
                f"{type(self).__name__} needs detach=False: it differentiates the gradients again; got detach=True"
            )
        self.needs = needs
        self.detach = detach
        self.tta_transforms = tta_transforms
        if layer_combiner is not None:
            self.layer_combiner = check_callable(layer_combiner, "layer_combiner", allow_none=False)
        if use_cuda:
            warnings.warn(
                "use_cuda is deprecated: the device is taken from the model; move it with model.to('cuda')",
                DeprecationWarning,
                stacklevel=2,
            )
            if device is None and torch.cuda.is_available():
                device = "cuda"
        if device is not None:
            model.to(torch.device(device))
        self.device = model_device(model)
        self._outputs: Any = None
        self.activations_and_grads = self._recorder()

    def _recorder(self) -> ActivationsAndGradients:
        return ActivationsAndGradients(
            self.model,
            self.target_layers,
            self.reshape_transform,
            self.detach,
            attention=self.needs.attention_maps,
            input_gradient=self.needs.input_gradient,
            graph_from_layers=True,  # the recorder keeps the whole graph when more than the layers is differentiated
        )

    # -------------------------------------------------------------------------------- reference flags
    @property
    def uses_gradients(self) -> bool:
        """Whether the method needs the layer gradients (reference attribute)."""
        return self.needs.layer_gradients

    @uses_gradients.setter
    def uses_gradients(self, value: bool) -> None:
        self.needs = self.needs.with_(layer_gradients=check_bool(value, "uses_gradients"))

    @property
    def compute_input_gradient(self) -> bool:
        """Whether the input gradient is recorded (reference attribute)."""
        return self.needs.input_gradient

    # ------------------------------------------------------------------------- what methods override
    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        """Per-channel weights ``(B, C)`` of one layer: the idea of a method whose map is ``Σ_c w_c A_c``."""
        raise NotImplementedError(f"{type(self).__name__} must implement channel_weights or layer_map")

    def layer_map(self, layer: LayerRecord, eigen_smooth: bool) -> torch.Tensor:
        """One layer's map ``(B, *spatial)`` before the ReLU: ``Σ_c w_c A_c`` with :meth:`channel_weights` (or
        the first principal component of ``w_c A_c`` with ``eigen_smooth``). Element-wise methods override it."""
        weights = self.channel_weights(layer)[(...,) + (None,) * len(layer.spatial_axes)]
        return self.reduce_channels(weights * layer.activations, eigen_smooth)

    def reduce_channels(self, weighted: torch.Tensor, eigen_smooth: bool) -> torch.Tensor:
        """``(B, C, *spatial)`` weighted activations to one map: the channel sum, or with ``eigen_smooth`` their
        projection on the first principal component, its sign chosen by :attr:`orientation`."""
        if eigen_smooth:
            return project_on_first_component(weighted, orientation=self.orientation)
        return weighted.sum(dim=1)

    # ------------------------------------------------------------------- the reference's method hooks
    def get_cam_weights(
        self, input_tensor: torch.Tensor, target_layer: nn.Module, targets: list[Target], activations: Any, grads: Any
    ) -> Any:
        """The reference's per-layer weights hook: :meth:`channel_weights` of the given arrays (and of what the
        last call recorded for ``target_layer`` besides them). A grad-cam 1.x subclass overrides it."""
        return self.channel_weights(self._given(input_tensor, target_layer, targets, activations, grads))

    def get_cam_image(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: Any,
        grads: Any,
        eigen_smooth: bool = False,
    ) -> Any:
        """The reference's per-layer map hook (before the ReLU). A grad-cam 1.x subclass overrides it or
        :meth:`get_cam_weights` and receives numpy arrays unless it sets :attr:`torch_native`."""
        if not self._overrides("get_cam_weights"):
            return self.layer_map(self._given(input_tensor, target_layer, targets, activations, grads), eigen_smooth)
        weights = self.get_cam_weights(input_tensor, target_layer, targets, activations, grads)
        values = torch.as_tensor(activations)
        weights = torch.as_tensor(weights, dtype=values.dtype, device=values.device)
        return self.reduce_channels(weights[(...,) + (None,) * (values.ndim - 2)] * values, eigen_smooth)

    def bias_layers(self) -> list[nn.Module]:
        """The layers whose output gradients are recorded when :attr:`needs` asks for bias gradients."""
        return []

    def combine_layers(self, maps: list[torch.Tensor], input_tensor: torch.Tensor, eigen_smooth: bool) -> torch.Tensor:
        """The final ``(B, *input spatial)`` map from the layers' maps: :attr:`layer_combiner` by default."""
        return self.layer_combiner(maps, tuple(input_tensor.shape[2:]))

    # ------------------------------------------------------------------------------ the protocol
    @property
    def outputs(self) -> Any:
        """The model output of the last call, detached."""
        return self._outputs

    @outputs.setter
    def outputs(self, value: Any) -> None:
        self._outputs = value

    @property
    def requires_autograd(self) -> bool:
        return self.needs.gradients

    def default_targets(self, outputs: Any, batch_size: int, **options: Any) -> list[Target]:
        try:
            return default_targets(outputs, batch_size)
        except ValueError as error:
            if self.needs.backward:
                raise
            # Gradient-free methods such as EigenCAM never look at the targets (the reference lets them run
            # on detector outputs with targets=None); a method that does gets the error.
            return [UnavailableTarget(str(error))] * batch_size

    def with_layer_combiner(self, combiner: LayerCombiner) -> BaseCAM:
        return self._copy(layer_combiner=check_callable(combiner, "combiner", allow_none=False))

    def release(self) -> None:
        self.activations_and_grads.release()

    def _call_state(self) -> object:
        return self.activations_and_grads  # shared with the copies with_layer_combiner makes

    def explain(
        self, input_tensor: torch.Tensor, targets: Targets, *, aug_smooth: bool, eigen_smooth: bool, **options: Any
    ) -> torch.Tensor:
        if options:
            raise TypeError(f"{type(self).__name__} got unexpected options: {', '.join(sorted(options))}")
        if self.auto_layers and self.auto_choice is None:
            self.choose_layers(input_tensor)
        if not aug_smooth:
            return self._one_pass(input_tensor, targets, eigen_smooth)
        cams = []
        for transform in self._tta_transforms():
            cam = self._one_pass(transform.augment_image(input_tensor), targets, eigen_smooth)
            cams.append(transform.deaugment_mask(cam[:, None])[:, 0])
        return torch.stack(cams).mean(dim=0)  # not re-scaled, as in the reference

    def choose_layers(self, input_tensor: torch.Tensor) -> LayerChoice:
        """Choose the target layer (and, unless one was given, the reshape) from one probe forward pass on
        ``input_tensor`` (the model in eval mode, the input on its device); done by the first call when the CAM
        was built without ``target_layers``."""
        choice = choose_target_layer(self.model, input_tensor, reshape_given=self.reshape_transform is not None)
        self.release()
        self.target_layers = [choice.layer]
        if self.reshape_transform is None:
            self.reshape_transform = choice.reshape
        self.activations_and_grads = self._recorder()
        self.auto_choice = choice
        return choice

    def __repr__(self) -> str:
        if self.auto_layers and self.auto_choice is None:
            layers = "<chosen at the first call>"
        else:
            layers = "[" + ", ".join(layer_name(self.model, layer) for layer in self.target_layers) + "]"
            if self.auto_layers:
                layers += " (auto)"
        reshape = self.reshape_transform
        shown = getattr(reshape, "__qualname__", None) or repr(reshape)
        return (
            f"{type(self).__name__}(model={type(self.model).__name__}, target_layers={layers}, "
            f"reshape_transform={shown})"
        )

    # --------------------------------------------------------------------------- reference helpers
    def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, ...]:
        """The spatial size of the input in reversed axis order: ``(W, H)`` or ``(W, H, D)`` (reference)."""
        return tuple(reversed(input_tensor.shape[2:]))

    def compute_cam_per_layer(
        self, input_tensor: torch.Tensor, targets: list[Target], eigen_smooth: bool = False
    ) -> list[torch.Tensor]:
        """The maps of the last call's target layers, each min-max scaled and resized to the input,
        ``(B, 1, *input spatial)`` in ``target_layers`` order (reference name; read from the last recording)."""
        size = tuple(input_tensor.shape[2:])
        maps = [self._layer_map(input_tensor, index, targets, eigen_smooth) for index in range(len(self.target_layers))]
        return [scale_cam_tensor(cam, size)[:, None] for cam in maps]

    def target_score(self, targets: Sequence[Target], outputs: Any) -> torch.Tensor:
        """Σ_i target_i(output of image i), summed to a scalar."""
        rows = lone_target_rows(targets, outputs)  # the usual lone ClassifierOutputTarget, in fewer operations
        return (target_scores(targets, outputs) if rows is None else rows).sum()

    def layer_index(self, target_layer: nn.Module) -> int:
        """The position of ``target_layer`` in :attr:`target_layers`."""
        return next(i for i, layer in enumerate(self.target_layers) if layer is target_layer)

    # ------------------------------------------------------------------------------------ the flow
    def _tta_transforms(self) -> Any:
        if self.tta_transforms is None:
            import ttach as tta

            self.tta_transforms = tta.Compose([tta.HorizontalFlip(), tta.Multiply(factors=[0.9, 1, 1.1])])
        return self.tta_transforms

    def _one_pass(self, input_tensor: torch.Tensor, targets: Targets, eigen_smooth: bool) -> torch.Tensor:
        targets = self._record(input_tensor, targets)
        maps = [self._layer_map(input_tensor, index, targets, eigen_smooth) for index in range(len(self.target_layers))]
        return self.combine_layers(maps, input_tensor, eigen_smooth)

    def _record(self, input_tensor: torch.Tensor, targets: Targets) -> list[Target]:
        """The forward pass (and backward, if needed) recording what :attr:`needs` asks for; the targets."""
        needs = self.needs
        record = self.activations_and_grads
        record.needs_gradients = needs.layer_gradients
        record.bias_layers = self.bias_layers() if needs.bias_gradients else []
        if isinstance(self.reshape_transform, TokenGridReshape):
            self.reshape_transform.input_size = tuple(input_tensor.shape[2:])
        kernel = twice_differentiable_attention() if needs.second_order else nullcontext()
        with kernel, torch.set_grad_enabled(needs.forward_records_graph(self.detach)):
            outputs = record(input_tensor)
        self.outputs = detached(outputs)
        for tensor in tensors_in(outputs):
            if tensor.is_floating_point():
                require_finite(tensor, _non_finite_output)
        targets = self.default_targets(outputs, input_tensor.shape[0]) if targets is None else list(targets)
        if needs.backward:
            with torch.enable_grad():
                record.compute_gradients(self.target_score(targets, outputs))
            if self.device.type == "hpu":
                import habana_frameworks.torch.core as htcore

                htcore.mark_step()
        return targets

    @classmethod
    def _overrides(cls, name: str) -> bool:
        """Whether a subclass (a grad-cam 1.x style method) overrides the reference hook ``name``."""
        return getattr(cls, name) is not getattr(BaseCAM, name)

    def _given(
        self, input_tensor: torch.Tensor, target_layer: nn.Module, targets: list[Target], activations: Any, grads: Any
    ) -> LayerRecord:
        """The last recording of ``target_layer`` with the arrays given to a reference hook (numpy → tensors)."""
        index = self.layer_index(target_layer)
        recorded = self.activations_and_grads.layer_record(index, input_tensor, targets)
        device = recorded.activations.device
        given = None if grads is None else torch.as_tensor(grads, device=device).float()
        return replace(recorded, activations=torch.as_tensor(activations, device=device).float(), grads=given)

    def _layer_map(
        self, input_tensor: torch.Tensor, index: int, targets: list[Target], eigen_smooth: bool
    ) -> torch.Tensor:
        """``ReLU(map)`` of target layer ``index``, float32 at the layer's resolution."""
        record = self.activations_and_grads.layer_record(index, input_tensor, targets)
        size = tuple(input_tensor.shape[2:])
        raw = record.raw_activations
        if self.reshape_transform is None and is_channels_last(raw, size, record.layer):  # named only to refuse it
            check_channels_first(
                raw, size, record.layer, f"target_layers[{index}] ({layer_name(self.model, record.layer)})"
            )
        if record.activations.ndim != input_tensor.ndim:
            axes = "H, W" if input_tensor.ndim == 4 else "D, H, W"
            raise ValueError(
                f"target_layers[{index}] gives activations of shape {tuple(record.activations.shape)}, but a "
                f"{input_tensor.ndim - 2}-D map (B, C, {axes}) is needed; pass a reshape_transform (e.g. for a "
                "vision transformer) or pick another layer"
            )
        if record.grads is not None:

            def blank() -> None:
                warnings.warn(
                    f"the gradients of the target score with respect to target_layers[{index}] "
                    f"({type(record.layer).__name__}) are all zero, so its map is blank. With a vision transformer "
                    "whose target layer is the last block, only the class token reaches the output: choose a "
                    "layer inside the last block, e.g. blocks[-1].norm1 (timm) or encoder.layers[-1].ln_1 "
                    "(torchvision)",
                    stacklevel=9,  # blank, unless_on_device, _layer_map, _one_pass, explain, compute, __call__
                )

            unless_on_device(record.grads.any(), blank)
        if not (self._overrides("get_cam_image") or self._overrides("get_cam_weights")):
            cam = self.layer_map(record, eigen_smooth)
        else:  # a grad-cam 1.x subclass: numpy in (unless torch_native), numpy or tensors out
            values: Any = record.activations
            grads: Any = record.grads
            if not self.torch_native:
                values = values.detach().cpu().numpy()
                grads = None if grads is None else grads.detach().cpu().numpy()
            cam = self.get_cam_image(input_tensor, record.layer, targets, values, grads, eigen_smooth)
        cam = torch.as_tensor(cam).to(record.activations.device).float()
        require_finite(
            cam,
            lambda: ValueError(
                f"{type(self).__name__} gave a non-finite map for target_layers[{index}] "
                f"({type(record.layer).__name__}) (NaN or inf in its weights or activations)"
            ),
        )
        return cam.clamp_min(0)
