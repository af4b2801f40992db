"""NoiseTunnel: SmoothGrad, SmoothGrad² and VarGrad over any CAM method of the library."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pytorch_grad_cam.base_cam import BaseCAM, CAMWrapper, Target, eval_mode
from pytorch_grad_cam.smooth_grad_cam_plusplus import check_noise_level, noise_scale
from pytorch_grad_cam.utils.image import scale_cam_tensor
from pytorch_grad_cam.utils.perturbation import check_batch_size, progress_bar
from pytorch_grad_cam.utils.validation import describe

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


class NoiseTunnel(CAMWrapper):
    """A CAM method's maps averaged over noisy copies of the input.

    With ``x_i = x + ε_i``, ``ε_i ~ N(0, σ²)``, ``σ = noise_level · (max x − min x)`` per image, and ``m_i`` the
    wrapped method's map of ``x_i``:

    * ``"smoothgrad"`` — SmoothGrad, Smilkov et al. 2017, https://arxiv.org/abs/1706.03825: ``(1/n) Σ_i m_i``;
    * ``"smoothgrad_sq"`` — ``(1/n) Σ_i m_i²``;
    * ``"vargrad"`` — VarGrad, Adebayo et al. 2018, https://arxiv.org/abs/1810.03307: ``(1/n) Σ_i m_i² − m̄²``;

    each then min-max scaled per image to [0, 1]. The targets are fixed on the clean input (``targets=None``:
    each image's top class on ``x``), so every noisy copy explains the same class. With ``noise_level=0``
    SmoothGrad returns the wrapped method's map.

    Used like a CAM object: ``NoiseTunnel(GradCAM(model, layers))(input_tensor, targets)``; ``with`` and
    :meth:`release` act on the wrapped method.

    Args:
        cam: any CAM object of the library (a :class:`BaseCAM`).
        nt_type: ``"smoothgrad"``, ``"smoothgrad_sq"`` or ``"vargrad"``.
        num_samples: number of noisy copies ``n`` (one call of ``cam`` each, on the whole batch).
        noise_level: noise standard deviation as a fraction of each image's value range.
        progress: show a tqdm progress bar over the noisy copies.
    """

    def __init__(
        self,
        cam: BaseCAM,
        nt_type: str = "smoothgrad",
        num_samples: int = 8,
        noise_level: float = 0.15,
        progress: bool = True,
    ) -> None:
        if not isinstance(cam, BaseCAM):
            raise TypeError(f"cam must be a CAM object of pytorch_grad_cam (a BaseCAM); got {describe(cam)}")
        if nt_type not in NT_TYPES:
            raise ValueError(f"nt_type must be one of {', '.join(map(repr, NT_TYPES))}; got {nt_type!r}")
        self.base_cam = cam
        self.nt_type = nt_type
        self.num_samples = check_batch_size(num_samples, "num_samples")
        self.noise_level = check_noise_level(noise_level)
        self.progress = progress

    def __call__(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> np.ndarray:
        """The smoothed maps as ``np.float32`` ``(B, H, W)`` (or ``(B, D, H, W)``) in [0, 1]."""
        return self.compute(input_tensor, targets, aug_smooth, eigen_smooth).detach().cpu().numpy()

    def compute(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Target] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        """Same as calling the object, but returns a float32 tensor on the model's device."""
        cam = self.base_cam
        clean = cam._prepare_input(input_tensor)
        fixed = cam._check_targets(targets, clean.shape[0])
        if fixed is None:
            with torch.no_grad(), eval_mode(cam.model):
                fixed = cam._default_targets(cam.model(clean), clean.shape[0])
        sigma = noise_scale(clean, self.noise_level)
        total = squares = None
        with progress_bar(self.num_samples, self.progress, f"NoiseTunnel({type(cam).__name__})") as bar:
            for _ in range(self.num_samples):
                noisy = clean + torch.randn_like(clean) * sigma
                maps = cam.compute(noisy, fixed, aug_smooth, eigen_smooth).detach().float()
                total = maps if total is None else total + maps
                squares = maps**2 if squares is None else squares + maps**2
                bar.update()
        mean, mean_of_squares = total / self.num_samples, squares / self.num_samples
        if self.nt_type == "smoothgrad":
            result = mean
        elif self.nt_type == "smoothgrad_sq":
            result = mean_of_squares
        else:
            result = (mean_of_squares - mean**2).clamp_min(0)
        return scale_cam_tensor(result)

