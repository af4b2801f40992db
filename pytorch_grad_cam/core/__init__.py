"""The core of pytorch_grad_cam: the CAM protocol, BaseCAM, recording, targets, scaling, smoothing and checks.

It imports nothing from the methods or the metrics; both build on it.
"""

from pytorch_grad_cam.core.base import BaseCAM
from pytorch_grad_cam.core.needs import Needs
from pytorch_grad_cam.core.protocol import CAMMethod
from pytorch_grad_cam.core.recording import ActivationsAndGradients, LayerRecord
from pytorch_grad_cam.core.targets import Target
from pytorch_grad_cam.core.wrapper import CAMWrapper

__all__ = ["ActivationsAndGradients", "BaseCAM", "CAMMethod", "CAMWrapper", "LayerRecord", "Needs", "Target"]
