"""benchmarks/gpu_check.py on the CPU: its wait counter sees the calls that make the host wait for a device, the
perturbation methods make none inside their loops (the count does not grow with more passes and more images), and
the script runs end to end with ``--device cpu --quick``."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
from conftest import golden_targets, load_script

from pytorch_grad_cam import ISCAM, SSCAM, AblationCAM, GroupCAM, PolyCAM, ScoreCAM


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


def test_the_script_runs_on_the_cpu(gpu_check: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    status = gpu_check.main(["--device", "cpu", "--quick", "--methods", "gradcam", "--repeats", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "| resnet18 | gradcam | ok | 0.00e+00 | 1.0000 |" in out and "0 failed" in out
