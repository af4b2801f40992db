"""Utilities: model targets, reshape transforms, image helpers, activation projections, layer search."""

from pytorch_grad_cam.utils import model_targets, reshape_transforms
from pytorch_grad_cam.utils.image import deprocess_image
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

__all__ = ["deprocess_image", "get_2d_projection", "model_targets", "reshape_transforms"]
