"""FullGrad: golden numbers, hand-computed maps (2-D and 3-D), biases read at call time, unused layers,
in-place activations, channels-last linear layers, bad input and state."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torchvision
from conftest import build_tiny_cnn, golden_targets, hook_count
from torch import nn

from pytorch_grad_cam import FullGrad
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, RawScoresOutputTarget

TOL = 1e-5


@pytest.mark.parametrize("key", ["FullGrad/one/targets", "FullGrad/one/argmax"])
def test_golden(tiny_cnn, golden_input, golden, key):
    targets = None if key.endswith("argmax") else golden_targets()
    with pytest.warns(UserWarning, match="target_layers is ignored by FullGrad"):
        cam = FullGrad(tiny_cnn, [tiny_cnn[6]])
    result = cam(golden_input, targets)
    assert result.dtype == np.float32 and result.shape == (2, 24, 28)
    np.testing.assert_allclose(result, golden[key], atol=TOL, rtol=0)
    assert hook_count(tiny_cnn) == 0
    assert all(p.grad is None for p in tiny_cnn.parameters())


def test_empty_target_layers_do_not_warn(tiny_cnn, golden_input, golden):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cam = FullGrad(tiny_cnn, [])
    np.testing.assert_allclose(cam(golden_input, golden_targets()), golden["FullGrad/one/targets"], atol=TOL, rtol=0)
    # the reference's layer set: Conv2d and BatchNorm2d with a bias (not the final Linear)
    assert cam.bias_layers() == [tiny_cnn[0], tiny_cnn[2], tiny_cnn[3], tiny_cnn[5]]
    assert cam.target_layers == []
    every = FullGrad(tiny_cnn, [], all_bias_layers=True)
    assert every.bias_layers() == [tiny_cnn[0], tiny_cnn[2], tiny_cnn[3], tiny_cnn[5], tiny_cnn[9]]
    # the Linear classifier's output is no map: the wider set gives the same numbers here
    np.testing.assert_allclose(every(golden_input, golden_targets()), golden["FullGrad/one/targets"], atol=TOL, rtol=0)


class ConvThenMean(nn.Module):
    """y = mean(w x + b) over one channel: ∇_x y = w / N and ∇_z y = 1 / N everywhere."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(1).mean(dim=1, keepdim=True)


@pytest.mark.parametrize("conv_class", [nn.Conv2d, nn.Conv3d], ids=["2d", "3d"])
def test_hand_computed_map(conv_class):
    """Input part |∇_x y ⊙ x| = |w x| / N, scaled: minmax(|x|). Bias part |b / N| is constant: scaled to 0.
    So the map is minmax(|x|)."""
    conv = conv_class(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(-2.0)
        conv.bias.fill_(0.5)
    model = ConvThenMean(conv)
    torch.manual_seed(0)
    x = torch.randn(2, 1, *([3] * (conv_class is nn.Conv3d)), 4, 5)
    result = FullGrad(model, [])(x, [lambda out: out[0]] * 2)
    expected = x[:, 0].abs().numpy()
    axes = tuple(range(1, expected.ndim))
    expected = expected - expected.min(axis=axes, keepdims=True)
    expected = expected / (1e-7 + expected.max(axis=axes, keepdims=True))
    np.testing.assert_allclose(result, expected, atol=TOL)


def test_batch_norm_bias_is_folded_with_running_statistics():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.5, 0.0, 1.0]))
        bn.running_mean.copy_(torch.tensor([1.0, -2.0, 3.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    expected = torch.tensor([0.5, 0.0, 1.0]) - torch.tensor([1.0, -2.0, 3.0]) * torch.tensor([1.0, 2.0, -1.0]) / (
        torch.sqrt(torch.tensor([4.0, 1.0, 0.25]) + bn.eps)
    )
    torch.testing.assert_close(FullGrad.get_bias_data(bn), expected)


def test_biases_are_read_at_call_time(golden_input):
    model = build_tiny_cnn()
    cam = FullGrad(model, [])
    before = cam(golden_input, golden_targets())
    with torch.no_grad():
        model[2].bias.mul_(-3.0)
        model[3].running_mean.add_(0.5)
    after = cam(golden_input, golden_targets())
    fresh = FullGrad(model, [])(golden_input, golden_targets())
    np.testing.assert_allclose(after, fresh, atol=1e-6)
    assert np.abs(after - before).max() > 1e-2


class WithUnusedLayers(nn.Module):
    """The tiny CNN plus a convolution never called and an auxiliary head off the path to the output."""

    def __init__(self) -> None:
        super().__init__()
        self.net = build_tiny_cnn()
        self.never_called = nn.Conv2d(3, 3, 1)
        self.aux = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_out = self.aux(x)
        return self.net(x)


def test_unused_bias_layers_add_nothing(golden_input, golden):
    model = WithUnusedLayers()
    result = FullGrad(model, [])(golden_input, golden_targets())
    np.testing.assert_allclose(result, golden["FullGrad/one/targets"], atol=TOL, rtol=0)
    assert hook_count(model) == 0


def _randomise_batch_norms(model: nn.Module) -> None:
    """Untrained batch norms have a folded bias of 0; give them non-zero ones."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.bias.normal_()
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)


def test_in_place_relu_after_a_bias_layer_does_not_change_the_map():
    """The gradient of a batch norm's output is taken before the in-place ReLU that follows it overwrites it."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    _randomise_batch_norms(model)
    x = torch.randn(1, 3, 64, 64)
    with_inplace = FullGrad(model, [])(x, [ClassifierOutputTarget(2)])
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    without = FullGrad(model, [])(x, [ClassifierOutputTarget(2)])
    np.testing.assert_allclose(with_inplace, without, atol=TOL)
    untrained = copy.deepcopy(model)  # folded batch-norm biases of 0: the bias parts do matter here
    for module in untrained.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()
    assert np.abs(FullGrad(untrained, [])(x, [ClassifierOutputTarget(2)]) - with_inplace).max() > 0.05


class ChannelsLast(nn.Module):
    """A 1x1 "convolution" written as a linear layer on a channels-last map (ConvNeXt style)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Linear(4, 4)
        with torch.no_grad():
            self.stem.load_state_dict(conv[0].state_dict())
            self.mix.weight.copy_(conv[1].weight[:, :, 0, 0])
            self.mix.bias.copy_(conv[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(self.stem(x).permute(0, 2, 3, 1)).tanh().mean(dim=(1, 2))


def test_channels_last_linear_counts_like_the_equivalent_convolution():
    torch.manual_seed(0)
    conv_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1))
    conv_net = nn.Sequential(*conv_model, nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    linear_net = ChannelsLast(conv_model)
    x = torch.randn(2, 3, 6, 7)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(3)]
    expected = FullGrad(conv_net, [])(x, targets)
    np.testing.assert_allclose(FullGrad(linear_net, [], all_bias_layers=True)(x, targets), expected, atol=TOL)
    # the reference's layer set leaves the linear layer out, so the maps differ
    assert np.abs(FullGrad(linear_net, [])(x, targets) - expected).max() > 1e-3


def test_eigen_smooth_and_aug_smooth_run(tiny_cnn, golden_input):
    for kwargs in ({"eigen_smooth": True}, {"aug_smooth": True}):
        result = FullGrad(tiny_cnn, [])(golden_input, golden_targets(), **kwargs)
        assert result.shape == (2, 24, 28) and np.isfinite(result).all()
        assert result.min() >= 0 and result.max() <= 1 + 1e-6 and result.max() > 0.5


def test_model_without_bias_layers_gives_the_input_gradient_part():
    # as the reference (e.g. CLIP's bias-free patch convolution): only ψ(|∇_x y ⊙ x|), per channel, summed
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, bias=False), nn.Flatten())
    x = torch.randn(2, 3, 5, 6)
    result = FullGrad(model, [])(x, [RawScoresOutputTarget()] * 2)
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(leaf).sum(), leaf)
    part = (grad * x).abs().numpy()
    flat = part.reshape(2, 3, -1)

    def min_max(values: np.ndarray) -> np.ndarray:
        low = values.min(-1, keepdims=True)
        return (values - low) / (values.max(-1, keepdims=True) - low + 1e-7)

    np.testing.assert_allclose(result, min_max(min_max(flat).sum(1)).reshape(2, 5, 6), atol=1e-5)


def test_bad_target_layers_type(tiny_cnn):
    with pytest.raises(TypeError, match=r"target_layers must be a list .*got .*Conv2d"):
        FullGrad(tiny_cnn, tiny_cnn[0])


def test_state_restored_after_an_error(tiny_cnn, golden_input):
    tiny_cnn.train()
    cam = FullGrad(tiny_cnn, [])
    with pytest.raises(ValueError, match="category"):
        cam(golden_input, [ClassifierOutputTarget(1), ClassifierOutputTarget(9)])
    assert hook_count(tiny_cnn) == 0
    assert all(module.training for module in tiny_cnn.modules())
    assert all(p.requires_grad and p.grad is None for p in tiny_cnn.parameters())
    assert not golden_input.requires_grad


@pytest.mark.parametrize("all_bias_layers", [False, True])
def test_works_on_a_vision_transformer(all_bias_layers):
    """The target layer's reshape_transform is applied to token outputs only (the reference applied it to
    every bias layer's gradient, which fails on a convolution's map)."""
    from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=4
    ).eval()
    torch.nn.init.normal_(vit.heads.head.weight)
    x = torch.randn(2, 3, 32, 32)
    cam = FullGrad(vit, [], lambda tokens: vit_reshape_transform(tokens, 4, 4), all_bias_layers=all_bias_layers)
    result = cam(x, [ClassifierOutputTarget(0), ClassifierOutputTarget(2)])
    assert result.shape == (2, 32, 32) and np.isfinite(result).all() and result.max() > 0.5
    used = {type(layer) for layer in cam.bias_layers()}
    assert used == (
        {nn.Conv2d, nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear} if all_bias_layers else {nn.Conv2d}
    )
    if all_bias_layers:  # the token gradients of the linear layers add to the map
        default = FullGrad(vit, [], cam.reshape_transform)(x, [ClassifierOutputTarget(0), ClassifierOutputTarget(2)])
        assert np.abs(result - default).max() > 1e-2
    assert hook_count(vit) == 0
