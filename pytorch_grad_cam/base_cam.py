"""BaseCAM: the machinery every CAM method shares.

One call, ``cam(input_tensor, targets=None, aug_smooth=False, eigen_smooth=False)``:

1. validate the input and the targets (before any work);
2. forward through the model with hooks on ``target_layers`` (removed in ``finally``);
3. ``targets=None`` → one :class:`ClassifierOutputTarget` on the top class of each image; each target
   receives its own image's output;
4. the sum of the target scores, one ``torch.autograd.grad`` to the target layers (gradient methods only);
5. per layer: ``weights = get_cam_weights(...)`` and ``cam = ReLU(Σ_c w_c A_c)`` (or the method's own
   ``get_cam_image``), in float32 on the model's device;
6. per layer: per-image min-max scaling and resize to the input size; layers: ReLU, mean, scaling again;
7. a ``np.float32`` array ``(B, H, W)`` / ``(B, D, H, W)``; :meth:`BaseCAM.compute` returns the same as a
   tensor on the model's device.

Subclasses override :meth:`BaseCAM.get_cam_weights` (or :meth:`BaseCAM.get_cam_image`) and class flags.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import torch
import ttach as tta
from torch import nn

from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.utils.image import scale_cam_tensor
from pytorch_grad_cam.utils.svd_on_activations import project_on_first_component
from pytorch_grad_cam.utils.validation import check_input_tensor, check_targets, default_targets, describe, tensors_in

Target = Callable[[Any], torch.Tensor]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_input(input_tensor: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``input_tensor`` on the model's device and, when floating, in the model's floating dtype (half/bf16
    models take half/bf16 inputs); a new tensor whenever either changes, never the caller's modified."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if input_tensor.is_floating_point() and dtype is not None:
        return input_tensor.to(device=model_device(model), dtype=dtype)
    return input_tensor.to(model_device(model))


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode inside the ``with`` block and restore every module's ``training`` flag after."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def map_tensors(output: Any, function: Callable[[torch.Tensor], Any]) -> Any:
    """``output`` with ``function`` applied to every tensor inside it, keeping its structure.

    Mappings (dicts, Hugging Face ``ModelOutput``) are rebuilt as their own type when it takes keyword
    arguments (else as a dict), namedtuples as themselves, lists and tuples as their type.
    """
    if isinstance(output, torch.Tensor):
        return function(output)
    if isinstance(output, Mapping):
        items = {key: map_tensors(value, function) for key, value in output.items()}
        try:
            return type(output)(**items)
        except TypeError:
            return items
    if isinstance(output, (list, tuple)):
        items = [map_tensors(item, function) for item in output]
        return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)
    return output


def output_for_image(output: Any, index: int) -> Any:
    """The part of a batched model output that belongs to image ``index``.

    Tensors are indexed ``[index]``; mappings (dicts, Hugging Face ``ModelOutput``) and tuples keep their
    structure with every tensor indexed; a list or tuple of per-image mappings (torchvision detection
    models) gives its ``index``-th element.
    """
    if isinstance(output, (list, tuple)) and output and all(isinstance(item, Mapping) for item in output):
        return output[index]
    return map_tensors(output, lambda tensor: tensor[index])


def _detached(output: Any) -> Any:
    return map_tensors(output, torch.Tensor.detach)


def target_scores(targets: Sequence[Target], outputs: Any, first_index: int | None = 0) -> torch.Tensor:
    """``[targets[i](output of image i)]`` as a float32 ``(B,)`` tensor; a non-scalar score is summed.

    ``first_index`` is the batch position of ``targets[0]`` for error messages (``None``: the same target is
    applied to every row, e.g. to the perturbed copies of one image).
    """
    scores = []
    for index, target in enumerate(targets):
        score = target(output_for_image(outputs, index))
        if not isinstance(score, torch.Tensor):
            name = "a target" if first_index is None else f"targets[{first_index + index}]"
            raise TypeError(f"{name} must return a torch.Tensor; got {describe(score)}")
        scores.append(score.float().sum())
    return torch.stack(scores)


class _UnavailableTarget:
    """Stands in for the default targets of an output that has none; raises ``ValueError`` when used."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, model_output: Any) -> torch.Tensor:
        raise ValueError(self.message)


class BaseCAM:
    """Base class of every CAM method: hooks, targets, backward, per-layer maps, scaling and smoothing.

    Args:
        model: the network to explain; its ``training`` flags are set to eval during a call and restored.
        target_layers: list of modules whose outputs are explained (the maps of several layers are averaged).
        reshape_transform: callable applied to each layer's output and gradient to give ``(B, C, h, w)``
            (or ``(B, C, d, h, w)``) maps, e.g. for vision transformers.
        compute_input_gradient: make the input require grad (methods that need the input gradient).
        uses_gradients: whether the method needs gradients; ``None`` takes the class's default.
        tta_transforms: the ttach transforms of ``aug_smooth`` (default: horizontal flip × multiply by
            0.9, 1, 1.1).
        detach: ``False`` keeps activations, gradients and the result differentiable.
        device: optional device string (``"cpu"``, ``"cuda:1"``, ``"mps"``, ``"hpu"``); when given, the model
            is moved there. By default the model's own device is used.
        use_cuda: deprecated (grad-cam < 1.4); ``True`` moves the model to CUDA when available.
    """

    #: Whether the method needs the gradients of the target score with respect to the target layers.
    uses_gradients: bool = True

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        compute_input_gradient: bool = False,
        uses_gradients: bool | None = None,
        tta_transforms: tta.Compose | None = None,
        detach: bool = True,
        device: str | torch.device | None = None,
        use_cuda: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {describe(model)}")
        if isinstance(target_layers, nn.Module) and not isinstance(target_layers, nn.ModuleList):
            raise TypeError(
                "target_layers must be a list of modules, e.g. [model.layer4[-1]]; got a single "
                f"{type(target_layers).__name__}"
            )
        if not isinstance(target_layers, (list, tuple, nn.ModuleList)):
            raise TypeError(f"target_layers must be a list of modules; got {describe(target_layers)}")
        if len(target_layers) == 0:
            raise ValueError("target_layers must name at least one layer; got an empty list")
        submodules = {id(module) for module in model.modules()}
        for index, layer in enumerate(target_layers):
            if not isinstance(layer, nn.Module):
                raise TypeError(f"target_layers[{index}] must be a torch.nn.Module; got {describe(layer)}")
            if id(layer) not in submodules:
                raise ValueError(
                    f"target_layers[{index}] ({type(layer).__name__}) is not a submodule of the model; pick "
                    "a layer of this model, e.g. model.layer4[-1]"
                )
        if reshape_transform is not None and not callable(reshape_transform):
            raise TypeError(f"reshape_transform must be callable or None; got {describe(reshape_transform)}")
        self.model = model
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.compute_input_gradient = compute_input_gradient
        if uses_gradients is not None:
            self.uses_gradients = uses_gradients
        self.tta_transforms = tta_transforms if tta_transforms is not None else tta.Compose(
            [tta.HorizontalFlip(), tta.Multiply(factors=[0.9, 1, 1.1])]
        )
        self.detach = detach
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
        self.outputs: Any = None
        self.activations_and_grads = ActivationsAndGradients(model, self.target_layers, reshape_transform, detach)

    # ------------------------------------------------------------------------- what methods override
    def get_cam_weights(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor | None,
    ) -> torch.Tensor:
        """Per-channel weights ``(B, C)`` of one layer; the method's idea. Overridden by subclasses."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_cam_weights or get_cam_image")

    def get_cam_image(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        """One layer's map before the ReLU: ``Σ_c w_c A_c`` (or the first principal component of ``w_c A_c``
        with ``eigen_smooth``). Activations and gradients are float32 tensors ``(B, C, *spatial)``."""
        weights = torch.as_tensor(
            self.get_cam_weights(input_tensor, target_layer, targets, activations, grads),
            dtype=activations.dtype,
            device=activations.device,
        )
        weighted = weights[(...,) + (None,) * (activations.ndim - 2)] * activations
        if eigen_smooth:
            return project_on_first_component(weighted)
        return weighted.sum(dim=1)

    # ------------------------------------------------------------------------------ public entry points
    def __call__(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> np.ndarray:
        """The CAMs of a batch as ``np.float32`` ``(B, H, W)`` (or ``(B, D, H, W)``), each in [0, 1].

        Args:
            input_tensor: ``(B, C, H, W)`` or ``(B, C, D, H, W)`` tensor (moved to the model's device; never
                modified).
            targets: one callable per image mapping that image's model output to the score to explain;
                ``None`` explains the top-scoring class of each image.
            aug_smooth: average over test-time augmentations (flip × brightness), de-augmented.
            eigen_smooth: use the first principal component of the weighted activations.
        """
        cam = self.compute(input_tensor, targets, aug_smooth, eigen_smooth)
        return cam.detach().cpu().numpy()

    def compute(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        """Same as calling the object, but returns a float32 tensor on the model's device.

        With ``detach=False`` the result is differentiable (2-D maps), e.g. to use it in a loss.
        """
        if (self.uses_gradients or self.compute_input_gradient) and torch.is_inference_mode_enabled():
            raise RuntimeError(
                f"{type(self).__name__} needs gradients, which torch.inference_mode() forbids; call it outside "
                "inference_mode (inside torch.no_grad() is fine)"
            )
        input_tensor = self._prepare_input(input_tensor)
        checked_targets = self._check_targets(targets, input_tensor.shape[0])
        with self._eval_mode():
            if aug_smooth:
                return self._augmentation_smoothing(input_tensor, checked_targets, eigen_smooth)
            return self._forward(input_tensor, checked_targets, eigen_smooth)

    def forward(
        self, input_tensor: torch.Tensor, targets: Sequence[Target] | None, eigen_smooth: bool = False
    ) -> np.ndarray:
        """The CAMs without augmentation smoothing (reference name; same as ``cam(x, targets)``)."""
        return self(input_tensor, targets, aug_smooth=False, eigen_smooth=eigen_smooth)

    def forward_augmentation_smoothing(
        self, input_tensor: torch.Tensor, targets: Sequence[Target] | None, eigen_smooth: bool = False
    ) -> np.ndarray:
        """The CAMs averaged over ``tta_transforms`` (reference name; same as ``aug_smooth=True``)."""
        return self(input_tensor, targets, aug_smooth=True, eigen_smooth=eigen_smooth)

    def release(self) -> None:
        """Remove every hook (idempotent). Hooks only exist during a call, so this is rarely needed."""
        self.activations_and_grads.release()

    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # ---------------------------------------------------------------------------------- validation
    def _prepare_input(self, input_tensor: Any) -> torch.Tensor:
        return model_input(check_input_tensor(input_tensor), self.model)

    @staticmethod
    def _check_targets(targets: Any, batch_size: int) -> list[Target] | None:
        return check_targets(targets, batch_size)

    def _eval_mode(self) -> AbstractContextManager[None]:
        """Put the model in eval mode for the call and restore every module's ``training`` flag after."""
        return eval_mode(self.model)

    # ----------------------------------------------------------------------------------- the flow
    def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, ...]:
        """The spatial size of the input in reversed axis order: ``(W, H)`` or ``(W, H, D)``."""
        return tuple(reversed(input_tensor.shape[2:]))

    def _default_targets(self, outputs: Any, batch_size: int) -> list[Target]:
        try:
            return default_targets(outputs, batch_size)
        except ValueError as error:
            if self.uses_gradients:
                raise
            # Gradient-free methods such as EigenCAM never look at the targets (the reference lets them run
            # on detector outputs with targets=None); a method that does gets the error.
            return [_UnavailableTarget(str(error))] * batch_size

    def _target_score(self, targets: list[Target], outputs: Any) -> torch.Tensor:
        """Σ_i target_i(output of image i), summed to a scalar."""
        return target_scores(targets, outputs).sum()

    def _run_model(self, input_tensor: torch.Tensor, targets: list[Target] | None) -> list[Target]:
        """Forward with hooks, the targets, and (for gradient methods) the gradients; returns the targets."""
        needs_graph = self.uses_gradients or self.compute_input_gradient or not self.detach
        if self.compute_input_gradient:
            input_tensor = input_tensor.detach().requires_grad_(True)
        self.activations_and_grads.needs_gradients = self.uses_gradients
        with torch.set_grad_enabled(needs_graph):
            outputs = self.activations_and_grads(input_tensor)
        self.outputs = _detached(outputs)
        if any(not torch.isfinite(t).all() for t in tensors_in(outputs) if t.is_floating_point()):
            raise ValueError("the model output contains NaN or inf values; no CAM can be computed from it")
        if targets is None:
            targets = self._default_targets(outputs, input_tensor.shape[0])
        if self.uses_gradients:
            with torch.enable_grad():
                self.activations_and_grads.compute_gradients(self._target_score(targets, outputs))
            if self.device.type == "hpu":
                import habana_frameworks.torch.core as htcore  # type: ignore[import-not-found]

                htcore.mark_step()
        return targets

    def _forward(self, input_tensor: torch.Tensor, targets: list[Target] | None, eigen_smooth: bool) -> torch.Tensor:
        targets = self._run_model(input_tensor, targets)
        return self.aggregate_multi_layers(self.compute_cam_per_layer(input_tensor, targets, eigen_smooth))

    def compute_cam_per_layer(
        self, input_tensor: torch.Tensor, targets: list[Target], eigen_smooth: bool
    ) -> list[torch.Tensor]:
        """One scaled, resized map ``(B, 1, *input spatial)`` per target layer, from the last forward."""
        record = self.activations_and_grads
        target_size = self.get_target_width_height(input_tensor)
        cams = []
        for index, layer in enumerate(self.target_layers):
            activations = record.activations[index]
            if activations.ndim != input_tensor.ndim:
                raise ValueError(
                    f"target_layers[{index}] gives activations of shape {tuple(activations.shape)}, but a "
                    f"{input_tensor.ndim - 2}-D map (B, C, {', '.join('HW' if input_tensor.ndim == 4 else 'DHW')}) "
                    "is needed; pass a reshape_transform (e.g. for a vision transformer) or pick another layer"
                )
            grads = record.gradients[index].float() if index < len(record.gradients) else None
            if grads is not None and not bool(grads.any()):
                warnings.warn(
                    f"the gradients of the target score with respect to target_layers[{index}] "
                    f"({type(layer).__name__}) are all zero, so its map is blank. With a vision transformer "
                    "whose target layer is the last block, only the class token reaches the output: choose a "
                    "layer inside the last block, e.g. blocks[-1].norm1 (timm) or encoder.layers[-1].ln_1 "
                    "(torchvision)",
                    stacklevel=3,
                )
            cam = self.get_cam_image(input_tensor, layer, targets, activations.float(), grads, eigen_smooth)
            cam = torch.as_tensor(cam, device=activations.device).float().clamp_min(0)
            cams.append(scale_cam_tensor(cam, target_size)[:, None])
        return cams

    def aggregate_multi_layers(self, cam_per_target_layer: list[torch.Tensor]) -> torch.Tensor:
        """ReLU, mean over layers, and min-max scaling again."""
        stacked = torch.cat(cam_per_target_layer, dim=1).clamp_min(0)
        return scale_cam_tensor(stacked.mean(dim=1))

    def _augmentation_smoothing(
        self, input_tensor: torch.Tensor, targets: list[Target] | None, eigen_smooth: bool
    ) -> torch.Tensor:
        """Mean of the de-augmented CAMs over ``tta_transforms`` (not re-scaled, as in the reference)."""
        cams = []
        for transform in self.tta_transforms:
            cam = self._forward(transform.augment_image(input_tensor), targets, eigen_smooth)
            cams.append(transform.deaugment_mask(cam[:, None])[:, 0])
        return torch.stack(cams).mean(dim=0)


class CAMWrapper:
    """The shell of a method that delegates the work to an inner CAM object ``base_cam`` (FinerCAM, RefineCAM,
    NoiseTunnel): ``outputs``, ``release()`` and ``with`` support, all forwarded to it."""

    base_cam: BaseCAM

    @staticmethod
    def build_base(
        base_method: Any,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None,
        **kwargs: Any,
    ) -> BaseCAM:
        """``base_method(model, target_layers, reshape_transform, **kwargs)``, checking it is a CAM class."""
        if not (isinstance(base_method, type) and issubclass(base_method, BaseCAM)):
            raise TypeError(f"base_method must be a BaseCAM subclass such as GradCAM; got {base_method!r}")
        return base_method(model, target_layers, reshape_transform, **kwargs)

    @property
    def outputs(self) -> Any:
        """The model output of the last call, detached."""
        return self.base_cam.outputs

    def release(self) -> None:
        """Remove every hook of the inner CAM (idempotent)."""
        self.base_cam.release()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
