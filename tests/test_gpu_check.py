"""benchmarks/gpu_check.py on the CPU: its wait counter sees the calls that make the host wait for a device, the
perturbation methods make none inside their loops (the count does not grow with more passes and more images),
FinerCAM none per image, SESS none of its own per batch of patches, and the script runs end to end with
``--device cpu --quick``."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch
from conftest import golden_targets, load_script

from pytorch_grad_cam import ISCAM, SESS, SSCAM, AblationCAM, FinerCAM, GroupCAM, PolyCAM, ScoreCAM


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    return load_script("gpu_check")


def test_the_counter_sees_waiting_calls(gpu_check: ModuleType) -> None:
    x = torch.randn(4)
    with gpu_check.counting_waits(torch.device("cpu")) as counter:
        bool(x[0] > 0)
        float(x[1])
        x.tolist()
        x[x > 0]
        x.nonzero()
        (x * 2).sum()  # no wait
    assert counter.counts == {"__bool__": 1, "__float__": 1, "tolist": 1, "mask indexing": 1, "nonzero": 1}


@pytest.mark.parametrize(
    ("method", "options"),
    [
        (ScoreCAM, {}),
        (SSCAM, {"num_samples": 2}),
        (ISCAM, {"num_samples": 2}),
        (PolyCAM, {}),
        (AblationCAM, {}),
        (GroupCAM, {"groups": 8}),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_no_wait_inside_the_perturbation_loops(gpu_check, tiny_cnn, golden_input, method, options) -> None:
    """Four times the passes per image and twice the images: the same number of waits (those of the first pass
    and the result)."""
    layers = [tiny_cnn[4], tiny_cnn[6]] if method is PolyCAM else [tiny_cnn[6]]
    counts = []
    for images, batch_size in ((golden_input, 16), (torch.cat([golden_input, golden_input]), 4)):
        cam = method(tiny_cnn, layers, batch_size=batch_size, progress=False, **options)
        targets = golden_targets() * (len(images) // 2)
        with gpu_check.counting_waits(torch.device("cpu")) as counter:
            cam(images, targets)
        counts.append(counter.total)
    assert counts[1] == counts[0]


@pytest.mark.parametrize("options", [{}, {"alpha": 0.5, "comparison_categories": [2, 1], "target_idx": -1}])
def test_finer_cam_makes_no_wait_per_image(gpu_check, tiny_cnn, golden_input, options) -> None:
    """FinerCAM picks every image's comparison classes on the device: with twice and four times the images, the
    same number of waits (the base method's checks and the result); ``default_targets`` reads every image's
    classes with one wait."""
    counts, resolved = [], []
    for copies in (1, 2, 4):
        images = torch.cat([golden_input] * copies)
        cam = FinerCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]])
        with gpu_check.counting_waits(torch.device("cpu")) as counter:
            cam(images, **options)
        counts.append(counter.total)
        outputs = tiny_cnn(images).detach()
        with gpu_check.counting_waits(torch.device("cpu")) as counter:
            cam.default_targets(outputs, len(images), **options)
        resolved.append(counter.total)
    assert counts == [counts[0]] * 3
    assert resolved == [1, 1, 1]


def _waits_outside_the_base(
    gpu_check: ModuleType, monkeypatch: pytest.MonkeyPatch, cam: Any, *args: Any
) -> tuple[int, int, int]:
    """The waits of ``cam(*args)`` outside its base method's ``compute`` calls, the number of those calls and the
    waits inside them."""
    compute, inside = cam.base_cam.compute, []
    with gpu_check.counting_waits(torch.device("cpu")) as counter:

        def counted(*call_args: Any, **kwargs: Any) -> torch.Tensor:
            before = counter.total
            try:
                return compute(*call_args, **kwargs)
            finally:
                inside.append(counter.total - before)

        monkeypatch.setattr(cam.base_cam, "compute", counted)
        cam(*args)
    return counter.total - sum(inside), len(inside), sum(inside)


def test_sess_waits_the_same_for_any_number_of_batches_or_images(
    gpu_check, monkeypatch, tiny_cnn, golden_input
) -> None:
    """Five times the batches of patches per image and twice the images: the waits of a SESS call stay the same
    (the input check, the patch scores' finiteness check, the kept patches' indices, the base method's checks of
    every batch read at once at the end, and the result). The base method's calls themselves make none: their
    checks are deferred (:func:`~pytorch_grad_cam.core.checks.deferred_checks`)."""
    own, calls, inside = [], [], []
    for images, batch_size in ((golden_input, 16), (torch.cat([golden_input, golden_input]), 2)):
        cam = SESS(tiny_cnn, [tiny_cnn[6]], num_scales=3, batch_size=batch_size)  # 10 patches per image
        waits, base_calls, base_waits = _waits_outside_the_base(
            gpu_check, monkeypatch, cam, images, golden_targets() * (len(images) // 2)
        )
        own.append(waits)
        calls.append(base_calls)
        inside.append(base_waits)
    assert calls == [2, 20]
    assert inside == [0, 0]
    assert own[1] == own[0]


def test_the_script_runs_on_the_cpu(gpu_check: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    status = gpu_check.main(["--device", "cpu", "--quick", "--methods", "gradcam", "--repeats", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "| resnet18 | gradcam | ok | 0.00e+00 | 1.0000 |" in out and "0 failed" in out
