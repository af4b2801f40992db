"""The reference modules ``expected.npz`` does not cover: ``sobel_cam``, ``SESS`` and ``ablation_cam_multilayer``.

Their reference numbers are in ``tests/data/reference_extra.npz`` (made by ``tests/data/make_reference_extra.py``
with grad-cam 1.5.7; see GOLDEN.md). Measured agreement: Sobel maps identical (uint8), SESS within 3.2e-6,
the multilayer AblationCAM within 4e-7; asserted to 1e-5 (float32 resizing and blurring in torch instead of
OpenCV).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from conftest import DATA, build_tiny_cnn, golden_targets, hook_count
from golden_model import SESS_CASES, golden_layers

import pytorch_grad_cam
from pytorch_grad_cam import SESS, GradCAM
from pytorch_grad_cam.methods import METHOD_NAMES, get_method
from pytorch_grad_cam.sobel_cam import sobel_cam

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = 1e-5


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "reference_extra.npz") as data:
        return {key: data[key] for key in data.files}


# ------------------------------------------------------------------------------------------------ sobel_cam
@pytest.mark.parametrize(
    ("image", "expected"), [("img", "out"), ("img_float", "out_float"), ("noise_img", "noise_out")]
)
def test_sobel_cam_equals_the_reference(reference, image, expected):
    result = sobel_cam(reference[f"sobel_cam/{image}"])
    assert result.dtype == np.uint8 and result.shape == reference[f"sobel_cam/{expected}"].shape
    np.testing.assert_array_equal(result, reference[f"sobel_cam/{expected}"])


def test_sobel_cam_takes_tensors_and_tiny_images(reference):
    image = reference["sobel_cam/img"]
    np.testing.assert_array_equal(sobel_cam(torch.from_numpy(image)), reference["sobel_cam/out"])
    for height, width in ((1, 1), (1, 5), (2, 3)):
        result = sobel_cam(image[:height, :width])
        assert result.shape == (height, width) and result.dtype == np.uint8


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ([[1, 2, 3]], TypeError, "img must be an"),
        (np.zeros((4, 4), np.uint8), ValueError, r"\(H, W, 3\)"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, "non-empty"),
        (np.zeros((4, 4, 3), np.int32), TypeError, "uint8"),
    ],
)
def test_sobel_cam_bad_input(value, error, message):
    with pytest.raises(error, match=message):
        sobel_cam(value)


# ----------------------------------------------------------------------------------------------------- SESS
def test_every_stored_sess_case_is_tested(reference):
    assert {key for key in reference if key.startswith("SESS/")} == set(SESS_CASES)


@pytest.mark.parametrize("key", SESS_CASES)
def test_sess_matches_the_reference(reference, golden_input, key):
    layers, with_targets, kwargs = SESS_CASES[key]
    model = build_tiny_cnn()
    if "base_method" in kwargs:
        kwargs = {**kwargs, "base_method": getattr(pytorch_grad_cam, str(kwargs["base_method"]))}
    cam = SESS(model, golden_layers(model, layers), **kwargs)
    result = cam(golden_input, golden_targets() if with_targets else None)
    assert result.dtype == np.float32 and result.shape == (2, 24, 28)
    np.testing.assert_allclose(result, reference[key], atol=ATOL, rtol=0)
    assert hook_count(model) == 0


def test_sess_positional_and_keyword_arguments_as_the_reference(reference, golden_input):
    """1.5.7's order: (model, target_layers, reshape_transform, base_method, scales, num_scales,
    scale_step_ratio, window_size, step_size, pre_filter_ratio, theta, pool, smooth, use_softmax_scores,
    batch_size); the call (input_tensor, targets, eigen_smooth)."""
    model = build_tiny_cnn()
    positional = SESS(model, [model[6]], None, GradCAM, [16, 24, 30], 12, 2 / 7, 16, 6, 0.5, 0.1, "mean", True, True, 5)
    expected = reference["SESS/one/custom"]
    np.testing.assert_allclose(positional(golden_input, golden_targets(), False), expected, atol=ATOL, rtol=0)
    np.testing.assert_allclose(positional.forward(golden_input, golden_targets(), False), expected, atol=ATOL, rtol=0)
    keywords = SESS(
        model=model,
        target_layers=[model[6]],
        base_method=GradCAM,
        scales=[16, 24, 30],
        window_size=16,
        step_size=6,
        pre_filter_ratio=0.5,
        theta=0.1,
        batch_size=5,
    )
    np.testing.assert_allclose(
        keywords(input_tensor=golden_input, targets=golden_targets(), eigen_smooth=False), expected, atol=ATOL, rtol=0
    )


def test_sess_wraps_a_cam_object_and_batching_does_not_matter(reference, golden_input):
    model = build_tiny_cnn()
    with SESS(base_method=GradCAM(model, [model[6]]), batch_size=3) as cam:
        result = cam(golden_input, golden_targets())
    np.testing.assert_allclose(result, reference["SESS/one/targets"], atol=ATOL, rtol=0)
    cam.batch_size = 100
    np.testing.assert_allclose(cam(golden_input, golden_targets()), result, atol=1e-6, rtol=0)
    assert cam.model is model and cam.target_layers == [model[6]]


def test_sess_leaves_the_model_and_input_alone(golden_input):
    model = build_tiny_cnn().train()
    before = golden_input.clone()
    SESS(model, [model[6]], num_scales=2)(golden_input, golden_targets())
    torch.testing.assert_close(golden_input, before)
    assert hook_count(model) == 0 and all(module.training for module in model.modules())


def test_sess_is_in_the_registry_and_the_package(tiny_cnn):
    assert get_method("sess") is SESS and METHOD_NAMES["sess"] == "SESS"
    assert "SESS" in pytorch_grad_cam.__all__
    assert importlib.import_module("pytorch_grad_cam.sess").SESS is SESS
    SESS(model=tiny_cnn, target_layers=[tiny_cnn[6]], reshape_transform=None)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pool": "median"}, ValueError, "pool must be one of"),
        ({"pre_filter_ratio": 1.0}, ValueError, "pre_filter_ratio"),
        ({"num_scales": 0}, ValueError, "num_scales"),
        ({"num_scales": 2.5}, TypeError, "num_scales"),
        ({"scales": []}, ValueError, "scales"),
        ({"scales": "224"}, TypeError, "scales"),
        ({"scales": [224, -1]}, ValueError, r"scales\[1\]"),
        ({"window_size": "16"}, TypeError, "window_size"),
        ({"step_size": 0}, ValueError, "step_size"),
        ({"theta": float("nan")}, ValueError, "theta"),
        ({"smooth": 1}, TypeError, "smooth"),
        ({"use_softmax_scores": None}, TypeError, "use_softmax_scores"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"base_method": "gradcam"}, TypeError, "base_method"),
    ],
)
def test_sess_bad_arguments(tiny_cnn, kwargs, error, message):
    with pytest.raises(error, match=message):
        SESS(tiny_cnn, [tiny_cnn[6]], **kwargs)


def test_sess_call_errors_are_clear(tiny_cnn, golden_input):
    cam = SESS(tiny_cnn, [tiny_cnn[6]], scales=[24, 20])
    with pytest.raises(ValueError, match="at least the window size 24; got 20"):
        cam(golden_input, golden_targets())
    with pytest.raises(ValueError, match=r"input_tensor must have shape \(B, C, H, W\); got \(2, 3, 2, 24, 28\)"):
        cam(golden_input[:, :, None].expand(2, 3, 2, 24, 28).contiguous(), golden_targets())
    with pytest.raises(ValueError, match="one entry per image"):
        cam(golden_input, golden_targets()[:1])

    # the patch scores of every image are checked once, before any map: the message names the image's target
    def second_image_nan(output: torch.Tensor) -> torch.Tensor:
        return output[3] * torch.nan

    with pytest.raises(ValueError, match=r"targets\[1\] \(.*second_image_nan.*\) returned a non-finite score \(nan\)"):
        SESS(tiny_cnn, [tiny_cnn[6]], num_scales=2)(golden_input, [golden_targets()[0], second_image_nan])
    with pytest.raises(ValueError, match=r"a target \(.*\) returned a non-finite score \(-inf\)"):
        SESS(tiny_cnn, [tiny_cnn[6]], use_softmax_scores=False).get_scores(
            [golden_input[:1, :, :, :24]], lambda output: output[0] * 0 - torch.inf
        )


# --------------------------------------------------------------------------------- ablation_cam_multilayer
MULTILAYER_KEYS = [
    "AblationCAMMultilayer/one/targets",
    "AblationCAMMultilayer/one/argmax",
    "AblationCAMMultilayer/two_same_channels/targets",
    "AblationCAMMultilayer/bn_relu/targets",
    "AblationCAMMultilayer/bn_relu/argmax",
]


def test_ablation_cam_multilayer_defines_the_reference_names():
    module = importlib.import_module("pytorch_grad_cam.ablation_cam_multilayer")
    for name in ("AblationCAM", "AblationLayer", "replace_layer_recursive", "BaseCAM"):
        assert hasattr(module, name)
    assert issubclass(module.AblationCAM, module.BaseCAM)


@pytest.mark.parametrize("key", MULTILAYER_KEYS)
def test_ablation_cam_multilayer_matches_the_reference(reference, golden_input, key):
    """The reference's class raises TypeError on every call (a bug: its get_cam_weights has the grad-cam 1.2
    signature); the stored numbers are what its code computes once that call error is bypassed (see
    make_reference_extra.py). Channel c is switched off in every target layer at once."""
    from pytorch_grad_cam.ablation_cam_multilayer import AblationCAM

    assert reference["AblationCAMMultilayer/reference_call_raises_TypeError"]
    _, layers, variant = key.split("/")
    model = build_tiny_cnn()
    result = AblationCAM(model, golden_layers(model, layers), progress=False)(
        golden_input, golden_targets() if variant == "targets" else None
    )
    np.testing.assert_allclose(result, reference[key], atol=ATOL, rtol=0)
    assert hook_count(model) == 0


def test_ablation_cam_multilayer_on_one_layer_is_ablation_cam(golden, golden_input):
    from pytorch_grad_cam.ablation_cam_multilayer import AblationCAM

    model = build_tiny_cnn()
    result = AblationCAM(model, [model[6]], batch_size=7, progress=False)(golden_input, golden_targets())
    np.testing.assert_allclose(result, golden["AblationCAM/one/targets"], atol=ATOL, rtol=0)


def test_ablation_cam_multilayer_needs_equal_channel_counts(tiny_cnn, golden_input):
    from pytorch_grad_cam.ablation_cam_multilayer import AblationCAM

    with pytest.raises(ValueError, match=r"same number of channels; got \[16, 32\]"):
        AblationCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]], progress=False)(golden_input, golden_targets())


def test_ablation_layer_and_replace_layer_recursive(tiny_cnn, golden_input):
    from pytorch_grad_cam.ablation_cam_multilayer import AblationLayer, replace_layer_recursive

    relu = tiny_cnn[6]
    ablation = AblationLayer(relu, None, indices=[0, 5])
    assert replace_layer_recursive(tiny_cnn, relu, ablation) and tiny_cnn[6] is ablation
    with torch.no_grad():
        inner = tiny_cnn[:6](golden_input)
        output = ablation(inner)
    torch.testing.assert_close(output[0, 1:], torch.relu(inner)[0, 1:])
    assert (output[0, 0] == 0).all() and (output[1, 5] == 0).all()
    negative = AblationLayer(torch.nn.Identity(), None, indices=[2])(-torch.ones(1, 3, 2, 2))
    assert (negative[0, 2] == -1 - 1e5).all() and (negative[0, :2] == -1).all()
    assert not replace_layer_recursive(tiny_cnn, torch.nn.ReLU(), relu)  # not a submodule
    assert replace_layer_recursive(tiny_cnn, ablation, relu) and tiny_cnn[6] is relu
    with pytest.raises(TypeError, match="old_layer"):
        replace_layer_recursive(tiny_cnn, "relu", ablation)


def test_import_loads_no_heavy_optional_dependency() -> None:
    """``import pytorch_grad_cam`` (and its reference module paths) leaves scikit-learn, scipy, ttach and matplotlib
    unloaded: each is imported where it is used (benchmarks/bench_import.py measures what this saves)."""
    import subprocess
    import sys

    code = (
        "import sys, pytorch_grad_cam, pytorch_grad_cam.utils.model_targets, pytorch_grad_cam.utils.image, "
        "pytorch_grad_cam.metrics; print(sorted(m for m in ('sklearn', 'scipy', 'ttach', 'matplotlib') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
