"""The per-call fast paths of the core give the numbers, errors and model state of the plain code they replace.

Each call takes one look at the model (:class:`~pytorch_grad_cam.core.model.ModelSnapshot`), checks finiteness with
one reduction (:func:`~pytorch_grad_cam.core.checks.all_finite`), scores a lone ``ClassifierOutputTarget`` as one
column of the output and scales the final map in place: these tests compare each with its reference.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from conftest import build_tiny_cnn
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.core.checks import all_finite
from pytorch_grad_cam.core.combine import mean_of_scaled
from pytorch_grad_cam.core.model import ModelSnapshot, _modules, eval_mode, exclusive_use, model_device
from pytorch_grad_cam.core.outputs import lone_target_rows, target_scores
from pytorch_grad_cam.core.scaling import min_max_scale, scale_cam_tensor
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------ finiteness
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.complex64])
def test_all_finite_agrees_with_isfinite(dtype: torch.dtype) -> None:
    values = torch.randn(4, 5).to(dtype)
    assert all_finite(values)
    for bad in (float("nan"), float("inf"), -float("inf")):
        broken = values.clone()
        broken[2, 3] = bad
        assert not all_finite(broken)
    assert all_finite(torch.empty(0, 3, dtype=dtype))


def test_all_finite_when_the_sum_overflows() -> None:
    huge = torch.full((8,), 3e38)  # finite values whose float32 sum is inf: the element-wise check decides
    assert all_finite(huge)
    assert all_finite(torch.full((8,), 6e4, dtype=torch.float16))
    assert all_finite(torch.tensor([3e38, -3e38, 3e38]))


def test_all_finite_leaves_the_graph_alone() -> None:
    leaf = torch.randn(3, requires_grad=True)
    assert all_finite(leaf * 2)
    assert leaf.grad is None


# ---------------------------------------------------------------------------------------------- scaling
def reference_min_max(maps: torch.Tensor, eps: float = 1e-7, start_dim: int = 1) -> torch.Tensor:
    flat = maps.flatten(start_dim)
    view = tuple(maps.shape[:start_dim]) + (1,) * (maps.ndim - start_dim)
    shifted = maps - flat.min(dim=-1).values.reshape(view)
    return shifted / (shifted.flatten(start_dim).max(dim=-1).values.reshape(view) + eps)


@pytest.mark.parametrize("shape, start_dim", [((3, 7, 9), 1), ((2, 4, 5, 6), 2), ((2, 3, 4, 5), 1), ((5, 8), 1)])
def test_min_max_scale_gives_the_reference_numbers(shape: tuple[int, ...], start_dim: int) -> None:
    maps = torch.randn(shape) * 10
    maps[0].clamp_(min=0)  # ties at the minimum
    expected = reference_min_max(maps, start_dim=start_dim)
    assert torch.equal(min_max_scale(maps, start_dim=start_dim), expected)
    assert torch.equal(min_max_scale(maps.double(), 1e-8, start_dim), reference_min_max(maps.double(), 1e-8, start_dim))
    integers = (maps * 3).long()
    assert torch.equal(min_max_scale(integers, start_dim=start_dim), reference_min_max(integers, start_dim=start_dim))


def test_min_max_scale_gradient_unchanged() -> None:
    """With grad the extremes are taken with their indices: a tied minimum passes its gradient to one element."""
    maps = torch.tensor([[[0.0, 0.0, 1.0], [2.0, 0.0, 2.0]]], requires_grad=True)
    weights = torch.arange(6.0).reshape(1, 2, 3)
    (min_max_scale(maps) * weights).sum().backward()
    reference = maps.detach().clone().requires_grad_(True)
    (reference_min_max(reference) * weights).sum().backward()
    assert torch.equal(maps.grad, reference.grad)


def reference_mean_of_scaled(maps: list[torch.Tensor], size: tuple[int, ...]) -> torch.Tensor:
    stacked = torch.stack([scale_cam_tensor(cam, size) for cam in maps], dim=1)
    return scale_cam_tensor(stacked.clamp_min(0).mean(dim=1))


@pytest.mark.parametrize(
    "shapes, size",
    [
        ([(2, 7, 7)], (224, 224)),
        ([(2, 7, 7)], (7, 7)),
        ([(2, 14, 14), (2, 7, 7)], (60, 50)),
        ([(1, 3, 4, 5)], (6, 8, 9)),  # 3-D: the cubic spline can overshoot below 0, the ReLU matters
        ([(1, 3, 4, 5), (1, 2, 2, 3)], (6, 8, 9)),
    ],
)
def test_mean_of_scaled_gives_the_reference_numbers(shapes: list[tuple[int, ...]], size: tuple[int, ...]) -> None:
    maps = [torch.rand(shape) ** 3 for shape in shapes]
    kept = [cam.clone() for cam in maps]
    result = mean_of_scaled(maps, size)
    expected = reference_mean_of_scaled(maps, size)
    assert torch.equal(result, expected)
    assert torch.equal(torch.signbit(result), torch.signbit(expected))
    assert all(torch.equal(cam, copy_) for cam, copy_ in zip(maps, kept))  # the inputs are left alone


# ---------------------------------------------------------------------------------------------- targets
@pytest.mark.parametrize("target_class", [ClassifierOutputTarget, ClassifierOutputSoftmaxTarget])
@pytest.mark.parametrize("category", [3, -2])
def test_lone_target_rows_equals_target_scores(category: int, target_class: type) -> None:
    outputs = torch.randn(1, 6, requires_grad=True)
    targets = [target_class(category)]
    column = lone_target_rows(targets, outputs)
    assert column is not None
    reference = target_scores(targets, outputs)
    assert torch.equal(column, reference)
    (by_column,) = torch.autograd.grad(column.sum(), outputs)
    (by_reference,) = torch.autograd.grad(reference.sum(), outputs)
    assert torch.equal(by_column, by_reference)


def test_lone_target_rows_only_for_a_lone_target_that_scores_rows() -> None:
    one = torch.randn(1, 6)
    two = torch.randn(2, 6)
    assert lone_target_rows([ClassifierOutputTarget(1), ClassifierOutputTarget(2)], two) is None
    assert lone_target_rows([ClassifierOutputTarget(1)], {"logits": one}) is None
    assert lone_target_rows([lambda output: output[1]], one) is None


def test_lone_target_rows_errors_match_target_scores() -> None:
    outputs = torch.randn(1, 6)
    for targets in ([ClassifierOutputTarget(6)], [ClassifierOutputTarget(-7)]):
        with pytest.raises(ValueError) as by_column:
            lone_target_rows(targets, outputs)
        with pytest.raises(ValueError) as by_reference:
            target_scores(targets, outputs)
        assert str(by_column.value) == str(by_reference.value)
    outputs[0, 2] = float("inf")
    with pytest.raises(ValueError) as by_column:
        lone_target_rows([ClassifierOutputTarget(2)], outputs)
    with pytest.raises(ValueError) as by_reference:
        target_scores([ClassifierOutputTarget(2)], outputs)
    assert str(by_column.value) == str(by_reference.value)


# ----------------------------------------------------------------------------------------- model state
class Renamed(nn.Sequential):
    """A container with its own ``named_modules`` (the walk must then use the model's own method)."""

    def named_modules(self, *args, **kwargs) -> Iterator[tuple[str, nn.Module]]:
        yield from super().named_modules(*args, **kwargs)


def odd_models() -> list[nn.Module]:
    shared = nn.ReLU()
    tree = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 1), shared), shared, nn.Sequential(shared, nn.Linear(2, 2)))
    tree.add_module("empty", None)
    tree.alias = tree[0]
    tree.add_module("tail", nn.Sequential(tree[2], nn.Identity()))
    buffers_only = nn.Module()
    buffers_only.register_buffer("table", torch.zeros(2, dtype=torch.float64))
    mixed = nn.Module()
    mixed.steps = nn.Parameter(torch.zeros(2, dtype=torch.int64), requires_grad=False)
    mixed.head = nn.Linear(2, 2).to(torch.float16)
    return [build_tiny_cnn(), tree, buffers_only, mixed, nn.Sequential(nn.Linear(1, 1), Renamed(nn.ReLU())), nn.ReLU()]


@pytest.mark.parametrize("model", odd_models())
def test_model_snapshot_reads_what_the_module_methods_give(model: nn.Module) -> None:
    modules = list(model.modules())
    assert [id(module) for module in _modules(model)] == [id(module) for module in modules]
    snapshot = ModelSnapshot.of(model)
    assert snapshot.modules == modules
    assert snapshot.training == [module.training for module in modules]
    assert snapshot.device == model_device(model)
    assert snapshot.floating_dtype == next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    assert snapshot.holds_meta is False
    assert ModelSnapshot.of(copy.deepcopy(model).to("meta")).holds_meta is any(
        True for _ in (*model.parameters(), *model.buffers())
    )


class CountingTrain(nn.Sequential):
    """A model whose ``train`` does more than set the flags (as backbones that keep their norms frozen)."""

    calls = 0

    def train(self, mode: bool = True) -> CountingTrain:
        type(self).calls += 1
        return super().train(mode)


def test_eval_mode_calls_an_overridden_train_even_when_already_in_eval() -> None:
    model = CountingTrain(nn.Linear(2, 2), nn.ReLU()).eval()
    before = CountingTrain.calls
    with eval_mode(model):
        pass
    assert CountingTrain.calls == before + 1
    assert not any(module.training for module in model.modules())


def test_flags_changed_during_a_call_are_set_back(golden_input) -> None:
    model = build_tiny_cnn().eval()
    model[2].train()
    before = [module.training for module in model.modules()]

    def flipping(output: torch.Tensor) -> torch.Tensor:
        model.train()  # inside the call: everything in train mode
        model[4].training = False
        return output[1]

    pgc.GradCAM(model, [model[6]])(golden_input[:1], [flipping])
    assert [module.training for module in model.modules()] == before


def test_a_busy_model_keeps_the_order_of_the_errors(golden_input) -> None:
    """While another thread holds the model: argument errors first, then the RuntimeError; a meta model's error
    before both."""
    model = build_tiny_cnn()
    meta = copy.deepcopy(model).to("meta")
    held, release = threading.Event(), threading.Event()

    def hold(module: nn.Module) -> None:
        with exclusive_use(module):
            held.set()
            release.wait()

    threads = [threading.Thread(target=hold, args=(module,)) for module in (model, meta)]
    try:
        for thread in threads:
            held.clear()
            thread.start()
            held.wait()
        with pytest.raises(ValueError, match="NaN or inf"):
            pgc.GradCAM(model, [model[6]])(golden_input * float("nan"))
        with pytest.raises(RuntimeError, match="another thread"):
            pgc.GradCAM(model, [model[6]])(golden_input)
        with pytest.raises(ValueError, match="meta device"):
            pgc.GradCAM(meta, [meta[6]])(golden_input * float("nan"))
    finally:
        release.set()
        for thread in threads:
            thread.join()
    np.testing.assert_array_equal(
        pgc.GradCAM(model, [model[6]])(golden_input), pgc.GradCAM(model, [model[6]])(golden_input)
    )


def test_meta_error_comes_before_the_input_errors(golden_input) -> None:
    model = build_tiny_cnn()
    model.register_buffer("unused", torch.empty(2, device="meta"))  # one meta tensor the forward never reads
    for bad in (golden_input * float("nan"), torch.zeros(3, 3), golden_input):
        with pytest.raises(ValueError, match="meta device"):
            pgc.GradCAM(model, [model[6]])(bad)
