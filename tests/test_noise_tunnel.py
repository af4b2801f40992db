"""NoiseTunnel: SmoothGrad / SmoothGrad² / VarGrad over any CAM method (hand-checked with zero noise and by
recomputing the average of the wrapped method's maps under the same seed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import golden_targets, hook_count

from pytorch_grad_cam import GradCAM, NoiseTunnel, ScoreCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TOL = 1e-5


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM])
def test_zero_noise_smoothgrad_is_the_wrapped_method(tiny_cnn, golden_input, method):
    kwargs = {"progress": False} if method is ScoreCAM else {}
    cam = method(tiny_cnn, [tiny_cnn[6]], **kwargs)
    tunnel = NoiseTunnel(cam, num_samples=3, noise_level=0, progress=False)
    np.testing.assert_allclose(tunnel(golden_input, golden_targets()), cam(golden_input, golden_targets()), atol=TOL)
    assert hook_count(tiny_cnn) == 0


def test_zero_noise_smoothgrad_sq_and_vargrad(tiny_cnn, golden_input):
    cam = GradCAM(tiny_cnn, [tiny_cnn[4]])
    plain = cam(golden_input, golden_targets())
    squared = NoiseTunnel(cam, "smoothgrad_sq", num_samples=2, noise_level=0, progress=False)(
        golden_input, golden_targets()
    )
    np.testing.assert_allclose(squared, scale_cam_image(plain**2), atol=TOL)
    variance = NoiseTunnel(cam, "vargrad", num_samples=2, noise_level=0, progress=False)(golden_input, golden_targets())
    np.testing.assert_array_equal(variance, np.zeros_like(plain))


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noisy_average_matches_the_maps_of_the_noisy_inputs(tiny_cnn, golden_input, nt_type):
    cam = GradCAM(tiny_cnn, [tiny_cnn[4]])
    torch.manual_seed(7)
    result = NoiseTunnel(cam, nt_type, num_samples=3, noise_level=0.2, progress=False)(golden_input, golden_targets())
    torch.manual_seed(7)
    flat = golden_input.flatten(1)
    sigma = 0.2 * (flat.max(1).values - flat.min(1).values).view(-1, 1, 1, 1)
    maps = np.stack([cam(golden_input + torch.randn_like(golden_input) * sigma, golden_targets()) for _ in range(3)])
    expected = {"smoothgrad": maps.mean(0), "smoothgrad_sq": (maps**2).mean(0), "vargrad": maps.var(0)}[nt_type]
    np.testing.assert_allclose(result, scale_cam_image(expected), atol=1e-4)
    assert result.dtype == np.float32 and result.min() >= 0 and result.max() <= 1


def test_targets_none_are_fixed_on_the_clean_image(tiny_cnn, golden_input):
    cam = GradCAM(tiny_cnn, [tiny_cnn[4]])
    with torch.no_grad():
        top = [ClassifierOutputTarget(int(c)) for c in tiny_cnn(golden_input).argmax(1)]
    torch.manual_seed(2)
    implicit = NoiseTunnel(cam, num_samples=2, noise_level=1.0, progress=False)(golden_input)
    torch.manual_seed(2)
    explicit = NoiseTunnel(cam, num_samples=2, noise_level=1.0, progress=False)(golden_input, top)
    np.testing.assert_array_equal(implicit, explicit)


def test_context_manager_and_tensor_result(tiny_cnn, golden_input):
    with NoiseTunnel(GradCAM(tiny_cnn, [tiny_cnn[6]]), num_samples=2, progress=False) as tunnel:
        result = tunnel.compute(golden_input, golden_targets())
    assert isinstance(result, torch.Tensor) and result.shape == (2, 24, 28)
    assert hook_count(tiny_cnn) == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"cam": "gradcam"}, TypeError, "base_method must be a CAM class such as GradCAM or a CAM object.*; got str"),
        ({"nt_type": "smooth"}, ValueError, "nt_type must be one of 'smoothgrad', 'smoothgrad_sq', 'vargrad'; got"),
        ({"num_samples": 0}, ValueError, "num_samples must be a positive int; got 0"),
        ({"progress": 1}, TypeError, "progress must be True or False; got int 1"),
        ({"noise_level": float("nan")}, ValueError, "noise_level must be a finite non-negative number; got nan"),
        ({"noise_level": "high"}, TypeError, "noise_level must be a non-negative number; got str"),
    ],
)
def test_bad_arguments(tiny_cnn, kwargs, error, message):
    arguments = {"cam": GradCAM(tiny_cnn, [tiny_cnn[6]]), **kwargs}
    with pytest.raises(error, match=message):
        NoiseTunnel(**arguments)


def test_bad_input_is_rejected_before_any_work(tiny_cnn):
    tunnel = NoiseTunnel(GradCAM(tiny_cnn, [tiny_cnn[6]]), progress=False)
    with pytest.raises(ValueError, match=r"input_tensor must have shape \(B, C, H, W\) or .*; got \(3, 8, 8\)"):
        tunnel(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="targets"):
        tunnel(torch.zeros(2, 3, 8, 8), [ClassifierOutputTarget(0)])
