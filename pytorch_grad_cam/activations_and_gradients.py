"""The reference's module path of :class:`ActivationsAndGradients` (in :mod:`pytorch_grad_cam.core.recording`)."""

from pytorch_grad_cam.core.recording import ActivationsAndGradients

__all__ = ["ActivationsAndGradients"]
