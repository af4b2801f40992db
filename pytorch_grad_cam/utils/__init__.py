"""Utilities: model targets, reshape transforms, image helpers, activation projections, layer search
(``list_layers``: the candidate target layers of a model with their output shapes)."""

from pytorch_grad_cam.utils import model_targets, reshape_transforms
from pytorch_grad_cam.utils.find_layers import list_layers
from pytorch_grad_cam.utils.image import deprocess_image
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

__all__ = ["deprocess_image", "get_2d_projection", "list_layers", "model_targets", "reshape_transforms"]
