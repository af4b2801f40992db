"""benchmarks/bench_peers.py's pure helpers on hand-made numbers: correlation, ratios, the table, the method list.
No peer is installed or imported, nothing is downloaded."""

from __future__ import annotations

import json
import math
from types import ModuleType

import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The script imported as a module."""
    return load_script("bench_peers")


def test_pearson_by_hand(bench: ModuleType) -> None:
    # x = [1, 2, 3], y = [1, 3, 2]: centred [-1, 0, 1] and [-1, 1, 0], r = 1 / (sqrt(2) sqrt(2)) = 0.5
    assert bench.pearson(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    image = np.arange(12.0).reshape(3, 4)
    assert bench.pearson(image, 5 * image + 2) == pytest.approx(1.0)  # normalisations do not matter
    assert bench.pearson(image, -image) == pytest.approx(-1.0)
    assert math.isnan(bench.pearson(image, np.full((3, 4), 7.0)))  # a constant map has no correlation
    assert math.isnan(bench.pearson(image, np.where(image > 5, np.nan, image)))
    with pytest.raises(ValueError, match="different sizes"):
        bench.pearson(np.zeros(3), np.zeros(4))


def test_mean_image_correlation_is_per_image(bench: ModuleType) -> None:
    ours = np.stack([np.arange(4.0).reshape(2, 2), np.arange(4.0).reshape(2, 2)])
    peer = np.stack([ours[0] * 3, -ours[1]])  # +1 and -1
    assert bench.mean_image_correlation(ours, peer) == pytest.approx(0.0)
    # flattened over the batch the same numbers would correlate differently: the mean is per image
    assert bench.mean_image_correlation(ours[:1], peer[:1] + 100) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes"):
        bench.mean_image_correlation(ours, peer[:1])


def test_ratios_and_order(bench: ModuleType) -> None:
    assert bench.median_ratio([2.0, 4.0, 60.0], [1.0, 2.0, 3.0]) == pytest.approx(2.0)  # 4 / 2
    assert bench.min_ratio([2.0, 4.0, 60.0], [1.5, 2.0, 3.0]) == pytest.approx(2.0 / 1.5)
    assert math.isnan(bench.median_ratio([], [1.0]))
    assert math.isnan(bench.min_ratio([1.0], []))
    assert bench.interleaved_order(["ours", "a", "b"], 0) == ["ours", "a", "b"]
    assert bench.interleaved_order(["ours", "a", "b"], 1) == ["b", "a", "ours"]
    assert bench.format_seconds(0.01234) == "0.0123"
    assert bench.format_seconds(1.23456) == "1.235"
    assert bench.format_seconds(123.4) == "123.4"
    assert bench.format_seconds(math.nan) == "n/a"


def _rows(bench: ModuleType) -> list:
    faster = bench.Row(
        "GradCAM", "torchcam", "GradCAM", "resnet18", 8, 224, "full", 3,
        ours_times=[1.0, 2.0, 3.0], peer_times=[3.0, 4.0, 5.0], correlation=0.99951,
    )  # fmt: skip
    slower = bench.Row(
        "ScoreCAM", "grad-cam", "ScoreCAM", "resnet18", 1, 96, "reduced", 0,
        ours_times=[2.0], peer_times=[1.0], cold=True, same_definition=False, note="a | b",
    )  # fmt: skip
    failed = bench.Row("GuidedGradCAM", "captum", "GuidedGradCam", "resnet50", 1, 224, "full", 3, error="Boom: no")
    return [faster, slower, failed]


def test_row_numbers(bench: ModuleType) -> None:
    faster, slower, failed = _rows(bench)
    assert (faster.ours_s, faster.peer_s, faster.ratio, faster.min_ratio) == (2.0, 4.0, 2.0, 3.0)
    assert slower.ratio == pytest.approx(0.5)
    assert math.isnan(failed.ratio) and math.isnan(failed.ours_s)
    data = failed.as_dict()
    assert data["ratio"] is None and data["correlation"] is None and data["error"] == "Boom: no"
    json.dumps([row.as_dict() for row in (faster, slower, failed)], allow_nan=False)  # strict JSON
    assert bench.slower_rows([faster, slower, failed]) == [slower]
    text = bench.format_slower([faster, slower, failed])
    assert text.splitlines()[1].startswith("- slower: ScoreCAM vs grad-cam ScoreCAM, resnet18 batch 1 input 96")
    assert "ratio 0.50, min ratio 0.50" in text and len(text.splitlines()) == 2
    noisy = bench.Row("X", "captum", "X", "m", 1, 8, "full", 2, ours_times=[1.0, 3.0], peer_times=[0.9, 4.0])
    assert "within the noise" in bench.format_slower([noisy])  # median ratio 1.18, min ratio 0.9
    assert bench.format_slower([faster]).endswith("none")


def test_format_table(bench: ModuleType) -> None:
    lines = bench.format_table(_rows(bench)).splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == list(bench.TABLE_HEADER)
    assert lines[1].count("|") == len(header) + 1 and "---:" in lines[1]
    cells = [cell.strip() for cell in lines[2].strip().strip("|").split("|")]
    row = dict(zip(header, cells))
    assert row == {
        "method": "GradCAM",
        "model": "resnet18",
        "batch": "8",
        "input": "224",
        "setting": "full",
        "peer": "torchcam",  # same class name: the peer alone
        "ours s": "2.000",
        "peer s": "4.000",
        "peer/ours": "2.00",
        "min peer/ours": "3.00",
        "correlation": "1.000",
        "note": "",
    }
    assert "reduced (cold)" in lines[3] and "definitions differ: a \\| b" in lines[3] and "0.50" in lines[3]
    assert "captum `GuidedGradCam`" in lines[4] and "ERROR: Boom: no" in lines[4] and "n/a" in lines[4]
    assert len(lines) == 5


def test_method_specs(bench: ModuleType) -> None:
    import pytorch_grad_cam

    specs = bench.method_specs(samples=3)
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    for spec in specs:
        assert hasattr(pytorch_grad_cam, spec.name), spec.name
        assert spec.peers and all(peer.peer in bench.PEER_NAMES for peer in spec.peers)
        assert spec.group in {bench.GRADIENT, bench.PERTURBATION}
        assert spec.cam_spec(ours=False)["init"] == spec.ref_init
    perturbation = {spec.name for spec in specs if spec.group == bench.PERTURBATION}
    assert {"ScoreCAM", "SSCAM", "ISCAM", "AblationCAM"} <= perturbation
    sscam = next(spec for spec in specs if spec.name == "SSCAM")
    assert sscam.ours_init["num_samples"] == 3 and sscam.peers[0].options["num_samples"] == 3
    # every perturbation method runs without a progress bar in our library
    assert all(spec.ours_init.get("progress") is False for spec in specs if spec.name in {"ScoreCAM", "AblationCAM"})


def test_quick_arguments(bench: ModuleType) -> None:
    args = bench.parse_args(["--quick", "--peers", "torchcam"])
    assert (args.models, args.batches, args.size, args.repeats) == (["resnet18"], [1], 64, 1)
    assert (args.reduced_size, args.reduced_repeats, args.samples) == (64, 0, 1)
    assert args.peers == ["torchcam"]
    settings = bench.settings_for(args)
    assert [(s.group, s.repeats) for s in settings] == [(bench.GRADIENT, 1), (bench.PERTURBATION, 0)]
    full = bench.parse_args([])
    assert (full.models, full.batches, full.size) == (["resnet18", "resnet50"], [1, 8], 224)
    with pytest.raises(SystemExit):
        bench.parse_args(["--peers", "lime"])


def test_grad_cam_rows_time_ours_in_a_worker_too(bench: ModuleType, tmp_path) -> None:
    """Against grad-cam 1.5.7's worker, ours is timed in a worker of the same kind. Here both workers run this
    venv's library (no peer installed): the row's two sides are then the same code in the same set-up, and
    the in-process call is not used for the grad-cam row."""
    import sys
    from pathlib import Path

    spec = next(spec for spec in bench.method_specs(samples=1) if spec.name == "GradCAM")
    setting = bench.Setting(bench.GRADIENT, "resnet18", 1, 64, 2, "test")
    workers = [bench.Worker(Path(sys.executable), 1) for _ in range(2)]
    try:
        assert Path(workers[1].request("hello")["file"]).parent.name == "pytorch_grad_cam"
        rows = bench.run_setting(setting, [spec], {bench.GRADCAM: "test"}, workers[0], tmp_path, 0, workers[1])
    finally:
        for worker in workers:
            worker.close()
    [row] = [row for row in rows if row.peer == bench.GRADCAM]
    assert not row.error, row.error
    assert len(row.ours_times) == len(row.peer_times) == 2
    assert row.correlation == pytest.approx(1.0)
    assert all(worker.process.returncode == 0 for worker in workers)


def test_heap_policy(bench: ModuleType) -> None:
    assert bench.parse_args([]).heap == "pinned"
    assert bench.parse_args(["--heap", "inherit"]).heap == "inherit"
    assert bench.heap_pinned(bench.PINNED_HEAP)
    assert not bench.heap_pinned({})
    assert not bench.heap_pinned({**bench.PINNED_HEAP, "MALLOC_TRIM_THRESHOLD_": "0"})
