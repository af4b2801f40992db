"""The benchmark scenarios: scenes whose ground truth the model is known, by construction, to use.

Four scenarios, each a pure function of ``(seed, index)`` like :class:`~pytorch_grad_cam.demo.scenes.SceneDataset`:

1. ``"single"``: one object of a class (the scenes of :class:`~pytorch_grad_cam.demo.scenes.SceneDataset`,
   bit for bit): the map of the object's class should point at it.
2. ``"pair"``: two objects of different classes, apart; each class is explained in turn, and its map should
   point at that class's object and not at the other one (a class-agnostic map can be right for one of the
   two at most).
3. ``"shortcut"``: one object whose class is drawn independently of the label, and a small marker (an
   12 × 12 black-and-white pattern at a random place) whose pattern *alone* decides the label
   (:data:`SHORTCUT_CLASSES`: checkerboard, stripes; a scene without a marker is the third class): a model
   trained on these scenes (:class:`ShortcutTrainingScenes`) can only use the marker, so a faithful map points
   at the marker, not at the larger, more salient shape. The same scene can be drawn without the marker,
   without the shape, or with the other marker (:data:`INTERVENTIONS`) to verify the reliance: removing or
   swapping the marker changes the true class, removing the shape does not.
4. ``"distractors"``: the scenes of scenario 1 with one to three extra objects of no class
   (:data:`NO_CLASS_SHAPES`: ring, L, bar) painted beside the object.

Every scene is a :class:`BenchmarkScene`: the image, the class of each labelled object and its mask, and the
mask of the pixels that belong to no labelled object but to another object (the other class's object is a
labelled object of its own in scenario 2; the shortcut's shape and the distractor objects are ``other``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch.utils.data import Dataset

from pytorch_grad_cam.core.checks import check_choice, check_int
from pytorch_grad_cam.demo.scenes import (
    _DATASET_TAG,
    _MIN_SIZE,
    SCENE_SIZE,
    SHAPES,
    _background,
    _composite,
    _distractor_alpha,
    _paint_object,
    _render,
    _shape_alpha,
    normalize,
)

Scenario = Literal["single", "pair", "shortcut", "distractors"]
#: The scenarios, in the order of the benchmark (scenario 1 first).
SCENARIOS: tuple[str, ...] = get_args(Scenario)
#: The labels of the shortcut scenario: the marker's pattern (a checkerboard, or stripes in either direction), or
#: no marker at all (the benchmark's scenes always hold a marker; the training scenes hold none every third scene).
SHORTCUT_CLASSES: tuple[str, ...] = ("checker", "stripes", "no marker")
#: The shortcut class of a scene without a marker.
NO_MARKER: int = 2
#: Shapes that belong to no class: the distractor objects of scenario 4.
NO_CLASS_SHAPES: tuple[str, ...] = ("ring", "ell", "bar")
#: What an intervention removes or changes in a shortcut scene (everything else stays bit for bit).
Intervention = Literal["no_marker", "no_shape", "swap_marker"]
INTERVENTIONS: tuple[str, ...] = get_args(Intervention)
#: Side of the shortcut marker, as a fraction of the scene's side (12 pixels in a 64-pixel scene: a cell and a half
#: of the models' 8 × 8 maps, so that a map of that resolution can put its peak on it).
MARKER_FRACTION = 0.1875
_TAGS = {"pair": 0x9A12, "shortcut": 0x5C07, "distractors": 0xD157}
_GAP = 2.0  # pixels kept free between objects
_SPAN = 1.15  # an object of circumradius r stays inside the disc of radius 1.15 r around its centre
_NOISE = 0.02


@dataclass(frozen=True)
class BenchmarkScene:
    """One benchmark scene.

    Attributes:
        image: float32 RGB ``(H, W, 3)`` in [0, 1].
        labels: the class of each labelled object (two in scenario 2, one otherwise); in the shortcut scenario,
            the marker's class in :data:`SHORTCUT_CLASSES`.
        masks: bool ``(len(labels), H, W)``: the visible pixels of each labelled object (the marker in the
            shortcut scenario); disjoint.
        other: bool ``(H, W)``: the pixels of objects that are not the labelled ones (the shortcut's shape, the
            distractor objects); empty in scenarios 1 and 2.
    """

    image: np.ndarray
    labels: tuple[int, ...]
    masks: np.ndarray
    other: np.ndarray

    @property
    def label(self) -> int:
        """The first (in scenarios 1, 3, 4 the only) labelled object's class."""
        return self.labels[0]


def check_scenario(scenario: object) -> str:
    """``scenario`` if it is one of :data:`SCENARIOS`; ``ValueError`` naming the argument otherwise."""
    return check_choice(scenario, "scenario", SCENARIOS)


def _noise(rng: np.random.Generator, image: np.ndarray, weight: np.ndarray | float = 1.0) -> np.ndarray:
    noise = rng.normal(0.0, _NOISE, size=image.shape).astype(np.float32)
    weight = np.asarray(weight, dtype=np.float32)
    return np.clip(image + noise * (weight[..., None] if weight.ndim else weight), 0.0, 1.0).astype(np.float32)


def _apart(centre: np.ndarray, radius: float, placed: list[tuple[np.ndarray, float]]) -> bool:
    return all(np.linalg.norm(centre - other) >= _SPAN * (radius + r) + _GAP for other, r in placed)


def _place(
    rng: np.random.Generator, size: int, radius: float, placed: list[tuple[np.ndarray, float]], attempts: int = 200
) -> np.ndarray | None:
    """A centre for an object of circumradius ``radius`` inside the image and apart from ``placed``."""
    margin = _SPAN * radius + 1
    for _ in range(attempts):
        centre = rng.uniform(margin, size - 1 - margin, size=2)
        if _apart(centre, radius, placed):
            return centre
    return None


def _under_distractors(rng: np.random.Generator, image: np.ndarray, count: int) -> np.ndarray:
    """``image`` with ``count`` thin lines / blobs of no class painted on it (under the objects drawn later)."""
    size = image.shape[0]
    for _ in range(count):
        alpha = _distractor_alpha(rng, size)
        image = _composite(image, alpha, rng.uniform(0.0, 1.0, size=3).astype(np.float32))
    return image


def _pair(rng: np.random.Generator, size: int) -> BenchmarkScene:
    image = _background(rng, size)
    labels = tuple(int(label) for label in rng.choice(len(SHAPES), size=2, replace=False))
    while True:  # two objects that fit apart (a few draws at most: the radii leave room on any side)
        radii = rng.uniform(0.14, 0.21, size=2) * size
        first = _place(rng, size, radii[0], [])
        second = None if first is None else _place(rng, size, radii[1], [(first, radii[0])], attempts=20)
        if first is not None and second is not None:
            break
    angles = rng.uniform(0.0, 2 * np.pi, size=2)
    image = _under_distractors(rng, image, int(rng.integers(1, 4)))
    masks = []
    for label, centre, radius, angle in zip(labels, (first, second), radii, angles):
        alpha = _shape_alpha(SHAPES[label], centre, radius, angle, size)
        masks.append(alpha >= 0.5)
        image = _paint_object(rng, image, alpha, masks[-1], centre, radius)
    return BenchmarkScene(_noise(rng, image), labels, np.stack(masks), np.zeros((size, size), bool))


def _marker(kind: int, side: int, horizontal: bool) -> np.ndarray:
    """The marker's grey levels ``(side, side)``: a checkerboard of 2-pixel cells, or 2-pixel stripes."""
    rows, cols = np.mgrid[0:side, 0:side] // 2
    pattern = (rows + cols) % 2 if kind == 0 else (rows if horizontal else cols) % 2
    return np.where(pattern == 1, 0.95, 0.05).astype(np.float32)


def _shortcut(rng: np.random.Generator, size: int, intervention: Intervention | None) -> BenchmarkScene:
    # Every random draw happens whatever the intervention, so that the scenes differ only where it acts.
    image = _background(rng, size)
    label = int(rng.integers(NO_MARKER))
    kind = int(rng.integers(len(SHAPES)))  # the shape's class: independent of the label
    radius = rng.uniform(0.15, 0.28) * size
    margin = _SPAN * radius + 1
    centre = rng.uniform(margin, size - 1 - margin, size=2)
    angle = rng.uniform(0.0, 2 * np.pi)
    side = max(4, round(MARKER_FRACTION * size))
    half = side / 2
    # The marker's top-left corner: uniform over the places that keep it apart from the shape (the farthest
    # place when none does, which the scene sizes of the benchmark never need).
    tops, lefts = np.mgrid[1 : size - side, 1 : size - side].reshape(2, -1)
    distance = np.hypot(lefts + half - 0.5 - centre[0], tops + half - 0.5 - centre[1])
    apart = np.flatnonzero(distance >= _SPAN * radius + half * np.sqrt(2) + _GAP)
    place = int(apart[rng.integers(len(apart))]) if len(apart) else int(distance.argmax())
    top, left = int(tops[place]), int(lefts[place])
    horizontal = bool(rng.integers(2))
    image = _under_distractors(rng, image, int(rng.integers(1, 4)))
    alpha = _shape_alpha(SHAPES[kind], centre, radius, angle, size)
    shape_mask = alpha >= 0.5
    painted = _paint_object(rng, image, alpha, shape_mask, centre, radius)
    if intervention != "no_shape":
        image = painted
    marker_mask = np.zeros((size, size), bool)
    if intervention == "no_marker":
        label = NO_MARKER
    else:
        label = 1 - label if intervention == "swap_marker" else label
        image[top : top + side, left : left + side] = _marker(label, side, horizontal)[..., None]
        marker_mask[top : top + side, left : left + side] = True
    image = _noise(rng, image)
    return BenchmarkScene(image, (label,), marker_mask[None], shape_mask)


def _with_distractor_objects(
    image: np.ndarray, mask: np.ndarray, label: int, rng: np.random.Generator
) -> BenchmarkScene:
    """A scenario-1 scene with one to three objects of no class painted where they touch neither the object nor
    each other."""
    size = image.shape[0]
    rows, cols = np.nonzero(mask)
    centre = np.array([cols.mean(), rows.mean()])
    extent = float(np.sqrt((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2).max()) + 1.0
    placed = [(centre, extent / _SPAN)]
    other = np.zeros((size, size), bool)
    image = image.copy()
    for _ in range(int(rng.integers(1, 4))):
        radius = rng.uniform(0.12, 0.2) * size
        kind = NO_CLASS_SHAPES[int(rng.integers(len(NO_CLASS_SHAPES)))]
        angle = rng.uniform(0.0, 2 * np.pi)
        where = None
        while where is None and radius >= 0.08 * size:  # smaller until it fits beside the others
            where = _place(rng, size, radius, placed, attempts=50)
            radius = radius if where is not None else 0.85 * radius
        if where is None:
            continue
        placed.append((where, radius))
        alpha = _shape_alpha(kind, where, radius, angle, size)
        image = _paint_object(rng, image, alpha, alpha >= 0.5, where, radius)
        image = _noise(rng, image, alpha)
        other |= alpha >= 0.5
    return BenchmarkScene(image, (label,), mask[None], other & ~mask)


@dataclass
class Explanations:
    """The explanations of one scenario's scenes: one per labelled object (two per scene in scenario 2).

    Attributes:
        images: RGB scenes ``(n, H, W, 3)`` in [0, 1].
        scene: the scene of each explanation ``(E,)``, in increasing order.
        labels: the explained class of each ``(E,)``.
        right: the masks the maps should point at ``(E, H, W)``.
        wrong: the masks they should not point at ``(E, H, W)`` (empty in scenario 1).
        inputs: the normalised model inputs ``(E, 3, H, W)`` (a scene's image once per explanation).
        scene_labels: per scene, its labels (``"a"`` or ``"a+b"``), for the CSV.
    """

    images: np.ndarray
    scene: np.ndarray
    labels: np.ndarray
    right: np.ndarray
    wrong: np.ndarray
    inputs: torch.Tensor
    scene_labels: list[str]

    def first(self, scenes: int) -> Explanations:
        """The explanations of the first ``scenes`` scenes."""
        keep = int(np.searchsorted(self.scene, scenes))
        return Explanations(
            self.images[:scenes],
            self.scene[:keep],
            self.labels[:keep],
            self.right[:keep],
            self.wrong[:keep],
            self.inputs[:keep],
            self.scene_labels[:scenes],
        )

    def per_scene(self, values: np.ndarray) -> np.ndarray:
        """Per-explanation values averaged over each scene's explanations ``(n,)``."""
        counts = np.bincount(self.scene, minlength=len(self.images))
        sums = np.bincount(self.scene, weights=np.asarray(values, dtype=np.float64), minlength=len(self.images))
        return sums / np.maximum(counts, 1)


class BenchmarkScenes(Dataset):
    """``n`` scenes of one scenario; item ``i`` is ``(normalised image (3, H, W), label, mask (H, W) bool)`` of
    the first labelled object (see :meth:`scene` for everything).

    Scene ``i`` depends only on ``(scenario, seed, i)``; scenario ``"single"`` gives the scenes of
    ``SceneDataset(n, seed)`` and scenario ``"distractors"`` the same scenes with distractor objects added.

    Args:
        scenario: one of :data:`SCENARIOS`.
        n: number of scenes.
        seed: non-negative int seeding the scenes.
        size: the side of the square images in pixels (at least 32).
    """

    def __init__(self, scenario: Scenario, n: int, seed: int = 0, size: int = SCENE_SIZE) -> None:
        self.scenario = check_scenario(scenario)
        self.n = check_int(n, "n", minimum=0)
        self.seed = check_int(seed, "seed", minimum=0)
        self.size = check_int(size, "size", minimum=_MIN_SIZE)

    def __len__(self) -> int:
        return self.n

    @property
    def num_classes(self) -> int:
        """How many classes the scenario's model has (the shortcut's includes "no marker")."""
        return len(SHORTCUT_CLASSES) if self.scenario == "shortcut" else len(SHAPES)

    def scene(self, index: int, intervention: Intervention | None = None) -> BenchmarkScene:
        """Scene ``index``, optionally with an intervention (shortcut scenario only: see :data:`INTERVENTIONS`;
        the scene's label is the truth of the altered scene: :data:`NO_MARKER` without the marker, the other
        pattern's class with the swapped marker, and its marker mask is empty without the marker).

        Raises:
            IndexError: for an index out of range.
            ValueError: for an unknown intervention, or one on another scenario than ``"shortcut"``.
        """
        index = check_int(index, "index")
        if not -self.n <= index < self.n:
            raise IndexError(f"index must be in [-{self.n}, {self.n}); got {index}")
        index %= self.n
        if intervention is not None and (intervention not in INTERVENTIONS or self.scenario != "shortcut"):
            raise ValueError(
                f"intervention must be None or, in the shortcut scenario, one of {INTERVENTIONS}; got "
                f"{intervention!r} in scenario {self.scenario!r}"
            )
        if self.scenario == "single" or self.scenario == "distractors":
            image, label, mask = _render(np.random.default_rng([_DATASET_TAG, self.seed, index]), self.size, None)
            if self.scenario == "single":
                return BenchmarkScene(image, (label,), mask[None], np.zeros_like(mask))
            rng = np.random.default_rng([_TAGS["distractors"], self.seed, index])
            return _with_distractor_objects(image, mask, label, rng)
        rng = np.random.default_rng([_TAGS[self.scenario], self.seed, index])
        if self.scenario == "pair":
            return _pair(rng, self.size)
        return _shortcut(rng, self.size, intervention)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        scene = self.scene(index)
        return normalize(scene.image), scene.label, torch.from_numpy(scene.masks[0])

    def images(self, intervention: Intervention | None = None) -> np.ndarray:
        """All images at once, float32 ``(n, H, W, 3)`` (with ``intervention`` applied to each)."""
        out = np.empty((self.n, self.size, self.size, 3), np.float32)
        for index in range(self.n):
            out[index] = self.scene(index, intervention).image
        return out

    def scenes(self) -> list[BenchmarkScene]:
        """All scenes, in order."""
        return [self.scene(index) for index in range(self.n)]

    def explanations(self) -> Explanations:
        """What the benchmark explains in these scenes: each labelled object's class in turn, its mask as the
        right region and every other object's pixels (the other class's object, the shortcut's shape, the
        distractor objects) as the wrong one."""
        scenes = self.scenes()
        images = np.zeros((self.n, self.size, self.size, 3), np.float32)
        scene_index, labels, right, wrong = [], [], [], []
        for index, scene in enumerate(scenes):
            images[index] = scene.image
            for k, label in enumerate(scene.labels):
                scene_index.append(index)
                labels.append(label)
                right.append(scene.masks[k])
                wrong.append(np.delete(scene.masks, k, axis=0).any(axis=0) | scene.other)
        shape = (0, self.size, self.size)
        scene_array = np.asarray(scene_index, dtype=np.int64)
        return Explanations(
            images=images,
            scene=scene_array,
            labels=np.asarray(labels, dtype=np.int64),
            right=np.stack(right) if right else np.zeros(shape, bool),
            wrong=np.stack(wrong) if wrong else np.zeros(shape, bool),
            inputs=normalize(images[scene_array]),
            scene_labels=["+".join(str(label) for label in scene.labels) for scene in scenes],
        )


class ShortcutTrainingScenes(BenchmarkScenes):
    """The training scenes of the shortcut model: ``n`` shortcut scenes of which every third (``index % 3 == 2``)
    is drawn without its marker (label :data:`NO_MARKER`), so that the model learns the three classes of
    :data:`SHORTCUT_CLASSES`.

    Args:
        n: number of scenes.
        seed: non-negative int seeding the scenes.
        size: the side of the square images in pixels (at least 32).
    """

    def __init__(self, n: int, seed: int = 0, size: int = SCENE_SIZE) -> None:
        super().__init__("shortcut", n, seed, size)

    def scene(self, index: int, intervention: Intervention | None = None) -> BenchmarkScene:
        """Scene ``index`` (without its marker when ``index % 3 == 2`` and no other intervention is asked)."""
        if intervention is None and check_int(index, "index") % max(self.n, 1) % 3 == 2:
            intervention = "no_marker"
        return super().scene(index, intervention)
