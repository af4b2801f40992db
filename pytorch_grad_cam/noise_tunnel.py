"""NoiseTunnel: SmoothGrad, SmoothGrad² and VarGrad over any CAM method of the library."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core import CAMMethod, CAMWrapper
from pytorch_grad_cam.core.checks import check_bool, check_choice, check_positive_int, check_real
from pytorch_grad_cam.core.perturbation import noise_scale, progress_bar
from pytorch_grad_cam.core.scaling import scale_cam_tensor
from pytorch_grad_cam.core.types import Layers, Reshape, Targets
from pytorch_grad_cam.grad_cam import GradCAM

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
    :meth:`release` act on the wrapped method. Like the other wrappers it can also build the wrapped method:
    ``NoiseTunnel(model=model, target_layers=layers, base_method=ScoreCAM)``.

    Args:
        cam: any CAM object of the library, a wrapper included; ``None`` builds ``base_method``.
        nt_type: ``"smoothgrad"``, ``"smoothgrad_sq"`` or ``"vargrad"``.
        num_samples: number of noisy copies ``n`` (one call of ``cam`` each, on the whole batch).
        noise_level: noise standard deviation as a fraction of each image's value range.
        progress: show a tqdm progress bar over the noisy copies.
        model: when ``cam`` is ``None``, the wrapped method is built as
            ``base_method(model, target_layers, reshape_transform, **kwargs)``.
        target_layers: passed to ``base_method`` when ``cam`` is ``None``.
        reshape_transform: passed to ``base_method`` when ``cam`` is ``None``.
        base_method: the CAM class built when ``cam`` is ``None`` (GradCAM by default).
        **kwargs: passed to ``base_method`` when ``cam`` is ``None``.
    """

    default_base_method = GradCAM

    def __init__(
        self,
        cam: CAMMethod | None = None,
        nt_type: str = "smoothgrad",
        num_samples: int = 8,
        noise_level: float = 0.15,
        progress: bool = True,
        *,
        model: nn.Module | None = None,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        base_method: type[CAMMethod] | None = None,
        **kwargs: Any,
    ) -> None:
        self.nt_type = check_choice(nt_type, "nt_type", NT_TYPES)
        self.num_samples = check_positive_int(num_samples, "num_samples")
        self.noise_level = check_real(noise_level, "noise_level", 0.0)
        self.progress = check_bool(progress, "progress")
        super().__init__(model, target_layers, reshape_transform, cam if cam is not None else base_method, **kwargs)

    def explain(
        self, input_tensor: torch.Tensor, targets: Targets, *, aug_smooth: bool, eigen_smooth: bool, **options: Any
    ) -> torch.Tensor:
        cam = self.base_cam
        if targets is None:
            with torch.no_grad():
                targets = cam.default_targets(self.model(input_tensor), input_tensor.shape[0], **options)
        sigma = noise_scale(input_tensor, self.noise_level)
        total = squares = torch.zeros(())
        with progress_bar(self.num_samples, self.progress, f"NoiseTunnel({type(cam).__name__})") as bar:
            for _ in range(self.num_samples):
                noisy = input_tensor + torch.randn_like(input_tensor) * sigma
                maps = cam.compute(noisy, targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, **options)
                maps = maps.detach().float()
                total, squares = total + maps, squares + maps**2
                bar.update()
        mean, mean_of_squares = total / self.num_samples, squares / self.num_samples
        if self.nt_type == "smoothgrad":
            result = mean
        elif self.nt_type == "smoothgrad_sq":
            result = mean_of_squares
        else:
            result = (mean_of_squares - mean**2).clamp_min(0)
        return scale_cam_tensor(result)
