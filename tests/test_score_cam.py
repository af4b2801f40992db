"""ScoreCAM: golden numbers, a hand-computed map (2-D and 3-D), batching (never more than batch_size masked
inputs at once, same result for any batch_size), silent hooks, no autograd for the masked batches, bad input
and state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import golden_targets, hook_count
from torch import nn

from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.core import base as core_base
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TOL = 1e-5


@pytest.mark.parametrize("key", ["ScoreCAM/one/targets", "ScoreCAM/one/argmax", "ScoreCAM/two/targets"])
def test_golden(tiny_cnn, golden_input, golden, key):
    _, layers, variant = key.split("/")
    target_layers = [tiny_cnn[6]] if layers == "one" else [tiny_cnn[4], tiny_cnn[6]]
    targets = None if variant == "argmax" else golden_targets()
    result = ScoreCAM(tiny_cnn, target_layers, batch_size=16, progress=False)(golden_input, targets)
    assert result.dtype == np.float32 and result.shape == (2, 24, 28)
    np.testing.assert_allclose(result, golden[key], atol=TOL, rtol=0)
    assert hook_count(tiny_cnn) == 0


def test_golden_eigen_smooth_up_to_the_svd_sign(tiny_cnn, golden_input, golden, monkeypatch):
    """The first principal component's sign is arbitrary (tests/data/GOLDEN.md): with the reference's raw SVD
    sign (``orientation="raw"``) each image must match the golden map with one of the two signs."""
    project = core_base.project_on_first_component
    errors = []
    for sign in (1.0, -1.0):
        monkeypatch.setattr(core_base, "project_on_first_component", lambda a, s=sign, **k: s * project(a, **k))
        result = ScoreCAM(tiny_cnn, [tiny_cnn[6]], batch_size=16, progress=False, orientation="raw")(
            golden_input, golden_targets(), eigen_smooth=True
        )
        errors.append(np.abs(result - golden["ScoreCAM/one/eigen_smooth"]).max(axis=(1, 2)))
    assert np.min(errors, axis=0).max() <= TOL


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_batch_size_does_not_change_the_result(tiny_cnn, golden_input, golden, batch_size):
    result = ScoreCAM(tiny_cnn, [tiny_cnn[6]], batch_size=batch_size, progress=False)(golden_input, golden_targets())
    np.testing.assert_allclose(result, golden["ScoreCAM/one/targets"], atol=TOL, rtol=0)


class SumOfInput(nn.Module):
    """The target layer is the identity on the input; the score is the sum of the (masked) input."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1).sum(dim=1, keepdim=True)


@pytest.mark.parametrize("shape", [(2, 2, 3), (2, 2, 2, 3)], ids=["2d", "3d"])
def test_hand_computed_map(shape):
    """Activations = input, same size (no resize): M_c = minmax(x_c), s_c = Σ x ⊙ M_c, w = softmax(s),
    map = ReLU(Σ_c w_c x_c), min-max scaled."""
    x = (torch.arange(float(np.prod(shape))) * 7 % 11 / 4).reshape(1, *shape)
    x_np = x[0].numpy().astype(np.float64)
    masks = [(c - c.min()) / (c.max() - c.min() + 1e-8) for c in x_np]
    scores = np.array([(x_np * m[None]).sum() for m in masks])
    weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    expected = np.maximum((weights[:, None] * x_np.reshape(2, -1)).sum(axis=0), 0).reshape(shape[1:])
    expected = (expected - expected.min()) / (1e-7 + (expected - expected.min()).max())
    model = SumOfInput()
    result = ScoreCAM(model, [model.features], batch_size=1, progress=False)(x, [lambda out: out[0]])
    np.testing.assert_allclose(result[0], expected, atol=TOL)


class Recorder(nn.Module):
    """Wraps the tiny CNN; records the batch size and the autograd mode of every call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.shape[0], torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
        return self.inner(x)


def test_masked_inputs_are_batched_silent_and_without_autograd(tiny_cnn, golden_input):
    """Batches of masked inputs under no_grad (not inference mode, whose tensors a model could cache for a later
    gradient call, see tests/test_integration_ultralytics.py), with no hooks of the CAM."""
    model = Recorder(tiny_cnn)
    layer_calls = []
    cam = ScoreCAM(model, [tiny_cnn[6]], batch_size=5, progress=False)
    handle = tiny_cnn[6].register_forward_hook(lambda m, i, o: layer_calls.append(o.shape[0]))
    cam(golden_input, golden_targets())
    handle.remove()
    first, *masked = model.calls
    assert first[0] == 2
    # 2 images x 32 channels, batched across the images: the 7th pass holds 2 copies of each image
    assert [size for size, _, _ in masked] == [5] * 12 + [4]
    assert all(not inference and not grad for _, inference, grad in masked)
    # BaseCAM's hooks only existed during the first pass: its record holds the first pass only
    assert cam.activations_and_grads.activations[0].shape == (2, 32, 12, 14)
    assert len(layer_calls) == 1 + 13
    assert hook_count(tiny_cnn) == 0


def test_3d_input():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    x = torch.randn(2, 1, 4, 6, 6)
    results = [ScoreCAM(model, [model[1]], batch_size=b, progress=False)(x) for b in (1, 4)]
    assert results[0].shape == (2, 4, 6, 6) and results[0].dtype == np.float32
    assert np.isfinite(results[0]).all() and results[0].min() >= 0 and results[0].max() <= 1
    np.testing.assert_allclose(results[0], results[1], atol=TOL)


@pytest.mark.parametrize(
    ("batch_size", "error", "message"),
    [
        (0, ValueError, "batch_size must be a positive int; got 0"),
        (-1, ValueError, "batch_size must be a positive int; got -1"),
        (1.5, TypeError, "batch_size must be a positive int; got float 1.5"),
        ("16", TypeError, "batch_size must be a positive int; got str '16'"),
        (False, TypeError, "batch_size must be a positive int; got bool False"),
    ],
)
def test_bad_batch_size(tiny_cnn, batch_size, error, message):
    with pytest.raises(error, match=message):
        ScoreCAM(tiny_cnn, [tiny_cnn[6]], batch_size=batch_size)
    cam = ScoreCAM(tiny_cnn, [tiny_cnn[6]])
    with pytest.raises(error, match=message):
        cam.batch_size = batch_size
    assert cam.batch_size == 16
    assert hook_count(tiny_cnn) == 0


def test_batch_size_attribute_for_compatibility(tiny_cnn, golden_input, golden):
    cam = ScoreCAM(tiny_cnn, [tiny_cnn[6]], progress=False)
    cam.batch_size = 7
    assert cam.batch_size == 7
    np.testing.assert_allclose(cam(golden_input, golden_targets()), golden["ScoreCAM/one/targets"], atol=TOL, rtol=0)


class OneRowOut(nn.Module):
    """Returns one row whatever the batch: the masked scores cannot be paired with the masks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(0, 2, 3))[None]


def test_model_output_without_one_row_per_masked_input_is_a_clear_error():
    model = OneRowOut()
    cam = ScoreCAM(model, [model.conv], batch_size=2, progress=False)
    with pytest.raises(ValueError, match=r"output of shape \(1, 2\) for a batch of 2 perturbed inputs"):
        cam(torch.randn(1, 3, 4, 4), [ClassifierOutputTarget(0)])
    assert hook_count(model) == 0


def test_state_restored_after_an_error(tiny_cnn, golden_input):
    tiny_cnn.train()
    cam = ScoreCAM(tiny_cnn, [tiny_cnn[6]], progress=False)
    with pytest.raises(ValueError, match="category"):
        cam(golden_input, [ClassifierOutputTarget(1), ClassifierOutputTarget(42)])
    assert hook_count(tiny_cnn) == 0
    assert all(module.training for module in tiny_cnn.modules())
    assert all(p.requires_grad and p.grad is None for p in tiny_cnn.parameters())


def test_progress_bar_can_be_turned_off(tiny_cnn, golden_input, capsys):
    ScoreCAM(tiny_cnn, [tiny_cnn[6]], progress=False)(golden_input, golden_targets())
    assert capsys.readouterr().err == ""
    ScoreCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, golden_targets())
    assert "ScoreCAM" in capsys.readouterr().err
