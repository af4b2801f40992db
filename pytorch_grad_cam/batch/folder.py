"""A dataset over a folder of image files, with fixed preprocessing (for the ``grad-cam-dataset`` CLI)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pytorch_grad_cam.core.checks import check_positive_int
from pytorch_grad_cam.utils.image import decode_image_file

#: The file endings read as images (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: ImageNet statistics, as :func:`pytorch_grad_cam.utils.image.preprocess_image` is usually called with.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class ImageFolderDataset(Dataset):
    """Every image under ``root`` (recursively), sorted by relative path.

    Item ``i`` is ``{"image": (3, size, size) float32 tensor, "id": relative path}``: the file decoded as RGB,
    scaled to [0, 1], resized to ``size × size`` (``cv2.INTER_AREA``) when it has another size, and
    normalised ``(x - mean) / std`` per channel.

    Args:
        root: the folder.
        size: the side of the model's input.
        mean: per-channel mean of the normalisation.
        std: per-channel standard deviation of the normalisation.
        extensions: the file endings read as images.

    Raises:
        FileNotFoundError: ``root`` is not a folder. ValueError: it holds no image.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root must be a folder of images; {self.root} is not a folder")
        check_positive_int(size, "size")
        if len(mean) != 3 or len(std) != 3 or any(s == 0 for s in std):
            raise ValueError(f"mean and std must have 3 entries (std non-zero); got {list(mean)} and {list(std)}")
        endings = tuple(e.lower() for e in extensions)
        self.files: list[str] = sorted(
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and path.suffix.lower() in endings
        )
        if not self.files:
            raise ValueError(f"root {self.root} holds no image file ({', '.join(endings)})")
        self.size = size
        self.mean = np.array(mean, dtype=np.float32)
        self.std = np.array(std, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, object]:
        name = self.files[index]
        bgr = decode_image_file(self.root / name)
        if bgr is None:
            raise ValueError(f"cannot read {os.fspath(self.root / name)!r} as an image")
        rgb = np.float32(bgr[:, :, ::-1]) / np.float32(255)
        if rgb.shape[:2] != (self.size, self.size):
            rgb = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        normalised = (rgb - self.mean) / self.std
        return {"image": torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1))), "id": name}
