"""Sweep: every one-pass layer method of the registry on torchvision models (weights=None) and on a small 3D
conv model.

The methods are derived from :data:`pytorch_grad_cam.methods.METHODS` (see :data:`METHODS` below for the
criterion). For each (method, model, one/two layers) one CAM object is built and called for batch {1, 2} ×
{explicit targets, targets=None} × {eigen_smooth off, on}. Every map must be float32, of the input's spatial
shape, finite and in [0, 1], with min 0 and max 1 (or all zeros where the method allows it); image 0 of the
batch of 2 must give the same map as the batch of 1 (deterministic methods).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision
from conftest import hook_count
from torch import nn

import pytorch_grad_cam as pgc
from pytorch_grad_cam.cli import accepts_keyword
from pytorch_grad_cam.core import BaseCAM
from pytorch_grad_cam.methods import METHODS as REGISTRY
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.zhou_cam import CAM


def _is_swept(cls: type) -> bool:
    """A layer method whose map comes from one forward (and backward) pass, on any CNN layer.

    - ``BaseCAM`` subclasses only: the wrappers (FinerCAM, RefineCAM, SESS, GuidedGradCAM, NoiseTunnel) run
      a base method (swept here when it qualifies) and are checked by tests/test_contract.py.
    - No ``progress`` constructor keyword (the rule ``cam.py`` uses to turn progress bars off,
      :func:`pytorch_grad_cam.cli.accepts_keyword`): a method takes ``progress`` exactly when it runs the model
      once per channel, group, noisy sample or optimisation step (ScoreCAM, SS-CAM, IS-CAM, Poly-CAM,
      Group-CAM, AblationCAM, SmoothGradCAM++, Opti-CAM), too slow for this grid on four torchvision models.
    - Not ``layers_optional`` (FullGrad: it ignores the target layers, so one/two layers is meaningless).
    - Not ``needs.attention_maps`` (LeGrad: its target layers must lie in a transformer block).
    - Not CAM: it is defined only on the one layer that is global-average-pooled straight into the last
      ``nn.Linear``, so it refuses every "two layers" case here, and vgg11 and mobilenet_v3_small (MLP heads)
      and densenet121 (a ReLU after ``features[-1]``) altogether. No class attribute declares that, so CAM is
      named here; tests/test_zhou_cam.py and tests/test_contract.py cover it.
    """
    return (
        issubclass(cls, BaseCAM)
        and not accepts_keyword(cls, "progress")
        and not cls.layers_optional
        and not cls.needs.attention_maps
        and cls is not CAM
    )


#: Class names of the swept methods, in registry order.
METHODS = [cls.__name__ for cls in REGISTRY.values() if _is_swept(cls)]
# A centred linear projection has both signs, so after the ReLU its map is never all zeros.
ALWAYS_POSITIVE = {"EigenCAM", "EigenGradCAM", "SegEigenCAM"}
# Untrained networks where a map may legitimately be all zeros: mobilenet_v3_small's activations are ~1e-3,
# so the sigmoid kernel matrix is constant and its first kernel principal component is exactly zero (as
# with the reference); FEM's Σ_c w_c A_c on a BatchNorm / hardswish output can be negative everywhere.
MAY_BE_ZERO = {("KPCA_CAM", "mobilenet_v3_small"), ("FEM", "densenet121"), ("FEM", "mobilenet_v3_small")}
# PyTorch has no second derivative of hardsigmoid (aten::hardsigmoid_backward), which mobilenet_v3_small's
# squeeze-and-excitation blocks use after features[8]: ShapleyCAM's Hessian-vector product cannot pass them.
UNSUPPORTED = {("ShapleyCAM", "mobilenet_v3_small", "two"): "no double backward through hardsigmoid in PyTorch"}
SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")


def _layers(name: str, model: nn.Module) -> dict[str, list[nn.Module]]:
    if name == "resnet18":
        return {"one": [model.layer4[-1]], "two": [model.layer3[-1], model.layer4[-1]]}
    if name == "vgg11":
        return {"one": [model.features[-1]], "two": [model.features[15], model.features[-1]]}
    if name == "densenet121":
        return {"one": [model.features[-1]], "two": [model.features.denseblock3, model.features[-1]]}
    return {"one": [model.features[-1]], "two": [model.features[8], model.features[-1]]}


MODEL_NAMES = ["resnet18", "vgg11", "densenet121", "mobilenet_v3_small"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(42)
    return torch.rand(2, 3, SIZE, SIZE, generator=generator) * 2 - 1


@pytest.fixture(scope="module")
def models(images) -> dict[str, tuple[nn.Module, list[int]]]:
    """Each model once, in eval mode, with the top classes of ``images``."""
    torch.manual_seed(0)
    built = {}
    for name in MODEL_NAMES:
        model = getattr(torchvision.models, name)(weights=None)
        # Untrained BatchNorm statistics (mean 0, var 1) explode through deep nets; calibrate them once
        # on random data so activations stay in a sane range, as in a trained model.
        model.train()
        with torch.no_grad():
            model(torch.randn(8, 3, SIZE, SIZE))
            model.eval()
            built[name] = (model, model(images).argmax(1).tolist())
    return built


def check_maps(result: np.ndarray, shape: tuple[int, ...], method: str) -> None:
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.float32
    assert result.shape == shape
    assert np.isfinite(result).all()
    assert result.min() >= 0 and result.max() <= 1
    for image in result:
        assert image.min() == 0  # min-max scaled
        if method in ALWAYS_POSITIVE:
            assert image.max() > 0


def run_grid(cam, x: torch.Tensor, method: str, targets: list) -> dict:
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HiResCAM warns with eigen_smooth, by design
        for batch in (1, 2):
            for use_targets in (True, False):
                for eigen_smooth in (False, True):
                    chosen = targets[:batch] if use_targets else None
                    result = cam(x[:batch], chosen, eigen_smooth=eigen_smooth)
                    check_maps(result, (batch, *x.shape[2:]), method)
                    results[batch, use_targets, eigen_smooth] = result
    return results


def check_grid(results: dict, method: str, may_be_zero: bool = False) -> None:
    """Image 0 is the same alone or in a batch of 2, and its explicit target is its top class, so
    ``targets=None`` must give the same map for it. Some map of the grid is not all zeros."""
    if not may_be_zero:
        assert max(result.max() for result in results.values()) > 0.5
    if method == "RandomCAM":
        return
    for eigen_smooth in (False, True):
        reference = results[1, True, eigen_smooth][0]
        for key in ((2, True, eigen_smooth), (1, False, eigen_smooth), (2, False, eigen_smooth)):
            np.testing.assert_allclose(results[key][0], reference, atol=2e-3, err_msg=str(key))


@pytest.mark.parametrize("layers", ["one", "two"])
@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("method", METHODS)
def test_sweep_2d(method: str, model_name: str, layers: str, models, images) -> None:
    model, top = models[model_name]
    if (method, model_name, layers) in UNSUPPORTED:  # a clear error, and the model left as it was
        cam = getattr(pgc, method)(model, _layers(model_name, model)[layers])
        with pytest.raises(RuntimeError, match=r"needs second derivatives through what follows target_layers\[0\]"):
            cam(images[:1], [ClassifierOutputTarget(top[0])])
        assert hook_count(model) == 0 and all(p.grad is None for p in model.parameters())
        return
    params = [p.requires_grad for p in model.parameters()]
    # FEM's default k=2 selects nothing on a 2x2 map (with 4 positions no value lies 2 std above the mean:
    # the largest z-score is sqrt(3)); k=1 keeps the 64x64 inputs. The 3D sweep uses the default.
    kwargs = {"k": 1} if method == "FEM" else {}
    cam = getattr(pgc, method)(model, _layers(model_name, model)[layers], **kwargs)
    targets = [ClassifierOutputTarget(top[0]), ClassifierOutputTarget((top[1] + 1) % 1000)]
    check_grid(run_grid(cam, images, method, targets), method, (method, model_name) in MAY_BE_ZERO)
    assert hook_count(model) == 0
    assert not any(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == params
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------------------------------- 3D
class Conv3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv3d(2, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv3d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(16, 4))

    def forward(self, x):
        return self.head(self.block2(self.block1(x)))


# Every swept method works on (B, C, D, H, W) activations: channel weights or per-position projections
# do not care about the number of spatial axes.
METHODS_3D = METHODS


@pytest.fixture(scope="module")
def net3d() -> Conv3dNet:
    torch.manual_seed(4)
    return Conv3dNet().eval()


@pytest.mark.parametrize("layers", ["one", "two"])
@pytest.mark.parametrize("method", METHODS_3D)
def test_sweep_3d(method: str, layers: str, net3d) -> None:
    x = torch.randn(2, 2, 6, 8, 10, generator=torch.Generator().manual_seed(3))
    target_layers = [net3d.block2] if layers == "one" else [net3d.block1, net3d.block2]
    cam = getattr(pgc, method)(net3d, target_layers)
    with torch.no_grad():
        top = net3d(x).argmax(1).tolist()
    targets = [ClassifierOutputTarget(top[0]), ClassifierOutputTarget((top[1] + 1) % 4)]
    results = run_grid(cam, x, method, targets)
    check_grid(results, method)
    assert results[2, True, False].shape == (2, 6, 8, 10)
    assert hook_count(net3d) == 0
