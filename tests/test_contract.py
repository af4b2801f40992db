"""The method contract, checked for every entry of the registry (pytorch_grad_cam.methods.METHODS).

Every public method, wrappers included, is a CAMMethod: ``compute`` gives a float32 tensor on the model's
device, ``__call__`` the same as numpy ``(B, H, W)`` in [0, 1]; ``outputs``, ``release()`` and ``with`` work;
after any call (normal or failing) no hook is left, every module's ``training`` and ``requires_grad`` flag
is as it was, no ``.grad`` is written and the input is untouched; bad targets give a clear ``ValueError``;
and every method can be wrapped by NoiseTunnel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from conftest import build_tiny_cnn, hook_count
from torch import nn

from pytorch_grad_cam.core import CAMMethod, CAMWrapper, Needs
from pytorch_grad_cam.methods import METHODS, get_method
from pytorch_grad_cam.noise_tunnel import NoiseTunnel
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

pytestmark = pytest.mark.usefixtures("one_thread")

#: Options that keep the slow methods fast on the tiny model (the contract does not depend on them).
FAST: dict[str, dict[str, Any]] = {
    "scorecam": {"progress": False},
    "ablationcam": {"progress": False},
    "smoothgradcam++": {"num_samples": 2, "progress": False},
    "sscam": {"num_samples": 2, "progress": False},
    "iscam": {"num_samples": 2, "progress": False},
    "groupcam": {"progress": False, "blur_kernel_size": 5, "blur_sigma": 2.0},
    "polycam": {"progress": False},
    "opticam": {"iterations": 2, "progress": False},
    "noisetunnel": {"num_samples": 2, "progress": False},
}


def tiny_vit() -> nn.Module:
    """A one-block torchvision ViT on 16×16 images (4 patches of 8×8), random weights, head re-initialised."""
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16, num_classes=3
    )
    nn.init.normal_(vit.heads.head.weight)  # torchvision starts the head at zero: every gradient would be 0
    return vit.eval()


def build(name: str) -> tuple[CAMMethod, nn.Module, torch.Tensor]:
    """The registry's method ``name`` on a small model it applies to, and an input batch of two images."""
    if name == "legrad":
        vit = tiny_vit()

        def reshape(tokens: torch.Tensor) -> torch.Tensor:
            return vit_reshape_transform(tokens, 2, 2)

        cam = get_method(name)(vit, [vit.encoder.layers[-1]], reshape_transform=reshape)
        return cam, vit, torch.randn(2, 3, 16, 16)
    model = build_tiny_cnn()
    layers = [model[4], model[6]] if name not in ("cam", "fullgrad") else [model[6]]
    if name == "fullgrad":
        layers = []
    cam = get_method(name)(model=model, target_layers=layers, **FAST.get(name, {}))
    return cam, model, torch.randn(2, 3, 24, 28)


def state(model: nn.Module) -> list[tuple[bool, ...]]:
    return [(m.training,) for m in model.modules()] + [(p.requires_grad, p.grad is None) for p in model.parameters()]


NAMES = sorted(METHODS)


def test_the_registry_holds_every_public_method() -> None:
    import pytorch_grad_cam

    public = {
        value
        for value in vars(pytorch_grad_cam).values()
        if isinstance(value, type)
        and issubclass(value, CAMMethod)
        and value not in (CAMMethod, CAMWrapper)
        and value.__name__ != "BaseCAM"
    }
    assert public <= set(METHODS.values()), sorted(cls.__name__ for cls in public - set(METHODS.values()))
    for wrapper in ("finercam", "refinecam", "noisetunnel", "guidedgradcam"):
        assert issubclass(METHODS[wrapper], CAMWrapper)
    assert all(issubclass(cls, CAMMethod) for cls in METHODS.values())


@pytest.mark.parametrize("name", NAMES)
def test_contract(name: str) -> None:
    torch.manual_seed(0)
    cam, model, x = build(name)
    model.train()
    model.eval() if name == "legrad" else model[0].eval()  # a mixed state must come back exactly
    before = state(model)
    original = x.clone()
    with cam:
        maps = cam.compute(x, None)
        assert isinstance(maps, torch.Tensor) and maps.dtype == torch.float32 and maps.shape == (2, *x.shape[2:])
        assert hook_count(model) == 0
        result = cam(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(2)])
    assert isinstance(result, np.ndarray) and result.dtype == np.float32 and result.shape == (2, *x.shape[2:])
    assert np.isfinite(result).all() and result.min() >= 0 and result.max() <= 1
    peaks = result.max(axis=(1, 2))
    assert all(peak == 0 or peak > 0.5 for peak in peaks)  # each map scaled per image (or blank after the ReLU)
    assert cam.outputs is not None and cam.outputs.shape == (2, 3 if name == "legrad" else 5)
    assert not cam.outputs.requires_grad
    assert torch.equal(x, original) and not x.requires_grad
    assert hook_count(model) == 0 and state(model) == before
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_bad_targets_are_clear_errors_and_leave_no_trace(name: str) -> None:
    cam, model, x = build(name)
    before = state(model)
    with pytest.raises(ValueError, match=r"targets must have one entry per image.*got 3 target"):
        cam(x, [ClassifierOutputTarget(0)] * 3)
    with pytest.raises(TypeError, match=r"targets\[1\] must be callable"):
        cam(x, [ClassifierOutputTarget(0), 3])
    if cam.needs.targets:  # class-agnostic methods (EigenCAM, FEM, ...) never evaluate the targets
        with pytest.raises(ValueError, match=r"category must be in \[0, \d\)"):
            cam(x, [ClassifierOutputTarget(0), ClassifierOutputTarget(9)])
    with pytest.raises(ValueError, match=r"input_tensor must have shape"):
        cam(x[0])
    assert hook_count(model) == 0 and state(model) == before
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_a_raising_module_leaves_no_trace(name: str) -> None:
    cam, model, x = build(name)
    before = state(model)
    layer = model.encoder.layers[-1].mlp if name == "legrad" else model[9]

    def fail(module: nn.Module, inputs: Any, output: Any) -> None:
        raise RuntimeError("boom")

    handle = layer.register_forward_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            cam(x)
    finally:
        handle.remove()
    assert hook_count(model) == 0 and state(model) == before


@pytest.mark.parametrize("name", NAMES)
def test_every_method_can_be_wrapped_by_noise_tunnel(name: str) -> None:
    cam, model, x = build(name)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(2)]
    with NoiseTunnel(cam, num_samples=1, noise_level=0.0, progress=False) as tunnel:
        smoothed = tunnel(x, targets)
    assert smoothed.shape == (2, *x.shape[2:]) and np.isfinite(smoothed).all()
    assert tunnel.model is model and tunnel.outputs is not None
    if name not in ("randomcam", "noisetunnel", "sscam") and not name.startswith("smoothgrad"):
        # without noise the tunnel is the method itself, rescaled
        torch.manual_seed(0)
        plain = cam(x, targets)
        np.testing.assert_allclose(smoothed, plain / (plain.max(axis=(1, 2), keepdims=True) + 1e-7), atol=2e-5)
    assert hook_count(model) == 0


@pytest.mark.parametrize("name", NAMES)
def test_inference_mode_is_refused_only_where_autograd_is_needed(name: str) -> None:
    cam, model, x = build(name)
    assert isinstance(cam.requires_autograd, bool)
    if not cam.requires_autograd:
        with torch.inference_mode():
            assert cam(x, [ClassifierOutputTarget(1)] * 2).shape == (2, *x.shape[2:])
        return
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        cam(x)
    assert hook_count(model) == 0


def test_needs_drive_what_is_recorded() -> None:
    assert Needs().backward and not Needs(layer_gradients=False).gradients
    assert Needs(second_order=True).layer_gradients  # second order implies the layer gradients
    assert Needs(layer_gradients=False, autograd=True).gradients
    assert not Needs(layer_gradients=False, autograd=True).backward
    assert Needs(layer_gradients=False, attention_maps=True).forward_records_graph(detach=True)
    assert not Needs(layer_gradients=False).forward_records_graph(detach=True)
    assert Needs(layer_gradients=False).forward_records_graph(detach=False)


def test_get_method_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'gradcma'.*Did you mean gradcam"):
        get_method("gradcma")
    with pytest.raises(TypeError, match="method name must be a string"):
        get_method(3)  # type: ignore[arg-type]
    assert get_method("GradCAM++") is METHODS["gradcam++"]


@pytest.mark.parametrize("name", NAMES)
def test_every_registry_name_runs_through_the_dataset_pipeline(name: str, tmp_path) -> None:
    from pytorch_grad_cam.batch import explain_dataset, read_maps

    cam, model, x = build(name)
    layers = cam.target_layers
    kwargs = dict(FAST.get(name, {}))
    if name == "legrad":
        kwargs["reshape_transform"] = cam.reshape_transform  # type: ignore[attr-defined]
    reshape = kwargs.pop("reshape_transform", None)
    labels = torch.tensor([1, 2])
    run = explain_dataset(
        torch.utils.data.TensorDataset(x, labels),
        model,
        layers,
        tmp_path,
        name,
        reshape_transform=reshape,
        method_kwargs=kwargs,
        target="label",
        batch_size=2,
        progress=False,
    )
    assert run.shards_written == [0]
    maps = read_maps(tmp_path)
    assert maps.shape == (2, *x.shape[2:]) and np.isfinite(maps).all() and maps.max() <= 1


# ------------------------------------------------------------------------------- wrappers wrap each other
def test_noise_tunnel_over_refine_cam_and_finer_cam(tiny_cnn, golden_input) -> None:
    from pytorch_grad_cam import FinerCAM, GradCAMPlusPlus, RefineCAM

    layers = [tiny_cnn[4], tiny_cnn[6]]
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    refine = RefineCAM(tiny_cnn, layers)
    tunnel = NoiseTunnel(refine, num_samples=2, noise_level=0.0, progress=False)
    np.testing.assert_allclose(tunnel(golden_input, targets), refine(golden_input, targets), atol=1e-6)
    # built from the registry the way cam.py and the pipeline build methods
    built = NoiseTunnel(
        model=tiny_cnn, target_layers=layers, base_method=RefineCAM, num_samples=1, noise_level=0.0, progress=False
    )
    np.testing.assert_allclose(built(golden_input, targets), refine(golden_input, targets), atol=1e-6)
    assert isinstance(built.base_cam, RefineCAM) and isinstance(built.base_cam.base_cam, GradCAMPlusPlus)

    finer = FinerCAM(tiny_cnn, [tiny_cnn[6]])
    tunnel = NoiseTunnel(finer, num_samples=2, noise_level=0.0, progress=False)
    # targets=None: the tunnel fixes Finer-CAM's own targets (the most similar classes) on the clean input
    np.testing.assert_allclose(tunnel(golden_input, alpha=0.5), finer(golden_input, alpha=0.5), atol=1e-6)
    fixed = finer.default_targets(finer.model(golden_input), 2, alpha=0.5)
    np.testing.assert_allclose(finer(golden_input, fixed), finer(golden_input, alpha=0.5), atol=1e-6)
    assert hook_count(tiny_cnn) == 0


def test_refine_cam_over_guided_grad_cam(tiny_cnn, golden_input) -> None:
    from pytorch_grad_cam import GradCAM, GuidedGradCAM, RefineCAM
    from pytorch_grad_cam.core.scaling import scale_cam_tensor

    layers = [tiny_cnn[4], tiny_cnn[6]]
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    refined_guided = RefineCAM(tiny_cnn, layers, base_method=GuidedGradCAM)(golden_input, targets)
    # = Guided Grad-CAM whose Grad-CAM part is RefineCAM's product of the layers
    guided = GuidedGradCAM(tiny_cnn, [tiny_cnn[6]])
    guided(golden_input, targets)
    refined = torch.as_tensor(RefineCAM(tiny_cnn, layers, base_method=GradCAM)(golden_input, targets))
    magnitude = guided.guided_gradients.abs().sum(dim=1)
    peak = magnitude.flatten(1).max(dim=1).values[:, None, None]
    expected = scale_cam_tensor(refined * magnitude / peak).numpy()
    np.testing.assert_allclose(refined_guided, expected, atol=1e-5)
    # and a wrapper given as an object
    again = RefineCAM(base_method=GuidedGradCAM(tiny_cnn, layers))(golden_input, targets)
    np.testing.assert_allclose(again, refined_guided, atol=1e-6)
    assert hook_count(tiny_cnn) == 0


def test_wrapping_does_not_change_the_wrapped_object(tiny_cnn, golden_input) -> None:
    from pytorch_grad_cam import GradCAM, RefineCAM

    layers = [tiny_cnn[4], tiny_cnn[6]]
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    gradcam = GradCAM(tiny_cnn, layers)
    before = gradcam(golden_input, targets)
    refined = RefineCAM(base_method=gradcam)(golden_input, targets)
    assert np.abs(refined - before).max() > 1e-3  # the product differs from the mean
    np.testing.assert_array_equal(gradcam(golden_input, targets), before)  # the object given is unchanged


def test_a_wrapper_given_an_object_refuses_constructor_arguments(tiny_cnn) -> None:
    from pytorch_grad_cam import FinerCAM, GradCAM

    with pytest.raises(TypeError, match="base_method is a CAM object already, so model, target_layers"):
        FinerCAM(tiny_cnn, [tiny_cnn[6]], base_method=GradCAM(tiny_cnn, [tiny_cnn[6]]))


# --------------------------------------------------------------------------------- grad-cam 1.x subclasses
def test_a_numpy_subclass_written_for_1x_runs_unchanged(tiny_cnn, golden_input, golden) -> None:
    """The reference's tutorials teach subclassing BaseCAM with numpy: it gets numpy arrays and may return
    numpy, and gives the same map as the library's torch-native GradCAM."""
    from pytorch_grad_cam.base_cam import BaseCAM

    class MyGradCAM(BaseCAM):  # as in grad-cam 1.x
        def __init__(self, model, target_layers, reshape_transform=None):
            super().__init__(model, target_layers, reshape_transform)

        def get_cam_weights(self, input_tensor, target_layer, target_category, activations, grads):
            assert isinstance(activations, np.ndarray) and isinstance(grads, np.ndarray)
            return np.mean(grads, axis=(2, 3))

    class MyEigenLike(BaseCAM):  # overrides get_cam_image, and turns gradients off the 1.x way
        def __init__(self, model, target_layers):
            super().__init__(model, target_layers, uses_gradients=False)

        def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
            assert grads is None and isinstance(activations, np.ndarray)
            return activations.mean(axis=1)

    from pytorch_grad_cam import GradCAM

    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    assert not MyGradCAM.torch_native and GradCAM.torch_native
    with MyGradCAM(tiny_cnn, [tiny_cnn[6]]) as cam:
        result = cam(golden_input, targets)
    np.testing.assert_allclose(result, golden["GradCAM/one/targets"], atol=1e-5)
    np.testing.assert_allclose(
        MyGradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, targets, aug_smooth=True),
        golden["GradCAM/one/aug_smooth"],
        atol=1e-5,
    )
    with MyGradCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]]) as cam:
        np.testing.assert_allclose(cam(golden_input, targets), golden["GradCAM/two/targets"], atol=1e-5)
    mean_map = MyEigenLike(tiny_cnn, [tiny_cnn[6]])(golden_input)
    with torch.no_grad():
        by_hand = tiny_cnn[:7](golden_input).mean(1).clamp_min(0)
    from pytorch_grad_cam.core.scaling import scale_cam_tensor

    expected = scale_cam_tensor(scale_cam_tensor(by_hand, (24, 28))).numpy()
    np.testing.assert_allclose(mean_map, expected, atol=1e-6)
    assert hook_count(tiny_cnn) == 0


def test_a_subclass_can_declare_itself_torch_native(tiny_cnn, golden_input, golden) -> None:
    from pytorch_grad_cam.core import BaseCAM

    class TorchGradCAM(BaseCAM):
        torch_native = True

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
            assert isinstance(grads, torch.Tensor)
            return grads.mean(dim=(2, 3))

    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    np.testing.assert_allclose(
        TorchGradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, targets), golden["GradCAM/one/targets"], atol=1e-5
    )
