"""Perturbation methods on CPU, measured side by side in one run (ratios of medians, runs interleaved).

1. AblationCAM, fast path (network before the target layer once, the rest per batch) vs the full re-run of the
   whole model for every ablated channel: resnet18 (weights=None), layer4[-1], batch 2.   Goal: >= 50x.
2. ScoreCAM time / time of the same number of batched forward passes on ready-made inputs.  Goal: <= 1.1.
3. FullGrad on resnet50, batch 2, vs the same maths with every channel scaled and resized one at a time
   (numpy + cv2, as the reference release does).                                            Goal: >= 10x.
4. ScoreCAM peak memory (RSS of a child process, sampled during the call, above its RSS before it) for two
   batch sizes, next to the size of all masked inputs at once (what building them all up front would hold).

    python benchmarks/bench_perturbation.py            # the issue's sizes (224), a few minutes on 2 cores
    python benchmarks/bench_perturbation.py --quick    # small inputs, about a minute

Timings on a shared machine are noisy; the ratios come from runs interleaved in one process.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torchvision
from torch import nn

from pytorch_grad_cam import AblationCAM, FullGrad, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def _timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _interleaved(runs: dict[str, Callable[[], object]], repeats: dict[str, int]) -> dict[str, tuple[float, object]]:
    """Median seconds and last result of each run, the runs taking turns."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, object] = {}
    for round_index in range(max(repeats.values())):
        for name, run in runs.items():
            if round_index < repeats[name]:
                seconds, results[name] = _timed(run)
                times[name].append(seconds)
    return {name: (statistics.median(times[name]), results[name]) for name in runs}


def bench_ablation(size: int, repeats: int, full_repeats: int, batch_size: int) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, size, size)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(7)]
    layers = [model.layer4[-1]]
    fast = AblationCAM(model, layers, batch_size=batch_size, progress=False)
    full = AblationCAM(model, layers, batch_size=batch_size, strategy="full", progress=False)
    fast(x, targets)  # warm-up (and the torch.fx cut, cached on the object)
    out = _interleaved(
        {"fast": lambda: fast(x, targets), "full": lambda: full(x, targets)}, {"fast": repeats, "full": full_repeats}
    )
    (t_fast, r_fast), (t_full, r_full) = out["fast"], out["full"]
    print(f"[AblationCAM] resnet18 layer4[-1], batch 2 at {size}, batch_size {batch_size}, 512 channels per image")
    print(f"  fast path {t_fast:8.3f} s   full re-run {t_full:8.3f} s   speed-up {t_full / t_fast:7.1f}x (goal >= 50x)")
    print(f"  fast path used: {fast.fast_path_used}; max |fast - full| = {np.abs(r_fast - r_full).max():.2e}")


def bench_score_cam(size: int, repeats: int, batch_size: int, images: int) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(images, 3, size, size)
    layer = model.layer4[-1]
    channels = 512
    cam = ScoreCAM(model, [layer], batch_size=batch_size, progress=False)
    ready = torch.randn(batch_size, 3, size, size)
    last = torch.randn(channels % batch_size or batch_size, 3, size, size)

    def forwards() -> None:
        with torch.inference_mode():
            for _ in range(images):
                for start in range(0, channels, batch_size):
                    model(ready if start + batch_size <= channels else last)

    forwards()  # warm-up
    out = _interleaved({"score": lambda: cam(x), "forwards": forwards}, {"score": repeats, "forwards": repeats})
    t_cam, t_fwd = out["score"][0], out["forwards"][0]
    print(f"[ScoreCAM] resnet18 layer4[-1], {images} image(s) at {size}, batch_size {batch_size}")
    print(
        f"  ScoreCAM {t_cam:8.3f} s   {images * channels} batched forward passes {t_fwd:8.3f} s   "
        f"ratio {t_cam / t_fwd:5.2f} (goal <= 1.1; includes the first pass)"
    )


def _naive_fullgrad(model: nn.Module, x: torch.Tensor, categories: list[int]) -> np.ndarray:
    """FullGrad with every channel min-max scaled and resized one at a time on the host (the reference way)."""
    layers = [m for m in model.modules() if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None]
    grads: list[tuple[nn.Module, torch.Tensor]] = []

    def record(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        output.register_hook(lambda grad: grads.append((module, grad)))

    handles = [layer.register_forward_hook(record) for layer in layers]
    inputs = x.clone().requires_grad_(True)
    try:
        output = model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    score = sum(output[i, c] for i, c in enumerate(categories))
    (input_grad,) = torch.autograd.grad(score, inputs)
    height, width = x.shape[2:]

    def scaled_resized(maps: np.ndarray) -> np.ndarray:
        result = np.empty((*maps.shape[:2], height, width), np.float32)
        for b in range(maps.shape[0]):
            for c in range(maps.shape[1]):
                image = maps[b, c] - maps[b, c].min()
                image = image / (1e-7 + image.max())
                result[b, c] = cv2.resize(np.float32(image), (width, height))
        return result

    parts = [scaled_resized(np.abs((input_grad * x).numpy()))]
    for layer, grad in grads:
        bias = FullGrad.get_bias_data(layer).detach().numpy()
        parts.append(scaled_resized(np.abs(bias[None, :, None, None] * grad.numpy())).sum(axis=1, keepdims=True))
    total = np.concatenate(parts, axis=1).sum(axis=1)
    total = total - total.min(axis=(1, 2), keepdims=True)
    return total / (1e-7 + total.max(axis=(1, 2), keepdims=True))


def bench_fullgrad(size: int, repeats: int) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():  # untrained batch norms fold to a bias of 0: give them non-zero ones
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.bias.normal_()
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, size, size)
    categories = [1, 7]
    targets = [ClassifierOutputTarget(c) for c in categories]
    cam = FullGrad(model, [])
    cam(x, targets)  # warm-up
    out = _interleaved(
        {"ours": lambda: cam(x, targets), "per-channel": lambda: _naive_fullgrad(model, x, categories)},
        {"ours": repeats, "per-channel": repeats},
    )
    (t_ours, r_ours), (t_naive, r_naive) = out["ours"], out["per-channel"]
    print(f"[FullGrad] resnet50, batch 2 at {size}")
    print(
        f"  ours {t_ours:8.3f} s   per-channel resize {t_naive:8.3f} s   speed-up {t_naive / t_ours:6.1f}x "
        f"(goal >= 10x); max |difference| = {np.abs(r_ours - r_naive).max():.2e}"
    )


def _current_rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


def _memory_child(size: int, batch_size: int, images: int) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(images, 3, size, size)
    with torch.inference_mode():
        model(x[:1])
    baseline = _current_rss_kib()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _current_rss_kib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        ScoreCAM(model, [model.layer4[-1]], batch_size=batch_size, progress=False)(x)
    finally:
        done.set()
        sampler.join()
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak}))


def bench_memory(size: int, batch_sizes: list[int], images: int) -> None:
    print(f"[ScoreCAM memory] resnet18 layer4[-1], {images} image(s) at {size}; peak RSS above the RSS before the call")
    all_masked = images * 512 * 3 * size * size * 4 / 2**20
    for batch_size in batch_sizes:
        command = [sys.executable, __file__, "--memory-child", str(size), str(batch_size), str(images)]
        line = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        numbers = json.loads(line)
        growth = (numbers["peak_kib"] - numbers["baseline_kib"]) / 1024
        one_batch = batch_size * 3 * size * size * 4 / 2**20
        print(f"  batch_size {batch_size:4d}: +{growth:8.1f} MiB   (one batch of masked inputs {one_batch:7.1f} MiB)")
    print(f"  all {images * 512} masked inputs at once would be {all_masked:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small inputs and one repeat (about a minute)")
    parser.add_argument("--size", type=int, default=None, help="input side for every section (default 224)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the fast runs (medians reported)")
    parser.add_argument("--full-repeats", type=int, default=1, help="repeats of the slow full re-run")
    parser.add_argument("--batch-size", type=int, default=64, help="AblationCAM / ScoreCAM batch_size")
    parser.add_argument("--score-images", type=int, default=1, help="images in the ScoreCAM timing")
    parser.add_argument(
        "--only", choices=["ablation", "scorecam", "fullgrad", "memory"], action="append", help="run only these"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--memory-child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(*args.memory_child)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or (64 if args.quick else 224)
    repeats = 1 if args.quick else args.repeats
    sections = args.only or ["ablation", "scorecam", "fullgrad", "memory"]
    torch.set_grad_enabled(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    if "ablation" in sections:
        bench_ablation(size, repeats, args.full_repeats, args.batch_size)
    if "scorecam" in sections:
        bench_score_cam(size, repeats, args.batch_size, args.score_images)
    if "fullgrad" in sections:
        bench_fullgrad(size, repeats)
    if "memory" in sections:
        bench_memory(min(size, 128), [8, 64], 2)


if __name__ == "__main__":
    main()
