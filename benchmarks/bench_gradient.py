"""GradCAM call time versus one plain forward + backward of the model, measured side by side.

The baseline is what a training step of the model costs without the optimizer: ``model(x)``, the sum of the
explained logits, ``.backward()`` (parameter gradients included). The GradCAM call is
``GradCAM(model, [model.layer4[-1]])(x, targets)``: a forward with hooks, one ``torch.autograd.grad`` to the
target layer, the maps, scaling and resizing, and the copy to numpy. Both are repeated in interleaved order
(baseline, cam, cam, baseline, ...) after a warm-up, and the medians are compared; the goal is a ratio
≤ 1.15. Forward-only time (no grad) is printed too, for context.

    python benchmarks/bench_gradient.py                      # resnet50, batch 8, 224x224, 5 repeats
    python benchmarks/bench_gradient.py --batch 2 --size 128 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def forward_backward(model: torch.nn.Module, x: torch.Tensor, categories: list[int]) -> None:
    for parameter in model.parameters():
        parameter.grad = None
    out = model(x)
    out[torch.arange(len(categories)), categories].sum().backward()


def forward_only(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", help="torchvision model with a layer4 (resnets)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions of each, after a warm-up")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    categories = [(7 * i) % 1000 for i in range(args.batch)]
    targets = [ClassifierOutputTarget(c) for c in categories]
    cam = GradCAM(model, [model.layer4[-1]])

    # warm-up (allocator, kernels)
    forward_backward(model, x, categories)
    cam(x, targets)
    forward_only(model, x)

    baseline, ours, inference = [], [], []
    for repeat in range(args.repeats):
        order = ("base", "cam") if repeat % 2 == 0 else ("cam", "base")
        for which in order:
            if which == "base":
                baseline.append(timed(forward_backward, model, x, categories))
            else:
                ours.append(timed(cam, x, targets))
        inference.append(timed(forward_only, model, x))
    for parameter in model.parameters():
        parameter.grad = None

    base_median, cam_median, fwd_median = (statistics.median(t) for t in (baseline, ours, inference))
    pair_ratios = [c / b for c, b in zip(ours, baseline)]
    print(
        f"{args.model} batch {args.batch} at {args.size}x{args.size}, CPU, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, {args.repeats} interleaved repeats"
    )
    print(f"  forward+backward (baseline) median {base_median * 1e3:9.1f} ms   runs {_ms(baseline)}")
    print(f"  GradCAM call                median {cam_median * 1e3:9.1f} ms   runs {_ms(ours)}")
    print(f"  forward only (no grad)      median {fwd_median * 1e3:9.1f} ms   runs {_ms(inference)}")
    print(
        f"  ratio GradCAM / forward+backward = {cam_median / base_median:.3f} (goal <= 1.15); "
        f"median of paired ratios {statistics.median(pair_ratios):.3f}"
    )
    print(f"  ratio GradCAM / forward only     = {cam_median / fwd_median:.3f}")


def _ms(times: list[float]) -> str:
    return " ".join(f"{t * 1e3:.0f}" for t in times)


if __name__ == "__main__":
    main()
