"""Hooks exist only during a call; the model, its flags and the caller's input are left as they were."""

from __future__ import annotations

import contextlib
import gc
import warnings

import numpy as np
import pytest
import torch
from conftest import build_tiny_cnn, hook_count
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.core import protocol
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


def state(model: nn.Module) -> list:
    return [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in model.modules()]


def live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance on some deprecated torch objects warns
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


pytestmark = pytest.mark.usefixtures("one_thread")


class HookSpy:
    """Counts the hooks present on the target layer while the model runs (they must exist then)."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.seen: list[int] = []

    def __call__(self, out):
        self.seen.append(len(self.layer._forward_hooks))
        return out[1]


# ------------------------------------------------------------------------------------ hook removal
def test_hooks_removed_after_normal_run(tiny_cnn, golden_input) -> None:
    spy = HookSpy(tiny_cnn[6])
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])
    assert hook_count(tiny_cnn) == 0  # nothing is attached by the constructor
    cam(golden_input, [spy, spy])
    assert spy.seen == [0, 0]  # targets run after the forward: hooks already gone
    assert hook_count(tiny_cnn) == 0
    assert cam.activations_and_grads.handles == []


def test_hooks_present_only_during_forward(tiny_cnn, golden_input) -> None:
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(hook_count(tiny_cnn))
            return x

    tiny_cnn.insert(7, Probe())
    pgc.GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])(golden_input, TARGETS)
    assert seen == [2]
    assert hook_count(tiny_cnn) == 0


def test_hooks_removed_after_bad_target(tiny_cnn, golden_input) -> None:
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])
    with pytest.raises(ValueError, match="category must be in"):
        cam(golden_input, [ClassifierOutputTarget(1), ClassifierOutputTarget(99)])
    assert hook_count(tiny_cnn) == 0
    # and the object still works afterwards
    result = cam(golden_input, TARGETS)
    assert result.shape == (2, 24, 28) and result.max() > 0.99
    assert hook_count(tiny_cnn) == 0


def test_hooks_removed_after_module_raises(tiny_cnn, golden_input) -> None:
    class Raises(nn.Module):
        def forward(self, x):
            raise ZeroDivisionError("boom")

    net = nn.Sequential(tiny_cnn[:7], Raises())
    for method in (pgc.GradCAM, pgc.EigenCAM, pgc.HiResCAM):
        cam = method(net, [tiny_cnn[4], tiny_cnn[6]])
        with pytest.raises(ZeroDivisionError, match=r"^boom$"):
            cam(golden_input)
        assert hook_count(net) == 0


def test_with_and_release_are_idempotent(tiny_cnn, golden_input) -> None:
    with pgc.GradCAM(tiny_cnn, [tiny_cnn[6]]) as cam:
        inside = cam(golden_input, TARGETS)
        assert hook_count(tiny_cnn) == 0
    assert hook_count(tiny_cnn) == 0
    cam.release()
    cam.release()
    assert hook_count(tiny_cnn) == 0
    # still usable after release, same numbers
    np.testing.assert_array_equal(cam(golden_input, TARGETS), inside)
    cam.release()
    with cam:
        pass
    with cam:
        np.testing.assert_array_equal(cam(golden_input, TARGETS), inside)
    assert hook_count(tiny_cnn) == 0


def test_release_removes_hooks_registered_by_hand(tiny_cnn) -> None:
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])
    cam.activations_and_grads.register()
    cam.activations_and_grads.register()  # idempotent: still one hook per layer
    assert hook_count(tiny_cnn) == 2
    cam.release()
    cam.release()
    assert hook_count(tiny_cnn) == 0


def test_no_del_method() -> None:
    assert not hasattr(pgc.BaseCAM, "__del__")


# -------------------------------------------------------------------------------------- leaks
def test_thousand_calls_without_with_leave_nothing(tiny_cnn) -> None:
    x = torch.randn(1, 3, 8, 8)
    target = [ClassifierOutputTarget(2)]
    first = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])(x, target)  # warm-up (lazy allocations)
    del first
    before = live_tensors()
    for _ in range(1000):
        cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]])
        result = cam(x, target)
    assert hook_count(tiny_cnn) == 0
    assert result.shape == (1, 8, 8) and result.max() > 0.99
    del cam, result
    after = live_tensors()
    assert after <= before, f"live tensors grew from {before} to {after}"


def test_repeated_calls_on_one_object_do_not_accumulate(tiny_cnn, golden_input) -> None:
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])
    first = cam(golden_input, TARGETS)
    for _ in range(20):
        result = cam(golden_input, TARGETS)
    np.testing.assert_array_equal(result, first)
    assert len(cam.activations_and_grads.activations) == 2
    assert len(cam.activations_and_grads.gradients) == 2


# ----------------------------------------------------------------------------------- model state
def test_train_mode_model_is_computed_in_eval_mode_and_restored(golden_input) -> None:
    model = build_tiny_cnn()
    # make the running statistics very different from the batch statistics
    with torch.no_grad():
        model[3].running_mean.add_(3.0)
        model[3].running_var.mul_(4.0)
    expected = pgc.GradCAM(model, [model[6]])(golden_input, TARGETS)  # eval mode
    buffers = {name: b.clone() for name, b in model.named_buffers()}

    model.train()
    model[0].eval()  # a mixed state must come back exactly
    before = state(model)
    result = pgc.GradCAM(model, [model[6]])(golden_input, TARGETS)
    np.testing.assert_array_equal(result, expected)
    assert state(model) == before
    assert model.training and not model[0].training and model[3].training
    for name, buffer in model.named_buffers():  # BatchNorm ran in eval mode: running stats untouched
        assert torch.equal(buffer, buffers[name]), name

    # the train-mode answer really differs (batch statistics), so the test above is meaningful
    train_model = build_tiny_cnn()
    train_model.load_state_dict(model.state_dict())
    train_model.train()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(protocol, "eval_mode", lambda model, snapshot=None: contextlib.nullcontext())
        in_train = pgc.GradCAM(train_model, [train_model[6]])(golden_input, TARGETS)
    assert np.abs(in_train - expected).max() > 1e-2


def test_dropout_in_train_mode_is_deterministic() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    ).train()
    x = torch.randn(2, 3, 10, 10)
    cam = pgc.GradCAM(model, [model[1]])
    first = cam(x)
    second = cam(x)
    np.testing.assert_array_equal(first, second)
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("requires_grad", [False, True])
def test_input_unchanged(tiny_cnn, golden_input, requires_grad) -> None:
    x = golden_input.clone().requires_grad_(requires_grad)
    copy = x.detach().clone()
    for method in (pgc.GradCAM, pgc.GradCAMPlusPlus, pgc.EigenCAM, pgc.LayerCAM):
        method(tiny_cnn, [tiny_cnn[6]])(x, TARGETS, aug_smooth=method is pgc.GradCAM)
    assert x.requires_grad == requires_grad
    assert x.grad is None
    assert torch.equal(x.detach(), copy)
    assert x.is_leaf


def test_requires_grad_flags_restored_for_partly_frozen_model(golden_input) -> None:
    model = build_tiny_cnn()
    for p in model[:3].parameters():
        p.requires_grad_(False)
    model[9].bias.requires_grad_(False)
    before = state(model)
    pgc.GradCAM(model, [model[4], model[6]])(golden_input, TARGETS)
    pgc.EigenCAM(model, [model[6]])(golden_input)
    assert state(model) == before
    assert all(p.grad is None for p in model.parameters())
