"""open_clip: CLIP ViT-B-32 with random weights (``pretrained=None``, never a download), explained without a
wrapper: ``model(image)`` returns ``(image_features, None, logit_scale)`` and the target reads it.

The input is 96 × 96 (``force_image_size``: a 3 × 3 patch grid) to keep an 88M-parameter model cheap on a CPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.core.outputs import output_for_image, target_scores
from pytorch_grad_cam.utils.model_targets import ImageTextSimilarityTarget, SimilarityToConceptTarget

open_clip = pytest.importorskip(
    "open_clip", reason="the open_clip integration tests need open-clip-torch (pip install '.[integrations]')"
)

pytestmark = pytest.mark.usefixtures("one_thread")  # one thread is faster on a shared CPU

SIZE = 96
#: Compared with and without target_layers. Left out: ScoreCAM, whose 768 channels are 768 forward passes
#: of the whole 88M-parameter model (minutes on a CPU).
LAYER_METHODS = [pgc.GradCAM, pgc.GradCAMPlusPlus, pgc.HiResCAM, pgc.LayerCAM, pgc.EigenCAM, pgc.AblationCAM]


def grid_3x3(tokens: torch.Tensor) -> torch.Tensor:
    """The reshape a user writes: drop the class token, lay the 9 patches on their 3 × 3 grid."""
    return tokens[:, 1:, :].reshape(tokens.shape[0], 3, 3, tokens.shape[2]).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def clip() -> Iterator[nn.Module]:
    torch.manual_seed(0)
    logging.disable(logging.WARNING)  # "No pretrained weights loaded": intended
    try:
        model = open_clip.create_model("ViT-B-32", pretrained=None, force_image_size=SIZE)
    finally:
        logging.disable(logging.NOTSET)
    yield model.eval()


@pytest.fixture(scope="module")
def text_features() -> torch.Tensor:
    """Three prompts' embeddings; random (a tokenizer would need a download), as encode_text returns them."""
    return torch.randn(3, 512, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def check_maps(cam: np.ndarray, batch: int) -> None:
    assert cam.shape == (batch, SIZE, SIZE) and cam.dtype == np.float32
    assert np.isfinite(cam).all() and cam.min() >= 0.0 and cam.max() <= 1.0
    assert (cam.max(axis=(1, 2)) > 0.5).all()


def options(method: type) -> dict[str, Any]:
    # AblationCAM: every one of the 768 channels, on the fast path (the model cut at the layer: open_clip's
    # forward(image, text=None) is traced with text=None, as a call with the image alone runs it).
    return {"batch_size": 256, "progress": False} if method is pgc.AblationCAM else {}


def test_output_structure(clip: nn.Module, image: torch.Tensor) -> None:
    """open_clip 3.x: (image_features, text_features or None, exp(logit_scale)), the features normalised."""
    with torch.no_grad():
        features, text, scale = clip(image.repeat(2, 1, 1, 1))
    assert features.shape == (2, 512) and text is None and scale.ndim == 0
    np.testing.assert_allclose(features.norm(dim=-1).numpy(), [1.0, 1.0], rtol=1e-5)
    part = output_for_image((features, text, scale), 1, 2)
    assert torch.equal(part[0], features[1]) and part[1] is None and part[2] is scale


@pytest.mark.parametrize("method", LAYER_METHODS, ids=lambda method: method.__name__)
def test_layers_chosen_automatically(
    clip: nn.Module, image: torch.Tensor, text_features: torch.Tensor, method: type
) -> None:
    """No wrapper and no target_layers: the input of the last attention, as a user would name it."""
    targets = [ImageTextSimilarityTarget(text_features, 1)]
    cam = method(clip, **options(method))
    automatic = cam(image, targets)
    layer = clip.visual.transformer.resblocks[-1].ln_1
    assert cam.target_layers == [layer]
    assert getattr(cam, "fast_path_used", [True]) == [True]
    check_maps(automatic, 1)
    by_hand = method(clip, [layer], reshape_transform=grid_3x3, **options(method))(image, targets)
    np.testing.assert_allclose(automatic, by_hand, atol=1e-5)


def test_fullgrad(clip: nn.Module, image: torch.Tensor, text_features: torch.Tensor) -> None:
    check_maps(pgc.FullGrad(clip)(image, [ImageTextSimilarityTarget(text_features, 0)]), 1)


def test_batch_of_two_splits_the_output_by_image(
    clip: nn.Module, image: torch.Tensor, text_features: torch.Tensor
) -> None:
    """The 0-d logit_scale passes whole to each image's target: a batch gives each image's own map."""
    second = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    targets = [ImageTextSimilarityTarget(text_features, 0), ImageTextSimilarityTarget(text_features, 2)]
    cam = pgc.GradCAM(clip)
    both = cam(torch.cat([image, second]), targets)
    check_maps(both, 2)
    np.testing.assert_allclose(both[0], cam(image, targets[:1])[0], atol=1e-5)
    np.testing.assert_allclose(both[1], cam(second, targets[1:])[0], atol=1e-5)


def test_targets_read_the_image_features(clip: nn.Module, image: torch.Tensor, text_features: torch.Tensor) -> None:
    """The cosine to each prompt as CLIP computes it; the zero-shot softmax with the model's own logit scale;
    the reference's SimilarityToConceptTarget on the same output."""
    with torch.no_grad():
        output = clip(image)
        features = clip.encode_image(image, normalize=True)
    texts = text_features / text_features.norm(dim=-1, keepdim=True)
    cosines = (features @ texts.T)[0]
    for index in range(3):
        score = target_scores([ImageTextSimilarityTarget(text_features, index)], output)
        assert score.item() == pytest.approx(cosines[index].item(), abs=1e-5)
    scale = clip.logit_scale.exp().item()
    assert scale == pytest.approx(1 / 0.07, rel=1e-4)  # open_clip's initial temperature
    zero_shot = target_scores([ImageTextSimilarityTarget(text_features, 2, softmax=True)], output)
    assert zero_shot.item() == pytest.approx(torch.softmax(scale * cosines, dim=0)[2].item(), rel=1e-5)
    concept = target_scores([SimilarityToConceptTarget(text_features[1])], output)
    assert concept.item() == pytest.approx(cosines[1].item(), abs=1e-5)
    assert not math.isclose(cosines[0].item(), cosines[1].item())


def test_targets_none_hint(clip: nn.Module, image: torch.Tensor) -> None:
    message = (
        r"returned a tuple of \(1, 512\), NoneType, \(\); pass targets explicitly, e.g. "
        r"ImageTextSimilarityTarget\(text_features\)"
    )
    with pytest.raises(ValueError, match=message):
        pgc.GradCAM(clip)(image)
