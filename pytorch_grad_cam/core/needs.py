"""What a method needs from the model's forward and backward pass, declared once per method class."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Needs:
    """A method's needs; the core derives the forward mode, the inference-mode guard and what to record.

    Attributes:
        layer_gradients: ``∂y/∂A`` at every target layer (Grad-CAM and its family).
        autograd: autograd while the method computes its weights, without layer gradients (Opti-CAM's
            gradient ascent, CAM's slopes of the target).
        second_order: the layer gradients stay in the graph, to be differentiated again (ShapleyCAM's
            Hessian-vector product); implies ``layer_gradients``.
        input_gradient: ``∂y/∂x`` of the input (FullGrad).
        bias_gradients: ``∂y/∂z`` at the output ``z`` of every layer with a bias (FullGrad).
        attention_maps: the attention probabilities of the transformer block holding each target layer,
            and the block's output tokens, in the graph (LeGrad).
        targets: whether the map depends on the targets; ``False`` for class-agnostic methods (EigenCAM, FEM,
            KPCA-CAM, RandomCAM), which never evaluate them.
    """

    layer_gradients: bool = True
    autograd: bool = False
    second_order: bool = False
    input_gradient: bool = False
    bias_gradients: bool = False
    attention_maps: bool = False
    targets: bool = True

    def __post_init__(self) -> None:
        if self.second_order and not self.layer_gradients:
            object.__setattr__(self, "layer_gradients", True)

    @property
    def backward(self) -> bool:
        """Whether the core runs a backward pass from the target score."""
        return self.layer_gradients or self.input_gradient or self.bias_gradients

    @property
    def gradients(self) -> bool:
        """Whether anything needs autograd (so ``torch.inference_mode()`` is refused up front)."""
        return self.backward or self.autograd or self.attention_maps

    def forward_records_graph(self, detach: bool) -> bool:
        """Whether the forward pass records the autograd graph."""
        return self.backward or self.attention_maps or not detach

    def with_(self, **changes: bool) -> Needs:
        """A copy with some needs changed."""
        return replace(self, **changes)


#: Gradient methods (the default): the layer gradients.
GRADIENTS = Needs()
#: Gradient-free methods: activations only, no backward pass.
ACTIVATIONS_ONLY = Needs(layer_gradients=False)
#: Class-agnostic methods: activations only, the targets are never evaluated.
CLASS_AGNOSTIC = Needs(layer_gradients=False, targets=False)
