"""The shipped demo model and its localization benchmark: scenes, offline loading, accuracy, pointing game."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from pytorch_grad_cam import GradCAM, RandomCAM
from pytorch_grad_cam.demo import (
    DEMO_CLASSES,
    SceneDataset,
    demo_image,
    demo_target_layers,
    load_demo_model,
    make_scene,
    preprocess,
)
from pytorch_grad_cam.demo.model import DEMO_WEIGHTS
from pytorch_grad_cam.demo.train import HELDOUT_SEED, TEST_SEED
from pytorch_grad_cam.metrics.pointing_game import pointing_game
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

N_HELDOUT = 300  # scenes of the test's held-out set (seed TEST_SEED, never used in training)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_demo_model()


@pytest.fixture(scope="module")
def heldout() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    images, labels, masks = SceneDataset(N_HELDOUT, TEST_SEED).arrays()
    return preprocess(images), labels, masks


# ------------------------------------------------------------------------------------------- scenes
def test_scene_is_a_pure_function_of_its_seed():
    first, second, other = make_scene(3), make_scene(3), make_scene(4)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[2], second[2])
    assert first[1] == second[1]
    assert not np.array_equal(first[0], other[0])


def test_scene_types_ranges_and_mask():
    image, label, mask = make_scene(11, size=96)
    assert image.dtype == np.float32 and image.shape == (96, 96, 3)
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert isinstance(label, int) and 0 <= label < len(DEMO_CLASSES)
    assert mask.dtype == bool and mask.shape == (96, 96)
    # the object is a sizeable, not image-filling region: a circumradius of 14-30% of the side
    assert 0.01 * 96 * 96 < mask.sum() < 0.3 * 96 * 96
    # the object's pixels differ from the rest of the image
    assert np.linalg.norm(image[mask].mean(axis=0) - image[~mask].mean(axis=0)) > 0.05


def test_forced_label_and_demo_image():
    for label in range(len(DEMO_CLASSES)):
        assert make_scene(5, label=label)[1] == label
    image, label, mask = demo_image()
    np.testing.assert_array_equal(image, demo_image()[0])
    assert image.shape == (64, 64, 3) and mask.any() and 0 <= label < len(DEMO_CLASSES)


def test_dataset_items_depend_on_seed_and_index_only():
    short, long = SceneDataset(3, seed=5), SceneDataset(10, seed=5)
    tensor, label, mask = long[2]
    assert tensor.shape == (3, 64, 64) and tensor.dtype == torch.float32
    assert mask.shape == (64, 64) and mask.dtype == torch.bool
    torch.testing.assert_close(short[2][0], tensor, rtol=0, atol=0)
    assert short[2][1] == label and torch.equal(short[2][2], mask)
    assert not torch.equal(SceneDataset(3, seed=6)[2][0], tensor)
    torch.testing.assert_close(preprocess(long.scene(2)[0])[0], tensor)
    with pytest.raises(IndexError, match="index must be in"):
        short[3]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: make_scene(0, size=16), ValueError, "size must be an integer >= 32; got 16"),
        (lambda: make_scene(0, size=64.0), TypeError, "size must be an integer >= 32; got float 64.0"),
        (lambda: make_scene(0, label=7), ValueError, r"label must be an integer in \[0, 5\); got 7"),
        (lambda: SceneDataset(-1), ValueError, "n must be an integer >= 0; got -1"),
        (lambda: SceneDataset(4, seed="a"), TypeError, "seed must be an integer >= 0; got str 'a'"),
        (lambda: preprocess(np.zeros((64, 64))), ValueError, r"image must have shape .*got \(64, 64\)"),
        (lambda: demo_target_layers(torch.nn.Linear(2, 2)), TypeError, "model must be a DemoCNN"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_training_and_test_seeds_are_apart():
    from pytorch_grad_cam.demo.train import train

    with pytest.raises(ValueError, match="seed must not be one of the held-out seeds"):
        train(seed=TEST_SEED)
    assert HELDOUT_SEED != TEST_SEED


# ------------------------------------------------------------------------------------------- model
def test_shipped_model_loads_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    model = load_demo_model()
    assert not model.training
    assert DEMO_WEIGHTS.stat().st_size <= 5_000_000
    assert demo_target_layers(model) == [model.features[-1]]
    assert model.metadata["heldout_accuracy"] >= 0.95
    with torch.no_grad():
        logits = model(preprocess(demo_image()[0]))
    assert logits.shape == (1, len(DEMO_CLASSES)) and torch.isfinite(logits).all()


def test_heldout_accuracy(model, heldout, record_property):
    images, labels, _ = heldout
    with torch.no_grad():
        predictions = model(images).argmax(dim=1).numpy()
    accuracy = float((predictions == labels).mean())
    record_property("demo_heldout_accuracy", accuracy)
    print(f"demo model held-out accuracy: {accuracy:.4f} on {len(labels)} scenes")
    assert accuracy >= 0.95
    # every class is represented and recognised
    for label in range(len(DEMO_CLASSES)):
        assert (predictions[labels == label] == label).mean() >= 0.85


def test_gradcam_points_at_the_object_and_randomcam_does_not(model, heldout, record_property):
    images, labels, masks = heldout
    targets = [ClassifierOutputTarget(int(label)) for label in labels]
    layers = demo_target_layers(model)
    with GradCAM(model, layers) as cam:
        grad_cams = cam(images, targets)
    torch.manual_seed(0)
    with RandomCAM(model, layers) as cam:
        random_cams = cam(images, targets)
    grad_score = float(pointing_game(grad_cams, masks).mean())
    random_score = float(pointing_game(random_cams, masks).mean())
    record_property("gradcam_pointing_game", grad_score)
    record_property("randomcam_pointing_game", random_score)
    print(f"pointing game on {len(labels)} held-out scenes: GradCAM {grad_score:.4f}, RandomCAM {random_score:.4f}")
    assert grad_score >= 0.8
    assert grad_score - random_score >= 0.3
