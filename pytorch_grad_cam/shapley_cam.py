"""ShapleyCAM."""

from __future__ import annotations

import torch

from pytorch_grad_cam.core import BaseCAM, LayerRecord, Needs


class ShapleyCAM(BaseCAM):
    """ShapleyCAM — Cai et al. 2025, https://arxiv.org/abs/2501.06261

    A second-order Taylor view of the target score ``y`` around the activations ``A`` gives each channel's
    Shapley value; averaged over positions it weights the channel as

    ``w_c = mean over positions of (∂y/∂A - ½ H A)_c``,  ``H A`` the Hessian-vector product ``∂²y/∂A² · A``;
    ``map = ReLU(Σ_c w_c A_c)``.

    ``H A`` is taken on the layer's raw output (before ``reshape_transform``), then reshaped like the
    gradient, so vision transformers work as CNNs do. The method needs second-order gradients, so the core
    keeps the gradients in the graph (``detach=False``) and runs attention on PyTorch's math kernel during a
    call (the only one with second derivatives).
    """

    needs = Needs(second_order=True)

    def channel_weights(self, layer: LayerRecord) -> torch.Tensor:
        weights = layer.gradients - 0.5 * self.hessian_vector_product(layer).to(layer.gradients)
        return weights.mean(dim=layer.spatial_axes).detach()

    def hessian_vector_product(self, layer: LayerRecord) -> torch.Tensor:
        """``∂²y/∂A² · A`` for one target layer (after ``reshape_transform``; zeros where the score is linear
        in ``A``)."""
        raw_activations, raw_gradients = layer.raw_activations, layer.raw_gradients
        hvp = None
        if raw_gradients is not None and raw_gradients.requires_grad:
            try:
                hvp = torch.autograd.grad(
                    raw_gradients,
                    raw_activations,
                    grad_outputs=raw_activations.detach(),
                    retain_graph=True,
                    allow_unused=True,
                )[0]
            except RuntimeError as error:
                if "not implemented" not in str(error):
                    raise
                raise RuntimeError(
                    f"ShapleyCAM needs second derivatives through what follows target_layers[{layer.index}], and "
                    f"PyTorch has none for one of its operations ({error}); pick another layer or use GradCAM"
                ) from error
        if hvp is None:
            hvp = torch.zeros_like(raw_activations)
        if self.reshape_transform is not None:
            hvp = self.reshape_transform(hvp)
        return hvp.detach()
