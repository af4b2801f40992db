"""The registry: one table of every public CAM method by its command-line name.

``cam.py --method``, the dataset pipeline, ``--compare``, the leaderboard and the contract tests all read
:data:`METHODS`; a new method is one file plus one line here.
"""

from __future__ import annotations

import difflib

from pytorch_grad_cam.ablation_cam import AblationCAM
from pytorch_grad_cam.core import CAMMethod
from pytorch_grad_cam.eigen_cam import EigenCAM
from pytorch_grad_cam.eigen_grad_cam import EigenGradCAM
from pytorch_grad_cam.fem import FEM
from pytorch_grad_cam.finer_cam import FinerCAM
from pytorch_grad_cam.fullgrad_cam import FullGrad
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.grad_cam_elementwise import GradCAMElementWise
from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus
from pytorch_grad_cam.group_cam import GroupCAM
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

#: ``cam.py --method`` name → CAM class, the reference's names and order first.
METHODS: dict[str, type[CAMMethod]] = {
    "gradcam": GradCAM,
    "hirescam": HiResCAM,
    "scorecam": ScoreCAM,
    "gradcam++": GradCAMPlusPlus,
    "ablationcam": AblationCAM,
    "xgradcam": XGradCAM,
    "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM,
    "layercam": LayerCAM,
    "fullgrad": FullGrad,
    "fem": FEM,
    "gradcamelementwise": GradCAMElementWise,
    "kpcacam": KPCA_CAM,
    "shapleycam": ShapleyCAM,
    "finercam": FinerCAM,
    "refinecam": RefineCAM,
    "sess": SESS,
    "randomcam": RandomCAM,
    "segeigencam": SegEigenCAM,
    "cam": CAM,
    "smoothgradcam++": SmoothGradCAMPlusPlus,
    "sscam": SSCAM,
    "iscam": ISCAM,
    "groupcam": GroupCAM,
    "polycam": PolyCAM,
    "opticam": OptiCAM,
    "guidedgradcam": GuidedGradCAM,
    "noisetunnel": NoiseTunnel,
    "legrad": LeGrad,
}

#: ``cam.py --method`` name → class name in :mod:`pytorch_grad_cam` (derived from :data:`METHODS`).
METHOD_NAMES: dict[str, str] = {name: cls.__name__ for name, cls in METHODS.items()}


def get_method(name: str) -> type[CAMMethod]:
    """The CAM class for a command-line method name (case-insensitive).

    Raises:
        TypeError: when ``name`` is not a string.
        ValueError: for an unknown name, listing the known ones and the closest matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"method name must be a string such as 'gradcam'; got {type(name).__name__}")
    key = name.lower()
    if key not in METHODS:
        close = difflib.get_close_matches(key, METHODS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}.{hint}")
    return METHODS[key]
