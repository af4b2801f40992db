"""Reshape transforms: turn transformer / detector activations into ``(B, C, H, W)`` CNN-like maps.

Pass one as ``reshape_transform=`` to a CAM; it is applied to the target layers' activations and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from pytorch_grad_cam.core.checks import check_int, check_positive_int

#: The numbers of leading extra tokens ``vit_reshape_transform`` considers when it is given no size: none
#: (average-pooled ViTs), a class token, class + distillation token (DeiT), 4 register tokens, class + 4
#: registers (``*_reg4`` models). Pass ``num_extra_tokens`` (timm: ``model.num_prefix_tokens``) for others.
USUAL_EXTRA_TOKENS = (0, 1, 2, 4, 5)


def _check_tokens(tensor: torch.Tensor, name: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor of tokens (B, N, C); got {type(tensor).__name__}")


def _square_side(count: int) -> int | None:
    """``s`` with ``s * s == count``, or None."""
    if count < 1:
        return None
    side = math.isqrt(count)
    return side if side * side == count else None


def _near_square_reading(tokens: int, extra: int) -> tuple[int, int] | None:
    """A reading of ``tokens`` as fewer than ``extra`` usual extra tokens and an ``h × (h + 1)`` grid (the grid of an
    input one patch wider than tall), as ``(h, its extra tokens)``; ``None`` if there is none."""
    for k in USUAL_EXTRA_TOKENS:
        if k >= extra:
            break
        rows = (math.isqrt(4 * (tokens - k) + 1) - 1) // 2
        if rows > 1 and rows * (rows + 1) == tokens - k:
            return rows, k
    return None


def fasterrcnn_reshape_transform(x: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Stack the maps of a feature pyramid (torchvision FPN output) into one ``(B, ΣC, h, w)`` tensor.

    Every level is ``|level|``, bilinearly resized (``align_corners=False``) to the size of the ``"pool"``
    level (the smallest map when there is no ``"pool"`` entry), and the levels are concatenated on the
    channel axis in the mapping's order.

    Args:
        x: mapping of level name → ``(B, C, H_l, W_l)`` tensor, e.g. ``model.backbone(images)``.

    Returns:
        ``(B, ΣC, h, w)`` tensor.
    """
    if not isinstance(x, Mapping) or len(x) == 0:
        raise TypeError(
            "fasterrcnn_reshape_transform expects a non-empty mapping of FPN level name -> (B, C, H, W) "
            f"tensor; got {type(x).__name__}"
        )
    for key, value in x.items():
        if not isinstance(value, torch.Tensor) or value.ndim != 4:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"FPN level {key!r} must be a (B, C, H, W) tensor; got {got}")
    if "pool" in x:
        size = tuple(x["pool"].shape[-2:])
    else:
        size = min((tuple(value.shape[-2:]) for value in x.values()), key=lambda hw: hw[0] * hw[1])
    levels = [F.interpolate(value.abs(), size=size, mode="bilinear", align_corners=False) for value in x.values()]
    return torch.cat(levels, dim=1)


def _swin_other_side(tokens: int, given: int) -> int:
    """The other side of a ``tokens``-token grid with one side ``given``; ``ValueError`` if it does not divide."""
    if tokens % given:
        raise ValueError(f"{tokens} tokens do not form a grid with a side of {given}; pass height and width")
    return tokens // given


def swinT_reshape_transform(tensor: torch.Tensor, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """Swin Transformer activations → ``(B, C, H, W)``.

    Accepts the ``(B, H, W, C)`` layout of torchvision's ``swin_t`` stages (channels moved first) and
    ``(B, N, C)`` token sequences (timm), reshaped to an ``height × width`` grid. When ``height`` and
    ``width`` are not given the grid is square (``N`` must be a perfect square); when one is given the
    other is ``N / given``. The reference's 7 × 7 default is what a square grid of 49 tokens gives.

    Args:
        tensor: ``(B, H, W, C)`` or ``(B, N, C)`` activations.
        height: grid height, optional.
        width: grid width, optional.

    Returns:
        ``(B, C, H, W)`` tensor (a view where possible).
    """
    _check_tokens(tensor, "swinT_reshape_transform")
    height = check_positive_int(height, "height", allow_none=True)
    width = check_positive_int(width, "width", allow_none=True)
    if tensor.ndim == 4:
        grid = tuple(tensor.shape[1:3])
        if (height is not None and height != grid[0]) or (width is not None and width != grid[1]):
            raise ValueError(
                f"swinT_reshape_transform got a (B, H, W, C) tensor with a {grid[0]}x{grid[1]} grid, which "
                f"does not match height={height}, width={width}"
            )
        return tensor.permute(0, 3, 1, 2)
    if tensor.ndim != 3:
        raise ValueError(
            f"swinT_reshape_transform expects (B, H, W, C) or (B, N, C) activations; got {tuple(tensor.shape)}"
        )
    tokens = tensor.shape[1]
    if height is not None:
        if width is None:
            width = _swin_other_side(tokens, height)
    elif width is not None:
        height = _swin_other_side(tokens, width)
    else:
        side = _square_side(tokens)
        if side is None:
            raise ValueError(
                f"swinT_reshape_transform cannot infer a square grid from {tokens} tokens; pass height and width"
            )
        height = width = side
    if height * width != tokens:
        raise ValueError(
            f"swinT_reshape_transform: height * width must equal the number of tokens {tokens}; "
            f"got {height} * {width} = {height * width}"
        )
    return tensor.reshape(tensor.shape[0], height, width, tensor.shape[2]).permute(0, 3, 1, 2)


def vit_reshape_transform(
    tensor: torch.Tensor, height: int | None = None, width: int | None = None, num_extra_tokens: int | None = None
) -> torch.Tensor:
    """Vision Transformer tokens ``(B, N, C)`` → ``(B, C, height, width)``, dropping the leading extra tokens.

    Extra tokens (class token, distillation token, register tokens) come first in the sequence; the rest
    is the patch grid in row-major order. How the grid is found:

    - ``height`` and ``width`` given: ``num_extra_tokens = N - height * width``;
    - one of them given: the other is ``(N - extra) / given`` where ``extra`` is ``num_extra_tokens`` if
      given, else the smallest count that makes the division exact (``N mod given``);
    - ``num_extra_tokens`` given only: the remaining ``N - extra`` tokens must form a square grid;
    - nothing given: the grid is square and ``extra`` one of the usual counts :data:`USUAL_EXTRA_TOKENS`
      (0, 1 class token, 2 with DeiT's distillation token, 4 registers, 5 = class + 4 registers): 197 tokens
      → 1 + 14 × 14; 198 → 2 + 14 × 14; 261 → 5 + 16 × 16. When no usual count leaves a square (a non-square
      input: 71 tokens of a 112 × 160 image with 16-pixel patches), or several do (9 tokens: 3 × 3, or
      2 × 2 plus class + 4 registers), or fewer extra tokens leave the ``h × (h + 1)`` grid of a non-square
      input (6 tokens: 2 × 2 plus class + distillation token, or a 2 × 3 grid), it raises ``ValueError`` instead
      of guessing: pass the sizes.

    The token count alone cannot tell a non-square grid; a CAM built without ``target_layers`` and
    ``reshape_transform`` reads the grid from the input's height and width instead (any size, any count of
    extra tokens). Positional order matches the reference, so ``vit_reshape_transform(t, 14, 14)`` still works.

    Args:
        tensor: ``(B, N, C)`` token activations.
        height: patch-grid height, optional.
        width: patch-grid width, optional.
        num_extra_tokens: number of leading non-patch tokens, optional.

    Returns:
        ``(B, C, height, width)`` tensor.

    Raises:
        ValueError: the arguments are inconsistent with ``N``, or no grid or several grids can be inferred.
    """
    _check_tokens(tensor, "vit_reshape_transform")
    if tensor.ndim != 3:
        raise ValueError(f"vit_reshape_transform expects tokens of shape (B, N, C); got {tuple(tensor.shape)}")
    height = check_positive_int(height, "height", allow_none=True)
    width = check_positive_int(width, "width", allow_none=True)
    if num_extra_tokens is not None:
        num_extra_tokens = check_int(num_extra_tokens, "num_extra_tokens", minimum=0)
    tokens = tensor.shape[1]
    extra = num_extra_tokens
    if height is not None and width is not None:
        if extra is None:
            extra = tokens - height * width
        if extra < 0 or extra + height * width != tokens:
            raise ValueError(
                f"vit_reshape_transform: a {height}x{width} grid"
                + (f" plus {num_extra_tokens} extra tokens" if num_extra_tokens is not None else "")
                + f" does not fit a sequence of {tokens} tokens"
            )
    elif (given := height if height is not None else width) is not None:
        if extra is None:
            extra = tokens % given
        if tokens - extra < given or (tokens - extra) % given:
            raise ValueError(
                f"vit_reshape_transform: {tokens} tokens minus {extra} extra tokens do not form a grid with a "
                f"side of {given}; pass both height and width"
            )
        other = (tokens - extra) // given
        height, width = (given, other) if height is not None else (other, given)
    elif extra is not None:
        side = _square_side(tokens - extra)
        if side is None:
            raise ValueError(
                f"vit_reshape_transform: {tokens} tokens minus num_extra_tokens={extra} leave {tokens - extra}, "
                "not a square grid; pass height and width"
            )
        height = width = side
    else:
        found = [(k, side) for k in USUAL_EXTRA_TOKENS if (side := _square_side(tokens - k)) is not None and side > 1]
        hint = (
            "pass the patch grid's size, e.g. reshape_transform=lambda t: vit_reshape_transform(t, height=..., "
            "width=...) (input size / patch size), or num_extra_tokens= (timm: model.num_prefix_tokens); or leave "
            "target_layers and reshape_transform out, and the CAM reads the grid from the input's size"
        )
        if not found:
            raise ValueError(
                f"vit_reshape_transform cannot infer a patch grid from {tokens} tokens: no usual number of extra "
                f"tokens {USUAL_EXTRA_TOKENS} leaves a square grid (a non-square input?); {hint}"
            )
        if len(found) > 1:
            options = ", ".join(f"{side}x{side} + {k} extra token{'s' if k != 1 else ''}" for k, side in found)
            raise ValueError(f"vit_reshape_transform: {tokens} tokens are ambiguous ({options}); {hint}")
        extra, height = found[0]
        near = _near_square_reading(tokens, extra)
        if near is not None:
            rows, k = near
            raise ValueError(
                f"vit_reshape_transform: {tokens} tokens are ambiguous ({height}x{height} + {extra} extra tokens, or "
                f"the {rows}x{rows + 1} grid of a non-square input + {k} extra token{'s' if k != 1 else ''}); {hint}"
            )
        width = height
    patches = tensor[:, extra:, :]
    return patches.reshape(tensor.shape[0], height, width, tensor.shape[2]).permute(0, 3, 1, 2)
