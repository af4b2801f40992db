"""Checks shared by the tests of real model libraries (test_integration_*.py): a usable map, and one call of a
method that leaves no hook behind and every ``training`` / ``requires_grad`` flag as it found it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from conftest import hook_count
from torch import nn


def check_map(cam: np.ndarray, shape: tuple[int, ...]) -> None:
    """A usable map: the expected shape, float32, finite, in [0, 1], and each image's map not constant."""
    assert cam.shape == shape and cam.dtype == np.float32
    assert np.isfinite(cam).all() and cam.min() >= 0.0 and cam.max() <= 1.0 + 1e-6
    for image in cam:
        assert image.max() - image.min() > 0.5, "the map is (nearly) constant"


def model_flags(model: nn.Module) -> tuple[list[bool], list[bool]]:
    """Every module's ``training`` flag and every parameter's ``requires_grad`` flag."""
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


def run_method(
    method: type, model: nn.Module, layers: list[nn.Module], x: torch.Tensor, targets: Any, **options: Any
) -> tuple[np.ndarray, Any]:
    """One call of ``method`` in a ``with`` block: the map (checked with :func:`check_map` at the input's size)
    and the model output; no hook is left and the model's flags are unchanged."""
    before = model_flags(model)
    with method(model, layers, **options) as cam:
        result = cam(x, targets)
        outputs = cam.outputs
    check_map(result, (x.shape[0], *x.shape[2:]))
    assert hook_count(model) == 0
    assert model_flags(model) == before
    return result, outputs


def reference_resize(scaled: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """The reference's resize of one map: ``cv2.resize`` (bilinear) for images, ``scipy.ndimage.zoom`` (cubic
    spline) for volumes."""
    if scaled.ndim == 2:
        import cv2

        return cv2.resize(np.float32(scaled), (size[1], size[0]))
    from scipy.ndimage import zoom

    return zoom(np.float32(scaled), [t / s for s, t in zip(scaled.shape, size)])


def grad_cam_by_hand(model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: list[Any]) -> np.ndarray:
    """Grad-CAM as the reference computes it, in numpy from a plain forward hook and ``torch.autograd.grad``:
    ``ReLU(Σ_c mean(∂y/∂A_c) A_c)``, min-max scaled, resized to the input (:func:`reference_resize`), ReLU,
    scaled again."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        out = model(x)
    finally:
        handle.remove()
    score = sum(target(out[index]) for index, target in enumerate(targets))
    (grads,) = torch.autograd.grad(score, captured[0])
    activations = captured[0].detach().numpy()
    weights = grads.numpy().mean(axis=tuple(range(2, grads.ndim)), keepdims=True)
    maps = []
    for raw in np.maximum((weights * activations).sum(axis=1), 0):
        scaled = (raw - raw.min()) / (1e-7 + (raw - raw.min()).max())
        resized = np.maximum(reference_resize(scaled, tuple(x.shape[2:])), 0)
        maps.append((resized - resized.min()) / (1e-7 + (resized - resized.min()).max()))
    return np.stack(maps)
