"""The one protocol every public CAM method implements, wrappers included.

``compute(input_tensor, targets=None, *, aug_smooth=False, eigen_smooth=False) -> Tensor`` (the maps on the
model's device), ``__call__`` (the same as a ``np.float32`` array, as the reference returns), ``outputs``
(the model output of the last call, detached), ``release()`` and ``with``.

:class:`CAMMethod` implements the shared part once: argument checks, the inference-mode guard, eval mode for
the duration of a call, the reference's positional orders, and the numpy face. A concrete method implements
:meth:`CAMMethod.explain`: :class:`~pytorch_grad_cam.core.base.BaseCAM` (the layer-based methods) and
:class:`~pytorch_grad_cam.core.wrapper.CAMWrapper` (methods built on another CAM) do.
"""

from __future__ import annotations

import copy
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.core.checks import check_bool, check_input_tensor, check_model_has_data, check_targets, describe
from pytorch_grad_cam.core.combine import LayerCombiner
from pytorch_grad_cam.core.model import eval_mode, held_model, model_input
from pytorch_grad_cam.core.needs import Needs
from pytorch_grad_cam.core.targets import Target
from pytorch_grad_cam.core.types import Targets

Self = TypeVar("Self", bound="CAMMethod")


class _Running(threading.local):
    """Per thread: the CAM objects whose call runs in that thread, and their call states
    (:meth:`CAMMethod._call_state`), by id (held, so that no id is reused while its call runs)."""

    def __init__(self) -> None:
        self.states: dict[int, object] = {}


_RUNNING = _Running()


class CAMMethod(ABC):
    """Base of every public CAM method: the call protocol, its checks and its numpy face.

    Subclasses set :attr:`call_flags` when the reference gives their ``__call__`` another positional order,
    and implement :meth:`explain`.
    """

    #: The options ``__call__`` takes positionally after ``targets``, in the reference's order; every option
    #: can also be passed by keyword. ``forward`` takes the same without ``aug_smooth``.
    call_flags: ClassVar[tuple[str, ...]] = ("aug_smooth", "eigen_smooth")
    #: The input layouts the method takes: 4 = 2-D images ``(B, C, H, W)``, 5 = volumes ``(B, C, D, H, W)``.
    input_ndims: ClassVar[tuple[int, ...]] = (4, 5)

    model: nn.Module
    target_layers: list[nn.Module]
    #: What the method needs from the forward and backward pass (see :class:`~pytorch_grad_cam.core.needs.Needs`).
    needs: Needs

    # ----------------------------------------------------------------------------------- the protocol
    def compute(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        *,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        **options: Any,
    ) -> torch.Tensor:
        """The maps of a batch as a float32 tensor ``(B, H, W)`` / ``(B, D, H, W)`` on the model's device.

        Args:
            input_tensor: ``(B, C, H, W)`` or ``(B, C, D, H, W)`` tensor (moved to the model's device and dtype;
                never modified).
            targets: one callable per image mapping that image's model output to the score to explain;
                ``None`` explains the top-scoring class of each image (or what the method defines instead).
            aug_smooth: average over test-time augmentations (flip × brightness), de-augmented.
            eigen_smooth: use the first principal component of the weighted activations.
            **options: options of the method's own (e.g. Finer-CAM's ``alpha``).

        Raises:
            RuntimeError: when this CAM is called again from inside one of its own targets, when another thread
                is explaining the model, or for a method needing gradients under ``torch.inference_mode()``.
            ValueError: for a model or input on the meta device (no data), or an invalid input or targets.
        """
        with self._not_reentered():
            check_bool(aug_smooth, "aug_smooth")
            check_bool(eigen_smooth, "eigen_smooth")
            if self.requires_autograd and torch.is_inference_mode_enabled():
                raise RuntimeError(
                    f"{type(self).__name__} needs gradients, which torch.inference_mode() forbids; call it outside "
                    "inference_mode (inside torch.no_grad() is fine)"
                )
            # One look at the model for the whole call (its meta check, device, dtype and training flags), taken
            # while the model is held; the checks come in the same order either way.
            with held_model(self.model) as snapshot:
                if snapshot is None or snapshot.holds_meta:
                    check_model_has_data(self.model)
                prepared = model_input(check_input_tensor(input_tensor, self.input_ndims), self.model, snapshot)
                checked = check_targets(targets, prepared.shape[0])
                with eval_mode(self.model, snapshot):
                    return self.explain(prepared, checked, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, **options)

    def __call__(
        self, input_tensor: torch.Tensor, targets: Sequence[Target] | None = None, *flags: Any, **options: Any
    ) -> np.ndarray:
        """:meth:`compute` as a ``np.float32`` array, each map in [0, 1]; options positionally in the order of
        :attr:`call_flags` (for :class:`BaseCAM`: ``aug_smooth``, ``eigen_smooth``), or by keyword."""
        options = self._named(self.call_flags, flags, options)
        return self.compute(input_tensor, targets, **options).detach().cpu().numpy()

    def forward(
        self, input_tensor: torch.Tensor, targets: Sequence[Target] | None = None, *flags: Any, **options: Any
    ) -> np.ndarray:
        """The reference's name for a call without augmentation smoothing (``forward(x, targets,
        eigen_smooth)``)."""
        options = self._named(tuple(f for f in self.call_flags if f != "aug_smooth"), flags, options)
        return self(input_tensor, targets, **options)

    def forward_augmentation_smoothing(
        self, input_tensor: torch.Tensor, targets: Sequence[Target] | None = None, *flags: Any, **options: Any
    ) -> np.ndarray:
        """The reference's name for a call with ``aug_smooth=True``."""
        options = self._named(tuple(f for f in self.call_flags if f != "aug_smooth"), flags, options)
        return self(input_tensor, targets, aug_smooth=True, **options)

    @abstractmethod
    def release(self) -> None:
        """Remove every hook (idempotent). Hooks only exist during a call, so this is rarely needed."""

    def __enter__(self: Self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # --------------------------------------------------------------------------- what methods provide
    @abstractmethod
    def explain(
        self, input_tensor: torch.Tensor, targets: Targets, *, aug_smooth: bool, eigen_smooth: bool, **options: Any
    ) -> torch.Tensor:
        """The maps of a checked input already on the model's device, with the model in eval mode."""

    @property
    @abstractmethod
    def outputs(self) -> Any:
        """The model output of the last call, detached."""

    @property
    @abstractmethod
    def requires_autograd(self) -> bool:
        """Whether a call needs autograd (refused under ``torch.inference_mode()``)."""

    @abstractmethod
    def default_targets(self, outputs: Any, batch_size: int, **options: Any) -> list[Target]:
        """The targets a call with ``targets=None`` explains, given the model's outputs of the clean input."""

    @abstractmethod
    def with_layer_combiner(self: Self, combiner: LayerCombiner) -> Self:
        """A copy of this CAM (same model, layers and settings) that combines its layers with ``combiner``."""

    # ------------------------------------------------------------------------------------------ helpers
    def _call_state(self) -> object:
        """The object holding what a call records (hooks, activations): a second call on it while one runs in
        the same thread would overwrite the first one's. The CAM itself; :class:`BaseCAM` gives its recorder,
        which its copies (:meth:`with_layer_combiner`) share."""
        return self

    @contextmanager
    def _not_reentered(self) -> Iterator[None]:
        """Mark this CAM and its call state as in use for the block; ``RuntimeError`` when either already is in
        this thread (the CAM called again from inside one of its own targets). Calls from other threads are left
        to :func:`~pytorch_grad_cam.core.model.exclusive_use`; other CAM objects nest freely."""
        running = _RUNNING.states
        mine = {id(state): state for state in (self, self._call_state())}
        if any(key in running for key in mine):
            name = type(self).__name__
            raise RuntimeError(
                f"{name} was called from inside one of its own targets (or its model's forward) while a call on "
                "this object is running; one CAM object cannot explain two inputs at once (the calls would share "
                f"its hooks, recorded activations and outputs): give the target its own CAM object, e.g. "
                f"{name}(model, target_layers), or compute the inner map before the outer call"
            )
        running.update(mine)
        try:
            yield
        finally:
            for key in mine:
                running.pop(key, None)

    def _copy(self: Self, **changes: Any) -> Self:
        clone = copy.copy(self)
        clone.__dict__.update(changes)
        return clone

    def _named(self, names: tuple[str, ...], flags: tuple[Any, ...], options: dict[str, Any]) -> dict[str, Any]:
        """Positional ``flags`` named by ``names``, merged with the keyword ``options``."""
        if len(flags) > len(names):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(names)} options after targets positionally "
                f"({', '.join(names)}); got {len(flags)}"
            )
        for name, value in zip(names, flags):
            if name in options:
                raise TypeError(f"{type(self).__name__} got {name} both positionally and by keyword")
            options[name] = value
        return options

    def __repr__(self) -> str:
        model = getattr(self, "model", None)
        return f"{type(self).__name__}(model={type(model).__name__ if model is not None else describe(model)})"
