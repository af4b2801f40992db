"""CAMWrapper: the base of methods built on another CAM (NoiseTunnel, RefineCAM, FinerCAM, GuidedGradCAM).

A wrapper is a CAM of the same protocol: it can wrap any CAM, another wrapper included, and be wrapped.
``outputs``, ``release()``, the model and the target layers are those of the wrapped CAM.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pytorch_grad_cam.core.checks import describe
from pytorch_grad_cam.core.combine import LayerCombiner
from pytorch_grad_cam.core.needs import Needs
from pytorch_grad_cam.core.protocol import CAMMethod
from pytorch_grad_cam.core.targets import Target
from pytorch_grad_cam.core.types import Layers, OptionalModel, Reshape


class CAMWrapper(CAMMethod):
    """A CAM whose work is done by the CAM :attr:`base_cam`, which the wrapper builds or is given.

    ``Wrapper(model, target_layers=None, reshape_transform=None, base_method=<default>, **kwargs)`` builds
    ``base_method(model, target_layers, reshape_transform, **kwargs)`` (``target_layers=None``: chosen by the
    wrapped method at the first call); ``Wrapper(base_method=cam)`` wraps a CAM
    object as it is. Subclasses set :attr:`default_base_method` (and :attr:`base_layer_combiner` to change
    how the wrapped CAM combines its layers) and implement :meth:`explain` (their idea), calling
    ``self.base_cam.compute(...)``.

    Args:
        model: the network to explain (left out when ``base_method`` is a CAM object).
        target_layers: the layers of the wrapped method; ``None`` lets it choose them at the first call.
        reshape_transform: as for the wrapped method.
        base_method: a CAM class (any method of the library, a wrapper included) or a CAM object.
        **kwargs: further constructor arguments of ``base_method``.
    """

    #: The CAM class a wrapper builds when ``base_method`` is not given.
    default_base_method: type[CAMMethod] | None = None
    #: When set, the wrapped CAM combines its layers this way (a copy of a given CAM object is made).
    base_layer_combiner: LayerCombiner | None = None
    base_cam: CAMMethod

    def __init__(
        self,
        model: OptionalModel = None,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        base_method: type[CAMMethod] | CAMMethod | None = None,
        **kwargs: Any,
    ) -> None:
        chosen = base_method if base_method is not None else self.default_base_method
        base = self.build_base(chosen, model, target_layers, reshape_transform, **kwargs)
        combiner = type(self).base_layer_combiner
        self.base_cam = base if combiner is None else base.with_layer_combiner(combiner)

    @staticmethod
    def build_base(
        base_method: Any,
        model: nn.Module | None,
        target_layers: Layers | None,
        reshape_transform: Reshape,
        **kwargs: Any,
    ) -> CAMMethod:
        """The wrapped CAM: ``base_method`` itself when it is a CAM object (then ``model``, ``target_layers``,
        ``reshape_transform`` and ``kwargs`` must not be given), else ``base_method(model, target_layers,
        reshape_transform, **kwargs)`` for a CAM class such as ``GradCAM``."""
        if isinstance(base_method, CAMMethod):
            given = [
                name
                for name, value in (
                    ("model", model),
                    ("target_layers", target_layers),
                    ("reshape_transform", reshape_transform),
                )
                if value is not None
            ] + sorted(kwargs)
            if given:
                raise TypeError(
                    f"base_method is a CAM object already, so {', '.join(given)} cannot be given too; pass a CAM "
                    "class instead, or leave them out"
                )
            return base_method
        if not (isinstance(base_method, type) and issubclass(base_method, CAMMethod)):
            raise TypeError(
                "base_method must be a CAM class such as GradCAM or a CAM object of pytorch_grad_cam; got "
                f"{describe(base_method)}"
            )
        if model is None:
            raise TypeError(f"model is needed to build {base_method.__name__}")
        factory: Any = base_method  # a concrete CAM class, whose constructor takes these
        built: CAMMethod = factory(model, target_layers, reshape_transform, **kwargs)
        return built

    @property
    def model(self) -> nn.Module:  # type: ignore[override]
        return self.base_cam.model

    @property
    def target_layers(self) -> list[nn.Module]:  # type: ignore[override]
        return self.base_cam.target_layers

    @property
    def outputs(self) -> Any:
        return self.base_cam.outputs

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        """The needs of the wrapped CAM."""
        return self.base_cam.needs

    @property
    def requires_autograd(self) -> bool:
        return self.base_cam.requires_autograd

    def default_targets(self, outputs: Any, batch_size: int, **options: Any) -> list[Target]:
        return self.base_cam.default_targets(outputs, batch_size, **options)

    def with_layer_combiner(self, combiner: LayerCombiner) -> CAMWrapper:
        return self._copy(base_cam=self.base_cam.with_layer_combiner(combiner))

    def release(self) -> None:
        self.base_cam.release()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_cam!r})"
