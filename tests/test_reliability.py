"""Silent failures turned into clear errors: batch-truncating reshape transforms, non-finite target scores and
maps, and calls on one model from several threads (issue 13, items 1-3)."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch
from conftest import build_tiny_cnn, golden_targets, hook_count

from pytorch_grad_cam import EigenCAM, GradCAM, HiResCAM, ScoreCAM
from pytorch_grad_cam.metrics import DropInConfidence
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def first_image_only(tensor: torch.Tensor) -> torch.Tensor:
    return tensor[:1]


@pytest.mark.parametrize("method", [GradCAM, EigenCAM, ScoreCAM])
def test_a_reshape_transform_that_drops_images_is_an_error(tiny_cnn, golden_input, method) -> None:
    options = {"progress": False} if method is ScoreCAM else {}
    cam = method(tiny_cnn, [tiny_cnn[6]], reshape_transform=first_image_only, **options)
    pattern = (
        r"target_layers\[0\] \(6\) gives activations of shape \(1, 32, 12, 14\) after reshape_transform "
        r"first_image_only: 1 row\(s\) for a batch of 2 image\(s\)"
    )
    with pytest.raises(ValueError, match=pattern):
        cam(golden_input, golden_targets())
    assert hook_count(tiny_cnn) == 0 and not any(m.training for m in tiny_cnn.modules())


class NaNTarget:
    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output[0] * float("nan")

    def __repr__(self) -> str:
        return "NaNTarget()"


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM])
def test_a_non_finite_target_score_is_an_error_naming_the_target(tiny_cnn, golden_input, method) -> None:
    options = {"progress": False} if method is ScoreCAM else {}
    cam = method(tiny_cnn, [tiny_cnn[6]], **options)
    # named by its position where the call scores the images themselves, by its repr on perturbed copies
    with pytest.raises(
        ValueError, match=r"(targets\[1\]|a target) \(NaNTarget\(\)\) returned a non-finite score \(nan\)"
    ):
        cam(golden_input, [ClassifierOutputTarget(0), NaNTarget()])
    assert hook_count(tiny_cnn) == 0


def test_a_metric_refuses_non_finite_scores_too(tiny_cnn, golden_input) -> None:
    cams = np.random.rand(2, 24, 28).astype(np.float32)
    with pytest.raises(ValueError, match="non-finite score"):
        DropInConfidence()(golden_input, cams, [NaNTarget(), NaNTarget()], tiny_cnn)


def test_a_non_finite_map_is_an_error(golden_input) -> None:
    model = build_tiny_cnn()
    with torch.no_grad():
        model[5].weight[0, 0, 0, 0] = float("inf")  # inf activations, finite (zero) score gradient paths
    cam = HiResCAM(model, [model[0]])
    with pytest.raises(ValueError, match=r"NaN or inf|non-finite"):
        cam(golden_input, golden_targets())
    assert hook_count(model) == 0


def test_one_cam_from_four_threads_gives_correct_maps_or_a_clear_error() -> None:
    """The documented behaviour: calls on one model never overlap; a call from another thread while one runs
    raises RuntimeError at once, and the model's flags are those the caller left."""
    model = build_tiny_cnn().train()
    model[0].eval()
    flags = [m.training for m in model.modules()]
    x = torch.load("tests/data/input.pt", weights_only=True)
    cam = GradCAM(model, [model[6]])
    expected = cam(x, golden_targets())
    results: list[np.ndarray] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        for _ in range(15):
            try:
                results.append(cam(x, golden_targets()))
            except RuntimeError as error:
                errors.append(error)
            except BaseException as error:  # anything else is a failure of the test
                errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) + len(errors) == 60 and results
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)
    for error in errors:
        assert isinstance(error, RuntimeError), repr(error)
        assert "is being explained by a call in another thread" in str(error)
    assert [m.training for m in model.modules()] == flags
    assert hook_count(model) == 0 and all(p.grad is None for p in model.parameters())


def test_two_cams_on_one_model_from_two_threads() -> None:
    model = build_tiny_cnn()
    x = torch.load("tests/data/input.pt", weights_only=True)
    cams = [GradCAM(model, [model[6]]), HiResCAM(model, [model[4]])]
    expected = [cam(x, golden_targets()) for cam in cams]
    outcomes: list[tuple[int, object]] = []

    def work(index: int) -> None:
        for _ in range(20):
            try:
                outcomes.append((index, cams[index](x, golden_targets())))
            except RuntimeError as error:
                outcomes.append((index, error))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, outcome in outcomes:
        if isinstance(outcome, RuntimeError):
            assert "another thread" in str(outcome)
        else:
            np.testing.assert_allclose(outcome, expected[index], atol=1e-6)
    assert hook_count(model) == 0 and not any(m.training for m in model.modules())


def test_calls_nested_in_one_thread_are_allowed(tiny_cnn, golden_input) -> None:
    """A wrapper calls its base method on the same model, and a target may call a CAM."""
    inner = GradCAM(tiny_cnn, [tiny_cnn[4]])

    class TargetCallingACam:
        def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
            inner(golden_input, golden_targets())
            return model_output[1]

    result = GradCAM(tiny_cnn, [tiny_cnn[6]])(golden_input, [TargetCallingACam(), TargetCallingACam()])
    assert result.shape == (2, 24, 28)
    assert hook_count(tiny_cnn) == 0


# ====================================================================================================================
# Weak spots: meta-device models and inputs, inference tensors, a CAM re-entered from its own target,
# cam.py --no-progress, huge photos in cam.py, guided backpropagation through functional ReLUs.
# ====================================================================================================================

META_MESSAGE = (
    r"model's parameters are on the meta device, which holds shapes but no data \({count} of 13 parameters and "
    r"buffers: {names}\); load the weights first, e.g. model\.load_state_dict\(state_dict, assign=True\), or "
    r"model\.to_empty\(device='cpu'\) followed by model\.load_state_dict\(state_dict\)"
)


def tiny_cnn_on_meta() -> torch.nn.Sequential:
    """The golden model's layers built under ``torch.device("meta")``: shapes, no weights."""
    from torch import nn

    with torch.device("meta"):
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 5),
        ).eval()


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM, EigenCAM])
def test_a_model_with_a_layer_on_meta_is_a_clear_error(tiny_cnn, golden_input, method) -> None:
    tiny_cnn[9].to("meta")
    options = {"progress": False} if method is ScoreCAM else {}
    cam = method(tiny_cnn, [tiny_cnn[6]], **options)
    with pytest.raises(ValueError, match=META_MESSAGE.format(count=2, names=r"9\.weight, 9\.bias")):
        cam(golden_input, golden_targets())
    assert hook_count(tiny_cnn) == 0


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM, EigenCAM])
def test_a_model_built_on_meta_is_a_clear_error_and_works_once_loaded(golden_input, method) -> None:
    from conftest import DATA

    model = tiny_cnn_on_meta()
    options = {"progress": False} if method is ScoreCAM else {}
    cam = method(model, [model[6]], **options)
    names = r"0\.weight, 0\.bias, 2\.weight and 10 more"
    with pytest.raises(ValueError, match=META_MESSAGE.format(count=13, names=names)):
        cam(golden_input, golden_targets())
    model.load_state_dict(torch.load(DATA / "tiny_cnn.pt", weights_only=True), assign=True)
    loaded = build_tiny_cnn()
    expected = method(loaded, [loaded[6]], **options)(golden_input, golden_targets())
    np.testing.assert_allclose(cam(golden_input, golden_targets()), expected, atol=1e-6)


def test_wrappers_and_guided_backprop_refuse_a_meta_model_too(golden_input) -> None:
    from pytorch_grad_cam import GuidedBackpropReLUModel, NoiseTunnel

    model = tiny_cnn_on_meta()
    pattern = META_MESSAGE.format(count=13, names=r"0\.weight, 0\.bias, 2\.weight and 10 more")
    with pytest.raises(ValueError, match=pattern):
        NoiseTunnel(GradCAM(model, [model[6]]), num_samples=2, progress=False)(golden_input)
    with pytest.raises(ValueError, match=pattern):
        GuidedBackpropReLUModel(model)(golden_input)


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM, EigenCAM])
def test_an_input_on_meta_is_a_clear_error(tiny_cnn, golden_input, method) -> None:
    options = {"progress": False} if method is ScoreCAM else {}
    cam = method(tiny_cnn, [tiny_cnn[6]], **options)
    pattern = r"input_tensor is on the meta device, which holds a shape but no data; pass a tensor with values"
    with pytest.raises(ValueError, match=pattern):
        cam(golden_input.to("meta"), golden_targets())
    assert hook_count(tiny_cnn) == 0


def test_an_inference_tensor_is_copied_so_gradient_methods_work(tiny_cnn, golden_input) -> None:
    """A tensor made under torch.inference_mode() and used after it: the call works on a copy (the same maps as a
    normal tensor) and the caller's tensor is left as it was."""
    from pytorch_grad_cam import GuidedBackpropReLUModel, NoiseTunnel

    with torch.inference_mode():
        frozen = golden_input.clone()
    cam = GradCAM(tiny_cnn, [tiny_cnn[6]])
    expected = cam(golden_input, golden_targets())
    np.testing.assert_array_equal(cam(frozen, golden_targets()), expected)
    torch.manual_seed(0)
    smoothed = NoiseTunnel(cam, num_samples=2, progress=False)(golden_input, golden_targets())
    torch.manual_seed(0)
    np.testing.assert_array_equal(NoiseTunnel(cam, num_samples=2, progress=False)(frozen, golden_targets()), smoothed)
    guided = GuidedBackpropReLUModel(tiny_cnn)
    np.testing.assert_array_equal(guided(frozen, [1, 3]), guided(golden_input, [1, 3]))
    assert frozen.is_inference() and torch.equal(frozen, golden_input)
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"GradCAM needs gradients, which torch\.inference"):
        cam(frozen, golden_targets())


REENTERED = (
    r"{name} was called from inside one of its own targets \(or its model's forward\) while a call on this object "
    r"is running; one CAM object cannot explain two inputs at once"
)


def mixed_training_flags(model: torch.nn.Module) -> list[bool]:
    model.train()
    model[3].eval()
    return [module.training for module in model.modules()]


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM])
def test_a_cam_called_from_its_own_target_is_a_clear_error(tiny_cnn, golden_input, method) -> None:
    """The inner call is refused before it touches anything: a target that catches the error leaves the outer
    call's maps and outputs intact; hooks are removed and the flags restored."""
    options = {"progress": False} if method is ScoreCAM else {}
    flags = mixed_training_flags(tiny_cnn)
    cam = method(tiny_cnn, [tiny_cnn[6]], **options)
    expected = method(tiny_cnn, [tiny_cnn[6]], **options)(golden_input, golden_targets())
    refused: list[RuntimeError] = []

    class CallsTheCam:
        def __init__(self, category: int) -> None:
            self.category = category

        def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
            try:
                cam(golden_input[:1], [ClassifierOutputTarget(0)])
            except RuntimeError as error:
                refused.append(error)
            return model_output[self.category]

    result = cam(golden_input, [CallsTheCam(1), CallsTheCam(3)])
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert refused and all(
        isinstance(error, RuntimeError) and re.search(REENTERED.format(name=method.__name__), str(error))
        for error in refused
    )
    with torch.no_grad():
        torch.testing.assert_close(cam.outputs, tiny_cnn.eval()(golden_input))
    tiny_cnn.train()
    tiny_cnn[3].eval()
    assert hook_count(tiny_cnn) == 0 and [m.training for m in tiny_cnn.modules()] == flags


def test_a_reentrant_call_that_propagates_leaves_the_cam_usable(tiny_cnn, golden_input) -> None:
    flags = mixed_training_flags(tiny_cnn)
    cam = GradCAM(tiny_cnn, [tiny_cnn[6]])

    def calls_the_cam(model_output: torch.Tensor) -> torch.Tensor:
        cam(golden_input, golden_targets())
        return model_output[1]

    with pytest.raises(RuntimeError, match=REENTERED.format(name="GradCAM")):
        cam(golden_input, [calls_the_cam, calls_the_cam])
    assert hook_count(tiny_cnn) == 0 and [m.training for m in tiny_cnn.modules()] == flags
    assert all(p.grad is None for p in tiny_cnn.parameters())
    reference = build_tiny_cnn()
    expected = GradCAM(reference, [reference[6]])(golden_input, golden_targets())
    np.testing.assert_allclose(cam(golden_input, golden_targets()), expected, atol=1e-6)


def test_wrappers_nest_but_refuse_to_be_reentered(tiny_cnn, golden_input) -> None:
    """A wrapper calls its base CAM (allowed); the wrapper, its base CAM, or a copy sharing the base CAM's
    recording called again from inside the running call's target is refused; another CAM object is not."""
    from pytorch_grad_cam import NoiseTunnel
    from pytorch_grad_cam.core.combine import product_of_scaled

    base = GradCAM(tiny_cnn, [tiny_cnn[6]])
    tunnel = NoiseTunnel(base, num_samples=2, progress=False)
    other = GradCAM(tiny_cnn, [tiny_cnn[4]])
    cases = [
        (tunnel, "NoiseTunnel"),
        (base, "GradCAM"),
        (base.with_layer_combiner(product_of_scaled), "GradCAM"),
        (other, None),
    ]
    for inner, name in cases:

        def calls_inner(model_output: torch.Tensor, inner=inner) -> torch.Tensor:
            inner(golden_input[:1], [ClassifierOutputTarget(0)])
            return model_output[1]

        if name is None:
            assert tunnel(golden_input, [calls_inner, calls_inner]).shape == (2, 24, 28)
        else:
            with pytest.raises(RuntimeError, match=REENTERED.format(name=name)):
                tunnel(golden_input, [calls_inner, calls_inner])
        assert hook_count(tiny_cnn) == 0
    assert tunnel(golden_input, golden_targets()).shape == (2, 24, 28)


PROGRESS_METHODS = ["scorecam", "ablationcam", "smoothgradcam++", "groupcam", "polycam", "noisetunnel"]


@pytest.mark.parametrize("method", PROGRESS_METHODS)
def test_cam_py_no_progress_turns_off_every_bar_of_the_method(method, tmp_path, capsys) -> None:
    """``--verbose`` shows the methods' own tqdm bars; ``--no-progress`` turns them off (with ``--verbose`` too)."""
    from pytorch_grad_cam.cli import main

    common = ["--model", "demo", "--method", method, "--verbose", "--output-dir", str(tmp_path)]
    if method == "scorecam":  # the control: the bar is there without the flag
        assert main(common) == 0
        assert "it/s" in capsys.readouterr().err
    assert main([*common, "--no-progress"]) == 0
    error = capsys.readouterr().err
    assert "it/s" not in error and "%|" not in error and "\r" not in error, error


def test_cam_py_resizes_a_large_photo_before_converting_it_to_float(tmp_path) -> None:
    """A 3000×3000 photo: the model's image is made from the uint8 pixels (no full-size float copy), and the
    whole set-up holds the uint8 pixels and one float32 photo (for the outputs), not several float copies."""
    import argparse
    import tracemalloc

    import cv2

    from pytorch_grad_cam.cli import make_setup, model_image, read_image

    side = 3000
    ramp = np.linspace(0, 255, side).astype(np.uint8)
    pixels = np.empty((side, side, 3), dtype=np.uint8)  # smooth ramps: a small PNG file
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = ramp[None, :], ramp[:, None], 255 - ramp[None, :]
    path = tmp_path / "large.png"
    cv2.imwrite(str(path), pixels[:, :, ::-1])
    rgb = read_image(str(path))
    assert rgb.dtype == np.uint8 and np.array_equal(rgb, pixels)
    tracemalloc.start()
    try:
        image = model_image(rgb, 64)
        model_image_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        args = argparse.Namespace(model="demo", image_path=str(path), target_layer=None)
        setup = make_setup(args, torch.device("cpu"))
        setup_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image.shape == (64, 64, 3) and image.dtype == np.float32
    assert model_image_peak < rgb.nbytes / 8, model_image_peak  # a full-size float copy is 4 × rgb.nbytes
    float_photo = 4 * rgb.nbytes  # kept for the outputs, written at the photo's resolution
    assert setup_peak < float_photo + 2 * rgb.nbytes, (setup_peak, float_photo)  # was 9 × rgb.nbytes
    np.testing.assert_array_equal(setup.photo, np.float32(pixels) / 255)


def test_cam_py_model_image_numbers(tmp_path) -> None:
    """At the model's size the image is exactly ``np.float32(img) / 255``, as before; a larger one, resized on the
    uint8 pixels first (as the reference's tutorials do), is within half a grey level of resizing the floats."""
    import argparse

    import cv2

    from pytorch_grad_cam.cli import make_setup
    from pytorch_grad_cam.demo.scenes import SCENE_SIZE

    rng = np.random.default_rng(0)
    for side in (SCENE_SIZE, 3 * SCENE_SIZE + 7):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        path = tmp_path / f"photo_{side}.png"
        cv2.imwrite(str(path), pixels[:, :, ::-1])
        setup = make_setup(
            argparse.Namespace(model="demo", image_path=str(path), target_layer=None), torch.device("cpu")
        )
        floats = np.float32(pixels) / 255
        np.testing.assert_array_equal(setup.photo, floats)
        if side == SCENE_SIZE:
            np.testing.assert_array_equal(setup.rgb_img, floats)
        else:
            resized = cv2.resize(floats, (SCENE_SIZE, SCENE_SIZE), interpolation=cv2.INTER_AREA)
            np.testing.assert_allclose(setup.rgb_img, resized, rtol=0, atol=0.5 / 255 + 1e-6)


class FunctionalReLUNet(torch.nn.Module):
    """A small CNN whose ReLUs are functional (``kind``) or ``nn.ReLU`` modules (``"module"``)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 4)
        self.relu = torch.nn.ReLU() if kind == "module" else None

    def act(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        if self.relu is not None:
            return self.relu(x)
        if self.kind == "torch.relu":
            return torch.relu(x)
        if self.kind == "F.relu":
            return F.relu(x)
        if self.kind == "F.relu inplace":
            return F.relu(x, inplace=True)
        if self.kind == "x.relu()":
            return x.relu()
        x.relu_()  # "x.relu_()": in place, the result read from x
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("kind", ["torch.relu", "F.relu", "F.relu inplace", "x.relu()", "x.relu_()"])
def test_guided_backprop_guides_functional_relus(kind) -> None:
    """The same network with functional ReLUs gives the guided gradients of its nn.ReLU version (not the plain
    input gradients, as when only nn.ReLU modules were swapped); the functions are plain again after the call."""
    from pytorch_grad_cam import GuidedBackpropReLUModel, GuidedGradCAM

    with_modules = FunctionalReLUNet("module")
    model = FunctionalReLUNet(kind)
    model.load_state_dict(with_modules.state_dict(), strict=False)
    x = torch.randn(2, 3, 8, 8)
    expected = GuidedBackpropReLUModel(with_modules)(x, [1, 2])
    result = GuidedBackpropReLUModel(model)(x, [1, 2])
    np.testing.assert_allclose(result, expected, atol=1e-6)
    leaf = x.clone().requires_grad_(True)
    model(leaf)[[0, 1], [1, 2]].sum().backward()
    plain = leaf.grad.movedim(1, -1).numpy()
    assert np.abs(plain - expected).max() > 1e-3  # guided backprop is not the plain gradient here
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(2)]
    modules_cam = GuidedGradCAM(with_modules, [with_modules.conv2])
    modules_cam(x, targets)
    functional_cam = GuidedGradCAM(model, [model.conv2])
    functional_cam(x, targets)
    torch.testing.assert_close(functional_cam.guided_gradients, modules_cam.guided_gradients)
    probe = torch.randn(3, requires_grad=True)
    assert type(torch.relu(probe).grad_fn).__name__ == "ReluBackward0"
    assert hook_count(model) == 0
