"""Poly-CAM."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pytorch_grad_cam.base_cam import Target
from pytorch_grad_cam.score_cam import ScoreCAM
from pytorch_grad_cam.utils.image import scale_cam_tensor


class PolyCAM(ScoreCAM):
    """Poly-CAM — Englebert et al. 2022, "Poly-CAM: High resolution class activation map for convolutional
    neural networks", https://arxiv.org/abs/2204.13359

    A high-resolution map from several layers: each layer ``l`` gives a gradient-free, Score-CAM-weighted
    map ``S_l = ReLU(Σ_c w_c A_c)`` (``w_c = softmax_c y(x ⊙ norm(up(A_c)))``, the paper's insertion-score
    variant PCAM+), and the maps are combined from the coarsest to the finest,
    ``M_coarsest = S_coarsest``,  ``M_l = up(M_{l+1}) ⊙ S_l / (avg_k(S_l) + ε)``, where ``avg_k`` is the local
    mean over a ``k × k`` window, ``k`` the smallest odd size ``≥`` the resolution ratio of the two layers:
    the coarse map says *which region* matters, the finer layer *where inside it*. The finest ``M`` is scaled
    and resized to the input (so the per-layer mean of :class:`BaseCAM` does not apply).

    Pass the layers in any order (they are sorted by resolution), e.g.
    ``[model.layer1[-1], model.layer2[-1], model.layer3[-1], model.layer4[-1]]``. With a single layer it is
    Score-CAM. 2-D inputs only. Arguments as :class:`ScoreCAM` (``batch_size``, ``progress``).
    """

    def compute_cam_per_layer(
        self, input_tensor: torch.Tensor, targets: list[Target], eigen_smooth: bool
    ) -> list[torch.Tensor]:
        if input_tensor.ndim != 4:
            raise ValueError(f"PolyCAM needs 2-D inputs (B, C, H, W); got shape {tuple(input_tensor.shape)}")
        record = self.activations_and_grads
        maps = []
        for index, layer in enumerate(self.target_layers):
            activations = record.activations[index]
            if activations.ndim != 4:
                raise ValueError(
                    f"target_layers[{index}] gives activations of shape {tuple(activations.shape)}; PolyCAM needs "
                    "(B, C, h, w) maps: pass a reshape_transform or pick another layer"
                )
            cam = self.get_cam_image(input_tensor, layer, targets, activations.float(), None, eigen_smooth)
            maps.append(torch.as_tensor(cam, device=activations.device).float().clamp_min(0))
        maps.sort(key=lambda cam: cam.shape[-2] * cam.shape[-1])
        combined = maps[0]
        for fine in maps[1:]:
            ratio = max(fine.shape[-2] / combined.shape[-2], fine.shape[-1] / combined.shape[-1])
            kernel = 2 * (int(ratio) // 2) + 1
            local = F.avg_pool2d(fine[:, None], kernel, stride=1, padding=kernel // 2, count_include_pad=False)
            coarse = F.interpolate(combined[:, None], size=fine.shape[-2:], mode="bilinear", align_corners=False)
            combined = (coarse * fine[:, None] / (local + 1e-8))[:, 0]
        return [scale_cam_tensor(combined, self.get_target_width_height(input_tensor))[:, None]]
