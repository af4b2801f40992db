"""Labelled scenes with ground-truth masks: the localization benchmark behind the demo model.

Every scene holds one object of a known class (a shape: disc, square, triangle, star or cross) drawn at
a random position, scale, rotation and colour over a random crop of a real photograph or texture (the
shipped assets, see ``assets/CREDITS.md``), with distractors that belong to no class (lines and
irregular blobs, some drawn over the object so that it is partly occluded) and a little sensor noise.
The object's visible pixels are its mask, so a CAM method can be scored against the truth (pointing game,
energy inside the mask, ...).

Everything is deterministic: a scene is a pure function of its seed, and scene ``i`` of
``SceneDataset(n, seed)`` depends only on ``(seed, i)`` (not on ``n`` nor on the order of access).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pytorch_grad_cam.core.checks import check_index, check_int

#: The object classes, in label order.
SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "star", "cross")
#: The default side of a scene, in pixels.
SCENE_SIZE: int = 64
#: The backgrounds (files in ``assets/``), photographs first.
BACKGROUNDS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "grass", "gravel", "brick")
#: Per-channel mean and standard deviation used to normalise images (the ImageNet statistics, as in
#: :func:`pytorch_grad_cam.utils.image.preprocess_image`).
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: The seed of the scene returned by :func:`demo_image` by default.
DEMO_SEED: int = 6

_ASSETS = Path(__file__).parent / "assets"
_SUPERSAMPLE = 4  # shapes are rasterised at 4x and area-downsampled: anti-aliased edges
_DATASET_TAG = 0x5CE7E  # keeps dataset seeds (tag, seed, index) apart from single-scene seeds
_MIN_SIZE = 32


@lru_cache(maxsize=1)
def _backgrounds() -> tuple[np.ndarray, ...]:
    """The background images as float32 arrays in [0, 1]: RGB ``(H, W, 3)``, textures grey ``(H, W)``."""
    images = []
    for name in BACKGROUNDS:
        path = _ASSETS / f"{name}.png"
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise FileNotFoundError(f"demo background {path} is missing; reinstall grad-cam")
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        images.append(image.astype(np.float32) / 255.0)
    return tuple(images)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop of a random background, resized to ``(size, size, 3)``, flipped and colour-jittered."""
    source = _backgrounds()[rng.integers(len(BACKGROUNDS))]
    height, width = source.shape[:2]
    side = int(rng.integers(min(size, height), min(height, width) + 1))
    top = int(rng.integers(height - side + 1))
    left = int(rng.integers(width - side + 1))
    crop = cv2.resize(source[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if crop.ndim == 2:  # a grey texture: tint it
        crop = crop[..., None] * rng.uniform(0.35, 1.15, size=3).astype(np.float32)
    else:
        crop = crop * rng.uniform(0.7, 1.2) + rng.uniform(-0.1, 0.1, size=3).astype(np.float32)
    return np.clip(crop, 0.0, 1.0).astype(np.float32)


def _regular_star(points: int, inner: float) -> np.ndarray:
    angles = np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.sin(angles), -radii * np.cos(angles)], axis=1)


_CROSS_ARM = 0.34
_POLYGONS: dict[str, np.ndarray] = {
    "square": 0.8 * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64),
    "triangle": 1.1
    * np.array([[np.sin(a), -np.cos(a)] for a in (0.0, 2 * np.pi / 3, 4 * np.pi / 3)], dtype=np.float64),
    "star": 1.1 * _regular_star(5, 0.45),
    "cross": np.array(
        [
            [-_CROSS_ARM, -1],
            [_CROSS_ARM, -1],
            [_CROSS_ARM, -_CROSS_ARM],
            [1, -_CROSS_ARM],
            [1, _CROSS_ARM],
            [_CROSS_ARM, _CROSS_ARM],
            [_CROSS_ARM, 1],
            [-_CROSS_ARM, 1],
            [-_CROSS_ARM, _CROSS_ARM],
            [-1, _CROSS_ARM],
            [-1, -_CROSS_ARM],
            [-_CROSS_ARM, -_CROSS_ARM],
        ],
        dtype=np.float64,
    ),
    # Shapes of no class: the distractor objects of the benchmark scenarios (pytorch_grad_cam.demo.scenarios).
    "ell": 0.85 * np.array([[-0.8, -1], [-0.2, -1], [-0.2, 0.4], [0.8, 0.4], [0.8, 1], [-0.8, 1]], dtype=np.float64),
    "bar": np.array([[-1, -0.3], [1, -0.3], [1, 0.3], [-1, 0.3]], dtype=np.float64),
}


def _to_canvas(points: np.ndarray) -> np.ndarray:
    """Image coordinates (pixel centres at integers) → int32 points on the supersampled canvas."""
    return np.round((points + 0.5) * _SUPERSAMPLE - 0.5).astype(np.int32)


def _downsample(canvas: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(canvas.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_AREA)


def _shape_alpha(kind: str, centre: np.ndarray, radius: float, angle: float, size: int) -> np.ndarray:
    """Anti-aliased coverage ``(size, size)`` in [0, 1] of one shape of circumradius about ``radius``."""
    canvas = np.zeros((size * _SUPERSAMPLE, size * _SUPERSAMPLE), np.uint8)
    if kind in ("disc", "ring"):
        cv2.circle(canvas, tuple(_to_canvas(centre)), round(0.9 * radius * _SUPERSAMPLE), 255, -1, cv2.LINE_8)
        if kind == "ring":
            cv2.circle(canvas, tuple(_to_canvas(centre)), round(0.5 * radius * _SUPERSAMPLE), 0, -1, cv2.LINE_8)
    else:
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = centre + radius * _POLYGONS[kind] @ rotation.T
        cv2.fillPoly(canvas, [_to_canvas(points)], 255, cv2.LINE_8)
    return _downsample(canvas, size)


def _distractor_alpha(rng: np.random.Generator, size: int) -> np.ndarray:
    """Coverage of one distractor: a thin polyline or a small irregular (elongated, bean-like) blob."""
    canvas = np.zeros((size * _SUPERSAMPLE, size * _SUPERSAMPLE), np.uint8)
    if rng.random() < 0.6:
        count = int(rng.integers(2, 4))
        points = rng.uniform(-0.1 * size, 1.1 * size, size=(count, 2))
        thickness = max(1, round(rng.uniform(0.8, 2.0) * _SUPERSAMPLE))
        cv2.polylines(canvas, [_to_canvas(points)], False, 255, thickness, cv2.LINE_8)
    else:
        radius = rng.uniform(0.05, 0.11) * size
        theta = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
        phases = rng.uniform(0.0, 2 * np.pi, size=2)
        radii = radius * (1 + 0.5 * np.cos(2 * (theta - phases[0])) + 0.2 * np.cos(3 * (theta - phases[1])))
        centre = rng.uniform(0.05 * size, 0.95 * size, size=2)
        points = centre + np.stack([radii * np.cos(theta), radii * np.sin(theta)], axis=1)
        cv2.fillPoly(canvas, [_to_canvas(points)], 255, cv2.LINE_8)
    return _downsample(canvas, size)


def _contrasting_colour(rng: np.random.Generator, reference: np.ndarray) -> np.ndarray:
    """A random RGB colour at least 0.45 (Euclidean, in [0, 1] RGB) away from ``reference``."""
    for _ in range(32):
        colour = rng.uniform(0.0, 1.0, size=3)
        if np.linalg.norm(colour - reference) >= 0.45:
            return colour.astype(np.float32)
    return np.where(reference > 0.5, 0.05, 0.95).astype(np.float32)


def _composite(image: np.ndarray, alpha: np.ndarray, paint: np.ndarray) -> np.ndarray:
    return image * (1 - alpha[..., None]) + paint * alpha[..., None]


def _paint_object(
    rng: np.random.Generator,
    image: np.ndarray,
    alpha: np.ndarray,
    full_mask: np.ndarray,
    centre: np.ndarray,
    radius: float,
) -> np.ndarray:
    """``image`` with a shape of coverage ``alpha`` painted over it: a colour that contrasts with what lies under
    ``full_mask``, softly shaded across the shape so that it is not a flat patch."""
    size = image.shape[0]
    colour = _contrasting_colour(rng, image[full_mask].mean(axis=0))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-8
    shade = 1 + 0.15 * ((xx - centre[0]) * direction[0] + (yy - centre[1]) * direction[1]) / radius
    paint = np.clip(colour * shade[..., None], 0.0, 1.0)
    return _composite(image, alpha, paint)


def _render(rng: np.random.Generator, size: int, label: int | None) -> tuple[np.ndarray, int, np.ndarray]:
    image = _background(rng, size)
    if label is None:
        label = int(rng.integers(len(SHAPES)))
    radius = rng.uniform(0.15, 0.3) * size
    margin = 1.1 * radius + 1
    centre = rng.uniform(margin, size - 1 - margin, size=2)
    angle = rng.uniform(0.0, 2 * np.pi)
    alpha = _shape_alpha(SHAPES[label], centre, radius, angle, size)
    full_mask = alpha >= 0.5

    distractors = [_distractor_alpha(rng, size) for _ in range(int(rng.integers(1, 5)))]
    # Each distractor goes over the object (occluding it) or under it; occluders may hide at most 15%.
    over_flags = rng.random(len(distractors)) < 0.5
    mask = full_mask.copy()
    above = []
    for distractor, over in zip(distractors, over_flags):
        if over:
            remaining = mask & (distractor < 0.5)
            if remaining.sum() >= 0.85 * full_mask.sum():
                mask = remaining
                above.append(distractor)
                continue
        colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        image = _composite(image, distractor, colour)

    image = _paint_object(rng, image, alpha, full_mask, centre, radius)
    for distractor in above:
        image = _composite(image, distractor, rng.uniform(0.0, 1.0, size=3).astype(np.float32))

    image = image + rng.normal(0.0, 0.02, size=image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32), label, mask


def make_scene(
    seed: int | Sequence[int], size: int = SCENE_SIZE, label: int | None = None
) -> tuple[np.ndarray, int, np.ndarray]:
    """One labelled scene, a pure function of ``seed``.

    Args:
        seed: an int (or a sequence of ints) seeding ``numpy.random.default_rng``.
        size: the side of the square image in pixels (at least 32).
        label: force the object's class (an index into :data:`SHAPES`); ``None`` draws it.

    Returns:
        ``(image, label, mask)``: ``image`` float32 RGB ``(size, size, 3)`` in [0, 1]; ``label`` the index of
        the object's class in :data:`SHAPES`; ``mask`` bool ``(size, size)``, the object's visible pixels.

    Raises:
        TypeError: if ``size`` or ``label`` is not an int.
        ValueError: if ``size`` is below 32 or ``label`` is not a class index.
    """
    size = check_int(size, "size", minimum=_MIN_SIZE)
    if label is not None:
        label = check_index(label, "label", len(SHAPES))
    return _render(np.random.default_rng(seed), size, label)


def demo_image(seed: int = DEMO_SEED, size: int = SCENE_SIZE) -> tuple[np.ndarray, int, np.ndarray]:
    """A fixed example scene for demos and tutorials (the same image on every machine).

    Args:
        seed: which scene; the default is a clear, typical one.
        size: the side of the square image in pixels.

    Returns:
        ``(image, label, mask)`` as :func:`make_scene` returns them.
    """
    check_int(seed, "seed", minimum=0)
    return make_scene(seed, size)


def normalize(image: np.ndarray) -> torch.Tensor:
    """A float RGB image ``(H, W, 3)`` (or a batch ``(B, H, W, 3)``) in [0, 1] → a normalised float32
    tensor ``(3, H, W)`` (or ``(B, 3, H, W)``): ``(x - MEAN) / STD`` per channel."""
    array: np.ndarray = np.asarray(image, dtype=np.float32)
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3) or (B, H, W, 3); got {array.shape}")
    array = (array - np.asarray(MEAN, dtype=np.float32)) / np.asarray(STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, -3)))


class SceneDataset(Dataset):
    """``n`` labelled scenes; item ``i`` is ``(normalised image (3, H, W), label, mask (H, W) bool)``.

    Scene ``i`` depends only on ``(seed, i)``: datasets with different seeds are disjoint, and a longer
    dataset with the same seed starts with the same scenes.

    Args:
        n: number of scenes.
        seed: non-negative int seeding the scenes.
        size: the side of the square images in pixels.
    """

    def __init__(self, n: int, seed: int = 0, size: int = SCENE_SIZE) -> None:
        self.n = check_int(n, "n", minimum=0)
        self.seed = check_int(seed, "seed", minimum=0)
        self.size = check_int(size, "size", minimum=_MIN_SIZE)

    def __len__(self) -> int:
        return self.n

    def scene(self, index: int) -> tuple[np.ndarray, int, np.ndarray]:
        """The raw scene ``index``: ``(image float32 (H, W, 3) in [0, 1], label, mask bool (H, W))``."""
        index = check_int(index, "index")
        if not -self.n <= index < self.n:
            raise IndexError(f"index must be in [-{self.n}, {self.n}); got {index}")
        index %= self.n
        rng = np.random.default_rng([_DATASET_TAG, self.seed, index])
        return _render(rng, self.size, None)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        image, label, mask = self.scene(index)
        return normalize(image), label, torch.from_numpy(mask)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All scenes at once: images float32 ``(n, H, W, 3)``, labels int64 ``(n,)``, masks bool ``(n, H, W)``."""
        images = np.empty((self.n, self.size, self.size, 3), np.float32)
        labels = np.empty(self.n, np.int64)
        masks = np.empty((self.n, self.size, self.size), bool)
        for index in range(self.n):
            images[index], labels[index], masks[index] = self.scene(index)
        return images, labels, masks
