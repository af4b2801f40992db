"""Silent failures turned into clear errors: batch-truncating reshape transforms, non-finite target scores and
maps, and calls on one model from several threads (issue 13, items 1-3)."""

from __future__ import annotations

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
