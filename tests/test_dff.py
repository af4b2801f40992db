"""Deep Feature Factorization: known concepts recovered, a torchvision model, rendering, state, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn
from torchvision.models import resnet18

from pytorch_grad_cam import DeepFeatureFactorization, run_dff_on_image
from pytorch_grad_cam.feature_factorization import dff
from pytorch_grad_cam.utils.image import show_factorization_on_image

# The reference's NMF settings (init="random", random_state=0, 200 iterations) do not always converge.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CONCEPT_A = np.array([3.0, 1.0, 2.0, 0.0, 0.0, 0.5])
CONCEPT_B = np.array([0.0, 0.5, 0.0, 2.0, 3.0, 1.0])


def _masks() -> tuple[np.ndarray, np.ndarray]:
    """Where each concept is present (8x8, disjoint, varying strength, background elsewhere)."""
    mask_a = np.zeros((8, 8))
    mask_b = np.zeros((8, 8))
    mask_a[0:3, 0:4] = np.linspace(0.5, 1.0, 12).reshape(3, 4)
    mask_b[4:8, 5:8] = np.linspace(1.0, 0.25, 12).reshape(4, 3)
    return mask_a, mask_b


def _cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


def _match(concepts: np.ndarray) -> list[int]:
    """Which column of ``concepts`` is concept A and which is concept B."""
    first = int(np.argmax([_cosine(concepts[:, k], CONCEPT_A) for k in range(2)]))
    return [first, 1 - first]


def test_dff_recovers_two_hand_built_concepts():
    mask_a, mask_b = _masks()
    activations = (CONCEPT_A[:, None, None] * mask_a + CONCEPT_B[:, None, None] * mask_b)[None]  # (1, 6, 8, 8)
    original = activations.copy()
    concepts, explanations = dff(activations, n_components=2)
    assert concepts.shape == (6, 2) and explanations.shape == (1, 2, 8, 8)
    a, b = _match(concepts)
    assert _cosine(concepts[:, a], CONCEPT_A) > 0.999 and _cosine(concepts[:, b], CONCEPT_B) > 0.999
    np.testing.assert_allclose(explanations[0, a] / explanations[0, a].max(), mask_a, atol=1e-3)
    np.testing.assert_allclose(explanations[0, b] / explanations[0, b].max(), mask_b, atol=1e-3)
    np.testing.assert_allclose(concepts @ explanations[0].reshape(2, -1), activations[0].reshape(6, -1), atol=1e-3)
    np.testing.assert_array_equal(activations, original)


def test_dff_does_not_modify_the_callers_array_and_zeroes_nans():
    activations = np.abs(np.random.default_rng(0).normal(size=(1, 4, 3, 3)))
    activations[0, 1, 1, 1] = np.nan
    clean = activations.copy()
    clean[0, 1, 1, 1] = 0
    concepts, explanations = dff(activations, n_components=2)
    assert np.isnan(activations[0, 1, 1, 1])
    expected_concepts, expected_explanations = dff(clean, n_components=2)
    np.testing.assert_allclose(concepts, expected_concepts)
    np.testing.assert_allclose(explanations, expected_explanations)


def test_class_with_known_concepts_and_concept_scores():
    mask_a, mask_b = _masks()
    model = nn.Sequential(nn.Conv2d(2, 6, 1, bias=False), nn.Identity())
    head = nn.Linear(6, 2, bias=False)
    with torch.no_grad():
        weight = torch.tensor(np.stack([CONCEPT_A, CONCEPT_B], axis=1), dtype=torch.float32)
        model[0].weight.copy_(weight[..., None, None])
        head.weight.copy_(torch.tensor(np.stack([CONCEPT_A, CONCEPT_B]) / 3, dtype=torch.float32))
    x = torch.tensor(np.stack([mask_a, mask_b]), dtype=torch.float32)[None]
    with DeepFeatureFactorization(model, model[0], computation_on_concepts=head) as factorization:
        concepts, heatmaps, scores = factorization(x, n_components=2)
    a, b = _match(concepts)
    assert isinstance(heatmaps, list) and len(heatmaps) == 1 and heatmaps[0].dtype == np.float32
    np.testing.assert_allclose(heatmaps[0][a], mask_a / (mask_a.max() + 1e-7), atol=2e-3)
    np.testing.assert_allclose(heatmaps[0][b], mask_b / (mask_b.max() + 1e-7), atol=2e-3)
    assert scores.shape == (2, 2)
    assert scores[a].argmax() == 0 and scores[b].argmax() == 1
    np.testing.assert_allclose(scores, np.float32(concepts).T @ head.weight.detach().numpy().T, atol=1e-5)
    assert hook_count(model) == 0


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(weights=None, num_classes=10)


def test_torchvision_model(resnet):
    resnet.train()
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    x = torch.randn(2, 3, 96, 80)
    with DeepFeatureFactorization(resnet, resnet.layer4, computation_on_concepts=resnet.fc) as factorization:
        concepts, heatmaps, scores = factorization(x, n_components=3)
    assert concepts.shape == (512, 3) and scores.shape == (3, 10)
    assert len(heatmaps) == 2
    for maps in heatmaps:
        assert maps.shape == (3, 96, 80) and maps.dtype == np.float32
        assert maps.min() >= 0 and maps.max() <= 1
        assert (maps.reshape(3, -1).max(axis=1) > 0.99).all()  # scaled to [0, 1], then bilinearly resized
    # the plumbing: the same factorization as dff() on the layer's activations taken by hand (eval mode)
    captured = []
    handle = resnet.layer4.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        with torch.no_grad():
            resnet.eval()(x)
    finally:
        handle.remove()
        resnet.train()
    expected_concepts, _ = dff(captured[0].numpy(), n_components=3)
    np.testing.assert_allclose(concepts, expected_concepts, atol=1e-5)
    assert all(m.training for m in resnet.modules())
    assert all(torch.equal(before[k], v) for k, v in resnet.state_dict().items())
    assert hook_count(resnet) == 0

    img = np.float32(np.random.default_rng(0).random((96, 80, 3)))
    rendered = show_factorization_on_image(img, heatmaps[0], image_weight=0.3)
    assert rendered.dtype == np.uint8 and rendered.shape == (96, 80, 3)


def test_run_dff_on_image(resnet):
    resnet.eval()
    image = np.uint8(np.random.default_rng(1).integers(0, 256, (64, 64, 3)))
    tensor = torch.randn(3, 64, 64)
    labels = [f"class {i}" for i in range(10)]
    with_legend = run_dff_on_image(resnet, resnet.layer4, resnet.fc, image, tensor, n_components=2, labels=labels)
    assert with_legend.dtype == np.uint8 and with_legend.shape == (64, 64 * 3, 3)
    np.testing.assert_array_equal(with_legend[:, :64], image)
    without = run_dff_on_image(resnet, resnet.layer4, None, image, tensor, n_components=2)
    assert without.dtype == np.uint8 and without.shape == (64, 128, 3)
    np.testing.assert_array_equal(without[:, 64:], with_legend[:, 64:128])
    assert hook_count(resnet) == 0


def test_bad_input(resnet):
    factorization = DeepFeatureFactorization(resnet, resnet.layer4)
    with pytest.raises(ValueError, match=r"input_tensor must have shape \(B, C, H, W\); got \(3, 64, 64\)"):
        factorization(torch.randn(3, 64, 64))
    with pytest.raises(
        TypeError, match=r"input_tensor must be a torch.Tensor of shape .*; got a numpy.ndarray of shape \(1, 3"
    ):
        factorization(np.zeros((1, 3, 64, 64)))
    with pytest.raises(ValueError, match=r"input_tensor contains NaN or inf values"):
        factorization(torch.full((1, 3, 64, 64), float("nan")))
    with pytest.raises(ValueError, match=r"input_tensor must hold at least one image"):
        factorization(torch.randn(0, 3, 64, 64))
    with pytest.raises(TypeError, match=r"input_tensor must be a floating-point"):
        factorization(torch.zeros(1, 3, 64, 64, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"n_components must be a positive int; got 0"):
        factorization(torch.randn(1, 3, 64, 64), n_components=0)
    with pytest.raises(ValueError, match=r"target_layer \(Linear\) is not a submodule of the model"):
        DeepFeatureFactorization(resnet, nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"target_layer must be one torch.nn.Module"):
        DeepFeatureFactorization(resnet, [resnet.layer3, resnet.layer4])
    with pytest.raises(TypeError, match=r"computation_on_concepts must be callable or None; got int 3"):
        DeepFeatureFactorization(resnet, resnet.layer4, computation_on_concepts=3)
    with pytest.raises(ValueError, match=r"target_layer gives activations of shape \(1, 10\)"):
        DeepFeatureFactorization(resnet, resnet.fc)(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"img_pil must be an RGB image of shape \(H, W, 3\); got \(64, 64\)"):
        run_dff_on_image(resnet, resnet.layer4, None, np.zeros((64, 64), np.uint8), torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match=r"activations must have shape \(B, C, h, w\); got \(4, 4\)"):
        dff(np.ones((4, 4)))
    assert hook_count(resnet) == 0
