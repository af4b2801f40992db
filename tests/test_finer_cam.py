"""FinerCAM: golden numbers, hand-derived equalities with its base method, `with`, aug_smooth, bad input."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import FinerCAM, GradCAM, LayerCAM
from pytorch_grad_cam.finer_cam import DEFAULT_COMPARISON_CATEGORIES
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, FinerWeightedTarget


def test_golden_argmax(tiny_cnn, golden_input, golden):
    # The reference release called FinerCAM(model, [model[6]])(input_tensor) with its defaults.
    cam = FinerCAM(tiny_cnn, [tiny_cnn[6]])(golden_input)
    assert cam.dtype == np.float32 and cam.shape == (2, 24, 28)
    np.testing.assert_allclose(cam, golden["FinerCAM/one/argmax"], atol=1e-5)
    assert hook_count(tiny_cnn) == 0


def test_default_targets_are_the_most_similar_classes(tiny_cnn, golden_input):
    logits = tiny_cnn(golden_input).detach().numpy()
    targets = []
    for row in logits:
        order = np.argsort(np.abs(row - row.max()))  # by hand: closest logits first, the top class at rank 0
        targets.append(FinerWeightedTarget(int(order[0]), [int(order[1]), int(order[2]), int(order[3])], 1.0))
    with FinerCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]]) as finer:
        np.testing.assert_allclose(
            finer(golden_input), GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])(golden_input, targets), atol=1e-6
        )
        # explicit targets are used as given
        np.testing.assert_allclose(
            finer(golden_input, targets),
            GradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])(golden_input, targets),
            atol=1e-6,
        )
    assert hook_count(tiny_cnn) == 0


def test_target_idx_and_comparison_categories(tiny_cnn, golden_input):
    logits = tiny_cnn(golden_input).detach().numpy()
    targets = []
    for row in logits:
        order = np.argsort(np.abs(row - row[2]))
        assert order[0] == 2
        targets.append(FinerWeightedTarget(2, [int(order[4]), int(order[1])], 0.6))
    finer = FinerCAM(tiny_cnn, [tiny_cnn[6]])
    cam = finer(golden_input, alpha=0.6, comparison_categories=[4, 1], target_idx=2)
    np.testing.assert_allclose(cam, GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, targets), atol=1e-6)


@pytest.mark.parametrize("base_method", [GradCAM, LayerCAM])
def test_alpha_zero_is_the_base_method_on_the_top_class(tiny_cnn, golden_input, base_method):
    # alpha = 0: score = y_t · Σp_j / (Σp_j + 1e-9), the gradient of y_t up to a positive factor.
    layers = [tiny_cnn[4], tiny_cnn[6]]
    finer = FinerCAM(tiny_cnn, layers, base_method=base_method)
    np.testing.assert_allclose(finer(golden_input, alpha=0), base_method(tiny_cnn, layers)(golden_input), atol=1e-5)


def test_aug_smooth_and_eigen_smooth(tiny_cnn, golden_input):
    layers = [tiny_cnn[6]]
    with FinerCAM(tiny_cnn, layers) as finer, GradCAM(tiny_cnn, layers) as gradcam:
        smoothed = finer(golden_input, alpha=0, aug_smooth=True)
        np.testing.assert_allclose(smoothed, gradcam(golden_input, aug_smooth=True), atol=1e-5)
        assert not np.allclose(smoothed, finer(golden_input, alpha=0), atol=1e-3)
        np.testing.assert_allclose(
            finer(golden_input, None, True, alpha=0), gradcam(golden_input, eigen_smooth=True), atol=5e-5
        )  # the SVD amplifies the float32 rounding of the factor Σp/(Σp + 1e-9)
    assert hook_count(tiny_cnn) == 0


def test_no_mutable_default_and_the_reference_positional_order():
    assert inspect.signature(FinerCAM.explain).parameters["comparison_categories"].default is None
    # cam(input_tensor, targets, eigen_smooth, alpha, comparison_categories, target_idx) as in the reference
    assert FinerCAM.call_flags[:4] == ("eigen_smooth", "alpha", "comparison_categories", "target_idx")
    assert DEFAULT_COMPARISON_CATEGORIES == (1, 2, 3)


def test_logits_mapping_output(tiny_cnn, golden_input):
    class DictModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_cnn

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.net(x)}

    model = DictModel()
    np.testing.assert_allclose(
        FinerCAM(model, [tiny_cnn[6]])(golden_input), FinerCAM(tiny_cnn, [tiny_cnn[6]])(golden_input), atol=1e-6
    )


def test_bad_input(tiny_cnn, golden_input):
    three_classes = nn.Sequential(*list(tiny_cnn)[:-1], nn.Linear(32, 3)).train()
    flags = [m.training for m in three_classes.modules()]
    finer = FinerCAM(three_classes, [three_classes[6]])
    message = r"comparison_categories must be ranks below the number of classes \(3\); got \[1, 2, 3\]"
    with pytest.raises(ValueError, match=message):
        finer(golden_input)
    assert hook_count(three_classes) == 0
    assert [m.training for m in three_classes.modules()] == flags
    assert all(p.grad is None for p in three_classes.parameters())

    finer = FinerCAM(tiny_cnn, [tiny_cnn[6]])
    with pytest.raises(ValueError, match=r"comparison_categories must hold at least one rank.*got an empty"):
        finer(golden_input, comparison_categories=[])
    with pytest.raises(ValueError, match=r"ranks >= 1 \(rank 0 is the target class itself\); got \[0, 1\]"):
        finer(golden_input, comparison_categories=[0, 1])
    with pytest.raises(TypeError, match=r"comparison_categories must be a sequence of integer ranks.*got '12'"):
        finer(golden_input, comparison_categories="12")
    with pytest.raises(TypeError, match=r"comparison_categories\[1\] must be an integer; got float 2.5"):
        finer(golden_input, comparison_categories=[1, 2.5])
    with pytest.raises(TypeError, match=r"alpha must be a real number; got str 'big'"):
        finer(golden_input, alpha="big")
    with pytest.raises(ValueError, match=r"target_idx must be in \[0, 5\); got 9"):
        finer(golden_input, target_idx=9)
    with pytest.raises(ValueError, match=r"targets must have one entry per image"):
        finer(golden_input, [ClassifierOutputTarget(1)])
    with pytest.raises(ValueError, match=r"input_tensor must have shape \(B, C, H, W\)"):
        finer(golden_input[0])
    with pytest.raises(TypeError, match=r"input_tensor must be a torch.Tensor of shape \(B, C, H, W\) .*; got list"):
        finer([1, 2])
    with pytest.raises(TypeError, match=r"base_method must be a CAM class such as GradCAM.*; got str 'GradCAM'"):
        FinerCAM(tiny_cnn, [tiny_cnn[6]], base_method="GradCAM")
    assert hook_count(tiny_cnn) == 0
