"""Model-parameter randomisation sanity checks (Adebayo et al. 2018): hand values of the similarities, an edge
detector judged "insensitive", Grad-CAM on a freshly trained tiny model judged "sensitive", state restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.metrics import model_randomization_check, spearman_correlation, ssim


def test_spearman_hand_values_and_ties():
    a = np.array([[[1.0, 2.0], [3.0, 4.0]]] * 4)
    b = np.stack([a[0], -a[0], np.array([[1.0, 1.0], [2.0, 3.0]]), np.zeros((2, 2))])
    # ties: ranks of [1, 1, 2, 3] are [1.5, 1.5, 3, 4]; pearson([1,2,3,4], [1.5,1.5,3,4]) = 4.5 / sqrt(5 * 4.5)
    expected = [1.0, -1.0, 4.5 / np.sqrt(5 * 4.5), 0.0]
    np.testing.assert_allclose(spearman_correlation(a, torch.from_numpy(b)), expected, atol=1e-12)
    zeros = np.zeros((1, 2, 2))
    assert spearman_correlation(zeros, zeros)[0] == 1.0


def test_ssim_hand_values():
    maps = torch.rand(2, 12, 12)
    np.testing.assert_allclose(ssim(maps, maps), [1.0, 1.0], atol=1e-12)
    # constant maps 0 and 1: SSIM = C1 / (1 + C1) (no variance, no covariance)
    c1 = 0.01**2
    np.testing.assert_allclose(ssim(np.zeros((1, 5, 5)), np.ones((1, 5, 5))), [c1 / (1 + c1)], rtol=1e-9)


def _scenes(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise plus a bright 4x4 square in the red (class 0) or green (class 1) channel."""
    x = torch.randn(count, 3, 16, 16, generator=generator) * 0.2
    y = torch.randint(0, 2, (count,), generator=generator)
    corners = torch.randint(0, 12, (count, 2), generator=generator)
    for i in range(count):
        row, column = corners[i].tolist()
        x[i, y[i], row : row + 4, column : column + 4] += 1.0
    return x, y


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor]:
    """A tiny CNN trained to 100 % in about a second, and four test scenes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 2),
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(150):
            x, y = _scenes(64, generator)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        x, y = _scenes(256, generator)
        with torch.no_grad():
            assert (model(x).argmax(1) == y).float().mean() > 0.95
        return model.eval(), _scenes(4, generator)[0]
    finally:
        torch.set_num_threads(threads)


def sobel_edges(x: torch.Tensor, targets: object = None) -> torch.Tensor:
    """A "saliency map" that ignores the model: the Sobel gradient magnitude of the grey input."""
    grey = x.mean(1, keepdim=True)
    kernel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])[None, None]
    return torch.hypot(F.conv2d(grey, kernel, padding=1), F.conv2d(grey, kernel.transpose(2, 3), padding=1))[:, 0]


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_edge_detector_is_insensitive(trained, mode):
    model, x = trained
    result = model_randomization_check(sobel_edges, model, x, mode=mode, progress=False)
    assert result.verdict == "insensitive"
    assert result.layers == ["6", "2", "0"]
    np.testing.assert_allclose(result.spearman, 1.0, atol=1e-12)
    np.testing.assert_allclose(result.ssim, 1.0, atol=1e-9)
    assert "insensitive" in str(result)


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_gradcam_on_a_trained_model_is_sensitive(trained, mode):
    model, x = trained
    before = {key: value.clone() for key, value in model.state_dict().items()}
    result = model_randomization_check(GradCAM(model, [model[3]]), model, x, mode=mode, progress=False)
    assert result.verdict == "sensitive", str(result)
    assert result.spearman.shape == (3, 4) and result.ssim.shape == (3, 4)
    assert result.similarity.min() < 0.5
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert hook_count(model) == 0


def test_parameters_restored_when_the_explainer_raises(trained):
    model, x = trained
    before = {key: value.clone() for key, value in model.state_dict().items()}
    calls = []

    def failing(inputs, targets):
        calls.append(targets)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return sobel_edges(inputs)

    with pytest.raises(RuntimeError, match="boom"):
        model_randomization_check(failing, model, x, progress=False)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    # targets=None: each image's top class of the trained model, fixed for every step
    with torch.no_grad():
        assert [t.category for t in calls[0]] == model(x).argmax(1).tolist()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"explainer": 3},
            TypeError,
            r"explainer must be callable, e.g. explainer\(input_tensor, targets\); got int 3",
        ),
        ({"mode": "cascade"}, ValueError, "mode must be one of 'cascading', 'independent'; got 'cascade'"),
        ({"metric": "hog"}, ValueError, "metric must be one of 'spearman', 'ssim'; got 'hog'"),
        ({"threshold": "low"}, TypeError, "threshold must be a real number; got str 'low'"),
        ({"layers": [nn.Linear(2, 2)]}, ValueError, "layers\\[0\\] must be a submodule of the model"),
        ({"input_tensor": np.zeros((1, 3, 16, 16))}, TypeError, r"input_tensor must be a torch\.Tensor; got .*ndarray"),
    ],
)
def test_bad_arguments(trained, kwargs, error, message):
    model, x = trained
    arguments = {"explainer": sobel_edges, "model": model, "input_tensor": x, "progress": False, **kwargs}
    with pytest.raises(error, match=message):
        model_randomization_check(**arguments)


def test_bad_maps():
    with pytest.raises(ValueError, match="a and b must have the same shape; got \\(1, 2, 2\\) and \\(1, 3, 3\\)"):
        spearman_correlation(np.zeros((1, 2, 2)), np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="a must have shape \\(B, H, W\\); got \\(4, 4\\)"):
        ssim(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(TypeError, match=r"b must be a torch tensor or a numpy array; got list"):
        ssim(np.zeros((1, 4, 4)), [[0.0]])


def test_a_named_block_is_randomised_whole_and_a_parameterless_layer_is_an_error() -> None:
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    ).eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    x = torch.randn(2, 3, 8, 8)
    seen: list[torch.Tensor] = []

    def explainer(inputs: torch.Tensor, targets) -> torch.Tensor:
        seen.append(model[0][0].weight.detach().clone())
        return inputs.abs().sum(dim=1)

    result = model_randomization_check(explainer, model, x, layers=[model[0]], progress=False)
    assert result.layers == ["0"]
    assert not torch.equal(seen[0], seen[1])  # the conv inside the block was randomised
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    with pytest.raises(ValueError, match=r"layers\[0\] \(1\) has no parameters to randomise"):
        model_randomization_check(explainer, model, x, layers=[model[1]], progress=False)
