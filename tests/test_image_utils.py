"""Image utilities: golden numbers of the reference release, hand-computed cases and bad input."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from pytorch_grad_cam.utils.image import (
    create_labels_legend,
    deprocess_image,
    preprocess_image,
    scale_accross_batch_and_channels,
    scale_cam_image,
    show_cam_on_image,
    show_factorization_on_image,
)


def test_show_cam_on_image_matches_golden(golden: dict[str, np.ndarray]) -> None:
    img, cam = golden["image/img"], golden["image/cam"]
    rgb = show_cam_on_image(img, cam, use_rgb=True)
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 30, 3)
    np.testing.assert_array_equal(rgb, golden["image/show_cam_on_image_rgb"])
    bgr = show_cam_on_image(img, cam, use_rgb=False, image_weight=0.3)
    np.testing.assert_array_equal(bgr, golden["image/show_cam_on_image_bgr_w03"])
    # a tensor mask gives the same picture
    np.testing.assert_array_equal(show_cam_on_image(img, torch.from_numpy(cam), use_rgb=True), rgb)


def test_show_cam_on_image_full_image_weight_is_the_rescaled_image() -> None:
    img = np.array([[[0.2, 0.4, 0.1], [0.5, 0.25, 0.0]]], dtype=np.float32)
    out = show_cam_on_image(img, np.zeros((1, 2), dtype=np.float32), image_weight=1.0)
    np.testing.assert_array_equal(out, [[[102, 204, 51], [255, 127, 0]]])


def test_show_cam_on_image_bad_input() -> None:
    img = np.full((4, 5, 3), 0.5, dtype=np.float32)
    mask = np.zeros((4, 5), dtype=np.float32)
    with pytest.raises(TypeError, match=r"img must be np.float32 .*np.float32\(img\) / 255; got dtype uint8"):
        show_cam_on_image(np.uint8(img * 255), mask)
    with pytest.raises(ValueError, match=r"values in the range \[0, 1\]; got a maximum of 2"):
        show_cam_on_image(img * 4, mask)
    with pytest.raises(ValueError, match=r"mask must have the image's shape \(H, W\) = \(4, 5\); got \(5, 4\)"):
        show_cam_on_image(img, mask.T)
    with pytest.raises(ValueError, match=r"image_weight must be a number in \[0, 1\]; got 1.5"):
        show_cam_on_image(img, mask, image_weight=1.5)
    with pytest.raises(ValueError, match=r"image_weight must be a number in \[0, 1\]; got -0.1"):
        show_cam_on_image(img, mask, image_weight=-0.1)
    with pytest.raises(TypeError, match="img must be a numpy array of shape"):
        show_cam_on_image(torch.from_numpy(img), mask)


def test_scale_cam_image_matches_golden(golden: dict[str, np.ndarray]) -> None:
    scaled = scale_cam_image(golden["image/small"], (30, 20))
    assert scaled.dtype == np.float32 and scaled.shape == (2, 20, 30)
    np.testing.assert_allclose(scaled, golden["image/scale_cam_image_30x20"], atol=1e-5)


def test_preprocess_image_matches_golden(golden: dict[str, np.ndarray]) -> None:
    img = golden["image/img"]
    before = img.copy()
    tensor = preprocess_image(img)
    assert tensor.shape == (1, 3, 20, 30) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), golden["image/preprocess_image"], atol=1e-5)
    np.testing.assert_array_equal(img, before)


def test_preprocess_image_hand_computed() -> None:
    img = np.array([[[0.485, 0.456, 0.406 + 0.225]]], dtype=np.float32)
    out = preprocess_image(img, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), [0.0, 0.0, 1.0], atol=1e-6)
    uint8 = preprocess_image(np.array([[[255, 0, 51]]], dtype=np.uint8))  # uint8 is divided by 255 first
    np.testing.assert_allclose(uint8[0, :, 0, 0].numpy(), [1.0, -1.0, -0.6], atol=1e-6)
    with pytest.raises(ValueError, match=r"mean must have one value per channel \(3\); got 2 values"):
        preprocess_image(img, mean=[0.5, 0.5])


def test_deprocess_image_matches_golden(golden: dict[str, np.ndarray]) -> None:
    noise = golden["image/noise"]
    out = deprocess_image(noise)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, golden["image/deprocess_image"])
    np.testing.assert_array_equal(deprocess_image(torch.from_numpy(noise)), out)


def test_deprocess_image_hand_computed() -> None:
    # mean 0.5, std 0.5: 0.5 -+ 0.1 * 0.5 / 0.50001 -> 0.400008, 0.599992 -> 102, 152 after * 255 and uint8
    np.testing.assert_array_equal(deprocess_image(np.array([[0.0, 1.0]])), [[102, 152]])


def test_scale_accross_batch_and_channels(golden: dict[str, np.ndarray]) -> None:
    small = golden["image/small"]
    out = scale_accross_batch_and_channels(small[None], (30, 20))
    assert out.shape == (1, 2, 20, 30) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], golden["image/scale_cam_image_30x20"], atol=1e-5)
    as_tensor = scale_accross_batch_and_channels(torch.from_numpy(small).reshape(2, 1, 7, 9), (30, 20))
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (2, 1, 20, 30)
    np.testing.assert_allclose(as_tensor[:, 0].numpy(), golden["image/scale_cam_image_30x20"], atol=1e-5)


def test_create_labels_legend() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.9]])
    labels = {0: "cat, kitty, feline, extra", 1: "dog", 2: "car"}
    assert create_labels_legend(scores, labels, top_k=2) == ["dog:0.70\ncar:0.20", "car:0.90\ncat, kitty, feline:0.50"]
    assert create_labels_legend(torch.tensor(scores), ["a", "b", "c"], top_k=1) == ["b:0.70", "c:0.90"]


def test_show_factorization_single_red_component_hand_computed() -> None:
    img = np.full((2, 3, 3), 0.2, dtype=np.float32)
    explanation = np.array([[[0.0, 0.5, 1.0], [1.0, 0.2, 0.0]]], dtype=np.float32)
    out = show_factorization_on_image(img, explanation, colors=[np.array([1.0, 0.0, 0.0])])
    # pure red with HSV value uint8(255 e): red channel uint8(255 e) / 255, others 0
    red = np.uint8(255 * explanation[0]) / 255
    expected = np.zeros((2, 3, 3))
    expected[..., 0] = np.uint8((0.2 * 0.5 + red * 0.5) * 255)
    expected[..., 1:] = np.uint8(0.2 * 0.5 * 255)
    np.testing.assert_array_equal(out, expected)


def test_show_factorization_default_colors_labels_and_no_mutation() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((24, 32, 3), dtype=np.float32)
    explanations = rng.random((3, 24, 32), dtype=np.float32)
    before = explanations.copy()
    plain = show_factorization_on_image(img, explanations)
    assert plain.dtype == np.uint8 and plain.shape == (24, 32, 3)
    np.testing.assert_array_equal(explanations, before)
    cmap = matplotlib.colormaps["gist_rainbow"]
    explicit = show_factorization_on_image(img, explanations, colors=[np.array(cmap(v)) for v in (0, 1 / 3, 2 / 3)])
    np.testing.assert_array_equal(plain, explicit)
    with_legend = show_factorization_on_image(img, explanations, concept_labels=["a:0.9", "b:0.5", "c:0.1"])
    assert with_legend.dtype == np.uint8 and with_legend.shape == (24, 64, 3)
    np.testing.assert_array_equal(with_legend[:, :32], plain)
    assert with_legend[:, 32:].std() > 0  # a drawn legend, not a blank panel
    np.testing.assert_array_equal(explanations, before)


def test_show_factorization_bad_input() -> None:
    img = np.zeros((4, 5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"explanations must have shape \(n_components, H, W\) .* got \(2, 5, 4\)"):
        show_factorization_on_image(img, np.zeros((2, 5, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"concept_labels must hold one label per component \(2\); got 1"):
        show_factorization_on_image(img, np.zeros((2, 4, 5), dtype=np.float32), concept_labels=["a"])
    with pytest.raises(TypeError, match="got dtype uint8"):
        show_factorization_on_image(np.uint8(img), np.zeros((2, 4, 5), dtype=np.float32))
