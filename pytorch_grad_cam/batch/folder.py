"""A dataset over a folder of image files, with fixed preprocessing (for the ``grad-cam-dataset`` CLI)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pytorch_grad_cam.core.checks import check_choice, check_positive_int

#: The file endings read as images (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: ImageNet statistics, as :func:`pytorch_grad_cam.utils.image.preprocess_image` is usually called with.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: How a file's content is identified between runs: its size and modification time, or a hash of its bytes.
FINGERPRINTS: tuple[str, ...] = ("stat", "sha256")


class ImageFolderDataset(Dataset):
    """Every image under ``root`` (recursively), sorted by relative path.

    Item ``i`` is ``{"image": (3, size, size) float32 tensor, "id": relative path, "error": str, "fingerprint":
    str}``: the file decoded as RGB, scaled to [0, 1], resized to ``size × size`` (``cv2.INTER_AREA``) when it
    has another size, and normalised ``(x - mean) / std`` per channel. A file that cannot be read or decoded
    gives a zero image and a non-empty ``error`` (the dataset pipeline skips it with a warning and lists it in
    its index), never an exception. Files are read as bytes and decoded by OpenCV, so any name the operating
    system gives works (also names that are not valid UTF-8).

    Args:
        root: the folder.
        size: the side of the model's input.
        mean: per-channel mean of the normalisation.
        std: per-channel standard deviation of the normalisation.
        extensions: the file endings read as images.
        fingerprint: how :meth:`fingerprint` identifies a file's content: ``"stat"`` (size and modification
            time, free) or ``"sha256"`` (a hash of the bytes: also catches a file replaced by one of the same
            size and time, at the cost of reading every file when a run resumes).

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
        fingerprint: str = "stat",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root must be a folder of images; {self.root} is not a folder")
        check_positive_int(size, "size")
        check_choice(fingerprint, "fingerprint", FINGERPRINTS)
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
        self.extensions = endings
        self.fingerprint_mode = fingerprint

    def __len__(self) -> int:
        return len(self.files)

    def settings(self) -> dict[str, Any]:
        """What changes the images (recorded in a dataset run's manifest)."""
        return {
            "size": self.size,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "extensions": list(self.extensions),
            "fingerprint": self.fingerprint_mode,
        }

    def fingerprint(self, index: int) -> str:
        """A string that changes when file ``index`` changes (see the ``fingerprint`` argument)."""
        path = self.root / self.files[index]
        try:
            return self._identify(path.stat(), path.read_bytes() if self.fingerprint_mode == "sha256" else b"")
        except OSError as error:
            return f"unreadable: {error.strerror or error}"

    def _identify(self, status: os.stat_result, data: bytes | memoryview) -> str:
        if self.fingerprint_mode == "sha256":
            return hashlib.sha256(data).hexdigest()
        return f"{status.st_size}:{status.st_mtime_ns}"

    def __getitem__(self, index: int) -> dict[str, object]:
        name = self.files[index]
        path = self.root / name
        blank = torch.zeros(3, self.size, self.size)
        try:
            status = path.stat()  # before reading: a file changed after this is stale on resume, never kept
            data = np.fromfile(os.fspath(path), dtype=np.uint8)
        except OSError as error:
            failure = f"cannot read {os.fspath(path)!r}: {error.strerror or error}"
            return {"image": blank, "id": name, "error": failure, "fingerprint": f"unreadable: {error.strerror}"}
        fingerprint = self._identify(status, data.data)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            failure = f"cannot decode {os.fspath(path)!r} as an image ({data.size} bytes)"
            return {"image": blank, "id": name, "error": failure, "fingerprint": fingerprint}
        rgb = np.float32(bgr[:, :, ::-1]) / np.float32(255)
        if rgb.shape[:2] != (self.size, self.size):
            rgb = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        normalised = (rgb - self.mean) / self.std
        image = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))
        return {"image": image, "id": name, "error": "", "fingerprint": fingerprint}
