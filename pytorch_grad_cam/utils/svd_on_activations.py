"""Projections of activations on their first principal component (EigenCAM family, ``eigen_smooth``).

All functions accept a numpy array or a torch tensor of shape ``(B, C, *spatial)`` and return the same kind
(numpy arrays as ``np.float32``), of shape ``(B, *spatial)``. The caller's array is never modified.

These are the reference release's functions and keep its behaviour: the SVD's / kernel PCA's own sign
(``orientation="raw"``). The CAM classes orient the component by default (``orientation="norm"``, see
:func:`pytorch_grad_cam.core.projection.orient`).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from pytorch_grad_cam.core.checks import as_tensor
from pytorch_grad_cam.core.projection import centered_rows, project_on_first_component

__all__ = [
    "get_2d_projection",
    "get_2d_projection_kernel",
    "get_2d_projection_with_sign_correction",
    "project_on_first_component",
]

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


def _checked(activation_batch: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    activation_batch = as_tensor(activation_batch, name)
    if activation_batch.ndim < 3:
        raise ValueError(f"{name} must have shape (B, C, *spatial); got {tuple(activation_batch.shape)}")
    activation_batch = activation_batch.float()
    return torch.where(torch.isnan(activation_batch), torch.zeros_like(activation_batch), activation_batch)


def _like(result: torch.Tensor, original: ArrayOrTensor) -> ArrayOrTensor:
    if isinstance(original, np.ndarray):
        return result.detach().cpu().numpy().astype(np.float32)
    return result


def get_2d_projection(activation_batch: ArrayOrTensor) -> ArrayOrTensor:
    """Project every position's channel vector on the first right-singular vector of the centred activations.

    For each image, ``X`` (positions × channels) is centred per channel and ``map = X v1`` where ``v1`` is
    the top right-singular vector of ``X`` (Eigen-CAM, Muhammad & Yeasin 2020,
    https://arxiv.org/abs/2008.00299). The sign of ``v1`` is arbitrary, as in the reference. NaNs count as 0.
    """
    tensor = _checked(activation_batch, "activation_batch")
    return _like(project_on_first_component(tensor), activation_batch)


def get_2d_projection_with_sign_correction(activation_batch: ArrayOrTensor) -> ArrayOrTensor:
    """:func:`get_2d_projection`, with the sign chosen so the larger-magnitude lobe is positive.

    The map is negated when ``|min| > |max|`` (Seg-Eigen-CAM, Chung & Ying 2025, Eq. 13,
    https://doi.org/10.3390/app15137562), so that after the ReLU the map follows the salient region.
    """
    tensor = _checked(activation_batch, "activation_batch")
    return _like(project_on_first_component(tensor, orientation="lobe"), activation_batch)


def get_2d_projection_kernel(
    activation_batch: ArrayOrTensor, kernel: str = "sigmoid", gamma: float | None = None
) -> ArrayOrTensor:
    """Kernel-PCA variant of :func:`get_2d_projection` (KPCA-CAM, Karmani et al. 2024,
    https://arxiv.org/abs/2410.00267): the first kernel principal component of the centred positions.

    Computed with scikit-learn's ``KernelPCA`` on the host, in float32 as the reference does.
    """
    from sklearn.decomposition import KernelPCA

    tensor = _checked(activation_batch, "activation_batch")
    rows = centered_rows(tensor).detach().cpu().numpy()
    projections = [
        KernelPCA(n_components=1, kernel=kernel, gamma=gamma).fit_transform(image_rows)[:, 0] for image_rows in rows
    ]
    result = torch.from_numpy(np.asarray(projections, dtype=np.float32)).reshape(tensor.shape[0], *tensor.shape[2:])
    return _like(result.to(tensor.device), activation_batch)
