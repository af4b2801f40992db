"""Hugging Face transformers models, built from small configs with random weights (never a download).

Classifiers (ViT, Swin, ConvNeXt, CLIP's vision tower) run every method with ``target_layers`` omitted, and the
maps equal those with the layer and reshape a user would name by hand. SegFormer and DETR name their layer by
hand and check what their targets explain: the logits under a mask, the matched query's box and class score.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.core.outputs import output_for_image, target_scores
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputReST,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    DetrBoxScoreTarget,
    ImageTextSimilarityTarget,
    RawScoresOutputTarget,
    SemanticSegmentationTarget,
    SimilarityToConceptTarget,
    SoftmaxOutputTarget,
)

transformers = pytest.importorskip(
    "transformers", reason="the Hugging Face integration tests need transformers (pip install '.[integrations]')"
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add overhead

SIZE = 64
#: The layer-based methods compared with and without target_layers; FullGrad uses every bias layer instead.
LAYER_METHODS = [
    pgc.GradCAM,
    pgc.GradCAMPlusPlus,
    pgc.HiResCAM,
    pgc.LayerCAM,
    pgc.EigenCAM,
    pgc.ScoreCAM,
    pgc.AblationCAM,
]
PERTURBATION = {pgc.ScoreCAM, pgc.AblationCAM}


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> Iterator[None]:
    """transformers' own deprecation warnings are not what these tests look at."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def tokens_to_grid(side: int, extra: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The reshape a user writes for a ViT: drop ``extra`` leading tokens, lay the rest on a side × side grid."""

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        grid = tokens[:, extra:, :].reshape(tokens.shape[0], side, side, tokens.shape[2])
        return grid.permute(0, 3, 1, 2)

    return reshape


def attribute(model: nn.Module, *paths: str) -> nn.Module:
    """The first of ``paths`` (dotted, with ``[-1]`` indices) that ``model`` has: module names moved between
    transformers 4.x and 5.x (``vit.encoder.layer`` → ``vit.layers``)."""
    for path in paths:
        module: Any = model
        try:
            for part in path.split("."):
                name, _, index = part.partition("[")
                module = getattr(module, name)
                if index:
                    module = module[int(index.rstrip("]"))]
        except AttributeError:
            continue
        return module
    raise AttributeError(f"{type(model).__name__} has none of {paths}")


def check_maps(cam: np.ndarray, batch: int, size: int = SIZE) -> None:
    """Finite float32 maps of the input's size, scaled to [0, 1] and not blank."""
    assert cam.shape == (batch, size, size) and cam.dtype == np.float32
    assert np.isfinite(cam).all()
    assert cam.min() >= 0.0 and cam.max() <= 1.0
    assert (cam.max(axis=(1, 2)) > 0.5).all()


def options(method: type) -> dict[str, Any]:
    return {"batch_size": 64, "progress": False} if method in PERTURBATION else {}


@dataclass
class Case:
    """A model with its input, the layer and reshape a user would name by hand, and the targets to explain."""

    model: nn.Module
    x: torch.Tensor
    layer: nn.Module
    reshape: Callable[[torch.Tensor], torch.Tensor] | None
    targets: list[Any] | None


def _seeded_input(batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, SIZE, SIZE, generator=generator)


@pytest.fixture(scope="module")
def vit() -> Case:
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=SIZE,
        patch_size=16,
        num_labels=5,
    )
    model = transformers.ViTForImageClassification(config).eval()
    layer = attribute(model, "vit.layers[-1].layernorm_before", "vit.encoder.layer[-1].layernorm_before")
    return Case(model, _seeded_input(), layer, tokens_to_grid(4, 1), None)


@pytest.fixture(scope="module")
def swin() -> Case:
    torch.manual_seed(0)
    config = transformers.SwinConfig(
        image_size=SIZE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4, num_labels=5
    )
    model = transformers.SwinForImageClassification(config).eval()
    layer = model.swin.encoder.layers[-1].blocks[-1].layernorm_before
    return Case(model, _seeded_input(), layer, tokens_to_grid(8, 0), None)


@pytest.fixture(scope="module")
def convnext() -> Case:
    torch.manual_seed(0)
    config = transformers.ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_labels=5)
    model = transformers.ConvNextForImageClassification(config).eval()
    return Case(model, _seeded_input(), model.convnext.encoder.stages[-1].layers[-1], None, None)


@pytest.fixture(scope="module")
def clip_vision() -> Case:
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=SIZE,
        patch_size=16,
        projection_dim=32,
    )
    model = transformers.CLIPVisionModelWithProjection(config).eval()
    text_features = torch.randn(3, 32, generator=torch.Generator().manual_seed(2))  # e.g. get_text_features(...)
    targets = [ImageTextSimilarityTarget(text_features, 1), ImageTextSimilarityTarget(text_features, 2)]
    return Case(
        model, _seeded_input(), model.vision_model.encoder.layers[-1].layer_norm1, tokens_to_grid(4, 1), targets
    )


CLASSIFIERS = ["vit", "swin", "convnext", "clip_vision"]


# -------------------------------------------------------------------------------------- classifiers
@pytest.mark.parametrize("method", LAYER_METHODS, ids=lambda method: method.__name__)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_layers_chosen_automatically(name: str, method: type, request: pytest.FixtureRequest) -> None:
    """``target_layers`` omitted: the layer a user would name, and the same maps as when they name it."""
    case: Case = request.getfixturevalue(name)
    cam = method(case.model, **options(method))
    automatic = cam(case.x, case.targets)
    assert cam.target_layers == [case.layer]
    check_maps(automatic, len(case.x))
    by_hand = method(case.model, [case.layer], reshape_transform=case.reshape, **options(method))(case.x, case.targets)
    np.testing.assert_allclose(automatic, by_hand, atol=1e-5)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_fullgrad(name: str, request: pytest.FixtureRequest) -> None:
    """FullGrad needs no target layer (it uses every bias layer); transformers' linear layers included."""
    case: Case = request.getfixturevalue(name)
    check_maps(pgc.FullGrad(case.model)(case.x, case.targets), len(case.x))
    # CLIP's patch embedding has no bias: nothing tells FullGrad whether its 17 tokens are 1 + 4 × 4 or
    # 13 + 2 × 2, so the user names the grid with the reshape (FullGrad raises AmbiguousGridError otherwise)
    reshape = case.reshape if name == "clip_vision" else None
    full = pgc.FullGrad(case.model, reshape_transform=reshape, all_bias_layers=True)(case.x, case.targets)
    check_maps(full, len(case.x))


def test_vit_targets_on_model_output_logits(vit: Case) -> None:
    """Every classifier target reads the ``logits`` of a ``ModelOutput`` as it reads a logits tensor: the
    same scores and the same maps as on a model that returns the logits tensor itself."""

    class LogitsOnly(nn.Module):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x).logits

    plain = LogitsOnly(vit.model).eval()
    with torch.no_grad():
        output = vit.model(vit.x)
    assert type(output).__name__ == "ImageClassifierOutput"
    assert torch.equal(output_for_image(output, 1, 2)["logits"], output.logits[1])
    for targets in (
        [ClassifierOutputTarget(1), ClassifierOutputTarget(3)],
        [ClassifierOutputSoftmaxTarget(4), ClassifierOutputSoftmaxTarget(0)],
        [ClassifierOutputReST(2), ClassifierOutputReST(2)],
        [BinaryClassifierOutputTarget(1), BinaryClassifierOutputTarget(0)],
        [SoftmaxOutputTarget(), RawScoresOutputTarget()],
    ):
        np.testing.assert_allclose(
            target_scores(targets, output).numpy(), target_scores(targets, output.logits).numpy()
        )
        on_output = pgc.GradCAM(vit.model, [vit.layer], reshape_transform=vit.reshape)(vit.x, targets)
        on_logits = pgc.GradCAM(plain, [vit.layer], reshape_transform=vit.reshape)(vit.x, targets)
        np.testing.assert_allclose(on_output, on_logits, atol=1e-6)


def test_vit_targets_none_explains_the_top_class(vit: Case) -> None:
    with torch.no_grad():
        top = vit.model(vit.x).logits.argmax(dim=-1).tolist()
    cam = pgc.GradCAM(vit.model)
    default = cam(vit.x)
    np.testing.assert_allclose(default, cam(vit.x, [ClassifierOutputTarget(c) for c in top]), atol=1e-6)
    assert type(cam.outputs).__name__ == "ImageClassifierOutput"


def test_clip_vision_image_text_similarity(clip_vision: Case) -> None:
    """The target reads ``image_embeds`` and normalises as CLIP does; the softmax variant gives zero-shot
    probabilities; SimilarityToConceptTarget (the reference's target) reads the same embedding."""
    with torch.no_grad():
        output = clip_vision.model(clip_vision.x)
    assert clip_vision.targets is not None
    text_features = clip_vision.targets[0].text_features
    image = output.image_embeds / output.image_embeds.norm(dim=-1, keepdim=True)
    texts = text_features / text_features.norm(dim=-1, keepdim=True)
    cosines = image @ texts.T  # (B, T), as CLIPModel's logits_per_image / logit_scale
    np.testing.assert_allclose(
        target_scores(clip_vision.targets, output).numpy(), [cosines[0, 1], cosines[1, 2]], atol=1e-6
    )
    zero_shot = [ImageTextSimilarityTarget(text_features, 0, softmax=True)] * 2
    expected = torch.softmax(100 * cosines, dim=-1)[:, 0]
    np.testing.assert_allclose(target_scores(zero_shot, output).numpy(), expected.numpy(), rtol=1e-5)
    concept = [SimilarityToConceptTarget(text_features[1])] * 2
    np.testing.assert_allclose(target_scores(concept, output).numpy(), cosines[:, 1].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"pass targets explicitly, e.g. ImageTextSimilarityTarget\(text_features\)"):
        pgc.GradCAM(clip_vision.model)(clip_vision.x)


# ---------------------------------------------------------------------------------------- SegFormer
@pytest.fixture(scope="module")
def segformer() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[16, 32],
        num_attention_heads=[1, 2],
        decoder_hidden_size=32,
        num_labels=3,
        patch_sizes=[7, 3],
        strides=[4, 2],
        mlp_ratios=[2, 2],
    )
    return transformers.SegformerForSemanticSegmentation(config).eval()


def _input_mask() -> np.ndarray:
    """A mask drawn at the input's size, on whole 4 × 4 blocks: rows 4..9, columns 2..11 of the logits."""
    mask = np.zeros((SIZE, SIZE), dtype=np.float32)
    mask[16:40, 8:48] = 1
    return mask


def test_segformer_target_sums_the_logits_under_the_mask(segformer: nn.Module) -> None:
    """SegFormer's logits are at a quarter of the input's size: an input-size mask is resized to them."""
    x = _seeded_input()
    with torch.no_grad():
        logits = segformer(x).logits
    assert logits.shape == (2, 3, SIZE // 4, SIZE // 4)
    mask = _input_mask()
    targets = [SemanticSegmentationTarget(2, mask), SemanticSegmentationTarget(0, mask[2::4, 2::4])]
    expected = [logits[0, 2, 4:10, 2:12].sum().item(), logits[1, 0, 4:10, 2:12].sum().item()]
    np.testing.assert_allclose(target_scores(targets, segformer(x)).detach().numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match=r"e.g. one SemanticSegmentationTarget\(category, mask\) per image"):
        pgc.GradCAM(segformer, [segformer.decode_head.linear_fuse])(x)


@pytest.mark.parametrize("method", [*LAYER_METHODS, pgc.FullGrad], ids=lambda method: method.__name__)
def test_segformer_methods(segformer: nn.Module, method: type) -> None:
    x = _seeded_input()
    targets = [SemanticSegmentationTarget(1, _input_mask())] * 2
    layers = [] if method is pgc.FullGrad else [segformer.decode_head.linear_fuse]
    check_maps(method(segformer, layers, **options(method))(x, targets), 2)


def test_segformer_hirescam_follows_the_mask(segformer: nn.Module) -> None:
    """HiResCAM at the 1×1 classifier, whose output is the logits: for a mask on one logits cell the map is
    ``ReLU(Σ_c (∂y/∂A_c) A_c)``, the cell's own (positive) logit there and zero elsewhere."""
    x = _seeded_input(1)
    with torch.no_grad():
        logits = segformer(x).logits[0]
    category, row, column = np.unravel_index(int(logits.argmax()), tuple(logits.shape))
    mask = np.zeros((SIZE, SIZE), dtype=np.float32)
    mask[4 * row : 4 * row + 4, 4 * column : 4 * column + 4] = 1  # the input-size block of that cell
    target = SemanticSegmentationTarget(int(category), mask)
    cam = pgc.HiResCAM(segformer, [segformer.decode_head.classifier]).compute(x, [target])
    cells = torch.nn.functional.interpolate(cam[:, None], size=(SIZE // 4, SIZE // 4), mode="area")[0, 0]
    assert divmod(int(cells.argmax()), SIZE // 4) == (row, column)


# --------------------------------------------------------------------------------------------- DETR
@pytest.fixture(scope="module")
def detr() -> nn.Module:
    torch.manual_seed(0)
    backbone = transformers.ResNetConfig(
        embedding_size=16,
        hidden_sizes=[16, 32, 48, 64],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage4"],
    )
    settings: dict[str, Any] = {
        "backbone_config": backbone,
        "num_queries": 6,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "d_model": 32,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "num_labels": 3,
    }
    accepted = inspect.signature(transformers.DetrConfig.__init__).parameters
    for name in ("use_timm_backbone", "use_pretrained_backbone"):  # transformers 4.x: no timm, no download
        if name in accepted:
            settings[name] = False
    return transformers.DetrForObjectDetection(transformers.DetrConfig(**settings)).eval()


DETR_SIZE = 96  # a 3 × 3 feature map at the backbone's stride 32


def _detr_targets(detr: nn.Module, x: torch.Tensor) -> tuple[list[DetrBoxScoreTarget], list[float]]:
    """For each image, its most confident query's box (in pixels) and label, and the score that query has."""
    with torch.no_grad():
        output = detr(x)
    probabilities = output.logits.softmax(dim=-1)[..., :-1]
    targets, expected = [], []
    for image in range(len(x)):
        scores, labels = probabilities[image].max(dim=-1)
        query = int(scores.argmax())
        cx, cy, w, h = (output.pred_boxes[image, query] * DETR_SIZE).tolist()
        box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        targets.append(DetrBoxScoreTarget([int(labels[query])], [box], image_size=(DETR_SIZE, DETR_SIZE)))
        expected.append(1.0 + float(scores[query]))  # IoU 1 with its own box + its class probability
    return targets, expected


def test_detr_box_target_scores_the_matched_query(detr: nn.Module) -> None:
    x = torch.randn(2, 3, DETR_SIZE, DETR_SIZE, generator=torch.Generator().manual_seed(3))
    output = detr(x)
    assert output.logits.shape == (2, 6, 4) and output.pred_boxes.shape == (2, 6, 4)
    targets, expected = _detr_targets(detr, x)
    scores = target_scores(targets, output)
    np.testing.assert_allclose(scores.detach().numpy(), expected, atol=1e-5)
    (grad,) = torch.autograd.grad(scores.sum(), output.logits)
    assert (grad.abs().sum(dim=-1) > 0).sum(dim=-1).tolist() == [1, 1]  # one query per image
    with pytest.raises(ValueError, match=r"e.g. one DetrBoxScoreTarget\(labels, bounding_boxes, image_size"):
        pgc.GradCAM(detr, [detr.model.input_projection])(x)


@pytest.mark.parametrize("method", [*LAYER_METHODS, pgc.FullGrad], ids=lambda method: method.__name__)
def test_detr_methods(detr: nn.Module, method: type) -> None:
    x = torch.randn(2, 3, DETR_SIZE, DETR_SIZE, generator=torch.Generator().manual_seed(3))
    targets, _ = _detr_targets(detr, x)
    layers = [] if method is pgc.FullGrad else [detr.model.input_projection]
    check_maps(method(detr, layers, **options(method))(x, targets), 2, DETR_SIZE)
