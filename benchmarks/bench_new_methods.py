"""Score-CAM variants on CPU, measured side by side in one run: seconds per image of SS-CAM, IS-CAM and
Group-CAM beside Score-CAM (resnet18, weights=None), and each one's ratio to Score-CAM.

SS-CAM and IS-CAM evaluate every channel's mask ``num_samples`` times, so they cost about ``num_samples``
Score-CAMs by design; the column "per sample" divides that out (≈ 1 means the extra masks are batched as
efficiently as Score-CAM's). Group-CAM needs ``groups + 1`` forward passes and one backward pass.

    python benchmarks/bench_new_methods.py            # 112-pixel input, layer4 (512 channels)
    python benchmarks/bench_new_methods.py --quick    # 64-pixel input, layer3 (256 channels), ~a minute

Timings on a shared machine are noisy; the runs are interleaved and the medians compared.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchvision

from pytorch_grad_cam import ISCAM, SSCAM, GroupCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def _median_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64-pixel input and layer3")
    parser.add_argument("--samples", type=int, default=4, help="num_samples of SS-CAM and IS-CAM (default 4)")
    parser.add_argument("--groups", type=int, default=32, help="Group-CAM groups (default 32)")
    parser.add_argument("--batch-size", type=int, default=64, help="masked inputs per forward pass")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    size, layer = (64, model.layer3[-1]) if args.quick else (112, model.layer4[-1])
    image = torch.randn(1, 3, size, size)
    targets = [ClassifierOutputTarget(0)]
    common = {"batch_size": args.batch_size, "progress": False}
    methods = {
        "ScoreCAM": ScoreCAM(model, [layer], **common),
        f"SSCAM (n={args.samples})": SSCAM(model, [layer], num_samples=args.samples, **common),
        f"ISCAM (n={args.samples})": ISCAM(model, [layer], num_samples=args.samples, **common),
        f"GroupCAM (G={args.groups})": GroupCAM(model, [layer], groups=args.groups, **common),
    }
    channels = layer.conv2.out_channels
    seconds = _median_seconds(
        {name: (lambda cam=cam: cam(image, targets)) for name, cam in methods.items()}, args.repeats
    )
    base = seconds["ScoreCAM"]
    print(
        f"resnet18 (weights=None), input {size}x{size}, target layer with {channels} channels, "
        f"batch_size {args.batch_size}, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"{'method':<18} {'s / image':>10} {'x ScoreCAM':>11} {'per sample':>11}")
    for name, value in seconds.items():
        per_sample = value / base / args.samples if name.startswith(("SSCAM", "ISCAM")) else float("nan")
        print(f"{name:<18} {value:>10.3f} {value / base:>11.2f} {per_sample:>11.2f}")


if __name__ == "__main__":
    main()
