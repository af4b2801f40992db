"""Guided backpropagation: hand-computed gradients, batches, repeated calls, module restoration, cam_gb."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import GuidedBackpropReLUModel
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUasModule, cam_gb, guided_relus
from pytorch_grad_cam.utils.image import deprocess_image


def _snapshot(model: nn.Module) -> list[tuple]:
    return [(name, module, module.training, getattr(module, "inplace", None)) for name, module in model.named_modules()]


def test_hand_computed_gradient():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    x = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    w = model[0].weight.detach().reshape(2).numpy()
    b = model[0].bias.detach().numpy()
    lin = model[3].weight.detach().numpy().reshape(3, 2, 4)
    z = w[:, None] * x.reshape(4).numpy()[None] + b[:, None]  # (2 channels, 4 pixels)
    for category in range(3):
        g_out = lin[category]  # ∂y/∂a
        g_z = np.clip(g_out, 0, None) * (z > 0)  # guided ReLU: positive gradients at positive inputs
        expected = (w[:, None] * g_z).sum(0).reshape(2, 2, 1)
        result = GuidedBackpropReLUModel(model, None)(x, target_category=category)
        assert result.shape == (2, 2, 1) and result.dtype == np.float32
        np.testing.assert_allclose(result, expected, atol=1e-6)


def _model_with_inplace_relu(tiny_cnn: nn.Sequential) -> nn.Sequential:
    tiny_cnn[1].inplace = True
    return tiny_cnn


def test_batch_equals_single_calls_and_repeated_calls_are_equal(tiny_cnn, golden_input):
    model = _model_with_inplace_relu(tiny_cnn)
    batch = torch.cat([golden_input, golden_input[:1].flip(-1)])
    original = batch.clone()
    before = _snapshot(model)
    gb = GuidedBackpropReLUModel(model, "cpu")
    first = gb(batch)
    second = gb(batch)
    assert first.shape == (3, 24, 28, 3)
    np.testing.assert_array_equal(first, second)
    categories = model(batch).argmax(1).tolist()
    for index in range(3):
        single = gb(batch[index : index + 1])
        assert single.shape == (24, 28, 3)
        np.testing.assert_allclose(first[index], single, atol=1e-6)
        np.testing.assert_allclose(single, gb(batch[index : index + 1], categories[index]), atol=0)
    assert np.abs(first).max() > 0
    assert torch.equal(batch, original) and not batch.requires_grad and batch.grad is None
    assert all(p.grad is None for p in model.parameters())
    after = _snapshot(model)
    assert [(n, m, t, i) for n, m, t, i in before] == [(n, m, t, i) for n, m, t, i in after]
    assert all(a[1] is b[1] for a, b in zip(before, after))
    assert model[1].inplace is True
    assert hook_count(model) == 0


def test_per_image_categories_and_differs_from_plain_gradient(tiny_cnn, golden_input):
    gb = GuidedBackpropReLUModel(tiny_cnn, None)
    both = gb(golden_input, [1, 3])
    np.testing.assert_allclose(both[0], gb(golden_input[:1], 1), atol=1e-6)
    np.testing.assert_allclose(both[1], gb(golden_input[1:], 3), atol=1e-6)
    x = golden_input[:1].clone().requires_grad_(True)
    tiny_cnn(x)[0, 1].backward()
    plain = x.grad[0].permute(1, 2, 0).numpy()
    assert np.abs(plain - both[0]).max() > 1e-4  # the guided ReLUs were in place during the call


def test_training_flags_restored_and_eval_during_call(tiny_cnn, golden_input):
    tiny_cnn.train()
    result = GuidedBackpropReLUModel(tiny_cnn, None)(golden_input[:1], 2)
    assert all(m.training for m in tiny_cnn.modules())
    np.testing.assert_allclose(result, GuidedBackpropReLUModel(tiny_cnn.eval(), None)(golden_input[:1], 2), atol=0)


class Exploding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_modules_restored_on_errors(tiny_cnn, golden_input):
    model = _model_with_inplace_relu(tiny_cnn).train()
    before = _snapshot(model)
    gb = GuidedBackpropReLUModel(model, None)
    with pytest.raises(ValueError, match=r"target_category must be an integer in \[0, 5\); got 8"):
        gb(golden_input, 8)
    with pytest.raises(ValueError, match=r"target_category must hold one class per image \(2\); got 3"):
        gb(golden_input, [0, 1, 2])
    with pytest.raises(TypeError, match=r"target_category must be None, an int or one int per image; got float"):
        gb(golden_input, 1.5)
    with pytest.raises(TypeError, match=r"target_category\[0\] must be an integer; got bool True"):
        gb(golden_input, [True, 1])
    with pytest.raises(ValueError, match=r"input_img must have shape \(B, C, H, W\) or .*; got \(3, 24, 28\)"):
        gb(golden_input[0])
    with pytest.raises(TypeError, match=r"input_img must be a torch.Tensor of shape .*; got a numpy.ndarray"):
        gb(golden_input.numpy())
    with pytest.raises(ValueError, match=r"input_img contains NaN or inf values"):
        gb(golden_input * float("nan"))
    with pytest.raises(ValueError, match=r"input_img must hold at least one image"):
        gb(golden_input[:0])
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module; got function"):
        GuidedBackpropReLUModel(lambda x: x, None)
    model[5] = nn.Sequential(model[5], Exploding())
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        gb(golden_input)
    assert [(n, m, t, i) for n, m, t, i in before] == [(n, m, t, i) for n, m, t, i in _snapshot(model)]
    assert not any(isinstance(m, GuidedBackpropReLUasModule) for m in model.modules())
    assert hook_count(model) == 0
    assert all(p.grad is None for p in model.parameters())


def test_cam_gb():
    rng = np.random.default_rng(0)
    cam = rng.random((4, 5), dtype=np.float32)
    gb = rng.normal(size=(4, 5, 3)).astype(np.float32)
    masked = np.stack([cam] * 3, axis=-1) * gb
    by_hand = np.uint8(np.clip((masked - masked.mean()) / (masked.std() + 1e-5) * 0.1 + 0.5, 0, 1) * 255)
    result = cam_gb(cam, gb)
    assert result.dtype == np.uint8 and result.shape == (4, 5, 3)
    np.testing.assert_array_equal(result, by_hand)
    np.testing.assert_array_equal(result, deprocess_image(masked))
    batch = cam_gb(np.stack([cam, cam[::-1]]), np.stack([gb, gb[::-1]]))
    np.testing.assert_array_equal(batch[0], result)
    np.testing.assert_array_equal(batch[1], cam_gb(cam[::-1], gb[::-1]))
    with pytest.raises(ValueError, match=r"grayscale_cam must have shape \(H, W\).*got \(4, 5\) and \(5, 4, 3\)"):
        cam_gb(cam, gb.transpose(1, 0, 2))


def test_in_place_relus_stay_in_place_and_give_the_same_gradient() -> None:
    """An ``nn.ReLU(inplace=True)`` is guided in place (its input is not copied), one applied to the input itself
    out of place (the input leaf cannot change in place); the gradients equal those of out-of-place ReLUs."""
    torch.manual_seed(0)

    def build(inplace: bool) -> nn.Sequential:
        torch.manual_seed(1)
        return nn.Sequential(
            nn.ReLU(inplace=inplace),  # on the input leaf
            nn.Conv2d(3, 6, 3),
            nn.ReLU(inplace=inplace),
            nn.Conv2d(6, 4, 3),
            nn.ReLU(inplace=inplace),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        ).eval()

    x = torch.randn(2, 3, 12, 12)
    in_place, copied = build(True), build(False)
    expected = GuidedBackpropReLUModel(copied)(x, target_category=[1, 2])
    np.testing.assert_array_equal(GuidedBackpropReLUModel(in_place)(x, target_category=[1, 2]), expected)
    assert all(module.inplace for module in in_place if isinstance(module, nn.ReLU))  # put back as they were
    with guided_relus(in_place):
        assert [module.inplace for module in in_place if hasattr(module, "inplace")] == [True, True, True]
