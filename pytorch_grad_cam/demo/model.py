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
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.core.checks import check_positive_int
from pytorch_grad_cam.demo.scenes import MEAN, SCENE_SIZE, SHAPES, STD, normalize

#: The class names of the demo model's outputs, in output order.
DEMO_CLASSES: tuple[str, ...] = SHAPES
#: Where the shipped weights live.
DEMO_WEIGHTS: Path = Path(__file__).parent / "weights" / "demo_cnn.pt"
#: Channel widths of the convolutions, in order.
DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 48, 64, 96)


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

    Attributes:
        features: ``nn.Sequential`` of the four blocks; ``features[-1]`` is the CAM target layer.
        pool: the global average pooling.
        classifier: the linear head.
        metadata: the training metadata, set by :func:`load_demo_model` (absent on a fresh model).
    """

    metadata: dict[str, Any]

    def __init__(self, num_classes: int = len(DEMO_CLASSES), widths: Sequence[int] = DEFAULT_WIDTHS) -> None:
        super().__init__()
        widths = tuple(check_positive_int(w, f"widths[{i}]") for i, w in enumerate(widths))
        if len(widths) != 5:
            raise ValueError(f"widths must be five positive ints; got {widths}")
        num_classes = check_positive_int(num_classes, "num_classes")
        w1, w2, w3, w4, w5 = widths
        self.widths = widths
        self.features = nn.Sequential(
            nn.Sequential(*_conv(3, w1, stride=2)),
            nn.Sequential(*_conv(w1, w2), nn.MaxPool2d(2)),
            nn.Sequential(*_conv(w2, w3), *_conv(w3, w4), nn.MaxPool2d(2)),
            nn.Sequential(*_conv(w4, w5)),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(w5, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) ``(B, num_classes)`` of a normalised batch ``(B, 3, H, W)``."""
        return self.classifier(self.pool(self.features(x)).flatten(1))


def demo_target_layers(model: DemoCNN) -> list[nn.Module]:
    """The recommended CAM target layers of the demo model: ``[model.features[-1]]`` (the last conv block,
    96 channels at 1/8 of the input resolution)."""
    if not isinstance(model, DemoCNN):
        raise TypeError(f"model must be a DemoCNN (see load_demo_model); got {type(model).__name__}")
    return [model.features[-1]]


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


def save_demo_model(model: DemoCNN, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights (as float16) and its configuration to ``path``.

    Args:
        model: the trained model.
        path: the output file.
        metadata: extra JSON-like facts to store (accuracy, seed, ...), read back by :func:`load_demo_model`.
    """
    state = {key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()}
    payload = {
        "state_dict": state,
        "widths": list(model.widths),
        "classes": list(DEMO_CLASSES),
        "size": SCENE_SIZE,
        "mean": list(MEAN),
        "std": list(STD),
        "metadata": dict(metadata or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def load_demo_model(device: str | torch.device = "cpu", path: str | Path | None = None) -> DemoCNN:
    """The shipped demo model (no network access), float32, in eval mode, on ``device``.

    Args:
        device: where to put the model.
        path: a weights file written by :func:`save_demo_model` (default: the shipped one).

    Returns:
        The model; its training metadata (held-out accuracy, seed, ...) is in ``model.metadata``.

    Raises:
        FileNotFoundError: if the weights file is missing.
        ValueError: if the file is not a demo weights file (corrupt, another format, weights that do not fit)
            or was trained for other classes than :data:`DEMO_CLASSES`.
    """
    path = DEMO_WEIGHTS if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"demo model weights not found at {path}; train them with `python -m pytorch_grad_cam.demo.train`"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for a foreign file
        raise ValueError(
            f"cannot read {path} as a demo weights file ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None
    if not isinstance(payload, dict) or not {"classes", "widths", "state_dict"} <= payload.keys():
        raise ValueError(
            f"{path} is not a demo weights file written by save_demo_model (it holds {type(payload).__name__}"
            f"{' with the keys ' + str(sorted(payload)) if isinstance(payload, dict) else ''})"
        )
    classes = tuple(payload["classes"])
    if classes != DEMO_CLASSES:
        raise ValueError(f"the weights file {path} is for classes {classes}; this version expects {DEMO_CLASSES}")
    model = DemoCNN(len(classes), payload["widths"])
    try:
        model.load_state_dict(
            {key: v.float() if v.is_floating_point() else v for key, v in payload["state_dict"].items()}
        )
    except (RuntimeError, AttributeError) as error:
        raise ValueError(f"the weights in {path} do not fit the demo model: {str(error).splitlines()[0]}") from None
    model.metadata = dict(payload.get("metadata", {}))
    return model.to(device).eval()
