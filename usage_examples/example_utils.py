"""Shared plumbing of the usage examples: command-line options, the photo, and writing the figure.

The examples run offline: models get random weights unless ``--pretrained`` is given (which downloads the
torchvision / timm weights), and the photo comes from the package (``pytorch_grad_cam/demo/assets``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

import pytorch_grad_cam
from pytorch_grad_cam.utils.image import show_cam_on_image

ASSETS = Path(pytorch_grad_cam.__file__).parent / "demo" / "assets"


def base_parser(description: str, default_output: str, default_size: int = 224) -> argparse.ArgumentParser:
    """The options every example shares: ``--image``, ``--size``, ``--output``, ``--device``, ``--pretrained``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--image", default=str(ASSETS / "chelsea.png"), help="input photo (default: the cat)")
    parser.add_argument("--size", type=int, default=default_size, help="side of the square model input")
    parser.add_argument("--output", default=default_output, help="where the figure is written")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument(
        "--pretrained", action="store_true", help="download pretrained weights (default: random, offline)"
    )
    return parser


def load_rgb(path: str | Path, size: int | tuple[int, int]) -> np.ndarray:
    """An RGB photo as float32 in [0, 1], resized to ``size`` (a side, or ``(width, height)``)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"--image must name a readable image file; got {path!r}")
    width, height = (size, size) if isinstance(size, int) else size
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.float32(image[:, :, ::-1]) / 255.0


def save_overlays(path: str | Path, rgb: np.ndarray, maps: list[np.ndarray], titles: list[str]) -> Path:
    """Write the photo next to one heat-map overlay per map, each captioned, as one image file."""
    panels = [np.uint8(rgb * 255)] + [show_cam_on_image(rgb, cam, use_rgb=True) for cam in maps]
    captioned = []
    for panel, title in zip(panels, ["input", *titles]):
        band = np.full((18, panel.shape[1], 3), 255, np.uint8)
        cv2.putText(band, title, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        captioned.append(np.vstack([band, panel]))
    figure = np.hstack(captioned)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), figure[:, :, ::-1]):
        raise OSError(f"could not write the figure to {path}")
    print(f"wrote {path}")
    return path


def draw_boxes(rgb: np.ndarray, boxes: np.ndarray, labels: list[str]) -> np.ndarray:
    """``rgb`` (float in [0, 1]) with each ``x1, y1, x2, y2`` box drawn and labelled in red."""
    image = np.uint8(rgb * 255).copy()
    for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels):
        cv2.rectangle(image, (x1, y1), (x2, y2), (255, 0, 0), 1)
        cv2.putText(image, label, (x1 + 2, y1 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 0, 0), 1, cv2.LINE_AA)
    return np.float32(image) / 255


def seed(value: int = 0) -> None:
    """Random weights are drawn reproducibly."""
    torch.manual_seed(value)
    np.random.seed(value)
