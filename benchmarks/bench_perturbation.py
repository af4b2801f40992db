"""Perturbation methods on CPU, measured side by side in one run (ratios of medians, runs interleaved).

1. AblationCAM (resnet18 layer4[-1] and layer3[-1] at 224, vgg11 ``features`` and densenet121 ``features`` at 112;
   ``weights=None``, batch 2, ``batch_size`` 64): the warm call against one plain forward pass of the batch
   (goal on layer4: <= 1.3) and against one forward plus every ablated copy through the part after the layer (the
   floor without the shortcut, which skips the copies where the operations after the layer allow it); the first
   call in a fresh process against the model's own first forward in a fresh process, against the full re-run of
   the whole model per ablated channel (``strategy="full"``, the reference's algorithm) and against grad-cam
   1.5.7's AblationCAM (its own venv, installed by ``bench_peers.py --install``), each in a fresh process (goal:
   >= 100x on layer4).
2. The Score-CAM family (ScoreCAM, SS-CAM and IS-CAM with 2 samples, PolyCAM on layer3 + layer4) on resnet18 and
   on a narrow torchvision Swin-T (192 channels in its last stage), at 112: the call against the same number of
   batched forward passes of ready-made inputs. Goal: <= 1.1.
3. FullGrad on resnet50, batch 2, vs the same maths with every channel scaled and resized one at a time
   (numpy + cv2, as the reference release does).                                            Goal: >= 10x.
4. ScoreCAM peak memory (RSS of a child process, sampled during the call, above its RSS before it) for two
   batch sizes, next to the size of all masked inputs at once (what building them all up front would hold).

    python benchmarks/bench_perturbation.py            # the sizes above: about 15 minutes on 2 cores
    python benchmarks/bench_perturbation.py --only ablation --ablation-cases resnet18.layer4,resnet18.layer3
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
from typing import Any

import cv2
import numpy as np
import torch
import torchvision
from torch import nn

from pytorch_grad_cam import ISCAM, SSCAM, AblationCAM, FullGrad, PolyCAM, ScoreCAM
from pytorch_grad_cam.utils.layer_split import LayerSplit, split_at
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform


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


#: AblationCAM cases: (torchvision model, target layer as a dotted path, input side). Every layer the cut supports;
#: vgg11 and densenet121 at 112 so that their full re-runs (1024 and 2048 whole-model passes) stay within minutes.
ABLATION_CASES: dict[str, tuple[str, str, int]] = {
    "resnet18.layer4": ("resnet18", "layer4.-1", 224),
    "resnet18.layer3": ("resnet18", "layer3.-1", 224),
    "vgg11.features": ("vgg11", "features.-1", 112),
    "densenet121.features": ("densenet121", "features.-1", 112),
}

#: The setup of a fresh-process call, as source run by this library's child and grad-cam 1.5.7's alike: ``case``,
#: ``side`` and ``threads`` are given; it defines ``model``, ``layer``, ``x`` and ``targets``.
_SETUP = """
import json, time
import torch, torchvision
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
torch.set_num_threads(threads)
name, path, _ = cases[case]
torch.manual_seed(0)
model = getattr(torchvision.models, name)(weights=None).eval()
layer = model
for part in path.split("."):
    layer = layer[int(part)] if part.lstrip("-").isdigit() else getattr(layer, part)
x = torch.randn(2, 3, side, side)
targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(7)]
"""

#: grad-cam 1.5.7's AblationCAM call in its own venv (installed by ``bench_peers.py --install``).
_GRADCAM_CALL = """
from pytorch_grad_cam import AblationCAM
cam = AblationCAM(model, [layer], batch_size=batch_size)
start = time.perf_counter()
cam(input_tensor=x, targets=targets)
print(json.dumps({"call_s": time.perf_counter() - start}))
"""


def _ablation_setup(case: str, size: int | None, threads: int) -> tuple[nn.Module, nn.Module, torch.Tensor, list]:
    values: dict[str, Any] = {"cases": ABLATION_CASES, "case": case, "side": size or ABLATION_CASES[case][2]}
    values["threads"] = threads
    exec(_SETUP, values)
    return values["model"], values["layer"], values["x"], values["targets"]


def _fresh_child(case: str, size: int, strategy: str, batch_size: int, threads: int) -> None:
    """One AblationCAM call in this (fresh) process: prints its seconds and those of a first plain forward."""
    model, layer, x, targets = _ablation_setup(case, size, threads)
    if strategy == "forward":  # the model's own first forward pass in a fresh process
        with torch.no_grad():
            seconds, _ = _timed(lambda: model(x))
        print(json.dumps({"call_s": seconds}))
        return
    cam = AblationCAM(model, [layer], batch_size=batch_size, strategy=strategy, progress=False)  # type: ignore[arg-type]
    seconds, _ = _timed(lambda: cam(x, targets))
    print(json.dumps({"call_s": seconds, "fast": cam.fast_path_used, "shortcut": cam.shortcut_used}))


def _gradcam_157_call(case: str, size: int, batch_size: int) -> dict | None:
    """grad-cam 1.5.7's AblationCAM, one call in a fresh process of its venv; ``None`` when it is not installed."""
    from bench_peers import _gradcam_ok, gradcam_peer_info, peer_python

    if not _gradcam_ok(gradcam_peer_info()):
        return None
    values = {"cases": ABLATION_CASES, "case": case, "side": size, "threads": torch.get_num_threads()}
    source = "".join(f"{key} = {value!r}\n" for key, value in values.items()) + f"batch_size = {batch_size}\n"
    command = [str(peer_python()), "-I", "-c", source + _SETUP + _GRADCAM_CALL]
    line = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(line)


def _fresh_call(case: str, size: int, strategy: str, batch_size: int) -> dict:
    command = [sys.executable, __file__, "--fresh-child", case, str(size), strategy, str(batch_size)]
    command += [str(torch.get_num_threads())]
    line = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(line)


def bench_ablation(cases: list[str], size: int | None, repeats: int, batch_size: int, fresh_full: bool) -> None:
    """Per case: the warm call against one plain forward of the batch (interleaved), the cost of running every ablated
    copy through the tail, and the first call in a fresh process against the full re-run (the reference's algorithm)
    and grad-cam 1.5.7, each in a fresh process."""
    print(f"[AblationCAM] batch 2, batch_size {batch_size}; warm: medians of {repeats} calls interleaved with plain")
    print("  forwards of the same batch (torch.no_grad); fresh: one call in a new process (imports and model build")
    print("  not counted; the cut is traced in that call). Goal: warm <= 1.3 forwards on layer4; >= 100x fresh vs full")
    print("  and vs grad-cam 1.5.7 (its own venv, from bench_peers.py --install; '-' when not installed)")
    header = (
        f"  {'case':22s} {'side':>4s} {'warm s':>8s} {'1 fwd s':>8s} {'warm/fwd':>8s} {'copies/fwd':>10s} {'cut':>5s}"
    )
    print(
        header
        + f" {'fresh s':>8s} {'1st fwd':>8s} {'full s':>8s} {'full/fresh':>10s} {'1.5.7 s':>8s} {'1.5.7/fresh':>11s}"
    )
    for case in cases:
        _ablation_case(case, size, repeats, batch_size, fresh_full)
    print("  copies/fwd: (one forward + every ablated copy of the layer output through the tail) / one forward: the")
    print("  floor without the shortcut; cut: 'short' when the shortcut skipped the copies (the operations after the")
    print("  layer commute with ablation and the linears after them are applied to each channel's entries alone),")
    print("  'tail' when the copies ran through the tail; 1st fwd: the model's own first forward in a fresh process")


def _ablation_case(case: str, size: int | None, repeats: int, batch_size: int, fresh_full: bool) -> None:
    model, layer, x, targets = _ablation_setup(case, size, torch.get_num_threads())
    side = x.shape[-1]
    cam = AblationCAM(model, [layer], batch_size=batch_size, progress=False)
    cam(x, targets)  # warm-up (traces the cut)
    split, _ = split_at(model, layer)
    with torch.no_grad():
        recorded: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda module, inputs, output: recorded.append(output))
        model(x)
        handle.remove()
        channels = recorded[0].shape[1]
        carried = split.carried(x, recorded[0])
        rows = [LayerSplit.image_rows(carried, image, 2) for image in range(2)]
        batches = [recorded[0][image : image + 1].repeat(min(batch_size, channels), 1, 1, 1) for image in range(2)]

    def tails() -> None:  # the cut model's own work: every ablated copy through what follows the layer
        with torch.no_grad():
            for image in range(2):
                for start in range(0, channels, batch_size):
                    count = min(batch_size, channels - start)
                    split.tail(batches[image][:count], rows[image], count)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    out = _interleaved(
        {"warm": lambda: cam(x, targets), "forward": forward, "tails": tails},
        {"warm": repeats, "forward": repeats, "tails": repeats},
    )
    warm, one, tail = out["warm"][0], out["forward"][0], out["tails"][0]
    fresh = _fresh_call(case, side, "auto", batch_size)
    first_forward = _fresh_call(case, side, "forward", batch_size)["call_s"]
    runs = (
        [_fresh_call(case, side, "full", batch_size), _gradcam_157_call(case, side, batch_size)] if fresh_full else []
    )
    others = ""
    for run, width in zip(runs or [None, None], (10, 11), strict=True):
        ratio = "-" if run is None else f"{run['call_s'] / fresh['call_s']:.1f}x"
        others += f" {'-' if run is None else format(run['call_s'], '.2f'):>8s} {ratio:>{width}s}"
    cut = "short" if cam.shortcut_used[0] else "tail" if cam.fast_path_used[0] else "full"
    print(
        f"  {case:22s} {side:4d} {warm:8.3f} {one:8.3f} {warm / one:8.2f} {(one + tail) / one:10.2f} {cut:>5s}"
        f" {fresh['call_s']:8.3f} {first_forward:8.3f}{others}   ({channels} channels)"
    )


def _small_swin() -> nn.Module:
    """torchvision's Swin-T layout (4 stages, windows of 7, channels last) at a quarter of its width: 192 channels
    in the last stage, so that a Score-CAM call stays within seconds on a CPU."""
    return torchvision.models.SwinTransformer(
        patch_size=[4, 4], embed_dim=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=[7, 7]
    ).eval()


def _channels(model: nn.Module, layers: list[nn.Module], x: torch.Tensor, channels_last: bool) -> list[int]:
    """The channel count of each layer's output for ``x``."""
    found: list[int] = []
    handles = [
        layer.register_forward_hook(lambda m, i, out: found.append(out.shape[-1 if channels_last else 1]))
        for layer in layers
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return found


def bench_score_cam(size: int, repeats: int, batch_size: int, images: int) -> None:
    """Each Score-CAM variant against the batched forward passes of ready-made inputs it cannot avoid
    (``B · C · n`` masked inputs, ``batch_size`` per pass), interleaved."""
    torch.manual_seed(0)
    cnn = torchvision.models.resnet18(weights=None).eval()
    swin = _small_swin()
    x = torch.randn(images, 3, size, size)
    cases: list[tuple[str, nn.Module, type, list[nn.Module], dict, int]] = [
        ("resnet18", cnn, ScoreCAM, [cnn.layer4[-1]], {}, 1),
        ("resnet18", cnn, SSCAM, [cnn.layer4[-1]], {"num_samples": 2}, 2),
        ("resnet18", cnn, ISCAM, [cnn.layer4[-1]], {"num_samples": 2}, 2),
        ("resnet18", cnn, PolyCAM, [cnn.layer3[-1], cnn.layer4[-1]], {}, 1),
        ("swin(24)", swin, ScoreCAM, [swin.features[-1][-1].norm1], {}, 1),
        ("swin(24)", swin, SSCAM, [swin.features[-1][-1].norm1], {"num_samples": 2}, 2),
        ("swin(24)", swin, ISCAM, [swin.features[-1][-1].norm1], {"num_samples": 2}, 2),
    ]
    print(
        f"[Score-CAM family] {images} image(s) at {size}, batch_size {batch_size}; medians of {repeats} calls "
        "interleaved with the same number of batched forwards of ready-made inputs"
    )
    columns = f"{'channels':>8s} {'inputs':>7s} {'call s':>8s} {'forwards s':>10s} {'ratio':>6s}"
    print(f"  {'model':9s} {'method':9s} {columns}")
    for name, model, method, layers, options, samples in cases:
        channels = _channels(model, layers, x[:1], channels_last=name.startswith("swin"))
        inputs = images * sum(channels) * samples
        reshape = swinT_reshape_transform if name.startswith("swin") else None
        cam = method(model, layers, reshape, batch_size=batch_size, progress=False, **options)
        ready = torch.randn(batch_size, 3, size, size)

        def forwards(model: nn.Module = model, inputs: int = inputs, ready: torch.Tensor = ready) -> None:
            with torch.no_grad():
                for start in range(0, inputs, batch_size):
                    model(ready[: min(batch_size, inputs - start)])

        cam(x)  # warm-up
        out = _interleaved({"cam": lambda cam=cam: cam(x), "forwards": forwards}, {"cam": repeats, "forwards": repeats})
        t_cam, t_fwd = out["cam"][0], out["forwards"][0]
        print(
            f"  {name:9s} {method.__name__:9s} {'+'.join(map(str, channels)):>8s} {inputs:7d} {t_cam:8.2f} "
            f"{t_fwd:10.2f} {t_cam / t_fwd:6.2f}"
        )
    print("  ratio: call / forwards (goal <= 1.1; the call also holds the first pass and the maps)")


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
    parser.add_argument("--batch-size", type=int, default=64, help="AblationCAM / ScoreCAM batch_size")
    parser.add_argument("--score-images", type=int, default=1, help="images in the ScoreCAM timing")
    parser.add_argument(
        "--only", choices=["ablation", "scorecam", "fullgrad", "memory"], action="append", help="run only these"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--ablation-cases", default=",".join(ABLATION_CASES), help=f"comma-separated, of {', '.join(ABLATION_CASES)}"
    )
    parser.add_argument("--no-full", action="store_true", help="skip AblationCAM's fresh-process full re-runs")
    parser.add_argument("--memory-child", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fresh-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(*args.memory_child)
        return
    if args.fresh_child:
        case, side, strategy, batch_size, threads = args.fresh_child
        _fresh_child(case, int(side), strategy, int(batch_size), int(threads))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or (64 if args.quick else 224)
    repeats = 1 if args.quick else args.repeats
    sections = args.only or ["ablation", "scorecam", "fullgrad", "memory"]
    torch.set_grad_enabled(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    if "ablation" in sections:
        cases = ["resnet18.layer4"] if args.quick else args.ablation_cases.split(",")
        bench_ablation(cases, args.size or (64 if args.quick else None), repeats, args.batch_size, not args.no_full)
    if "scorecam" in sections:
        bench_score_cam(args.size or (64 if args.quick else 112), repeats, args.batch_size, args.score_images)
    if "fullgrad" in sections:
        bench_fullgrad(size, repeats)
    if "memory" in sections:
        bench_memory(min(size, 128), [8, 64], 2)


if __name__ == "__main__":
    main()
