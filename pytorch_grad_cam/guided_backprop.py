"""Guided backpropagation, and its combination with a CAM (Guided Grad-CAM)."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from pytorch_grad_cam.core.checks import check_index, check_input_tensor, check_model_has_data, describe
from pytorch_grad_cam.core.model import autograd_ready, eval_mode, model_device
from pytorch_grad_cam.core.outputs import target_scores
from pytorch_grad_cam.core.targets import Target
from pytorch_grad_cam.utils.image import deprocess_image


class GuidedBackpropReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients at positive inputs: ``g_in = [x > 0]·[g > 0]·g``."""

    @staticmethod
    def forward(ctx: Any, input_img: torch.Tensor) -> torch.Tensor:
        output = input_img.clamp_min(0)
        ctx.save_for_backward(output)  # y > 0 exactly where x > 0
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (output,) = ctx.saved_tensors
        return _guided(grad_output, output)


def _guided(grad_output: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``[y > 0]·[g > 0]·g`` in two kernels: the positive part of the gradient, then ReLU's own backward (which
    keeps it where the ReLU's output ``y`` is positive)."""
    return torch.ops.aten.threshold_backward(grad_output.clamp_min(0), output, 0)


class GuidedBackpropReLUInPlace(torch.autograd.Function):
    """In-place :class:`GuidedBackpropReLU` (for ``relu_``, ``F.relu(x, inplace=True)``): the same gradient,
    read from the output (``y > 0`` exactly where ``x > 0``)."""

    @staticmethod
    def forward(ctx: Any, input_img: torch.Tensor) -> torch.Tensor:
        input_img.clamp_(min=0)
        ctx.mark_dirty(input_img)
        ctx.save_for_backward(input_img)
        return input_img

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (output,) = ctx.saved_tensors
        return _guided(grad_output, output)


class GuidedFunctionalReLUs(TorchFunctionMode):
    """While active (in this thread), the functional ReLUs a model calls in its ``forward`` are guided:
    ``torch.relu``, ``F.relu`` (``inplace`` included), ``Tensor.relu`` and the in-place ``relu_`` forms.
    Every other function runs unchanged."""

    #: function → whether it works in place (``F.relu`` decides by its ``inplace`` argument).
    RELUS: ClassVar[dict[Callable[..., Any], bool]] = {
        torch.relu: False,
        torch.Tensor.relu: False,
        torch.relu_: True,
        torch.Tensor.relu_: True,
    }

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.relu:
            in_place = bool(args[1] if len(args) > 1 else kwargs.get("inplace", False))
        elif func in self.RELUS:
            in_place = self.RELUS[func]
        else:
            return func(*args, **kwargs)
        tensor = args[0] if args else kwargs["input"]
        return (GuidedBackpropReLUInPlace if in_place else GuidedBackpropReLU).apply(tensor)


class GuidedBackpropReLUasModule(nn.Module):
    """:class:`GuidedBackpropReLU` as a module, swapped in for every ``nn.ReLU`` during a call (in place where the
    ``nn.ReLU`` it stands for was: :class:`GuidedBackpropReLUInPlace`)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input_img: torch.Tensor) -> torch.Tensor:
        in_place = self.inplace and not (input_img.is_leaf and input_img.requires_grad)  # never on the input leaf
        return (GuidedBackpropReLUInPlace if in_place else GuidedBackpropReLU).apply(input_img)


class GuidedBackpropReLUModel:
    """Guided backpropagation — Springenberg et al. 2015, https://arxiv.org/abs/1412.6806

    The gradient of the class score with respect to the input pixels, where every ReLU lets through only
    positive gradients at positive inputs: ``∂y_c/∂x`` with ``g_in = [x > 0]·[g_out > 0]·g_out`` at each ReLU.

    During a call every ``nn.ReLU`` of the model is replaced by :class:`GuidedBackpropReLUasModule`, the
    functional ReLUs its ``forward`` calls (``torch.relu``, ``F.relu``, ``x.relu()``, in place or not) are guided
    too (:class:`GuidedFunctionalReLUs`; the reference guides ``nn.ReLU`` modules only), and the model is in
    eval mode; the original ReLU objects and ``training`` flags are put back on every exit path. Each image of
    a batch gets its own gradient; no ``.grad`` is written and the input is not modified.

    Args:
        model: the network.
        device: where to run; when given the model is moved there, as in the reference.
    """

    def __init__(self, model: nn.Module, device: torch.device | str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.model = model
        self.device = device
        if device:
            self.model = self.model.to(device)

    def forward(self, input_img: torch.Tensor) -> Any:
        """The model's output on ``input_img`` (reference API)."""
        return self.model(input_img)

    def __call__(self, input_img: torch.Tensor, target_category: int | Sequence[int] | None = None) -> np.ndarray:
        """Guided-backprop gradients of the input, channels last.

        Args:
            input_img: ``(B, C, H, W)`` input (``(B, C, D, H, W)`` for volumes).
            target_category: the class to explain: ``None`` for each image's top class, one int for all
                images, or one int per image.

        Returns:
            ``np.float32`` ``(H, W, C)`` for a single image (as the reference), ``(B, H, W, C)`` for a batch.
        """
        input_img = check_input_tensor(input_img, name="input_img")
        check_model_has_data(self.model)
        device = self.device or model_device(self.model)
        input_leaf = autograd_ready(input_img.detach().to(device)).requires_grad_(True)
        with eval_mode(self.model), guided_relus(self.model), torch.enable_grad():
            output = self.forward(input_leaf)
            categories = self._categories(output, target_category, input_img.shape[0])
            score = output[torch.arange(output.shape[0], device=output.device), categories].sum()
            (gradient,) = torch.autograd.grad(score, input_leaf)
        result = gradient.detach().movedim(1, -1).float().cpu().numpy()
        return result[0] if result.shape[0] == 1 else result

    @staticmethod
    def _categories(output: Any, target_category: Any, batch_size: int) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != batch_size:
            raise ValueError(
                "GuidedBackpropReLUModel needs a model returning (B, num_classes) scores; got "
                f"{type(output).__name__}{tuple(output.shape) if isinstance(output, torch.Tensor) else ''}"
            )
        num_classes = output.shape[1]
        if target_category is None:
            return output.argmax(dim=1)
        if isinstance(target_category, (Sequence, np.ndarray)) and not isinstance(target_category, (str, bytes)):
            if len(target_category) != batch_size:
                raise ValueError(
                    f"target_category must hold one class per image ({batch_size}); got {len(target_category)}"
                )
            categories = [
                check_index(category, f"target_category[{index}]", num_classes)
                for index, category in enumerate(target_category)
            ]
        elif isinstance(target_category, (numbers.Integral, np.integer)):  # one class for every image (not a bool)
            categories = [check_index(target_category, "target_category", num_classes)] * batch_size
        else:
            raise TypeError(
                f"target_category must be None, an int or one int per image; got {describe(target_category)}"
            )
        return torch.as_tensor(categories, device=output.device)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[None]:
    """Swap every ``nn.ReLU`` of ``model`` for a guided one, and guide the functional ReLUs called in this thread
    (:class:`GuidedFunctionalReLUs`); put the very same ReLU objects back afterwards."""
    swapped = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent._modules.items()
        if isinstance(child, nn.ReLU)
    ]
    try:
        for parent, name, child in swapped:
            parent._modules[name] = GuidedBackpropReLUasModule(inplace=child.inplace)
        with GuidedFunctionalReLUs():
            yield
    finally:
        for parent, name, child in swapped:
            parent._modules[name] = child


def guided_input_gradient(
    model: nn.Module,
    input_tensor: torch.Tensor,
    targets: Sequence[Target] | None,
    default_targets: Callable[[Any, int], list[Target]],
) -> torch.Tensor:
    """``∂y/∂x`` through guided ReLUs for every image of a batch, ``y = Σ_i targets[i](output_i)``
    (``targets=None``: ``default_targets(outputs, batch_size)`` of the guided forward's outputs)."""
    leaf = input_tensor.detach().requires_grad_(True)
    with guided_relus(model), torch.enable_grad():
        outputs = model(leaf)
        if targets is None:
            targets = default_targets(outputs, leaf.shape[0])
        (gradient,) = torch.autograd.grad(target_scores(targets, outputs).sum(), leaf)
    return gradient.detach()


def cam_gb(grayscale_cam: np.ndarray, guided_backprop: np.ndarray) -> np.ndarray:
    """Guided Grad-CAM image: the guided-backprop map masked by the CAM, ready to save.

    ``deprocess_image(cam[..., None] · gb)`` per image, as the reference's ``cam.py`` builds ``cam_gb``.

    Args:
        grayscale_cam: ``(H, W)`` CAM (or ``(B, H, W)``).
        guided_backprop: ``(H, W, C)`` output of :class:`GuidedBackpropReLUModel` (or ``(B, H, W, C)``).

    Returns:
        ``uint8`` ``(H, W, C)`` (or ``(B, H, W, C)``).
    """
    cam = np.asarray(grayscale_cam, dtype=np.float32)
    gb = np.asarray(guided_backprop, dtype=np.float32)
    if cam.ndim not in (2, 3) or gb.shape[:-1] != cam.shape:
        raise ValueError(
            "grayscale_cam must have shape (H, W) or (B, H, W) and guided_backprop the same shape plus a "
            f"channel axis; got {cam.shape} and {gb.shape}"
        )
    masked = cam[..., None] * gb
    if masked.ndim == 3:
        return deprocess_image(masked)
    return np.stack([deprocess_image(image) for image in masked])
