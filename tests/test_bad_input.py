"""Bad input: every error names what was wrong, and leaves the model as it was.

After each error: no hook left on any module, every module's ``training`` flag and every parameter's
``requires_grad`` flag unchanged. The model used here has a mixed state (some modules in train mode, one
frozen parameter) so that a blanket ``model.eval()`` / ``requires_grad_(True)`` would be noticed.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import build_tiny_cnn, hook_count
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


pytestmark = pytest.mark.usefixtures("one_thread")


def state(model: nn.Module) -> list:
    return [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()]


@pytest.fixture
def model() -> nn.Sequential:
    net = build_tiny_cnn()
    net.train()
    net[3].eval()  # BatchNorm in eval mode, the rest in train mode
    net[0].bias.requires_grad_(False)
    return net


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16)


class Checked:
    """Context: the model's hooks and flags (and the input) are the same on exit as on entry."""

    def __init__(self, model: nn.Module, *tensors: torch.Tensor) -> None:
        self.model = model
        self.tensors = tensors

    def __enter__(self) -> Checked:
        self.before = state(self.model)
        self.copies = [(t.clone(), t.requires_grad) for t in self.tensors]
        assert hook_count(self.model) == 0
        return self

    def __exit__(self, *exc_info) -> None:
        assert hook_count(self.model) == 0
        assert state(self.model) == self.before
        for t, (copy, requires_grad) in zip(self.tensors, self.copies):
            assert t.requires_grad == requires_grad
            assert torch.equal(t, copy) or (torch.isnan(t) == torch.isnan(copy)).all()


def raises(model, exc, message, *tensors):
    """``pytest.raises`` plus the state checks; the match is a literal fragment of the message."""

    class _Both:
        def __enter__(self):
            self.checked = Checked(model, *tensors).__enter__()
            self.raises = pytest.raises(exc, match=re.escape(message))
            return self.raises.__enter__()

        def __exit__(self, *exc_info):
            suppressed = self.raises.__exit__(*exc_info)
            self.checked.__exit__(None, None, None)
            return suppressed

    return _Both()


# -------------------------------------------------------------------------------------- the input
def test_three_dimensional_input(model) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    message = "input_tensor must have shape (B, C, H, W) or (B, C, D, H, W); got (3, 16, 16)"
    with raises(model, ValueError, message):
        cam(torch.randn(3, 16, 16), TARGETS)


def test_numpy_input(model) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    message = (
        "input_tensor must be a torch.Tensor of shape (B, C, H, W) or (B, C, D, H, W); "
        "got a numpy.ndarray of shape (2, 3, 16, 16)"
    )
    with raises(model, TypeError, message):
        cam(np.zeros((2, 3, 16, 16), dtype=np.float32), TARGETS)


def test_integer_image_input(model) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    message = "input_tensor must be a floating-point (normalised) image batch; got dtype torch.uint8"
    with raises(model, TypeError, message):
        cam(torch.zeros((2, 3, 16, 16), dtype=torch.uint8), TARGETS)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_in_input(model, x, value) -> None:
    x[1, 2, 3, 4] = value
    cam = pgc.GradCAM(model, [model[6]])
    with raises(model, ValueError, "input_tensor contains NaN or inf values", x):
        cam(x, TARGETS)


def test_empty_batch(model) -> None:
    with raises(model, ValueError, "input_tensor must hold at least one image; got shape (0, 3, 16, 16)"):
        pgc.GradCAM(model, [model[6]])(torch.randn(0, 3, 16, 16), [])


# ------------------------------------------------------------------------------------ the targets
def test_targets_not_a_list(model, x) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    with raises(model, TypeError, "targets must be a list of callables (one per image)", x):
        cam(x, ClassifierOutputTarget(1))


def test_targets_not_callables(model, x) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    message = "targets[0] must be callable, e.g. ClassifierOutputTarget(281); got int"
    with raises(model, TypeError, message, x):
        cam(x, [1, 3])


@pytest.mark.parametrize("count", [1, 3])
def test_fewer_or_more_targets_than_images(model, x, count) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    message = f"targets must have one entry per image: input_tensor holds 2 image(s), got {count} target(s)"
    with raises(model, ValueError, message, x):
        cam(x, [ClassifierOutputTarget(0)] * count)


def test_class_index_out_of_range(model, x) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    message = "ClassifierOutputTarget category must be in [0, 5) for a model output with 5 classes; got 7"
    with raises(model, ValueError, message, x):
        cam(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(7)])


def test_target_returning_non_tensor(model, x) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    with raises(model, TypeError, "targets[1] must return a torch.Tensor; got float", x):
        cam(x, [ClassifierOutputTarget(1), lambda out: 1.0])


def test_target_that_raises(model, x) -> None:
    class Boom(RuntimeError):
        pass

    def target(out):
        raise Boom("target exploded")

    cam = pgc.GradCAM(model, [model[6]])
    with raises(model, Boom, "target exploded", x):
        cam(x, [ClassifierOutputTarget(1), target])


def test_score_independent_of_layer(model, x) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    message = "the target score does not depend on any target layer's output (it does not require grad)"
    with raises(model, ValueError, message, x):
        cam(x, [lambda out: torch.tensor(1.0), lambda out: torch.tensor(2.0)])


class TwoBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)
        self.b = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.a(x).mean((2, 3)), self.b(x).mean((2, 3))


def test_score_independent_of_one_layer() -> None:
    net = TwoBranches()
    cam = pgc.GradCAM(net, [net.a, net.b])
    message = "the target score does not depend on target_layers[0] (a): no gradient flows back to it"
    with raises(net, ValueError, message):
        cam(torch.randn(1, 3, 8, 8), [lambda out: out[1][0]])


# ------------------------------------------------------------------------------- the target layers
def test_empty_target_layers(model) -> None:
    with raises(model, ValueError, "target_layers must name at least one layer; got an empty list"):
        pgc.GradCAM(model, [])


def test_single_module_instead_of_list(model) -> None:
    message = "target_layers must be a list of modules, e.g. [model.layer4[-1]]; got a single Conv2d"
    with raises(model, TypeError, message):
        pgc.GradCAM(model, model[5])


def test_target_layer_not_in_model(model) -> None:
    other = nn.Conv2d(16, 32, 3)
    with raises(model, ValueError, "target_layers[1] (Conv2d) is not a submodule of the model"):
        pgc.GradCAM(model, [model[5], other])


def test_target_layer_that_never_runs(model, x) -> None:
    """A registered child that the container's forward skips."""

    class Skips(nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net
            self.unused = nn.Conv2d(3, 3, 1)

        def forward(self, inp):
            return self.net(inp)

    wrapper = Skips(model)
    cam = pgc.GradCAM(wrapper, [model[6], wrapper.unused])
    with raises(wrapper, ValueError, "target_layers[1] (unused) did not run during the forward pass", x):
        cam(x, TARGETS)


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(3, 4)

    def forward(self, x):
        return self.head(self.conv(self.conv(x)).mean((2, 3)))


def test_layer_that_runs_twice() -> None:
    net = Twice().train()
    cam = pgc.GradCAM(net, [net.conv])
    message = "target_layers[0] (conv) ran more than once in one forward pass"
    with raises(net, RuntimeError, message):
        cam(torch.randn(2, 3, 8, 8), [ClassifierOutputTarget(0), ClassifierOutputTarget(1)])


class IntegerLayer(nn.Module):
    def forward(self, x):
        return (x > 0).long()


class TupleLayer(nn.Module):
    def forward(self, x):
        return x, x * 2


class OddLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.integer = IntegerLayer()
        self.pair = TupleLayer()
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.conv(x)
        mask = self.integer(h)
        a, b = self.pair(h)
        return self.head((a * mask + b).mean((2, 3)))


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("integer", "target_layers[0] (integer) outputs a torch.int64 tensor, which cannot carry a gradient"),
        ("pair", "target_layers[0] (pair) outputs tuple, which cannot carry a gradient"),
    ],
)
def test_layer_output_cannot_carry_gradient(layer, message) -> None:
    net = OddLayers()
    cam = pgc.GradCAM(net, [getattr(net, layer)])
    with raises(net, TypeError, message):
        cam(torch.randn(2, 3, 8, 8), [ClassifierOutputTarget(0), ClassifierOutputTarget(1)])


def test_tuple_layer_for_gradient_free_method() -> None:
    net = OddLayers()
    cam = pgc.EigenCAM(net, [net.pair])
    message = "target_layers[0] (pair) produced tuple after reshape_transform; a tensor is needed"
    with raises(net, TypeError, message):
        cam(torch.randn(2, 3, 8, 8))


def test_layer_with_flat_output_needs_reshape(model, x) -> None:
    cam = pgc.GradCAM(model, [model[8]])
    message = "target_layers[0] gives activations of shape (2, 32), but a 2-D map (B, C, H, W) is needed"
    with raises(model, ValueError, message, x):
        cam(x, TARGETS)


# ------------------------------------------------------------------------------- the model output
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_inf_in_model_output(model, x, value) -> None:
    with torch.no_grad():
        model[9].bias[2] = value
    cam = pgc.GradCAM(model, [model[6]])
    message = "the model output contains NaN or inf values; no CAM can be computed from it"
    with raises(model, ValueError, message, x):
        cam(x, TARGETS)
    with raises(model, ValueError, message, x):
        cam(x)


class Segmenter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.out(torch.relu(self.conv(x)))


def test_targets_none_on_segmentation_output() -> None:
    net = Segmenter().train()
    cam = pgc.GradCAM(net, [net.conv])
    message = (
        "targets=None explains the top class of a (B, num_classes) classification output, but the model "
        "returned a tensor of shape (2, 2, 8, 8) (torch.float32); pass targets explicitly"
    )
    with raises(net, ValueError, message):
        cam(torch.randn(2, 3, 8, 8))


# -------------------------------------------------------------------------- exceptions propagate
class Explodes(nn.Module):
    def __init__(self, error: type[Exception]) -> None:
        super().__init__()
        self.error = error

    def forward(self, x):
        raise self.error("inside forward")


@pytest.mark.parametrize("error", [KeyError, IndexError, RuntimeError])
def test_module_raising_inside_forward_propagates_through_with(model, x, error) -> None:
    """The reference's ``__exit__`` swallowed IndexError; ours lets every exception through unchanged."""
    net = nn.Sequential(model[:7], Explodes(error))
    with raises(net, error, "inside forward", x) as info, pgc.GradCAM(net, [model[6]]) as cam:
        cam(x, TARGETS)
    assert type(info.value) is error
    assert info.value.args == ("inside forward",)


def test_module_raising_without_with(model, x) -> None:
    net = nn.Sequential(model[:7], Explodes(ValueError))
    cam = pgc.EigenCAM(net, [model[4], model[6]])
    with raises(net, ValueError, "inside forward", x):
        cam(x)


# ---------------------------------------------------------------------------- autograd contexts
def test_gradient_method_inside_inference_mode(model, x) -> None:
    cam = pgc.GradCAM(model, [model[6]])
    message = "GradCAM needs gradients, which torch.inference_mode() forbids; call it outside inference_mode"
    with raises(model, RuntimeError, message, x), torch.inference_mode():
        cam(x, TARGETS)


def test_inside_no_grad_works_and_gradient_free_inside_inference_mode(model, x) -> None:
    expected = pgc.GradCAM(model, [model[6]])(x, TARGETS)
    with torch.no_grad():
        np.testing.assert_array_equal(pgc.GradCAM(model, [model[6]])(x, TARGETS), expected)
    expected = pgc.EigenCAM(model, [model[6]])(x)
    with torch.inference_mode():
        np.testing.assert_array_equal(pgc.EigenCAM(model, [model[6]])(x), expected)
    assert hook_count(model) == 0
