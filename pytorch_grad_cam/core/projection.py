"""Projection of activations on their first principal component (EigenCAM family and ``eigen_smooth``)."""

from __future__ import annotations

import torch


def centered_rows(activations: torch.Tensor) -> torch.Tensor:
    """``(B, C, *spatial)`` → ``(B, N, C)``: one row per position, each channel centred over positions."""
    rows = activations.reshape(activations.shape[0], activations.shape[1], -1).transpose(1, 2)
    return rows - rows.mean(dim=1, keepdim=True)


def project_on_first_component(activations: torch.Tensor, sign_correction: bool = False) -> torch.Tensor:
    """``X v1`` per image: the centred ``(positions × channels)`` activations ``X`` projected on their top
    right-singular vector ``v1`` (economy SVD, batched, on the activations' device).

    The sign of ``v1`` is arbitrary; ``sign_correction`` negates a map whose ``|min| > |max|`` so that the
    larger-magnitude lobe is positive (Seg-Eigen-CAM, Eq. 13).

    Returns:
        ``(B, *spatial)``.
    """
    rows = centered_rows(activations)
    _, _, vh = torch.linalg.svd(rows, full_matrices=False)
    projection = (rows @ vh[:, 0, :, None])[..., 0]
    if sign_correction:
        flat = projection.reshape(projection.shape[0], -1)
        flip = flat.min(dim=1).values.abs() > flat.max(dim=1).values.abs()
        projection = torch.where(flip[:, None], -projection, projection)
    return projection.reshape(activations.shape[0], *activations.shape[2:])
