"""AblationCAM and the ablation layers: golden numbers (fast path and full re-run alike), hand-computed weights,
the fast path against the full re-run on torchvision models, fall-backs, bad input and state restoration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from conftest import golden_targets, hook_count
from torch import nn

from pytorch_grad_cam import AblationCAM, AblationLayer, AblationLayerFasterRCNN, AblationLayerVit
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TOL = 1e-5
STRATEGIES = ["auto", "fast", "full"]


class RecordingAblationCAM(AblationCAM):
    """AblationCAM that keeps the weights it computed, to compare them directly."""

    def get_cam_weights(self, *args, **kwargs):
        weights = super().get_cam_weights(*args, **kwargs)
        self.recorded = [*getattr(self, "recorded", []), weights]
        return weights


# ------------------------------------------------------------------------------------------- golden
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("key", ["AblationCAM/one/targets", "AblationCAM/one/argmax", "AblationCAM/two/targets"])
def test_golden(tiny_cnn, golden_input, golden, key, strategy):
    _, layers, variant = key.split("/")
    target_layers = [tiny_cnn[6]] if layers == "one" else [tiny_cnn[4], tiny_cnn[6]]
    targets = None if variant == "argmax" else golden_targets()
    cam = AblationCAM(tiny_cnn, target_layers, batch_size=16, strategy=strategy, progress=False)
    result = cam(golden_input, targets)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, golden[key], atol=TOL, rtol=0)
    assert cam.fast_path_used == [strategy != "full"] * len(target_layers)
    assert hook_count(tiny_cnn) == 0


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_batch_size_does_not_change_the_result(tiny_cnn, golden_input, golden, batch_size):
    cam = AblationCAM(tiny_cnn, [tiny_cnn[6]], batch_size=batch_size, progress=False)
    np.testing.assert_allclose(cam(golden_input, golden_targets()), golden["AblationCAM/one/targets"], atol=TOL, rtol=0)


# ------------------------------------------------------------------------------------ hand-computed
class ReluThenLinear(nn.Module):
    """score = Σ_c v_c Σ_pos ReLU(x)_c + bias: ablating channel c (set to 0) removes v_c Σ_pos ReLU(x)_c."""

    def __init__(self, v: list[float], bias: float) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.v = torch.tensor(v)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(x)
        per_channel = a.flatten(2).sum(dim=2)
        return (per_channel * self.v).sum(dim=1, keepdim=True) + self.bias


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("spatial", [(3, 4), (2, 3, 4)], ids=["2d", "3d"])
def test_hand_computed_weights_with_a_negative_score(spatial, strategy):
    """The original score is negative (bias -100): w_c = (y - y_c) / |y| = v_c Σ A_c / |y|.

    The reference divides by y, not |y|: its weights would be the negatives of these and its map would show
    channel 1 (which lowers the score) instead of channel 0 (which raises it). We deliberately differ.
    """
    torch.manual_seed(0)
    x = torch.rand(1, 2, *spatial) - 0.3  # some negatives: the ReLU's minimum is 0, so ablation sets 0
    model = ReluThenLinear([2.0, -1.0], bias=-100.0)
    y = float(model(x))
    assert y < 0
    cam = RecordingAblationCAM(model, [model.relu], strategy=strategy, batch_size=1, progress=False)
    result = cam(x, [lambda out: out[0]])
    a = torch.relu(x)
    sums = a.flatten(2).sum(dim=2)[0]
    expected_weights = torch.tensor([2.0, -1.0]) * sums / abs(y)
    torch.testing.assert_close(cam.recorded[0][0].cpu(), expected_weights, atol=1e-5, rtol=1e-5)
    expected_map = torch.relu(expected_weights[0] * a[0, 0] + expected_weights[1] * a[0, 1])
    expected_map = expected_map - expected_map.min()
    expected_map = expected_map / (1e-7 + expected_map.max())
    expected_map = expected_map / (1e-7 + expected_map.max())
    np.testing.assert_allclose(result[0], expected_map.numpy(), atol=TOL)


def test_ablation_value_is_the_same_for_every_row():
    """A layer with negative outputs: each ablated channel is set to min - 1e7, whatever its row."""
    layer = AblationLayer()
    activations = torch.tensor([[[[-1.0, 2.0]], [[3.0, 4.0]], [[5.0, 6.0]]]])  # (1, 3, 1, 2)
    layer.set_next_batch(0, activations, 3)
    layer.indices = torch.tensor([0, 1, 2])
    out = layer(None)
    expected = activations.repeat(3, 1, 1, 1)
    for row in range(3):
        expected[row, row] = -1.0 - 1e7
    torch.testing.assert_close(out, expected)
    assert activations[0, 0, 0, 0] == -1.0  # the source activations are untouched


def test_ablation_value_is_zero_for_relu_outputs():
    layer = AblationLayer()
    activations = torch.tensor([[[[0.0, 2.0]], [[3.0, 4.0]]]])
    layer.set_next_batch(0, activations, 2)
    layer.indices = torch.tensor([1, 0])
    out = layer(None)
    assert out[0, 1].tolist() == [[0.0, 0.0]] and out[0, 0].tolist() == [[0.0, 2.0]]
    assert out[1, 0].tolist() == [[0.0, 0.0]] and out[1, 1].tolist() == [[3.0, 4.0]]


def test_ablation_layer_vit_ablates_the_last_axis():
    layer = AblationLayerVit()
    tokens = torch.arange(1.0, 13.0).reshape(1, 3, 4)  # (1, tokens, C), minimum 1
    layer.set_next_batch(0, tokens, 2)
    layer.indices = torch.tensor([3, 1])
    out = layer(None)
    expected = tokens.repeat(2, 1, 1)
    expected[0, :, 3] = 1.0 - 1e7
    expected[1, :, 1] = 1.0 - 1e7
    torch.testing.assert_close(out, expected)


def test_ablation_layer_faster_rcnn_numbers_channels_level_after_level():
    layer = AblationLayerFasterRCNN()
    levels = {"0": torch.ones(1, 3, 2, 2), "pool": torch.ones(1, 3, 1, 1)}
    layer.set_next_batch(0, levels, 2)
    layer.indices = torch.tensor([0, 4])  # level "0" channel 0; level "pool" channel 1
    out = layer(None)
    assert out["0"][0, 0].eq(-1000).all() and out["0"][0, 1:].eq(1).all() and out["0"][1].eq(1).all()
    assert out["pool"][1, 1].eq(-1000).all() and out["pool"][0].eq(1).all() and out["pool"][1, 0].eq(1).all()
    with pytest.raises(TypeError, match="dict of feature maps"):
        layer.set_next_batch(0, torch.ones(1, 3, 2, 2), 2)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_ratio_channels_to_ablate_picks_each_channel_once(ratio):
    torch.manual_seed(0)
    activations = torch.rand(16, 5, 5)
    picked = AblationLayer().activations_to_be_ablated(activations, ratio)
    assert picked.tolist() == sorted(set(picked.tolist()))
    assert len(picked) == min(16, 2 * int(16 * ratio))
    assert AblationLayer().activations_to_be_ablated(activations, 1.0).tolist() == list(range(16))


def test_unablated_channels_get_weight_zero(tiny_cnn, golden_input):
    rows = []
    handle = tiny_cnn[9].register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
    cam = RecordingAblationCAM(tiny_cnn, [tiny_cnn[6]], ratio_channels_to_ablate=0.25, strategy="full", progress=False)
    cam(golden_input, golden_targets())
    handle.remove()
    weights = cam.recorded[0]
    assert sum(rows) == 2 + 2 * 16  # the first pass, then 2 x 8 channels (the highest and lowest) per image
    assert int((weights == 0).sum()) >= 2 * 16


# ---------------------------------------------------------------------- fast path vs full re-run
@pytest.mark.parametrize(
    ("name", "layer", "size", "shortcut"),
    [
        ("resnet18", lambda m: m.layer4[-1], 64, True),
        ("resnet18", lambda m: m.layer3[-1], 64, False),
        ("vgg11", lambda m: m.features[-1], 64, True),
        ("densenet121", lambda m: m.features[-1], 64, True),
    ],
    ids=["resnet18-layer4", "resnet18-layer3", "vgg11-features", "densenet121-features"],
)
def test_fast_path_equals_full_rerun_on_torchvision_models(name, layer, size, shortcut):
    """resnet18's ``layer4`` is followed by ``avgpool`` + ``fc``: no copy of the layer output is built and the scores
    come from ``fc``'s weights. vgg11's ``features`` by a 7x7 pooling and three linears with ReLUs between them: the
    first linear is applied to each channel's 49 entries alone, the other two to the copies. densenet121's by an
    in-place ReLU (which must not change the recorded layer output) and the pooling. resnet18's ``layer3`` by
    ``layer4``: every copy runs through it."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, size, size)
    results, weights = {}, {}
    for strategy in ("auto", "full"):
        cam = RecordingAblationCAM(
            model, [layer(model)], strategy=strategy, ratio_channels_to_ablate=0.02, batch_size=64, progress=False
        )
        results[strategy] = cam(x, [ClassifierOutputTarget(7)])
        weights[strategy] = cam.recorded[0]
        assert cam.fast_path_used == [strategy == "auto"]
        assert cam.shortcut_used == [shortcut and strategy == "auto"]
    assert weights["auto"].abs().sum() > 0
    torch.testing.assert_close(weights["auto"], weights["full"], atol=TOL, rtol=TOL)
    # the shortcut sums vgg's 25088-entry dot products in another order: its weights differ from the full re-run's
    # by 4e-6 (and are closer to float64, see below); the map, divided by its maximum, by up to 4e-5
    np.testing.assert_allclose(results["auto"], results["full"], atol=1e-4 if name == "vgg11" else TOL)
    assert hook_count(model) == 0


def test_the_shortcut_is_as_accurate_as_the_full_rerun():
    """vgg11's weights from the shortcut (the first linear applied to each channel's entries alone) and from the
    full re-run, both in float32, against the full re-run in float64."""
    import copy

    torch.manual_seed(0)
    model = torchvision.models.vgg11(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)

    def weights(model, x, strategy):
        cam = RecordingAblationCAM(
            model, [model.features[-1]], strategy=strategy, ratio_channels_to_ablate=0.02, progress=False
        )
        cam(x, [ClassifierOutputTarget(7)])
        return cam.recorded[0].double()

    exact = weights(copy.deepcopy(model).double(), x.double(), "full")
    shortcut_error = (weights(model, x, "auto") - exact).abs().max()
    full_error = (weights(model, x, "full") - exact).abs().max()
    assert shortcut_error <= max(full_error, 2e-6)


class TailReadsInputBatch(nn.Module):
    """Reads the input's batch size after the target layer: the cut model recomputes it in the tail (from the input
    expanded to the tail's batch), so that it is not the one image the head ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        return self.fc(self.relu(self.conv(x)).reshape(batch, -1))


class ConvReluFc(nn.Module):
    """``conv`` (3 → 4 channels), ``relu`` (the target layer) and ``fc`` (4 → 3 classes); subclasses write the
    forward pass whose shape the cut model must handle."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)


class SizesBeforeTheCut(ConvReluFc):
    """``B, C, H, W = a.shape`` read before the target layer and used after it (timm's Swin / MetaFormer blocks)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(x)
        batch, channels, height, width = a.shape
        tokens = self.relu(a).reshape(batch, channels, height * width).transpose(1, 2)
        return self.fc(tokens.reshape(batch, height, width, channels).mean(dim=(1, 2)))


class TailWritesInPlace(ConvReluFc):
    """Changes a value of the part before the layer in place after it: the cut model's expanded copy refuses, the
    check fails and the full re-run is used."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3))[:, None]
        a = self.relu(self.conv(x))
        mean.add_(1)
        return self.fc(a.mean(dim=(2, 3))) * mean


@pytest.mark.parametrize("model_class", [TailReadsInputBatch, SizesBeforeTheCut])
def test_the_cut_model_recomputes_sizes_for_its_batch(model_class, capfd):
    torch.manual_seed(0)
    model = model_class().eval()
    x = torch.randn(2, 3, 6, 6)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    fast = AblationCAM(model, [model.relu], batch_size=3, strategy="fast", progress=False)
    full = AblationCAM(model, [model.relu], batch_size=3, strategy="full", progress=False)
    np.testing.assert_allclose(fast(x, targets), full(x, targets), atol=TOL)
    assert fast.fast_path_used == [True]
    assert capfd.readouterr() == ("", "")  # nothing printed (torch.fx used to print the tail's traceback)
    assert hook_count(model) == 0


class Untraceable(ConvReluFc):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.conv(x))
        if a.sum() > 0:
            a = a * 2
        return self.fc(a.mean(dim=(2, 3)))


@pytest.mark.parametrize("model_class", [TailWritesInPlace, Untraceable])
def test_auto_falls_back_to_the_full_rerun(model_class, capfd):
    torch.manual_seed(0)
    model = model_class().eval()
    x = torch.randn(2, 3, 6, 6)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    auto = AblationCAM(model, [model.relu], batch_size=3, progress=False)
    full = AblationCAM(model, [model.relu], batch_size=3, strategy="full", progress=False)
    np.testing.assert_allclose(auto(x, targets), full(x, targets), atol=TOL)
    assert auto.fast_path_used == [False]
    with pytest.raises((RuntimeError, ValueError)):
        AblationCAM(model, [model.relu], strategy="fast", progress=False)(x, targets)
    assert capfd.readouterr() == ("", "")  # a silent fallback: no traceback printed
    assert hook_count(model) == 0


def test_untraceable_model_with_forced_fast_path_names_the_reason():
    model = Untraceable().eval()
    cam = AblationCAM(model, [model.relu], strategy="fast", progress=False)
    with pytest.raises(ValueError, match=r"strategy='fast' cannot cut the model.*torch\.fx"):
        cam(torch.randn(1, 3, 6, 6), [ClassifierOutputTarget(0)])
    assert hook_count(model) == 0


# -------------------------------------------------------------------------- transformer tokens
class TinyTokens(nn.Module):
    """(B, 3, 4, 4) image → 16 tokens of 6 channels → mean → 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 6)
        self.block = nn.Sequential(nn.Linear(6, 6), nn.GELU())
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.flatten(2).transpose(1, 2))
        return self.head(self.block(tokens).mean(dim=1))


def _tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], 4, 4)


def test_vit_ablation_layer_fast_and_full_agree():
    torch.manual_seed(0)
    model = TinyTokens().eval()
    x = torch.randn(2, 3, 4, 4)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(1)]
    results = {}
    for strategy in ("auto", "full"):
        cam = RecordingAblationCAM(
            model,
            [model.block],
            reshape_transform=_tokens_to_map,
            ablation_layer=AblationLayerVit(),
            strategy=strategy,
            batch_size=4,
            progress=False,
        )
        results[strategy] = (cam(x, targets), cam.recorded[0])
    assert cam.recorded[0].shape == (2, 6)
    torch.testing.assert_close(results["auto"][1], results["full"][1], atol=TOL, rtol=TOL)
    np.testing.assert_allclose(results["auto"][0], results["full"][0], atol=TOL)


# ------------------------------------------------------------------------- bad input and state
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int; got 0"),
        ({"batch_size": -3}, ValueError, "batch_size must be a positive int; got -3"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be a positive int; got float"),
        ({"batch_size": True}, TypeError, "batch_size must be a positive int; got bool"),
        ({"ratio_channels_to_ablate": 0}, ValueError, r"ratio_channels_to_ablate must be a number in \(0, 1\]; got 0"),
        ({"ratio_channels_to_ablate": 1.5}, ValueError, r"ratio_channels_to_ablate must be .* got 1.5"),
        ({"ratio_channels_to_ablate": "all"}, TypeError, r"ratio_channels_to_ablate must be .*; got str"),
        ({"strategy": "quick"}, ValueError, "strategy must be one of .*got 'quick'"),
        ({"ablation_layer": "zero"}, TypeError, "ablation_layer must be an AblationLayer.*got str"),
    ],
)
def test_bad_constructor_arguments(tiny_cnn, kwargs, error, message):
    with pytest.raises(error, match=message):
        AblationCAM(tiny_cnn, [tiny_cnn[6]], **kwargs)
    assert hook_count(tiny_cnn) == 0


def test_batch_size_attribute_is_checked(tiny_cnn, golden_input, golden):
    cam = AblationCAM(tiny_cnn, [tiny_cnn[6]], progress=False)
    assert cam.batch_size == 32
    cam.batch_size = 16
    np.testing.assert_allclose(cam(golden_input, golden_targets()), golden["AblationCAM/one/targets"], atol=TOL)
    with pytest.raises(ValueError, match="batch_size must be a positive int; got 0"):
        cam.batch_size = 0
    with pytest.raises(TypeError, match="batch_size must be a positive int; got str"):
        cam.batch_size = "8"
    assert cam.batch_size == 16


class ShapeShifter(nn.Module):
    """Gives its target layer a different spatial size on every call after the first."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = nn.functional.interpolate(x, size=(4 + self.calls, 4 + self.calls))
        return self.fc(self.relu(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("strategy", ["full", "auto"])
def test_a_model_that_changes_the_activation_shape_is_a_clear_error(strategy):
    """The full re-run runs the model again and sees the new shape: a clear error. The cut model never runs the
    network before the layer again (its tail reads only the recorded layer output), so it explains the one
    forward pass it saw."""
    model = ShapeShifter().train()
    cam = AblationCAM(model, [model.relu], strategy=strategy, progress=False)
    if strategy == "full":
        with pytest.raises(ValueError, match=r"target_layers\[0\] gave activations of shape .* but .* first pass"):
            cam(torch.rand(1, 2, 4, 4), [ClassifierOutputTarget(0)])
    else:
        assert cam(torch.rand(1, 2, 4, 4), [ClassifierOutputTarget(0)]).shape == (1, 4, 4)
        assert cam.fast_path_used == [True]
    assert hook_count(model) == 0
    assert all(module.training for module in model.modules())


def test_state_restored_and_no_hooks_after_a_bad_target(tiny_cnn, golden_input):
    tiny_cnn.train()
    flags = [p.requires_grad for p in tiny_cnn.parameters()]
    cam = AblationCAM(tiny_cnn, [tiny_cnn[6]], progress=False)
    with pytest.raises(ValueError, match="category"):
        cam(golden_input, [ClassifierOutputTarget(1), ClassifierOutputTarget(99)])
    assert hook_count(tiny_cnn) == 0
    assert all(module.training for module in tiny_cnn.modules())
    assert [p.requires_grad for p in tiny_cnn.parameters()] == flags
    cam(golden_input, golden_targets())
    assert all(module.training for module in tiny_cnn.modules())


def test_progress_bar_can_be_turned_off(tiny_cnn, golden_input, capsys):
    AblationCAM(tiny_cnn, [tiny_cnn[6]], progress=False)(golden_input, golden_targets())
    assert capsys.readouterr().err == ""
    AblationCAM(tiny_cnn, [tiny_cnn[6]], progress=True)(golden_input, golden_targets())
    assert "AblationCAM" in capsys.readouterr().err


class ImageOrText(nn.Module):
    """``forward(image, text=None)`` as open_clip's CLIP: the text branch runs only when text is given."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(6, 4)
        self.text = nn.Embedding(10, 4)

    def forward(self, image: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.head(self.relu(self.conv(image)).mean(dim=(2, 3)))
        if text is not None:
            scores = scores + self.text(text).sum(dim=1)
        return scores


def test_fast_path_traces_optional_arguments_as_none() -> None:
    """The cut model is traced with ``text=None`` (as the call with the image alone runs): the fast path is taken
    and equals the full re-run."""
    torch.manual_seed(0)
    model = ImageOrText().eval()
    x = torch.randn(2, 3, 8, 8)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(2)]
    fast = AblationCAM(model, [model.relu], progress=False)
    maps = fast(x, targets)
    assert fast.fast_path_used == [True]
    full = AblationCAM(model, [model.relu], strategy="full", progress=False)(x, targets)
    np.testing.assert_allclose(maps, full, atol=1e-5)


# ------------------------------------------------------------------ one forward pass, traced once
class CountingCNN(ConvReluFc):
    """Counts the calls of ``conv`` (the network before the target layer ``relu``)."""

    def __init__(self, skip: bool = False) -> None:
        super().__init__()
        self.skip = skip
        self.calls = 0
        self.conv.register_forward_hook(self._count)

    def _count(self, module: nn.Module, inputs: object, output: object) -> None:
        self.calls += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(x)
        pooled = self.relu(a).mean(dim=(2, 3))
        if self.skip:  # a skip connection over the target layer: the tail reads the conv output too
            pooled = pooled + a.mean(dim=(2, 3))
        return self.fc(pooled)


@pytest.mark.parametrize("skip", [False, True], ids=["layer-output-only", "skip-connection"])
def test_the_network_before_the_layer_runs_once_per_call(skip):
    """The tail reads the layer output recorded in the forward pass: nothing before the layer runs again. With a
    skip connection over the layer the part before it runs once more, for the whole batch (not once per image)."""
    torch.manual_seed(0)
    model = CountingCNN(skip).eval()
    x = torch.randn(3, 3, 6, 6)
    targets = [ClassifierOutputTarget(k) for k in (0, 1, 2)]
    cam = AblationCAM(model, [model.relu], batch_size=2, progress=False)
    cam(x, targets)  # traces the cut (the tracer calls forward on proxies; hooks do not count them)
    model.calls = 0
    fast = cam(x, targets)
    assert cam.fast_path_used == [True]
    assert model.calls == (2 if skip else 1)
    full = AblationCAM(model, [model.relu], batch_size=2, strategy="full", progress=False)(x, targets)
    np.testing.assert_allclose(fast, full, atol=TOL)


def test_the_cut_is_traced_once_per_model_and_layer(monkeypatch):
    from pytorch_grad_cam.utils import layer_split

    traced = []
    original = layer_split.LayerSplit.__init__

    def counting(self, model, layer):
        traced.append(layer)
        original(self, model, layer)

    monkeypatch.setattr(layer_split.LayerSplit, "__init__", counting)
    torch.manual_seed(0)
    model = CountingCNN().eval()
    x = torch.randn(2, 3, 6, 6)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(1)]
    for _ in range(2):  # two objects, two calls each
        cam = AblationCAM(model, [model.relu], progress=False)
        cam(x, targets)
        cam(x, targets)
    assert traced == [model.relu]
    other = CountingCNN().eval()
    AblationCAM(other, [other.relu], progress=False)(x, targets)
    assert traced == [model.relu, other.relu]


def test_a_module_swapped_after_tracing_is_traced_again():
    """The cached cut still holds the old head: it no longer gives the model's score, so it is traced again."""
    torch.manual_seed(0)
    model = CountingCNN().eval()
    x = torch.randn(2, 3, 6, 6)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(1)]
    AblationCAM(model, [model.relu], progress=False)(x, targets)
    model.fc = nn.Linear(4, 3)
    cam = AblationCAM(model, [model.relu], progress=False)
    fast = cam(x, targets)
    assert cam.fast_path_used == [True]
    full = AblationCAM(model, [model.relu], strategy="full", progress=False)(x, targets)
    np.testing.assert_allclose(fast, full, atol=TOL)


def test_the_trace_cache_does_not_keep_the_model_alive():
    import gc
    import weakref

    model = CountingCNN().eval()
    AblationCAM(model, [model.relu], progress=False)(torch.randn(1, 3, 6, 6), [ClassifierOutputTarget(0)])
    reference = weakref.ref(model)
    del model
    gc.collect()
    assert reference() is None


def test_a_fast_path_that_disagrees_is_refused_with_strategy_fast():
    """``strategy='fast'`` raises when the cut model does not give the model's own score (here: the tail writes
    into a value of the first part in place, which the expanded copies refuse)."""
    torch.manual_seed(0)
    model = TailWritesInPlace().eval()
    cam = AblationCAM(model, [model.relu], strategy="fast", progress=False)
    with pytest.raises(ValueError, match="strategy='fast' cannot cut the model at the target layer: the cut model"):
        cam(torch.randn(2, 3, 6, 6), [ClassifierOutputTarget(0), ClassifierOutputTarget(1)])
    assert hook_count(model) == 0


# ---------------------------------------------------------------------------------------- the shortcut
class PerChannelTail(nn.Module):
    """``conv`` (the target layer; its output can be negative, so ablation sets ``min - 1e7``) followed by one of
    the tails the shortcut handles."""

    def __init__(self, tail: str) -> None:
        super().__init__()
        self.tail = tail
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(2 if tail == "blocks" else 1)
        self.fc1 = nn.Linear(24 if tail == "blocks" else 6, 5)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(x)
        if self.tail == "mean":  # a method call, then one linear
            return self.fc1(a.mean(dim=(2, 3)))
        if self.tail == "two-linears":  # an affine chain: no copy runs through anything
            return self.fc2(self.drop(self.fc1(torch.flatten(self.pool(self.relu(a)), 1))))
        if self.tail == "blocks":  # 4 entries per channel, then a ReLU between the linears
            return self.fc2(torch.relu(self.fc1(torch.flatten(self.pool(self.relu(a)), 1))))
        return self.fc2(torch.relu(self.fc1(self.pool(a).flatten(1))))  # "nonlinear-rest"


@pytest.mark.parametrize("tail", ["mean", "two-linears", "blocks", "nonlinear-rest"])
def test_the_shortcut_equals_the_full_rerun(tail):
    torch.manual_seed(0)
    model = PerChannelTail(tail).eval()
    x = torch.randn(3, 3, 8, 8)
    targets = [ClassifierOutputTarget(k) for k in (0, 1, 3)]
    weights, maps = {}, {}
    for strategy in ("auto", "full"):
        cam = RecordingAblationCAM(model, [model.conv], strategy=strategy, batch_size=4, progress=False)
        maps[strategy] = cam(x, targets)
        weights[strategy] = cam.recorded[0]
        assert cam.shortcut_used == [strategy == "auto"]
    # ablated channels sit at min - 1e7: scores of about 1e6, equal up to float32 rounding of those
    torch.testing.assert_close(weights["auto"], weights["full"], rtol=1e-4, atol=1e-4)
    # the in-place ReLU after the layer ran on a copy: the recorded layer output (the map's A) is unchanged
    np.testing.assert_allclose(maps["auto"], maps["full"], atol=1e-4)


def test_a_shortcut_that_disagrees_is_not_used(monkeypatch):
    """The shortcut's scores for two channels of the first image are checked against the cut model run on real
    ablated copies on every call: a wrong shortcut is dropped and the copies are used."""
    from pytorch_grad_cam.utils.layer_split import ChannelShortcut

    torch.manual_seed(0)
    model = PerChannelTail("two-linears").eval()
    x = torch.randn(2, 3, 8, 8)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(1)]
    expected = AblationCAM(model, [model.conv], strategy="full", progress=False)(x, targets)
    right = ChannelShortcut.outputs
    monkeypatch.setattr(ChannelShortcut, "outputs", lambda self, image, channels: right(self, image, channels) + 1)
    cam = AblationCAM(model, [model.conv], progress=False)
    np.testing.assert_allclose(cam(x, targets), expected, atol=TOL)
    assert cam.fast_path_used == [True]
    assert cam.shortcut_used == [False]


def test_the_shortcut_needs_the_default_ablation_layer():
    class Halving(AblationLayer):
        """Halves the channel instead of switching it off."""

        def forward(self, x=None):
            output = self.activations
            output[torch.arange(len(output)), self.indices[: len(output)]] *= 0.5
            return output

    torch.manual_seed(0)
    model = PerChannelTail("mean").eval()
    cam = AblationCAM(model, [model.conv], ablation_layer=Halving(), progress=False)
    cam(torch.randn(1, 3, 8, 8), [ClassifierOutputTarget(0)])
    assert cam.fast_path_used == [True]
    assert cam.shortcut_used == [False]
