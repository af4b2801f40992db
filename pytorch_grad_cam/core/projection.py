"""Projection of activations on their first principal component (EigenCAM family and ``eigen_smooth``).

The sign of a principal component is arbitrary (torch's and numpy's SVDs pick different signs on some layers);
:func:`orient` fixes it by a rule that depends only on the data:

* ``"norm"`` (the library's default): the projection correlates positively with the per-position norm of what
  was decomposed, ``‖A_n‖₂`` over the channels: the component points where the decomposed tensor is large,
  whatever the sign of its entries (gradient-weighted tensors mix signs).
* ``"energy"``: the projection correlates positively with the channel sum of what was decomposed, ``Σ_c A_c`` —
  for ``eigen_smooth`` that is the method's own map without ``eigen_smooth``. For the linear PCA this is the sign
  that makes the component's loadings sum to a positive number (``Σ_n p_n Σ_c X_nc = σ1² Σ_c v1_c``).
* ``"lobe"``: the larger-magnitude lobe is positive, ``|max| ≥ |min|`` (Seg-Eigen-CAM, Eq. 13).
* ``"raw"``: the sign the SVD returned, as the reference release (grad-cam 1.5.7).
"""

from __future__ import annotations

from typing import Literal

import torch

from pytorch_grad_cam.core.checks import check_bool, check_choice

#: How the sign of a principal component is chosen (see the module docstring).
Orientation = Literal["norm", "energy", "lobe", "raw"]
#: Every accepted :data:`Orientation`, the default first.
ORIENTATIONS: tuple[Orientation, ...] = ("norm", "energy", "lobe", "raw")
#: The orientation of the EigenCAM family and ``eigen_smooth`` when none is given (measured on the benchmark's
#: scenarios with ``benchmarks/eigen_sign.py``).
DEFAULT_ORIENTATION: Orientation = "norm"


def check_orientation(orientation: object, name: str = "orientation") -> Orientation:
    """``orientation`` when it is one of :data:`ORIENTATIONS`; ``ValueError`` naming ``name`` otherwise."""
    return check_choice(orientation, name, ORIENTATIONS)


def resolve_orientation(orientation: str | None, sign_correction: bool | None, default: Orientation) -> Orientation:
    """The orientation from the keyword ``orientation`` or the older ``sign_correction`` (at most one given).

    Args:
        orientation: one of :data:`ORIENTATIONS`, or ``None``.
        sign_correction: ``True`` → ``"lobe"``, ``False`` → ``"raw"`` (its meaning before ``orientation``
            existed), or ``None``.
        default: the orientation when neither is given.

    Raises:
        ValueError: for an unknown ``orientation``, or when both keywords are given.
        TypeError: when ``sign_correction`` is not a bool.
    """
    if sign_correction is not None:
        lobe = check_bool(sign_correction, "sign_correction")
        if orientation is not None:
            raise ValueError(
                "give orientation or sign_correction, not both; sign_correction=True is orientation='lobe' and "
                f"sign_correction=False is orientation='raw'; got orientation={orientation!r}, "
                f"sign_correction={sign_correction!r}"
            )
        return "lobe" if lobe else "raw"
    return check_orientation(default if orientation is None else orientation)


def centered_rows(activations: torch.Tensor) -> torch.Tensor:
    """``(B, C, *spatial)`` → ``(B, N, C)``: one row per position, each channel centred over positions."""
    rows = activations.reshape(activations.shape[0], activations.shape[1], -1).transpose(1, 2)
    return rows - rows.mean(dim=1, keepdim=True)


def orient(projection: torch.Tensor, decomposed: torch.Tensor, orientation: Orientation) -> torch.Tensor:
    """``projection`` with each image's sign chosen by ``orientation``.

    Args:
        projection: ``(B, *spatial)`` projections on a principal component of ``decomposed``.
        decomposed: the ``(B, C, *spatial)`` tensor whose component it is (read by ``"norm"`` and ``"energy"``).
        orientation: ``"norm"``: ``Σ_n p_n (s_n - mean s) ≥ 0`` with ``s_n = ‖decomposed_n‖₂`` over the channels;
            ``"energy"``: the same with ``s = Σ_c decomposed_c`` (for both, an exact tie falls back to
            ``"lobe"``); ``"lobe"``: ``|max p| ≥ |min p|``; ``"raw"``: unchanged.

    Returns:
        ``(B, *spatial)``: ``projection`` or its negation per image. For every orientation but ``"raw"`` the
        result does not depend on the sign of ``projection``.
    """
    orientation = check_orientation(orientation)
    if orientation == "raw":
        return projection
    flat = projection.reshape(projection.shape[0], -1)
    score = flat.max(dim=1).values.abs() - flat.min(dim=1).values.abs()
    if orientation in ("norm", "energy"):
        channels = decomposed.reshape(decomposed.shape[0], decomposed.shape[1], -1)
        reference = (channels.norm(dim=1) if orientation == "norm" else channels.sum(dim=1)).to(flat.dtype)
        agreement = (flat * (reference - reference.mean(dim=1, keepdim=True))).sum(dim=1)
        score = torch.where(agreement != 0, agreement, score)
    flip = score < 0
    return torch.where(flip.reshape(-1, *(1,) * (projection.ndim - 1)), -projection, projection)


def project_on_first_component(
    activations: torch.Tensor, orientation: Orientation | bool | None = None, *, sign_correction: bool | None = None
) -> torch.Tensor:
    """``X v1`` per image: the centred ``(positions × channels)`` activations ``X`` projected on their top
    right-singular vector ``v1`` (economy SVD, batched, on the activations' device).

    Args:
        activations: ``(B, C, *spatial)``.
        orientation: how the arbitrary sign of ``v1`` is chosen (:func:`orient`): ``"raw"`` (``None``, the default
            of this function: the SVD's own sign, as the reference's ``get_2d_projection``), ``"norm"``,
            ``"energy"`` or ``"lobe"``; ``True`` / ``False`` mean ``"lobe"`` / ``"raw"``.
        sign_correction: the former keyword: ``True`` → ``"lobe"``, ``False`` → ``"raw"`` (not with
            ``orientation``).

    Returns:
        ``(B, *spatial)``.

    Raises:
        ValueError: for an unknown ``orientation`` or both keywords given.
    """
    if isinstance(orientation, bool):
        orientation = "lobe" if orientation else "raw"
    chosen = resolve_orientation(orientation, sign_correction, "raw")
    rows = centered_rows(activations)
    _, _, vh = torch.linalg.svd(rows, full_matrices=False)
    projection = (rows @ vh[:, 0, :, None])[..., 0]
    projection = projection.reshape(activations.shape[0], *activations.shape[2:])
    return orient(projection, activations, chosen)
