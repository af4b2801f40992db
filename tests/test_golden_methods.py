"""Golden numbers of the gradient-family and eigen methods on the tiny CNN (tests/data/GOLDEN.md).

Every ``method/layers/variant`` entry of ``tests/data/expected.npz`` for GradCAM, HiResCAM,
GradCAMElementWise, GradCAMPlusPlus, XGradCAM, LayerCAM, EigenCAM, EigenGradCAM, KPCA_CAM and FEM is
matched to 1e-5. Maps that come from an SVD / kernel PCA (EigenCAM, EigenGradCAM, KPCA_CAM and every
``eigen_smooth`` map) are made with ``orientation="raw"`` (the reference's sign, not this library's default
``"energy"``); that sign is arbitrary per layer and per image: the projection function is wrapped so
that each layer's projection is multiplied by a chosen sign, every combination of signs is computed, and
for each image one combination must match.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import torch
from conftest import DATA, hook_count

import pytorch_grad_cam as pgc
from pytorch_grad_cam import eigen_cam, kpca_cam
from pytorch_grad_cam.core import base as core_base
from pytorch_grad_cam.core.scaling import scale_cam_tensor
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TOL = 1e-5
METHODS = [
    "GradCAM",
    "HiResCAM",
    "GradCAMElementWise",
    "GradCAMPlusPlus",
    "XGradCAM",
    "LayerCAM",
    "EigenCAM",
    "EigenGradCAM",
    "KPCA_CAM",
    "FEM",
]
SIGN_FREE_METHODS = {"EigenCAM", "EigenGradCAM", "KPCA_CAM"}


pytestmark = pytest.mark.usefixtures("one_thread")

# Every name under which a projection with an arbitrary sign is looked up by the methods of this issue.
_PROJECTIONS = [
    (core_base, "project_on_first_component"),
    (eigen_cam, "project_on_first_component"),
    (kpca_cam, "get_2d_projection_kernel"),
]


def _golden_keys() -> list[str]:
    with np.load(DATA / "expected.npz") as data:
        return sorted(key for key in data.files if key.split("/")[0] in METHODS)


GOLDEN_KEYS = _golden_keys()


def _layers(model, which: str) -> list[torch.nn.Module]:
    return [model[6]] if which == "one" else [model[4], model[6]]


def _run(model, x, method: str, layers: str, variant: str) -> np.ndarray:
    torch.manual_seed(1)
    np.random.seed(1)
    targets = None if variant == "argmax" else [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    # the reference keeps the SVD's own sign: orientation="raw" (this library orients it by default)
    raw = {"orientation": "raw"} if method in SIGN_FREE_METHODS or variant == "eigen_smooth" else {}
    cam = getattr(pgc, method)(model, _layers(model, layers), **raw)
    return cam(x, targets=targets, aug_smooth=variant == "aug_smooth", eigen_smooth=variant == "eigen_smooth")


def _run_with_signs(monkeypatch, model, x, method, layers, variant, signs) -> np.ndarray:
    """The map with the n-th projection of the call multiplied by ``signs[n]``."""
    calls = []
    for module, name in _PROJECTIONS:
        original = getattr(module, name)

        def flipped(*args, _original=original, **kwargs):
            sign = signs[len(calls)]
            calls.append(sign)
            return sign * _original(*args, **kwargs)

        monkeypatch.setattr(module, name, flipped)
    try:
        result = _run(model, x, method, layers, variant)
    finally:
        monkeypatch.undo()
    assert len(calls) == len(signs), f"expected {len(signs)} projections, saw {len(calls)}"
    return result


def test_every_issue_method_has_golden_entries() -> None:
    assert {key.split("/")[0] for key in GOLDEN_KEYS} == set(METHODS)
    assert len(GOLDEN_KEYS) == 34


@pytest.mark.parametrize("key", GOLDEN_KEYS)
def test_golden(key, tiny_cnn, golden_input, golden, monkeypatch) -> None:
    method, layers, variant = key.split("/")
    expected = golden[key]
    flags = [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in tiny_cnn.modules()]
    before = golden_input.clone()
    sign_free = method in SIGN_FREE_METHODS or variant == "eigen_smooth"
    if not sign_free:
        result = _run(tiny_cnn, golden_input, method, layers, variant)
        assert result.dtype == np.float32
        assert result.shape == expected.shape
        np.testing.assert_allclose(result, expected, atol=TOL, rtol=0)
    else:
        n_layers = len(_layers(tiny_cnn, layers))
        candidates = [
            _run_with_signs(monkeypatch, tiny_cnn, golden_input, method, layers, variant, signs)
            for signs in itertools.product([1.0, -1.0], repeat=n_layers)
        ]
        for result in candidates:
            assert result.dtype == np.float32
            assert result.shape == expected.shape
        errors = np.array([[np.abs(r[i] - e).max() for i, e in enumerate(expected)] for r in candidates])
        # each image must be matched by one combination of per-layer signs
        assert (errors.min(axis=0) < TOL).all(), f"best errors per image: {errors.min(axis=0)}"
    assert hook_count(tiny_cnn) == 0
    assert torch.equal(golden_input, before)
    assert flags == [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in tiny_cnn.modules()]


def test_eigen_cam_sign_is_what_the_reference_gives_some_of_the_time(tiny_cnn, golden_input, golden) -> None:
    """Without any sign juggling, each EigenCAM image equals either the golden map or the map of the other
    SVD sign: the unpatched result is one of the candidates above (not a different map)."""
    expected = golden["EigenCAM/one/targets"]
    result = _run(tiny_cnn, golden_input, "EigenCAM", "one", "targets")
    with torch.no_grad():
        activations = tiny_cnn[:7](golden_input)
    flipped = scale_cam_tensor(
        scale_cam_tensor((-eigen_cam.project_on_first_component(activations)).clamp_min(0), (24, 28))
    ).numpy()
    for i in range(2):
        err = min(np.abs(result[i] - expected[i]).max(), np.abs(flipped[i] - expected[i]).max())
        assert err < TOL


def test_eigen_cam_sign_correction_is_sign_invariant(tiny_cnn, golden_input, monkeypatch) -> None:
    """With sign_correction=True the map does not depend on the SVD's sign."""
    from pytorch_grad_cam.utils import svd_on_activations

    plain = pgc.EigenCAM(tiny_cnn, [tiny_cnn[6]], sign_correction=True)(golden_input)
    original_svd = torch.linalg.svd

    def negated_svd(a, full_matrices=True):
        u, s, vh = original_svd(a, full_matrices=full_matrices)
        return -u, s, -vh

    monkeypatch.setattr(svd_on_activations.torch.linalg, "svd", negated_svd)
    flipped = pgc.EigenCAM(tiny_cnn, [tiny_cnn[6]], sign_correction=True)(golden_input)
    monkeypatch.undo()
    np.testing.assert_allclose(plain, flipped, atol=1e-6)
    assert plain.max() == pytest.approx(1.0, abs=1e-5)


def test_seg_eigen_cam_is_sign_corrected_pc_of_abs_grad_times_act(tiny_cnn, golden_input) -> None:
    """SegEigenCAM, computed by hand: first principal component (numpy SVD) of |dy/dA| * A, sign chosen so
    that the larger-magnitude lobe is positive, ReLU, min-max scaled and bilinearly resized."""
    x = golden_input
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    result = pgc.SegEigenCAM(tiny_cnn, [tiny_cnn[6]])(x, targets=targets)

    activations = tiny_cnn[:7](x).detach().requires_grad_(True)
    out = tiny_cnn[7:](activations)
    (grads,) = torch.autograd.grad(out[0, 1] + out[1, 3], activations)
    weighted = (grads.abs() * activations).detach().double().numpy()
    maps = []
    for image in weighted:
        rows = image.reshape(image.shape[0], -1).T  # positions x channels
        rows = rows - rows.mean(axis=0)
        _, _, vh = np.linalg.svd(rows, full_matrices=False)
        projection = rows @ vh[0]
        if abs(projection.min()) > abs(projection.max()):
            projection = -projection
        projection = np.maximum(projection.reshape(image.shape[1:]), 0)
        projection = projection - projection.min()
        projection = projection / (1e-7 + projection.max())
        projection = cv2.resize(np.float32(projection), (28, 24))
        # final (single-layer) aggregation: mean of one map, min-max scaled again
        projection = projection - projection.min()
        maps.append(projection / (1e-7 + projection.max()))
    np.testing.assert_allclose(result, np.array(maps), atol=1e-5)
    assert result.max() > 0.99
