"""The benchmark scenarios (pytorch_grad_cam.demo.scenarios): pure functions of (seed, index), scenario 1 equal to
SceneDataset bit for bit, scenario 4 equal to it away from the distractor objects, the pair's two disjoint objects,
the shortcut's marker and the interventions that change nothing but the region they act on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from pytorch_grad_cam.demo.scenarios import (
    INTERVENTIONS,
    MARKER_FRACTION,
    NO_CLASS_SHAPES,
    NO_MARKER,
    SCENARIOS,
    SHORTCUT_CLASSES,
    BenchmarkScene,
    BenchmarkScenes,
    ShortcutTrainingScenes,
    check_scenario,
)
from pytorch_grad_cam.demo.scenes import SHAPES, SceneDataset, normalize

SIZE = 64
MARKER = 12  # MARKER_FRACTION of a 64-pixel scene
SQUARE = np.ones((3, 3), bool)


def _near(mask: np.ndarray, pixels: int = 2) -> np.ndarray:
    """The pixels within ``pixels`` (Chebyshev distance) of ``mask``."""
    return ndimage.binary_dilation(mask, SQUARE, iterations=pixels)


def _changed(first: BenchmarkScene, second: BenchmarkScene) -> np.ndarray:
    """Bool ``(H, W)``: the pixels whose colour differs between the two scenes' images."""
    return np.any(first.image != second.image, axis=-1)


def _assert_same_scene(first: BenchmarkScene, second: BenchmarkScene) -> None:
    np.testing.assert_array_equal(first.image, second.image)
    assert first.labels == second.labels
    np.testing.assert_array_equal(first.masks, second.masks)
    np.testing.assert_array_equal(first.other, second.other)


def _marker_pattern(kind: int, horizontal: bool) -> np.ndarray:
    """Which of the marker's 12 x 12 pixels are bright: a checkerboard of 2-pixel cells (class 0), or 2-pixel
    stripes (class 1), horizontal or vertical."""
    rows, cols = np.indices((MARKER, MARKER)) // 2
    if kind == 0:
        return (rows + cols) % 2 == 1
    return (rows if horizontal else cols) % 2 == 1


def _bright(scene: BenchmarkScene) -> np.ndarray:
    """The marker's pixels above mid-grey, ``(12, 12)``."""
    rows, cols = np.nonzero(scene.masks[0])
    patch = scene.image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return patch.mean(axis=-1) > 0.5


# ------------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scene_is_a_pure_function_of_seed_and_index(scenario: str) -> None:
    scenes = BenchmarkScenes(scenario, 6, seed=4)  # type: ignore[arg-type]
    scene = scenes.scene(3)
    _assert_same_scene(scene, scenes.scene(3))
    _assert_same_scene(scene, BenchmarkScenes(scenario, 40, seed=4).scene(3))  # type: ignore[arg-type]
    _assert_same_scene(scenes.scene(-3), scene)
    assert not np.array_equal(BenchmarkScenes(scenario, 6, seed=5).scene(3).image, scene.image)  # type: ignore[arg-type]
    assert not np.array_equal(scenes.scene(2).image, scene.image)
    assert scene.image.dtype == np.float32 and scene.image.shape == (SIZE, SIZE, 3)
    assert scene.image.min() >= 0.0 and scene.image.max() <= 1.0
    assert scene.masks.dtype == bool and scene.masks.shape == (len(scene.labels), SIZE, SIZE)
    assert scene.other.dtype == bool and scene.other.shape == (SIZE, SIZE)
    assert scene.label == scene.labels[0] and all(isinstance(label, int) for label in scene.labels)


def test_scenarios_are_seeded_apart() -> None:
    """The four scenarios draw different scenes for the same (seed, index), except "distractors", which adds objects
    to the scene of "single"."""
    images = {scenario: BenchmarkScenes(scenario, 1, seed=0).scene(0).image for scenario in SCENARIOS}  # type: ignore[arg-type]
    for first in ("single", "pair", "shortcut"):
        for second in ("pair", "shortcut", "distractors"):
            if first != second:
                assert not np.array_equal(images[first], images[second]), (first, second)


def test_single_is_scene_dataset_bit_for_bit() -> None:
    for seed, size, n in ((0, SIZE, 12), (7, 48, 5)):
        dataset, scenes = SceneDataset(n, seed, size), BenchmarkScenes("single", n, seed, size)
        for index in range(n):
            image, label, mask = dataset.scene(index)
            scene = scenes.scene(index)
            np.testing.assert_array_equal(scene.image, image)
            assert scene.labels == (label,)
            np.testing.assert_array_equal(scene.masks, mask[None])
            assert not scene.other.any()
            item, reference = scenes[index], dataset[index]
            assert torch.equal(item[0], reference[0]) and item[1] == reference[1] and torch.equal(item[2], reference[2])


def test_distractors_add_objects_beside_the_single_scene_and_nothing_else() -> None:
    single, distractors = BenchmarkScenes("single", 100, seed=3), BenchmarkScenes("distractors", 100, seed=3)
    counts = []
    for index in range(100):
        plain, scene = single.scene(index), distractors.scene(index)
        assert scene.labels == plain.labels
        np.testing.assert_array_equal(scene.masks, plain.masks)
        assert scene.other.any(), index
        # the distractor objects touch the object nowhere (not even diagonally) and leave its pixels as they were
        assert not (_near(scene.masks[0], 1) & scene.other).any(), index
        changed = _changed(plain, scene)
        assert not (changed & scene.masks[0]).any(), index
        # pixels more than 2 px from the distractor objects are untouched (their anti-aliased edges and the noise
        # painted under their coverage stay within it)
        assert not (changed & ~_near(scene.other)).any(), index
        assert changed[scene.other].mean() > 0.9, index
        counts.append(ndimage.label(scene.other)[1])
    # one to three objects, of 64-pixel scenes: some scenes hold one, some several
    assert min(counts) >= 1 and max(counts) >= 2
    assert set(NO_CLASS_SHAPES).isdisjoint(SHAPES)


def test_pair_holds_two_objects_of_different_classes_apart() -> None:
    scenes = BenchmarkScenes("pair", 60, seed=1)
    first_labels = []
    for index in range(60):
        scene = scenes.scene(index)
        assert len(scene.labels) == 2 and scene.labels[0] != scene.labels[1], index
        assert all(0 <= label < len(SHAPES) for label in scene.labels), index
        assert scene.masks.shape == (2, SIZE, SIZE)
        assert scene.masks[0].sum() > 20 and scene.masks[1].sum() > 20, index
        assert not (_near(scene.masks[0], 1) & scene.masks[1]).any(), index  # disjoint, not even touching
        assert not scene.other.any()
        first_labels.append(scene.labels[0])
        item = scenes[index]
        assert item[1] == scene.labels[0] and torch.equal(item[2], torch.from_numpy(scene.masks[0]))
    assert set(first_labels) == set(range(len(SHAPES)))


# --------------------------------------------------------------------------------------------- shortcut
def test_shortcut_marker_decides_the_label() -> None:
    scenes = BenchmarkScenes("shortcut", 200, seed=0)
    assert SHORTCUT_CLASSES[NO_MARKER] == "no marker" and len(SHORTCUT_CLASSES) == 3 and scenes.num_classes == 3
    labels = []
    for index in range(200):
        scene = scenes.scene(index)
        labels.append(scene.label)
        assert scene.label in (0, 1), index
        marker = scene.masks[0]
        rows, cols = np.nonzero(marker)
        assert marker.sum() == MARKER * MARKER, index
        assert (rows.max() - rows.min(), cols.max() - cols.min()) == (MARKER - 1, MARKER - 1), index
        assert scene.other.sum() > 50, index  # the shape is the larger object
        assert not (_near(marker, 1) & scene.other).any(), index
        bright = _bright(scene)
        if scene.label == 0:
            np.testing.assert_array_equal(bright, _marker_pattern(0, False))
        else:
            assert np.array_equal(bright, _marker_pattern(1, True)) or np.array_equal(
                bright, _marker_pattern(1, False)
            ), index
    # roughly balanced: 100 ± 4 standard deviations of Binomial(200, 1/2)
    assert 72 <= sum(label == 0 for label in labels) <= 128


@pytest.mark.parametrize(("size", "side"), [(32, 6), (96, 18)])
def test_shortcut_marker_scales_with_the_scene(size: int, side: int) -> None:
    assert side == max(4, round(MARKER_FRACTION * size))
    scene = BenchmarkScenes("shortcut", 3, seed=2, size=size).scene(1)
    rows, cols = np.nonzero(scene.masks[0])
    assert scene.image.shape == (size, size, 3) and scene.masks[0].sum() == side * side
    assert (rows.max() - rows.min(), cols.max() - cols.min()) == (side - 1, side - 1)


def test_interventions_change_only_the_region_they_act_on() -> None:
    scenes = BenchmarkScenes("shortcut", 30, seed=5)
    for index in range(30):
        scene = scenes.scene(index)
        marker, shape = scene.masks[0], scene.other

        no_marker = scenes.scene(index, "no_marker")
        assert no_marker.labels == (NO_MARKER,)
        assert no_marker.masks.shape == (1, SIZE, SIZE) and not no_marker.masks.any()
        np.testing.assert_array_equal(no_marker.other, shape)
        changed = _changed(scene, no_marker)
        assert not (changed & ~marker).any(), index
        assert changed[marker].mean() > 0.5, index

        swapped = scenes.scene(index, "swap_marker")
        assert swapped.labels == (1 - scene.label,)  # the truth of the altered scene: the other pattern's class
        np.testing.assert_array_equal(swapped.masks, scene.masks)
        np.testing.assert_array_equal(swapped.other, shape)
        changed = _changed(scene, swapped)
        assert not (changed & ~marker).any(), index
        assert changed[marker].any() and not np.array_equal(_bright(swapped), _bright(scene)), index
        if swapped.label == 0:
            np.testing.assert_array_equal(_bright(swapped), _marker_pattern(0, False))

        no_shape = scenes.scene(index, "no_shape")
        assert no_shape.labels == scene.labels
        np.testing.assert_array_equal(no_shape.masks, scene.masks)
        np.testing.assert_array_equal(no_shape.other, shape)  # where the shape was
        changed = _changed(scene, no_shape)
        assert not (changed & ~_near(shape)).any(), index
        assert not (changed & marker).any(), index
        assert changed[shape].mean() > 0.9, index


def test_images_with_and_without_intervention() -> None:
    scenes = BenchmarkScenes("shortcut", 4, seed=6)
    for intervention in (None, *INTERVENTIONS):
        images = scenes.images(intervention)  # type: ignore[arg-type]
        assert images.dtype == np.float32 and images.shape == (4, SIZE, SIZE, 3)
        for index in range(4):
            np.testing.assert_array_equal(images[index], scenes.scene(index, intervention).image)  # type: ignore[arg-type]
    assert BenchmarkScenes("pair", 0).images().shape == (0, SIZE, SIZE, 3)
    assert len(BenchmarkScenes("pair", 3, seed=1).scenes()) == 3


def test_shortcut_training_scenes_leave_out_every_third_marker() -> None:
    training, benchmark = ShortcutTrainingScenes(9, seed=2), BenchmarkScenes("shortcut", 9, seed=2)
    assert training.scenario == "shortcut" and training.num_classes == 3 and len(training) == 9
    for index in range(9):
        scene = training.scene(index)
        if index % 3 == 2:
            _assert_same_scene(scene, benchmark.scene(index, "no_marker"))
            assert scene.label == NO_MARKER and not training[index][2].any()
        else:
            _assert_same_scene(scene, benchmark.scene(index))
            assert scene.label in (0, 1)
    _assert_same_scene(training.scene(-1), training.scene(8))
    _assert_same_scene(training.scene(2, "swap_marker"), benchmark.scene(2, "swap_marker"))
    with pytest.raises(IndexError, match="index"):
        training.scene(9)


# ------------------------------------------------------------------------------------------ explanations
def test_explanations_explain_each_labelled_object_in_turn() -> None:
    scenes = BenchmarkScenes("pair", 3, seed=2)
    explanations = scenes.explanations()
    np.testing.assert_array_equal(explanations.scene, [0, 0, 1, 1, 2, 2])
    assert explanations.images.shape == (3, SIZE, SIZE, 3) and explanations.inputs.shape == (6, 3, SIZE, SIZE)
    for index, scene in enumerate(scenes.scenes()):
        np.testing.assert_array_equal(explanations.images[index], scene.image)
        first, second = 2 * index, 2 * index + 1
        assert tuple(explanations.labels[[first, second]]) == scene.labels
        np.testing.assert_array_equal(explanations.right[first], scene.masks[0])
        np.testing.assert_array_equal(explanations.wrong[first], scene.masks[1])  # the other class's object
        np.testing.assert_array_equal(explanations.right[second], scene.masks[1])
        np.testing.assert_array_equal(explanations.wrong[second], scene.masks[0])
        assert explanations.scene_labels[index] == f"{scene.labels[0]}+{scene.labels[1]}"
        for row in (first, second):
            assert torch.equal(explanations.inputs[row], normalize(scene.image))
    np.testing.assert_allclose(explanations.per_scene(np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])), [0.5, 1.0, 0.0])
    head = explanations.first(2)
    np.testing.assert_array_equal(head.scene, [0, 0, 1, 1])
    assert head.images.shape == (2, SIZE, SIZE, 3) and head.inputs.shape == (4, 3, SIZE, SIZE)
    assert len(head.scene_labels) == 2 and head.right.shape == head.wrong.shape == (4, SIZE, SIZE)


@pytest.mark.parametrize("scenario", ["single", "shortcut", "distractors"])
def test_explanations_of_one_object_scenes(scenario: str) -> None:
    scenes = BenchmarkScenes(scenario, 3, seed=4)  # type: ignore[arg-type]
    explanations = scenes.explanations()
    np.testing.assert_array_equal(explanations.scene, [0, 1, 2])
    for index, scene in enumerate(scenes.scenes()):
        assert explanations.labels[index] == scene.label and explanations.scene_labels[index] == str(scene.label)
        np.testing.assert_array_equal(explanations.right[index], scene.masks[0])
        np.testing.assert_array_equal(explanations.wrong[index], scene.other)  # the shape, the distractor objects
        assert explanations.wrong[index].any() == (scenario != "single")
    empty = BenchmarkScenes(scenario, 0).explanations()  # type: ignore[arg-type]
    assert empty.right.shape == empty.wrong.shape == (0, SIZE, SIZE) and empty.inputs.shape == (0, 3, SIZE, SIZE)
    assert empty.per_scene(np.zeros(0)).shape == (0,)


# ------------------------------------------------------------------------------------------- dataset API
def test_getitem_gives_normalised_tensor_label_and_mask() -> None:
    for scenario in SCENARIOS:
        scenes = BenchmarkScenes(scenario, 3, seed=8)  # type: ignore[arg-type]
        image, label, mask = scenes[1]
        scene = scenes.scene(1)
        assert image.dtype == torch.float32 and image.shape == (3, SIZE, SIZE)
        assert torch.equal(image, normalize(scene.image))
        assert type(label) is int and label == scene.label
        assert mask.dtype == torch.bool and mask.shape == (SIZE, SIZE)
        assert torch.equal(mask, torch.from_numpy(scene.masks[0]))
        assert len(scenes) == 3 and scenes.num_classes == (3 if scenario == "shortcut" else len(SHAPES))


def test_bad_arguments() -> None:
    assert check_scenario("pair") == "pair"
    with pytest.raises(ValueError, match="scenario must"):
        BenchmarkScenes("double", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scenario must"):
        check_scenario(None)
    scenes = BenchmarkScenes("shortcut", 3)
    for index in (3, -4):
        with pytest.raises(IndexError, match="index"):
            scenes.scene(index)
    with pytest.raises(IndexError, match="index"):
        scenes[3]
    with pytest.raises(ValueError, match="intervention must"):
        scenes.scene(0, "no_background")  # type: ignore[arg-type]
    for scenario in ("single", "pair", "distractors"):
        with pytest.raises(ValueError, match="intervention must"):
            BenchmarkScenes(scenario, 3).scene(0, "no_marker")
        with pytest.raises(ValueError, match="intervention must"):
            BenchmarkScenes(scenario, 3).images("no_shape")
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        BenchmarkScenes("pair", -1)
    with pytest.raises(ValueError, match="seed must"):
        BenchmarkScenes("pair", 3, seed=-1)
    with pytest.raises(ValueError, match="size must be an integer >= 32"):
        BenchmarkScenes("pair", 3, size=16)
    with pytest.raises(TypeError, match="index"):
        scenes.scene(1.0)  # type: ignore[arg-type]
