"""pytorch_grad_cam: Class Activation Map methods for PyTorch (drop-in replacement for ``grad-cam``)."""

from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.eigen_cam import EigenCAM
from pytorch_grad_cam.eigen_grad_cam import EigenGradCAM
from pytorch_grad_cam.fem import FEM
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.grad_cam_elementwise import GradCAMElementWise
from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus
from pytorch_grad_cam.hirescam import HiResCAM
from pytorch_grad_cam.kpca_cam import KPCA_CAM
from pytorch_grad_cam.layer_cam import LayerCAM
from pytorch_grad_cam.random_cam import RandomCAM
from pytorch_grad_cam.seg_eigen_cam import SegEigenCAM
from pytorch_grad_cam.xgrad_cam import XGradCAM

__all__ = [
    "FEM",
    "KPCA_CAM",
    "ActivationsAndGradients",
    "BaseCAM",
    "EigenCAM",
    "EigenGradCAM",
    "GradCAM",
    "GradCAMElementWise",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "RandomCAM",
    "SegEigenCAM",
    "XGradCAM",
]
