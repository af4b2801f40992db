"""Deferred checks (:func:`~pytorch_grad_cam.core.checks.deferred_checks`) and the forward pass that records the
autograd graph only from the first target layer on: the same maps, errors and warnings as the immediate checks
and the full graph, with fewer waits for the device and less recorded."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import build_tiny_cnn, golden_targets
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.core.checks import deferred_checks, require_finite, unless_on_device
from pytorch_grad_cam.core.recording import ActivationsAndGradients
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

pytestmark = pytest.mark.usefixtures("one_thread")


def test_checks_are_decided_at_the_end_in_their_order() -> None:
    order: list[str] = []
    with pytest.raises(ValueError, match="second"), deferred_checks():
        require_finite(torch.ones(3), lambda: ValueError("first"))
        unless_on_device(torch.tensor(False), lambda: order.append("warned"))
        require_finite(torch.tensor([1.0, float("nan")]), lambda: ValueError("second"))
        require_finite(torch.tensor([float("inf")]), lambda: ValueError("third"))
        order.append("block ran to its end")
    assert order == ["block ran to its end", "warned"]


def test_outside_a_block_checks_act_at_once() -> None:
    with pytest.raises(ValueError, match="now"):
        require_finite(torch.tensor([float("nan")]), lambda: ValueError("now"))
    seen: list[int] = []
    unless_on_device(torch.tensor(False), lambda: seen.append(1))
    unless_on_device(torch.tensor(True), lambda: seen.append(2))
    assert seen == [1]


def test_nested_blocks_leave_the_decision_to_the_outermost() -> None:
    with pytest.raises(ValueError, match="inner"), deferred_checks():
        with deferred_checks():
            require_finite(torch.tensor([float("nan")]), lambda: ValueError("inner"))
        reached = True
    assert reached


def test_an_error_inside_the_block_is_chained_to_a_failed_check_before_it() -> None:
    with pytest.raises(ValueError, match="queued") as caught, deferred_checks():
        require_finite(torch.tensor([float("nan")]), lambda: ValueError("queued"))
        raise KeyError("later")
    assert isinstance(caught.value.__cause__, KeyError)
    with pytest.raises(KeyError), deferred_checks():  # nothing failed: the error itself
        require_finite(torch.ones(2), lambda: ValueError("fine"))
        raise KeyError("alone")


def test_a_cam_inside_a_block_gives_the_same_map_and_the_same_errors(tiny_cnn, golden_input) -> None:
    layers = [tiny_cnn[4]]
    expected = pgc.GradCAM(tiny_cnn, layers)(golden_input, golden_targets())
    with deferred_checks():
        result = pgc.GradCAM(tiny_cnn, layers)(golden_input, golden_targets())
    np.testing.assert_array_equal(result, expected)
    broken = golden_input.clone()
    broken[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="input_tensor contains NaN or inf values"):
        pgc.GradCAM(tiny_cnn, layers)(broken, golden_targets())
    with pytest.raises(ValueError, match="input_tensor contains NaN or inf values"), deferred_checks():
        pgc.GradCAM(tiny_cnn, layers)(broken, golden_targets())


def test_the_zero_gradient_warning_inside_a_block() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    nn.init.zeros_(model[4].weight)
    with pytest.warns(UserWarning, match="are all zero") as immediate:
        pgc.GradCAM(model, [model[0]])(torch.randn(1, 3, 8, 8), [ClassifierOutputTarget(1)])
    assert immediate[0].filename == __file__  # the caller's line
    with pytest.warns(UserWarning, match="are all zero"), deferred_checks():
        pgc.GradCAM(model, [model[0]])(torch.randn(1, 3, 8, 8), [ClassifierOutputTarget(1)])


# ------------------------------------------------------------------------ the graph from the target layers
def _saved_tensors_during(model: nn.Module, call) -> int:
    """How many tensors autograd saves for backward while ``call()`` runs."""
    saved = [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved[0] += 1
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        call()
    return saved[0]


def test_the_forward_pass_records_the_graph_from_the_first_target_layer_on(golden_input) -> None:
    """Fewer tensors saved for backward, the same gradient, and the caller's grad mode restored."""
    model = build_tiny_cnn()
    late = ActivationsAndGradients(model, [model[4]], graph_from_layers=True)
    full = ActivationsAndGradients(model, [model[4]])
    saved, gradients = [], []
    with torch.enable_grad():
        for record in (late, full):
            saved.append(_saved_tensors_during(model, lambda record=record: record(golden_input)))
            assert torch.is_grad_enabled()  # restored after the layer's hook switched it on
            output = record(golden_input)
            gradients.append(record.compute_gradients(output[:, 1].sum())[0])
    assert saved[0] < saved[1]
    torch.testing.assert_close(gradients[0], gradients[1], rtol=0, atol=0)
    with torch.no_grad():
        late(golden_input)
        assert not torch.is_grad_enabled()  # the caller's mode, restored


def test_gradient_methods_take_the_late_graph_and_the_others_do_not(tiny_cnn, golden_input) -> None:
    """Decided by the recorder from what the call records (read after a call: FullGrad's bias layers are set by
    it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ShapleyCAM / LeGrad notes on the tiny model, if any
        cams = {
            "GradCAM": (pgc.GradCAM(tiny_cnn, [tiny_cnn[4]]), True),
            "GradCAM detach=False": (pgc.GradCAM(tiny_cnn, [tiny_cnn[4]], detach=False), False),
            "ShapleyCAM": (pgc.ShapleyCAM(tiny_cnn, [tiny_cnn[4]]), False),
            "FullGrad": (pgc.FullGrad(tiny_cnn), False),
            "input gradient": (pgc.GradCAM(tiny_cnn, [tiny_cnn[4]], compute_input_gradient=True), False),
            "EigenCAM": (pgc.EigenCAM(tiny_cnn, [tiny_cnn[4]]), False),
        }
        for name, (cam, late) in cams.items():
            cam(golden_input, golden_targets())
            assert cam.activations_and_grads._graph_from_layers_now() is late, name


def test_a_frozen_prefix_and_a_model_that_disables_grad_itself(golden_input) -> None:
    """The late graph on a model whose target layer runs inside the model's own ``no_grad`` block: that block's
    end switches recording off again, so the score does not depend on the layer, and the error says so (as with
    the full graph)."""

    class Frozen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = build_tiny_cnn()[:7]
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                features = self.body(x)
            return self.head(features)

    model = Frozen()
    model(golden_input)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="does not depend on"):
            pgc.GradCAM(model, [model.body[6]])(golden_input, [ClassifierOutputTarget(0)] * 2)


def test_the_late_graph_is_ignored_when_the_input_gradient_is_recorded(golden_input) -> None:
    model = build_tiny_cnn()
    record = ActivationsAndGradients(model, [model[4]], input_gradient=True, graph_from_layers=True)
    with torch.enable_grad():
        output = record(golden_input)
        record.compute_gradients(output[:, 1].sum())
    assert record.input_gradient is not None and bool(record.input_gradient.abs().sum() > 0)
