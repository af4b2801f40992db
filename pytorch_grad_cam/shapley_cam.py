"""ShapleyCAM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.base_cam import BaseCAM, Target


def _math_attention() -> AbstractContextManager[None]:
    """Run ``scaled_dot_product_attention`` on PyTorch's math kernel: the fused (flash / memory-efficient)
    kernels have no second derivative, which the Hessian-vector product needs (vision transformers)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3
        return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False)
    return sdpa_kernel(SDPBackend.MATH)


class ShapleyCAM(BaseCAM):
    """ShapleyCAM — Cai et al. 2025, https://arxiv.org/abs/2501.06261

    A second-order Taylor view of the target score ``y`` around the activations ``A`` gives each channel's
    Shapley value; averaged over positions it weights the channel as

    ``w_c = mean over positions of (∂y/∂A - ½ H A)_c``,  ``H A`` the Hessian-vector product ``∂²y/∂A² · A``;
    ``map = ReLU(Σ_c w_c A_c)``.

    ``H A`` is taken on the layer's raw output (before ``reshape_transform``), then reshaped like the
    gradient, so vision transformers work as CNNs do. The gradients are computed with ``create_graph=True``,
    which is why the method needs ``detach=False`` (its default); attention layers run on PyTorch's math
    kernel during a call, the only one with second derivatives.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        detach: bool = False,
        **kwargs: Any,
    ) -> None:
        if detach:
            raise ValueError(
                "ShapleyCAM needs detach=False: its Hessian-vector product differentiates the gradients "
                f"again; got detach={detach!r}"
            )
        super().__init__(model, target_layers, reshape_transform, detach=False, **kwargs)

    def compute(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        """As :meth:`BaseCAM.compute`, with attention on the twice-differentiable math kernel."""
        with _math_attention():
            return super().compute(input_tensor, targets, aug_smooth, eigen_smooth)

    def get_cam_weights(
        self,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: list[Target],
        activations: torch.Tensor,
        grads: torch.Tensor | None,
    ) -> torch.Tensor:
        hvp = self.hessian_vector_product(self.target_layers.index(target_layer))
        weights = grads - 0.5 * hvp.to(grads)
        return weights.mean(dim=tuple(range(2, weights.ndim))).detach()

    def hessian_vector_product(self, layer_index: int) -> torch.Tensor:
        """``∂²y/∂A² · A`` for target layer ``layer_index`` (after ``reshape_transform``; zeros where the score
        is linear in ``A``)."""
        record = self.activations_and_grads
        raw_activations = record.raw_activations[layer_index]
        raw_gradients = record.raw_gradients[layer_index]
        hvp = None
        if raw_gradients.requires_grad:
            hvp = torch.autograd.grad(
                raw_gradients, raw_activations, grad_outputs=raw_activations.detach(), retain_graph=True,
                allow_unused=True,
            )[0]
        if hvp is None:
            hvp = torch.zeros_like(raw_activations)
        if self.reshape_transform is not None:
            hvp = self.reshape_transform(hvp)
        return hvp.detach()
