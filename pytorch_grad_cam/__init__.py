"""pytorch_grad_cam: Class Activation Map methods for PyTorch (drop-in replacement for ``grad-cam``)."""

from pytorch_grad_cam.ablation_cam import AblationCAM
from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerFasterRCNN, AblationLayerVit
from pytorch_grad_cam.core import ActivationsAndGradients, BaseCAM, CAMMethod, CAMWrapper, Needs
from pytorch_grad_cam.eigen_cam import EigenCAM
from pytorch_grad_cam.eigen_grad_cam import EigenGradCAM
from pytorch_grad_cam.feature_factorization import DeepFeatureFactorization, run_dff_on_image
from pytorch_grad_cam.fem import FEM
from pytorch_grad_cam.finer_cam import FinerCAM
from pytorch_grad_cam.fullgrad_cam import FullGrad
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.grad_cam_elementwise import GradCAMElementWise
from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus
from pytorch_grad_cam.group_cam import GroupCAM
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
from pytorch_grad_cam.guided_grad_cam import GuidedGradCAM
from pytorch_grad_cam.hirescam import HiResCAM
from pytorch_grad_cam.is_cam import ISCAM
from pytorch_grad_cam.kpca_cam import KPCA_CAM
from pytorch_grad_cam.layer_cam import LayerCAM
from pytorch_grad_cam.legrad import LeGrad
from pytorch_grad_cam.noise_tunnel import NoiseTunnel
from pytorch_grad_cam.opti_cam import OptiCAM
from pytorch_grad_cam.poly_cam import PolyCAM
from pytorch_grad_cam.random_cam import RandomCAM
from pytorch_grad_cam.refine_cam import RefineCAM
from pytorch_grad_cam.score_cam import ScoreCAM
from pytorch_grad_cam.seg_eigen_cam import SegEigenCAM
from pytorch_grad_cam.sess import SESS
from pytorch_grad_cam.shapley_cam import ShapleyCAM
from pytorch_grad_cam.smooth_grad_cam_plusplus import SmoothGradCAMPlusPlus
from pytorch_grad_cam.ss_cam import SSCAM
from pytorch_grad_cam.xgrad_cam import XGradCAM
from pytorch_grad_cam.zhou_cam import CAM

__all__ = [
    "CAM",
    "FEM",
    "ISCAM",
    "KPCA_CAM",
    "SESS",
    "SSCAM",
    "AblationCAM",
    "AblationLayer",
    "AblationLayerFasterRCNN",
    "AblationLayerVit",
    "ActivationsAndGradients",
    "BaseCAM",
    "CAMMethod",
    "CAMWrapper",
    "DeepFeatureFactorization",
    "EigenCAM",
    "EigenGradCAM",
    "FinerCAM",
    "FullGrad",
    "GradCAM",
    "GradCAMElementWise",
    "GradCAMPlusPlus",
    "GroupCAM",
    "GuidedBackpropReLUModel",
    "GuidedGradCAM",
    "HiResCAM",
    "LayerCAM",
    "LeGrad",
    "Needs",
    "NoiseTunnel",
    "OptiCAM",
    "PolyCAM",
    "RandomCAM",
    "RefineCAM",
    "ScoreCAM",
    "SegEigenCAM",
    "ShapleyCAM",
    "SmoothGradCAMPlusPlus",
    "XGradCAM",
    "run_dff_on_image",
]
