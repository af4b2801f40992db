"""Reshape transforms: token grids with extra tokens, Swin layouts, FPN stacking (hand-computed values)."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.swin_transformer import SwinTransformer

from pytorch_grad_cam.utils.reshape_transforms import (
    fasterrcnn_reshape_transform,
    swinT_reshape_transform,
    vit_reshape_transform,
)


def _tokens(batch: int, count: int, channels: int) -> torch.Tensor:
    return torch.arange(batch * count * channels, dtype=torch.float32).reshape(batch, count, channels)


def _check_grid(out: torch.Tensor, tokens: torch.Tensor, extra: int, height: int, width: int) -> None:
    """out[b, :, i, j] must be the token at sequence position extra + i * width + j."""
    assert out.shape == (tokens.shape[0], tokens.shape[2], height, width)
    for i in range(height):
        for j in range(width):
            torch.testing.assert_close(out[:, :, i, j], tokens[:, extra + i * width + j, :], rtol=0, atol=0)


@pytest.mark.parametrize("extra", [0, 1, 2, 5])
def test_vit_infers_extra_tokens_and_square_grid(extra: int) -> None:
    tokens = _tokens(2, extra + 36, 3)
    _check_grid(vit_reshape_transform(tokens), tokens, extra, 6, 6)
    _check_grid(vit_reshape_transform(tokens, num_extra_tokens=extra), tokens, extra, 6, 6)


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (6, r"6 tokens are ambiguous \(2x2 \+ 2 extra tokens, or the 2x3 grid of a non-square input \+ 0 extra"),
        (21, r"21 tokens are ambiguous \(4x4 \+ 5 extra tokens, or the 4x5 grid of a non-square input \+ 1 extra"),
        (9, r"9 tokens are ambiguous \(3x3 \+ 0 extra tokens, 2x2 \+ 5 extra tokens\)"),
        (71, r"cannot infer a patch grid from 71 tokens"),
    ],
)
def test_vit_refuses_to_guess_a_grid(count: int, message: str) -> None:
    # 6 tokens: class + distillation token and a 2 x 2 grid, or the 2 x 3 grid of a non-square input (the probe's
    # case, which used to give the 2 x 2 reading silently); 71 = 1 + 7 x 10 (112 x 160 input, 16-pixel patches)
    with pytest.raises(ValueError, match=message):
        vit_reshape_transform(torch.randn(1, count, 8))
    assert vit_reshape_transform(torch.randn(1, 6, 8), height=2, width=3).shape == (1, 8, 2, 3)


def test_vit_reference_positional_call() -> None:
    tokens = _tokens(1, 197, 2)
    _check_grid(vit_reshape_transform(tokens, 14, 14), tokens, 1, 14, 14)
    _check_grid(vit_reshape_transform(tokens), tokens, 1, 14, 14)


def test_vit_explicit_non_square_grid() -> None:
    tokens = _tokens(2, 1 + 3 * 5, 4)  # 16 tokens: the square guess would be 4 x 4 with no extra token
    _check_grid(vit_reshape_transform(tokens, height=3, width=5), tokens, 1, 3, 5)
    _check_grid(vit_reshape_transform(tokens, 3, num_extra_tokens=1), tokens, 1, 3, 5)
    _check_grid(vit_reshape_transform(tokens, width=5), tokens, 1, 3, 5)  # extra = 16 mod 5 = 1
    _check_grid(vit_reshape_transform(tokens), tokens, 0, 4, 4)


def test_vit_bad_input() -> None:
    tokens = _tokens(1, 17, 2)
    with pytest.raises(ValueError, match="a 5x5 grid does not fit a sequence of 17 tokens"):
        vit_reshape_transform(tokens, 5, 5)
    with pytest.raises(ValueError, match="a 4x4 grid plus 2 extra tokens does not fit a sequence of 17 tokens"):
        vit_reshape_transform(tokens, 4, 4, num_extra_tokens=2)
    with pytest.raises(ValueError, match="minus num_extra_tokens=2 leave 15, not a square grid"):
        vit_reshape_transform(tokens, num_extra_tokens=2)
    with pytest.raises(ValueError, match=r"expects tokens of shape \(B, N, C\); got \(17, 2\)"):
        vit_reshape_transform(tokens[0])
    with pytest.raises(ValueError, match="height must be a positive int or None; got 0"):
        vit_reshape_transform(tokens, 0, 4)
    with pytest.raises(ValueError, match="num_extra_tokens must be an integer >= 0; got -1"):
        vit_reshape_transform(tokens, num_extra_tokens=-1)


def test_swin_token_sequence() -> None:
    tokens = _tokens(2, 49, 3)
    _check_grid(swinT_reshape_transform(tokens), tokens, 0, 7, 7)
    _check_grid(swinT_reshape_transform(tokens, 7, 7), tokens, 0, 7, 7)
    wide = _tokens(1, 16, 2)
    _check_grid(swinT_reshape_transform(wide, height=2, width=8), wide, 0, 2, 8)
    _check_grid(swinT_reshape_transform(wide, width=8), wide, 0, 2, 8)
    with pytest.raises(ValueError, match="cannot infer a square grid from 10 tokens"):
        swinT_reshape_transform(_tokens(1, 10, 2))
    with pytest.raises(ValueError, match=r"height \* width must equal the number of tokens 16; got 3 \* 3 = 9"):
        swinT_reshape_transform(wide, 3, 3)


def test_swin_channels_last_layout_from_torchvision() -> None:
    # a tiny torchvision Swin (the swin_t architecture with small sizes): stages output (B, H, W, C)
    model = SwinTransformer(
        patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=[4, 4], num_classes=3
    ).eval()
    with torch.no_grad():
        features = model.features[:2](torch.rand(1, 3, 64, 64))
    assert features.shape == (1, 16, 16, 8)
    out = swinT_reshape_transform(features)
    assert out.shape == (1, 8, 16, 16)
    torch.testing.assert_close(out[0, :, 3, 5], features[0, 3, 5, :], rtol=0, atol=0)
    with pytest.raises(ValueError, match="16x16 grid, which does not match height=7, width=7"):
        swinT_reshape_transform(features, 7, 7)


def test_fasterrcnn_stacks_abs_levels_at_pool_size() -> None:
    level0 = -torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    level1 = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4).repeat(1, 2, 1, 1)
    pool = torch.tensor([[[[-1.0, 2.0], [3.0, -4.0]]]])
    out = fasterrcnn_reshape_transform({"0": level0, "1": level1, "pool": pool})
    assert out.shape == (1, 4, 2, 2)
    # 8 -> 2 bilinear (align_corners=False) samples at source 1.5 and 5.5: means of rows/cols {1,2}, {5,6}
    expected0 = torch.tensor([[8 * 1.5 + 1.5, 8 * 1.5 + 5.5], [8 * 5.5 + 1.5, 8 * 5.5 + 5.5]])
    # 4 -> 2 samples at source 0.5 and 2.5: means of 2x2 blocks
    expected1 = torch.tensor([[4 * 0.5 + 0.5, 4 * 0.5 + 2.5], [4 * 2.5 + 0.5, 4 * 2.5 + 2.5]])
    torch.testing.assert_close(out[0, 0], expected0)
    torch.testing.assert_close(out[0, 1], expected1)
    torch.testing.assert_close(out[0, 2], expected1)
    torch.testing.assert_close(out[0, 3], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    without_pool = fasterrcnn_reshape_transform({"0": level0, "1": level1})
    assert without_pool.shape == (1, 3, 4, 4)  # the smallest level's size
    with pytest.raises(TypeError, match="expects a non-empty mapping of FPN level name"):
        fasterrcnn_reshape_transform(level0)
