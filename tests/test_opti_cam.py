"""Opti-CAM (pytorch_grad_cam.opti_cam): its gradient ascent improves the objective monotonically, the first
step is the uniform channel average computed by hand, the ``diff`` objective, inference mode refused, and clear
errors for bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import golden_targets, hook_count

from pytorch_grad_cam import GradCAM, OptiCAM

pytestmark = pytest.mark.usefixtures("one_thread")


def test_opti_cam_improves_its_objective_monotonically(tiny_cnn, golden_input):
    cam = OptiCAM(tiny_cnn, [tiny_cnn[6]], iterations=15, learning_rate=0.05, progress=False)
    result = cam(golden_input, golden_targets())
    history = cam.objective_history.numpy()
    assert history.shape == (16, 2)
    assert (np.diff(history, axis=0) >= -1e-6).all()
    assert (history[-1] > history[0] + 1e-4).all()
    assert result.shape == (2, 24, 28) and np.isfinite(result).all()


def test_opti_cam_first_step_is_the_uniform_average(tiny_cnn, golden_input):
    """u = 0 at the start: w = 1/C, the objective is the score of x ⊙ norm(up(mean_c A_c))."""
    cam = OptiCAM(tiny_cnn, [tiny_cnn[6]], iterations=1, progress=False)
    cam(golden_input, golden_targets())
    record = GradCAM(tiny_cnn, [tiny_cnn[6]])
    record(golden_input, golden_targets())
    mean_map = record.activations_and_grads.activations[0].mean(1, keepdim=True)
    up = torch.nn.functional.interpolate(mean_map, size=(24, 28), mode="bilinear")
    low, high = up.amin((1, 2, 3), keepdim=True), up.amax((1, 2, 3), keepdim=True)
    with torch.no_grad():
        out = tiny_cnn(golden_input * (up - low) / (high - low + 1e-8))
    torch.testing.assert_close(cam.objective_history[0], out[[0, 1], [1, 3]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"iterations": 0}, ValueError, "iterations must be a positive int; got 0"),
        ({"progress": "yes"}, TypeError, "progress must be True or False; got str"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate must be a positive number; got str"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate must be a positive number; got -1.0"),
        ({"objective": "area"}, ValueError, "objective must be one of 'mask', 'diff'; got 'area'"),
    ],
)
def test_opti_cam_bad_arguments(tiny_cnn, kwargs, error, message):
    with pytest.raises(error, match=message):
        OptiCAM(tiny_cnn, [tiny_cnn[6]], **kwargs)


def test_opti_cam_diff_objective_and_inference_mode(tiny_cnn, golden_input):
    cam = OptiCAM(tiny_cnn, [tiny_cnn[6]], iterations=3, objective="diff", progress=False)
    cam(golden_input, golden_targets())
    assert (cam.objective_history <= 0).all()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        cam(golden_input, golden_targets())
    assert hook_count(tiny_cnn) == 0
