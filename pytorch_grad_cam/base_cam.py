"""The reference's module path of :class:`BaseCAM` (defined in :mod:`pytorch_grad_cam.core.base`)."""

from pytorch_grad_cam.core.base import BaseCAM

__all__ = ["BaseCAM"]
