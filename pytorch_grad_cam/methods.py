"""The command-line names of every CAM method (as ``cam.py --method`` takes them)."""

from __future__ import annotations

import difflib

import pytorch_grad_cam
from pytorch_grad_cam.base_cam import BaseCAM

#: ``cam.py --method`` name → class name in :mod:`pytorch_grad_cam`, in the reference's order first.
METHOD_NAMES: dict[str, str] = {
    "gradcam": "GradCAM",
    "hirescam": "HiResCAM",
    "scorecam": "ScoreCAM",
    "gradcam++": "GradCAMPlusPlus",
    "ablationcam": "AblationCAM",
    "xgradcam": "XGradCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "layercam": "LayerCAM",
    "fullgrad": "FullGrad",
    "fem": "FEM",
    "gradcamelementwise": "GradCAMElementWise",
    "kpcacam": "KPCA_CAM",
    "shapleycam": "ShapleyCAM",
    "finercam": "FinerCAM",
    "randomcam": "RandomCAM",
    "segeigencam": "SegEigenCAM",
    "cam": "CAM",
    "smoothgradcam++": "SmoothGradCAMPlusPlus",
    "sscam": "SSCAM",
    "iscam": "ISCAM",
    "groupcam": "GroupCAM",
    "polycam": "PolyCAM",
    "opticam": "OptiCAM",
    "guidedgradcam": "GuidedGradCAM",
    "legrad": "LeGrad",
}


def get_method(name: str) -> type[BaseCAM]:
    """The CAM class for a command-line method name (case-insensitive).

    Raises:
        ValueError: for an unknown name, listing the known ones and the closest matches.
    """
    key = name.lower()
    if key not in METHOD_NAMES:
        close = difflib.get_close_matches(key, METHOD_NAMES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHOD_NAMES)}.{hint}")
    return getattr(pytorch_grad_cam, METHOD_NAMES[key])
