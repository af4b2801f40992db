"""The demo model: a small CNN trained on the scenes of :mod:`pytorch_grad_cam.demo.scenes`, shipped with
the package so that examples, tutorials and tests run offline.

Architecture (input ``(B, 3, 64, 64)``)::

    features[0]  conv3x3(3→16, stride 2) BN ReLU                       → 16 × 32 × 32
    features[1]  conv3x3(16→32) BN ReLU  maxpool                       → 32 × 16 × 16
    features[2]  conv3x3(32→48) BN ReLU  conv3x3(48→64) BN ReLU maxpool → 64 × 8 × 8
    features[3]  conv3x3(64→96) BN ReLU                                → 96 × 8 × 8   ← CAM target layer
    pool (global average) → classifier (linear 96 → 5)

The last block, ``model.features[-1]``, is the natural target layer: its output is the last spatial map
before the global average pooling (see :func:`demo_target_layers`).

The benchmark (``benchmarks/leaderboard.py``) ships three more models trained by the same script
(:data:`DEMO_MODELS`, loaded with ``load_demo_model(name=...)``):

* ``"mlp_head_cnn"``: the same convolutions, then a head that is not a single linear layer after the target
  layer: ``conv1x1(96→128) ReLU → global average → linear 128→64 ReLU → linear 64→5``. Its gradients vary
  over the target layer's positions, so GradCAM, HiResCAM and CAM give different maps.
* ``"vit"``: :class:`DemoViT`, a small Vision Transformer (convolutional patch embedding of 8 × 8-pixel
  patches, a class token, four pre-norm blocks of ``nn.MultiheadAttention``), trained on the same scenes.
* ``"shortcut_cnn"``: the demo CNN's architecture with two outputs, trained on the shortcut scenes of
  :mod:`pytorch_grad_cam.demo.scenarios`, where only a small marker decides the label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam.core.checks import check_choice, check_positive_int
from pytorch_grad_cam.demo.scenarios import SHORTCUT_CLASSES
from pytorch_grad_cam.demo.scenes import MEAN, SCENE_SIZE, SHAPES, STD, normalize

#: The class names of the demo model's outputs, in output order.
DEMO_CLASSES: tuple[str, ...] = SHAPES
_WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Where the shipped weights of the demo CNN live.
DEMO_WEIGHTS: Path = _WEIGHTS_DIR / "demo_cnn.pt"
#: Channel widths of the convolutions, in order.
DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 48, 64, 96)
ModelName = Literal["cnn", "mlp_head_cnn", "vit", "shortcut_cnn"]


@dataclass(frozen=True)
class DemoModelSpec:
    """A shipped model: its weights file, its classes, the scenario it was trained on, and its architecture
    (``"cnn"`` with a ``"linear"`` or ``"mlp"`` head, or ``"vit"``)."""

    weights: Path
    classes: tuple[str, ...]
    scenario: str
    description: str
    architecture: Literal["cnn", "vit"] = "cnn"
    head: Literal["linear", "mlp"] = "linear"

    def build(self) -> DemoModel:
        """A freshly initialised model of this architecture (from torch's global generator)."""
        if self.architecture == "vit":
            return DemoViT(len(self.classes))
        return DemoCNN(len(self.classes), head=self.head)


#: The shipped models, by name (``load_demo_model(name=...)``; trained by ``python -m pytorch_grad_cam.demo.train
#: --model NAME``).
DEMO_MODELS: dict[str, DemoModelSpec] = {
    "cnn": DemoModelSpec(DEMO_WEIGHTS, SHAPES, "single", "CNN, global average pooling + linear head"),
    "mlp_head_cnn": DemoModelSpec(
        _WEIGHTS_DIR / "demo_mlp_head_cnn.pt", SHAPES, "single", "CNN, conv 1×1 + ReLU + pooling + MLP head", head="mlp"
    ),
    "vit": DemoModelSpec(
        _WEIGHTS_DIR / "demo_vit.pt", SHAPES, "single", "ViT, 8×8 patches, class token, 4 blocks", architecture="vit"
    ),
    "shortcut_cnn": DemoModelSpec(
        _WEIGHTS_DIR / "demo_shortcut_cnn.pt", SHORTCUT_CLASSES, "shortcut", "CNN trained where a marker decides"
    ),
}


def check_model_name(name: object) -> str:
    """``name`` if it names a shipped model (:data:`DEMO_MODELS`); ``ValueError`` naming the argument otherwise."""
    return check_choice(name, "name", tuple(DEMO_MODELS))


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class DemoCNN(nn.Module):
    """A small GradCAM-friendly CNN: four conv blocks, global average pooling, a linear head.

    Args:
        num_classes: number of outputs.
        widths: the five convolution widths (see the module docstring).
        head: ``"linear"`` (global average pooling and one linear layer) or ``"mlp"`` (a 1 × 1 convolution and
            ReLU, global average pooling, then two linear layers with a ReLU between them).

    Attributes:
        features: ``nn.Sequential`` of the four blocks; ``features[-1]`` is the CAM target layer.
        neck: the 1 × 1 convolution and ReLU of the ``"mlp"`` head (absent with the linear head).
        pool: the global average pooling.
        classifier: the linear head (``nn.Linear``), or the two-layer MLP (``nn.Sequential``).
        metadata: the training metadata, set by :func:`load_demo_model` (absent on a fresh model).
    """

    metadata: dict[str, Any]

    def __init__(
        self,
        num_classes: int = len(DEMO_CLASSES),
        widths: Sequence[int] = DEFAULT_WIDTHS,
        head: Literal["linear", "mlp"] = "linear",
    ) -> None:
        super().__init__()
        widths = tuple(check_positive_int(w, f"widths[{i}]") for i, w in enumerate(widths))
        if len(widths) != 5:
            raise ValueError(f"widths must be five positive ints; got {widths}")
        num_classes = check_positive_int(num_classes, "num_classes")
        if head not in ("linear", "mlp"):
            raise ValueError(f"head must be 'linear' or 'mlp'; got {head!r}")
        w1, w2, w3, w4, w5 = widths
        self.widths = widths
        self.head = head
        self.features = nn.Sequential(
            nn.Sequential(*_conv(3, w1, stride=2)),
            nn.Sequential(*_conv(w1, w2), nn.MaxPool2d(2)),
            nn.Sequential(*_conv(w2, w3), *_conv(w3, w4), nn.MaxPool2d(2)),
            nn.Sequential(*_conv(w4, w5)),
        )
        self.classifier: nn.Module
        if head == "mlp":
            self.neck = nn.Sequential(nn.Conv2d(w5, 128, 1), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, num_classes))
        else:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(w5, num_classes)

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture."""
        return {"widths": list(self.widths), "head": self.head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) ``(B, num_classes)`` of a normalised batch ``(B, 3, H, W)``."""
        features = self.features(x)
        if self.head == "mlp":
            features = self.neck(features)
        return self.classifier(self.pool(features).flatten(1))


class DemoViTBlock(nn.Module):
    """A pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (no dropout)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, N, dim)`` → tokens ``(B, N, dim)``."""
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class DemoViT(nn.Module):
    """A small Vision Transformer for the demo scenes.

    A convolutional patch embedding (``conv3x3(3→32, stride 2) BN ReLU, conv3x3(32→64, stride 2) BN ReLU,
    conv2x2(64→dim, stride 2)``: one token per 8 × 8-pixel patch, 8 × 8 tokens for a 64-pixel scene), a class
    token and learned position embeddings (interpolated for other input sizes), ``depth`` pre-norm blocks, a
    final LayerNorm and a linear head on the class token — the layout of timm's ``VisionTransformer``
    (``blocks``, ``norm``, ``forward_features`` / ``forward_head``), so that the library's automatic layer choice,
    ``vit_reshape_transform`` and LeGrad apply as they do to timm models.

    Args:
        num_classes: number of outputs.
        dim: token width.
        depth: number of blocks.
        heads: attention heads per block.
        mlp_ratio: hidden width of the blocks' MLP, in multiples of ``dim``.
        image_size: the input side the position embeddings are learned for.
    """

    metadata: dict[str, Any]
    patch: int = 8

    def __init__(
        self,
        num_classes: int = len(DEMO_CLASSES),
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: int = 2,
        image_size: int = SCENE_SIZE,
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("dim", dim), ("depth", depth), ("heads", heads)):
            check_positive_int(value, name)
        check_positive_int(mlp_ratio, "mlp_ratio")
        if image_size % self.patch:
            raise ValueError(f"image_size must be a multiple of {self.patch}; got {image_size}")
        self.settings = {"dim": dim, "depth": depth, "heads": heads, "mlp_ratio": mlp_ratio, "image_size": image_size}
        self.patch_embed = nn.Sequential(*_conv(3, 32, stride=2), *_conv(32, 64, stride=2), nn.Conv2d(64, dim, 2, 2))
        self.grid = image_size // self.patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, 1 + self.grid**2, dim))
        self.blocks = nn.Sequential(*(DemoViTBlock(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture."""
        return dict(self.settings)

    def _position(self, height: int, width: int) -> torch.Tensor:
        if (height, width) == (self.grid, self.grid):
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens ``(B, 1 + h·w, dim)`` (class token first) of a normalised batch ``(B, 3, H, W)``."""
        patches = self.patch_embed(x)
        height, width = patches.shape[-2:]
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), patches.flatten(2).transpose(1, 2)], dim=1)
        return self.norm(self.blocks(tokens + self._position(height, width)))

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class scores from normalised tokens: the linear head on the class token."""
        return self.head(tokens[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) ``(B, num_classes)`` of a normalised batch ``(B, 3, H, W)``."""
        return self.forward_head(self.forward_features(x))


DemoModel = DemoCNN | DemoViT


def demo_target_layers(model: DemoModel) -> list[nn.Module]:
    """The recommended CAM target layers of a demo model: ``[model.features[-1]]`` for the CNNs (the last conv
    block, 96 channels at 1/8 of the input resolution), ``[model.blocks[-1].norm1]`` for the ViT (use it with
    :func:`demo_reshape_transform`)."""
    if isinstance(model, DemoViT):
        block: DemoViTBlock = model.blocks[-1]  # type: ignore[assignment]
        return [block.norm1]
    if not isinstance(model, DemoCNN):
        raise TypeError(f"model must be a DemoCNN or DemoViT (see load_demo_model); got {type(model).__name__}")
    return [model.features[-1]]


def demo_reshape_transform(model: DemoModel) -> Any:
    """The ``reshape_transform`` that goes with :func:`demo_target_layers`: ``vit_reshape_transform`` (drop the
    class token, tokens to a square grid) for the ViT, ``None`` for the CNNs."""
    if isinstance(model, DemoViT):
        from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

        return vit_reshape_transform
    demo_target_layers(model)  # the type check
    return None


def preprocess(image: np.ndarray) -> torch.Tensor:
    """A float RGB image ``(H, W, 3)`` in [0, 1] (or uint8 in [0, 255]) → the model's input
    ``(1, 3, H, W)``, normalised with :data:`~pytorch_grad_cam.demo.scenes.MEAN` / ``STD``.

    A batch ``(B, H, W, 3)`` gives ``(B, 3, H, W)``.
    """
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"image must be a float array in [0, 1] or a uint8 array; got dtype {array.dtype}")
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3) or (B, H, W, 3); got {array.shape}")
    tensor = normalize(array)
    return tensor[None] if tensor.ndim == 3 else tensor


def save_demo_model(
    model: DemoModel, path: str | Path, metadata: dict[str, Any] | None = None, classes: Sequence[str] = DEMO_CLASSES
) -> None:
    """Write ``model``'s weights (as float16) and its configuration to ``path``.

    Args:
        model: the trained model.
        path: the output file.
        metadata: extra JSON-like facts to store (accuracy, seed, ...), read back by :func:`load_demo_model`.
        classes: the names of the model's outputs.
    """
    state = {key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()}
    config = model.config()
    payload: dict[str, Any] = {
        "state_dict": state,
        "architecture": "vit" if isinstance(model, DemoViT) else "cnn",
        "config": config,
        "classes": list(classes),
        "size": SCENE_SIZE,
        "mean": list(MEAN),
        "std": list(STD),
        "metadata": dict(metadata or {}),
    }
    if isinstance(model, DemoCNN) and model.head == "linear":
        payload["widths"] = list(model.widths)  # the format of the first release, read by older versions
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def _build(payload: dict[str, Any], path: Path) -> DemoModel:
    architecture = payload.get("architecture", "cnn")
    config = dict(payload.get("config") or {"widths": payload.get("widths", DEFAULT_WIDTHS)})
    num_classes = len(payload["classes"])
    if architecture == "vit":
        return DemoViT(num_classes, **config)
    if architecture == "cnn":
        return DemoCNN(num_classes, **config)
    raise ValueError(f"{path} holds an unknown demo architecture {architecture!r}; expected 'cnn' or 'vit'")


def load_demo_model(
    device: str | torch.device = "cpu", path: str | Path | None = None, name: ModelName = "cnn"
) -> DemoModel:
    """A shipped demo model (no network access), float32, in eval mode, on ``device``.

    Args:
        device: where to put the model.
        path: a weights file written by :func:`save_demo_model` (default: the shipped file of ``name``).
        name: which shipped model (:data:`DEMO_MODELS`): ``"cnn"`` (the demo CNN), ``"mlp_head_cnn"``,
            ``"vit"`` or ``"shortcut_cnn"``.

    Returns:
        The model; its training metadata (held-out accuracy, seed, ...) is in ``model.metadata``.

    Raises:
        FileNotFoundError: if the weights file is missing.
        ValueError: for an unknown ``name``, or if the file is not a demo weights file (corrupt, another format,
            weights that do not fit) or was trained for other classes than the model ``name`` has.
    """
    spec = DEMO_MODELS[check_model_name(name)]
    path = spec.weights if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"demo model weights not found at {path}; train them with "
            f"`python -m pytorch_grad_cam.demo.train --model {name}`"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for a foreign file
        raise ValueError(
            f"cannot read {path} as a demo weights file ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None
    if not isinstance(payload, dict) or not {"classes", "state_dict"} <= payload.keys():
        raise ValueError(
            f"{path} is not a demo weights file written by save_demo_model (it holds {type(payload).__name__}"
            f"{' with the keys ' + str(sorted(payload)) if isinstance(payload, dict) else ''})"
        )
    classes = tuple(payload["classes"])
    if classes != spec.classes:
        raise ValueError(f"the weights file {path} is for classes {classes}; the {name!r} model has {spec.classes}")
    architecture = (payload.get("architecture", "cnn"), (payload.get("config") or {}).get("head", "linear"))
    expected = (spec.architecture, spec.head)
    if architecture != expected:
        raise ValueError(
            f"the weights file {path} holds a {architecture[0]} with a {architecture[1]} head; the {name!r} model is "
            f"a {expected[0]} with a {expected[1]} head"
        )
    try:
        model = _build(payload, path)
        model.load_state_dict(
            {key: v.float() if v.is_floating_point() else v for key, v in payload["state_dict"].items()}
        )
    except (RuntimeError, AttributeError, TypeError) as error:
        raise ValueError(f"the weights in {path} do not fit the demo model: {str(error).splitlines()[0]}") from None
    model.metadata = dict(payload.get("metadata", {}))
    return model.to(device).eval()
