"""Every architecture and task through the public API, offline (``weights=None``, locally built models).

Each test checks the map's shape, dtype, finiteness and that it is not constant, and that no hook is left
on the model; for segmentation, detection and embeddings, that two different targets give different maps.
"""

from __future__ import annotations

import importlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import build_tiny_cnn, hook_count
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.ablation_layer import AblationLayerFasterRCNN, AblationLayerVit
from pytorch_grad_cam.utils.model_targets import (
    ClassifierOutputTarget,
    FasterRCNNBoxScoreTarget,
    SemanticSegmentationTarget,
    SimilarityToConceptTarget,
)
from pytorch_grad_cam.utils.reshape_transforms import (
    fasterrcnn_reshape_transform,
    swinT_reshape_transform,
    vit_reshape_transform,
)

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------- helpers
def check_map(cam: np.ndarray, shape: tuple[int, ...]) -> None:
    """A usable map: the expected shape, float32, finite, in [0, 1] and not constant."""
    assert cam.shape == shape
    assert cam.dtype == np.float32
    assert np.isfinite(cam).all()
    assert cam.min() >= 0.0 and cam.max() <= 1.0 + 1e-6
    for image in cam:
        assert image.max() - image.min() > 0.1, "the map is (nearly) constant"


def run_cam(method: type, model: nn.Module, layers: list[nn.Module], x: torch.Tensor, targets=None, **kwargs):
    """One call in a ``with`` block; checks that every hook is gone afterwards."""
    with method(model, layers, **kwargs) as cam:
        result = cam(x, targets)
    assert hook_count(model) == 0
    return result


def differ(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a - b).max()) > 0.05


# ------------------------------------------------------------------------------- vision transformers
@pytest.fixture(scope="module")
def vit_b_16() -> nn.Module:
    model = torchvision.models.vit_b_16(weights=None, image_size=SIZE).eval()
    # torchvision initialises the head to zero: every gradient would be zero with weights=None.
    nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


def test_torchvision_vit_b_16(vit_b_16: nn.Module) -> None:
    x = torch.randn(2, 3, SIZE, SIZE)
    layers = [vit_b_16.encoder.layers[-1].ln_1]
    cam = run_cam(pgc.GradCAM, vit_b_16, layers, x, reshape_transform=vit_reshape_transform)
    check_map(cam, (2, SIZE, SIZE))
    explicit = run_cam(
        pgc.GradCAM,
        vit_b_16,
        layers,
        x,
        reshape_transform=lambda t: vit_reshape_transform(t, height=SIZE // 16, width=SIZE // 16),
    )
    np.testing.assert_allclose(cam, explicit, atol=1e-6)


def test_vit_last_block_warns_about_zero_gradients(vit_b_16: nn.Module) -> None:
    """The last block's patch tokens do not reach the class-token output: a blank map and a clear warning."""
    x = torch.randn(1, 3, SIZE, SIZE)
    with pytest.warns(UserWarning, match=r"gradients .* are all zero.*last block.*ln_1"):
        cam = run_cam(pgc.GradCAM, vit_b_16, [vit_b_16.encoder.layers[-1]], x, reshape_transform=vit_reshape_transform)
    assert np.all(cam == 0)


def test_torchvision_swin_t() -> None:
    model = torchvision.models.swin_t(weights=None).eval()
    x = torch.randn(1, 3, 96, 96)
    cam = run_cam(pgc.GradCAM, model, [model.features[-1][-1].norm1], x, reshape_transform=swinT_reshape_transform)
    check_map(cam, (1, 96, 96))


TIMM_MODELS = {
    "vit_tiny_patch16_224": {},  # class token
    "deit_tiny_distilled_patch16_224": {},  # class + distillation token
    # class + 4 register tokens; at 84 px a 6 × 6 grid (at 64 px the 21 tokens also fit 1 + 4 × 5: ambiguous)
    "vit_small_patch14_reg4_dinov2": {"num_classes": 10, "img_size": 84},
}


@pytest.mark.parametrize("name", list(TIMM_MODELS))
def test_timm_vit_grid_inferred(name: str) -> None:
    timm = pytest.importorskip("timm")
    options = {"img_size": SIZE, **TIMM_MODELS[name]}
    size = options["img_size"]
    model = timm.create_model(name, pretrained=False, depth=2, **options).eval()
    x = torch.randn(1, 3, size, size)
    layers = [model.blocks[-1].norm1]
    cam = run_cam(pgc.GradCAM, model, layers, x, reshape_transform=vit_reshape_transform)
    check_map(cam, (1, size, size))
    extra = model.num_prefix_tokens
    explicit = run_cam(
        pgc.GradCAM, model, layers, x, reshape_transform=lambda t: vit_reshape_transform(t, num_extra_tokens=extra)
    )
    np.testing.assert_allclose(cam, explicit, atol=1e-6)


def test_timm_vit_ablation_cam_and_frozen_backbone() -> None:
    """AblationCAM with AblationLayerVit; GradCAM on a frozen model keeps every requires_grad flag."""
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE, depth=2).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    layers = [model.blocks[-1].norm1]
    cam = run_cam(
        pgc.AblationCAM,
        model,
        layers,
        x,
        reshape_transform=vit_reshape_transform,
        ablation_layer=AblationLayerVit(),
        batch_size=64,
        progress=False,
    )
    check_map(cam, (1, SIZE, SIZE))
    trainable = run_cam(pgc.GradCAM, model, layers, x, reshape_transform=vit_reshape_transform)
    model.requires_grad_(False)
    frozen = run_cam(pgc.GradCAM, model, layers, x, reshape_transform=vit_reshape_transform)
    assert not any(p.requires_grad for p in model.parameters())
    np.testing.assert_allclose(frozen, trainable, atol=1e-5)


# --------------------------------------------------------------------------------- wrapped outputs
@dataclass
class ModelOutputLike(OrderedDict):
    """A local stand-in for Hugging Face's ``ModelOutput``: a dataclass that is also an ordered mapping."""

    logits: torch.Tensor | None = None
    hidden: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                self[field.name] = value

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return tuple(self.values())[key]
        return super().__getitem__(key)


class Wrapped(nn.Module):
    """The golden tiny CNN returning its logits inside a dict, a tuple or a ModelOutput-like object."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net = build_tiny_cnn()
        self.kind = kind

    def forward(self, x: torch.Tensor):
        hidden = self.net[:7](x)
        logits = self.net[7:](hidden)
        if self.kind == "dict":
            return {"logits": logits, "hidden": hidden}
        if self.kind == "tuple":
            return logits, hidden
        return ModelOutputLike(logits=logits, hidden=hidden)


class RecordingTarget:
    """Logit ``category`` of one image's structured output; records what it received."""

    def __init__(self, category: int) -> None:
        self.category = category
        self.received = None

    def __call__(self, output):
        self.received = output
        logits = output[0] if isinstance(output, tuple) else output["logits"]
        return logits[self.category]


@pytest.mark.parametrize("kind", ["dict", "tuple", "model_output"])
def test_structured_outputs(kind: str, golden_input: torch.Tensor) -> None:
    plain = build_tiny_cnn()
    expected = run_cam(pgc.GradCAM, plain, [plain[5]], golden_input, [ClassifierOutputTarget(1)] * 2)
    model = Wrapped(kind).eval()
    targets = [RecordingTarget(1), RecordingTarget(1)]
    cam = run_cam(pgc.GradCAM, model, [model.net[5]], golden_input, targets)
    check_map(cam, (2, *golden_input.shape[2:]))
    np.testing.assert_allclose(cam, expected, atol=1e-6)
    for target in targets:  # each target gets its own image's structure
        received = target.received
        expected_type = {"dict": dict, "tuple": tuple, "model_output": ModelOutputLike}[kind]
        assert type(received) is expected_type
        logits = received[0] if kind == "tuple" else received["logits"]
        assert logits.shape == (5,)
    if kind != "tuple":  # targets=None finds the 'logits' entry
        default = run_cam(pgc.GradCAM, model, [model.net[5]], golden_input)
        top = plain(golden_input).argmax(dim=1).tolist()
        by_hand = run_cam(pgc.GradCAM, plain, [plain[5]], golden_input, [ClassifierOutputTarget(c) for c in top])
        np.testing.assert_allclose(default, by_hand, atol=1e-6)


class ImageAndMetadata(nn.Module):
    """A two-input model: an image branch and a tabular branch, fused before the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1))
        self.meta = nn.Linear(4, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, image: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        pooled = torch.relu(self.features(image)).mean(dim=(2, 3))
        return self.head(pooled * torch.sigmoid(self.meta(metadata)))


class FixedSecondInput(nn.Module):
    """The documented multi-input pattern: the CAM sees a one-input model; the other inputs are fixed."""

    def __init__(self, model: nn.Module, metadata: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.metadata = metadata

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, self.metadata)


def test_multi_input_wrapper() -> None:
    model = ImageAndMetadata().eval()
    images = torch.randn(2, 3, 16, 16)
    meta_a, meta_b = torch.randn(2, 4), torch.randn(2, 4)
    layers = [model.features[-1]]
    cam_a = run_cam(pgc.GradCAM, FixedSecondInput(model, meta_a), layers, images, [ClassifierOutputTarget(0)] * 2)
    cam_b = run_cam(pgc.GradCAM, FixedSecondInput(model, meta_b), layers, images, [ClassifierOutputTarget(0)] * 2)
    check_map(cam_a, (2, 16, 16))
    assert differ(cam_a, cam_b)  # the fixed input does take part in the explanation
    assert hook_count(model) == 0


# --------------------------------------------------------------------------------------- detection
@pytest.fixture(scope="module")
def faster_rcnn():
    """A small torchvision Faster R-CNN (ResNet-18 + FPN), random weights, BatchNorm statistics calibrated."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(0)
    backbone = BackboneWithFPN(
        torchvision.models.resnet18(weights=None), {"layer2": "0", "layer3": "1", "layer4": "2"}, [128, 256, 512], 32
    )
    model = FasterRCNN(
        backbone,
        num_classes=3,
        min_size=128,
        max_size=128,
        rpn_anchor_generator=AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4),
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, 2),
        box_score_thresh=0.0,
        box_detections_per_img=10,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=30,
    )
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one pass sets sane statistics for random weights
    model.backbone.train()
    with torch.no_grad():
        model.backbone(torch.rand(4, 3, 128, 128))
    model.eval()
    image = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        detections = model(image)[0]
    first = FasterRCNNBoxScoreTarget(detections["labels"][:1], detections["boxes"][:1])
    last = FasterRCNNBoxScoreTarget(detections["labels"][-1:], detections["boxes"][-1:])
    return model, image, first, last


def test_faster_rcnn_eigen_cam(faster_rcnn) -> None:
    model, image, first, _ = faster_rcnn
    cam = run_cam(pgc.EigenCAM, model, [model.backbone], image, [first], reshape_transform=fasterrcnn_reshape_transform)
    check_map(cam, (1, 128, 128))


def test_faster_rcnn_grad_cam_follows_the_box(faster_rcnn) -> None:
    model, image, first, last = faster_rcnn
    layers = [model.backbone.body.layer4]
    cam_first = run_cam(pgc.GradCAM, model, layers, image, [first])
    cam_last = run_cam(pgc.GradCAM, model, layers, image, [last])
    check_map(cam_first, (1, 128, 128))
    assert differ(cam_first, cam_last)


def test_faster_rcnn_ablation_cam(faster_rcnn) -> None:
    model, image, first, last = faster_rcnn
    kwargs = {
        "reshape_transform": fasterrcnn_reshape_transform,
        "ablation_layer": AblationLayerFasterRCNN(),
        "ratio_channels_to_ablate": 0.1,
        "batch_size": 32,
        "progress": False,
    }
    cam_first = run_cam(pgc.AblationCAM, model, [model.backbone], image, [first], **kwargs)
    cam_last = run_cam(pgc.AblationCAM, model, [model.backbone], image, [last], **kwargs)
    check_map(cam_first, (1, 128, 128))
    assert np.abs(cam_first - cam_last).max() > 0.01


class TinyYolo(nn.Module):
    """A YOLO-style single-stage detector: a conv backbone and a dense head of (x, y, w, h, obj, classes)."""

    def __init__(self, num_classes: int = 3, anchors: int = 2) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.SiLU(),
        )
        self.head = nn.Conv2d(32, anchors * (5 + num_classes), 1)
        self.anchors = anchors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.head(self.backbone(x))
        b, _, h, w = raw.shape
        return raw.view(b, self.anchors, -1, h * w).permute(0, 1, 3, 2).reshape(b, self.anchors * h * w, -1)


def test_single_stage_detector_eigen_cam_without_targets() -> None:
    """EigenCAM needs no target: targets=None works on a raw (B, N, 5 + K) detector output."""
    model = TinyYolo().eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    cam = run_cam(pgc.EigenCAM, model, [model.backbone[-2]], x)
    check_map(cam, (2, SIZE, SIZE))
    with pytest.raises(ValueError, match="pass targets explicitly"):  # a method that needs a target says so
        run_cam(pgc.ScoreCAM, model, [model.backbone[-2]], x, progress=False)
    with pytest.raises(ValueError, match="pass targets explicitly"):
        run_cam(pgc.GradCAM, model, [model.backbone[-2]], x)


# ------------------------------------------------------------------------------------ segmentation
SEGMENTATION = {"deeplabv3_mobilenet_v3_large": lambda m: m.backbone["16"], "fcn_resnet50": lambda m: m.backbone.layer4}


@pytest.mark.parametrize("name", list(SEGMENTATION))
def test_semantic_segmentation_multi_class(name: str) -> None:
    builder = getattr(torchvision.models.segmentation, name)
    model = builder(weights=None, weights_backbone=None, num_classes=3, aux_loss=False).eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        predicted = model(x)["out"][0].argmax(dim=0).numpy()
    masks = [
        np.float32(predicted == c) if (predicted == c).any() else np.ones((SIZE, SIZE), np.float32) for c in (0, 1)
    ]
    layers = [SEGMENTATION[name](model)]
    cam_0 = run_cam(pgc.GradCAM, model, layers, x, [SemanticSegmentationTarget(0, masks[0])])
    cam_1 = run_cam(pgc.GradCAM, model, layers, x, [SemanticSegmentationTarget(1, masks[1])])
    check_map(cam_0, (1, SIZE, SIZE))
    assert differ(cam_0, cam_1)


def test_semantic_segmentation_binary() -> None:
    """One output channel (a sigmoid segmenter): the region of the mask chooses what is explained."""
    model = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=1, aux_loss=False
    ).eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    left = np.zeros((SIZE, SIZE), np.float32)
    left[:, : SIZE // 2] = 1
    layers = [model.backbone["16"]]
    cam_left = run_cam(pgc.GradCAM, model, layers, x, [SemanticSegmentationTarget(0, left)])
    cam_right = run_cam(pgc.GradCAM, model, layers, x, [SemanticSegmentationTarget(0, 1 - left)])
    check_map(cam_left, (1, SIZE, SIZE))
    assert differ(cam_left, cam_right)


# -------------------------------------------------------------------------------------- embeddings
class TwoTower(nn.Module):
    """A CLIP-style model built locally: an image tower and a text tower in one embedding space."""

    def __init__(self, dim: int = 16, vocabulary: int = 50) -> None:
        super().__init__()
        self.image_tower = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, dim),
        )
        self.text_tower = nn.EmbeddingBag(vocabulary, dim)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_tower(x)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_tower(tokens)


def test_embeddings_similarity_to_concept() -> None:
    model = TwoTower().eval()
    with torch.no_grad():
        concepts = model.encode_text(torch.tensor([[1, 2, 3], [7, 8, 9]]))
    image_encoder = model.image_tower  # the embedding model explained: image -> (B, D)
    x = torch.randn(1, 3, 32, 32)
    layers = [image_encoder[2]]
    cam_a = run_cam(pgc.GradCAM, image_encoder, layers, x, [SimilarityToConceptTarget(concepts[0])])
    cam_b = run_cam(pgc.GradCAM, image_encoder, layers, x, [SimilarityToConceptTarget(concepts[1])])
    check_map(cam_a, (1, 32, 32))
    assert differ(cam_a, cam_b)


# ---------------------------------------------------------------------------------------------- 3D
def test_video_r3d_18() -> None:
    model = torchvision.models.video.r3d_18(weights=None, num_classes=5).eval()
    clip = torch.rand(1, 3, 4, 32, 32)
    cam = run_cam(pgc.GradCAM, model, [model.layer4], clip)
    check_map(cam, (1, 4, 32, 32))


class TinyUNet3D(nn.Module):
    """A 3D U-Net-like segmenter: one down level, one up level with a skip connection."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv3d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose3d(16, 8, 2, stride=2)
        self.decoder = nn.Sequential(nn.Conv3d(16, 8, 3, padding=1), nn.ReLU())
        self.out = nn.Conv3d(8, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.encoder(x)
        return self.out(self.decoder(torch.cat([self.up(self.down(skip)), skip], dim=1)))


def test_3d_unet_segmentation() -> None:
    model = TinyUNet3D().eval()
    volume = torch.randn(1, 1, 8, 16, 16)
    mask = torch.ones(8, 16, 16)
    layers = [model.down]
    cam_0 = run_cam(pgc.GradCAM, model, layers, volume, [SemanticSegmentationTarget(0, mask)])
    cam_1 = run_cam(pgc.GradCAM, model, layers, volume, [SemanticSegmentationTarget(1, mask)])
    check_map(cam_0, (1, 8, 16, 16))
    assert differ(cam_0, cam_1)


# ---------------------------------------------------------------------------------------------- 1D
class SignalNet(nn.Module):
    """A 1-D CNN on signals (B, C, L)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 16, 5, stride=2, padding=2), nn.ReLU()
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_1d_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented pattern, taken from usage_examples/signal_1d_example.py: (B, C, 1, L) in, (B, 1, L) out."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "usage_examples"))
    example = importlib.import_module("signal_1d_example")
    SignalAsImage, signal_reshape_transform = example.SignalAsImage, example.signal_reshape_transform
    net = SignalNet().eval()
    signals = torch.randn(2, 2, 40)
    model = SignalAsImage(net)
    cam = run_cam(
        pgc.GradCAM, model, [net.features[2]], signals.unsqueeze(2), reshape_transform=signal_reshape_transform
    )
    check_map(cam, (2, 1, 40))
    # by hand: grad-weighted activations at half resolution, ReLU, min-max, linear upsampling, min-max again
    acts = net.features[:3](signals)
    acts.retain_grad()
    net.head(torch.relu(acts))[torch.arange(2), net(signals).argmax(1)].sum().backward()
    raw = torch.relu((acts.grad.mean(dim=2, keepdim=True) * acts).sum(dim=1)).detach()
    raw = raw - raw.min(dim=1, keepdim=True).values
    raw = raw / (1e-7 + raw.max(dim=1, keepdim=True).values)
    expected = torch.nn.functional.interpolate(raw[:, None], size=40, mode="linear", align_corners=False)[:, 0]
    expected = expected / (1e-7 + expected.max(dim=1, keepdim=True).values)  # the layer mean is scaled again
    np.testing.assert_allclose(cam[:, 0], expected.numpy(), atol=1e-5)


# ------------------------------------------------------------------------------ model variations
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models(dtype: torch.dtype, golden_input: torch.Tensor) -> None:
    reference = build_tiny_cnn()
    expected = run_cam(pgc.GradCAM, reference, [reference[5]], golden_input)
    model = build_tiny_cnn().to(dtype)
    cam = run_cam(pgc.GradCAM, model, [model[5]], golden_input)  # float32 input: cast to the model's dtype
    check_map(cam, (2, *golden_input.shape[2:]))
    np.testing.assert_allclose(cam, expected, atol=0.05)
    assert all(p.dtype == dtype for p in model.parameters())


def test_data_parallel(golden_input: torch.Tensor) -> None:
    reference = build_tiny_cnn()
    expected = run_cam(pgc.GradCAM, reference, [reference[5]], golden_input)
    model = nn.DataParallel(build_tiny_cnn())
    cam = run_cam(pgc.GradCAM, model, [model.module[5]], golden_input)
    np.testing.assert_allclose(cam, expected, atol=1e-6)


def test_frozen_resnet_backbone() -> None:
    model = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    trainable = run_cam(pgc.GradCAM, model, [model.layer4[-1]], x)
    model.requires_grad_(False)
    frozen = run_cam(pgc.GradCAM, model, [model.layer4[-1]], x)
    check_map(frozen, (1, SIZE, SIZE))
    np.testing.assert_allclose(frozen, trainable, atol=1e-6)
    assert not any(p.requires_grad for p in model.parameters())


def test_torch_compile(golden_input: torch.Tensor) -> None:
    """Hooks work through torch.compile. Under AOTAutograd, gradients to inner layers exist only when the graph
    starts at the target layer (the default: the forward pass records the graph from the first target layer
    on); with ``detach=False`` the whole graph is recorded and the error names the way out.

    ``backend="aot_eager"`` goes through the same AOTAutograd path as the default inductor backend, minus
    the (slow) code generation.
    """
    reference = build_tiny_cnn()
    expected_grad = run_cam(pgc.GradCAM, reference, [reference[5]], golden_input)
    expected_eigen = run_cam(pgc.EigenCAM, reference, [reference[5]], golden_input)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dynamo's own warnings on some platforms
        model = build_tiny_cnn()
        eager = torch.compile(model, backend="eager")
        cam = run_cam(pgc.GradCAM, eager, [model[5]], golden_input)
        np.testing.assert_allclose(cam, expected_grad, atol=1e-5)

        model = build_tiny_cnn()
        compiled = torch.compile(model, backend="aot_eager")
        cam = run_cam(pgc.EigenCAM, compiled, [model[5]], golden_input)  # gradient-free: fine
        np.testing.assert_allclose(cam, expected_eigen, atol=1e-5)
        cam = run_cam(pgc.GradCAM, compiled, [model[5]], golden_input)
        np.testing.assert_allclose(cam, expected_grad, atol=1e-5)
        with pytest.raises(ValueError, match=r"torch.compile'd.*model._orig_mod"):
            run_cam(pgc.GradCAM, compiled, [model[5]], golden_input, detach=False)
        cam = run_cam(pgc.GradCAM, compiled._orig_mod, [model[5]], golden_input)  # the documented way out
        np.testing.assert_allclose(cam, expected_grad, atol=1e-5)
    assert hook_count(model) == 0
