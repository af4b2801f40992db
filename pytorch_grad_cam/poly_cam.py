"""Poly-CAM."""

from __future__ import annotations

from pytorch_grad_cam.core.combine import coarse_to_fine
from pytorch_grad_cam.score_cam import ScoreCAM


class PolyCAM(ScoreCAM):
    """Poly-CAM — Englebert et al. 2022, "Poly-CAM: High resolution class activation map for convolutional
    neural networks", https://arxiv.org/abs/2204.13359

    A high-resolution map from several layers: each layer ``l`` gives a gradient-free, Score-CAM-weighted
    map ``S_l = ReLU(Σ_c w_c A_c)`` (``w_c = softmax_c y(x ⊙ norm(up(A_c)))``, the paper's insertion-score
    variant PCAM+), and the maps are combined from the coarsest to the finest,
    ``M_coarsest = S_coarsest``,  ``M_l = up(M_{l+1}) ⊙ S_l / (avg_k(S_l) + ε)``, where ``avg_k`` is the local
    mean over a ``k × k`` window, ``k`` the smallest odd size ``≥`` the resolution ratio of the two layers:
    the coarse map says *which region* matters, the finer layer *where inside it*. The finest ``M`` is scaled
    and resized to the input: the layers are combined by :func:`~pytorch_grad_cam.core.combine.coarse_to_fine`
    instead of the mean of :class:`BaseCAM`.

    Pass the layers in any order (they are sorted by resolution), e.g.
    ``[model.layer1[-1], model.layer2[-1], model.layer3[-1], model.layer4[-1]]``. With a single layer it is
    Score-CAM. 2-D inputs only. Arguments as :class:`ScoreCAM` (``batch_size``, ``progress``).
    """

    input_ndims = (4,)
    layer_combiner = staticmethod(coarse_to_fine)
