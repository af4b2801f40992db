"""Every registry method on an accelerator: the maps equal to the CPU ones, no waits for the device inside the
per-channel / per-batch loops, and the time and peak memory of each method.

    python benchmarks/gpu_check.py                      # cuda (else mps): the check as the issue states it
    python benchmarks/gpu_check.py --device cpu --quick # the script itself, on a machine without a GPU

Three parts per model (torchvision ResNet-50, and a ViT: torchvision's ``VisionTransformer`` with ViT-S/16 blocks
(384 wide, 6 heads) six deep, so that the CPU side of the comparison stays within minutes; ``weights=None``,
seeded):

1. **Equal to the CPU.** Each method runs on the device and on the CPU on the same small batch (2 images at
   ``--compare-size``, the same weights), with TF32 off. A map passes when ``max |device - cpu| <= 1e-3`` (maps lie
   in [0, 1]); methods that draw random numbers (:data:`RANDOM_METHODS`) cannot be equal and are reported by the
   correlation of the two maps only.
2. **No host synchronisation in the loops.** Each method runs twice on the device under a ``TorchFunctionMode``
   that counts the calls that make the host wait for the device (``.item()``, ``.tolist()``, ``.cpu()``,
   ``.numpy()``, ``bool()`` / ``float()`` / ``int()`` of a tensor, ``nonzero``, ``unique``, boolean-mask indexing;
   on CUDA also ``torch.cuda.set_sync_debug_mode`` warnings): as given, with four times the perturbation passes
   (a quarter of the ``batch_size``), and with twice the images. A count that grows with the passes has a wait
   inside a per-channel / per-batch loop: the check fails. Growth with the images (a wait per image, e.g. to pick
   its target classes) is reported, not failed. A constant count (a check of the first pass, the numpy result)
   passes.
3. **Time and peak memory** at the full size (batch ``--batch`` at 224), warm (one untimed call first), median of
   ``--repeats`` calls with the device synchronised around each; peak memory above what the model and input hold.

The perturbation methods run with fewer samples than their defaults (:data:`METHOD_OPTIONS`) so that the whole
check takes minutes; the exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode

from pytorch_grad_cam.methods import METHODS

#: Methods whose maps come from random numbers (noise, random weights): compared by correlation only.
RANDOM_METHODS = frozenset({"randomcam", "sscam", "smoothgradcam++", "noisetunnel"})
#: Fewer samples / steps than the defaults, the same on the device and the CPU.
METHOD_OPTIONS: dict[str, dict[str, Any]] = {
    "sscam": {"num_samples": 2},
    "iscam": {"num_samples": 2},
    "smoothgradcam++": {"num_samples": 4},
    "noisetunnel": {"num_samples": 4},
    "opticam": {"iterations": 10},
    "sess": {"num_scales": 3},
}
#: Largest ``max |device - cpu|`` for a deterministic method's maps (which lie in [0, 1]).
TOLERANCE = 1e-3

_WAITING_CALLS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.nonzero,
    torch.Tensor.nonzero,
    torch.argwhere,
    torch.unique,
    torch.Tensor.unique,
    torch.masked_select,
    torch.Tensor.masked_select,
}


def _has_mask_index(args: tuple[Any, ...]) -> bool:
    index = args[1] if len(args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(item, torch.Tensor) and item.dtype == torch.bool for item in items)


def _to_host(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a ``.to(...)`` / ``.cpu()`` call copies a tensor from an accelerator to the host."""
    source = args[0] if args else None
    if not isinstance(source, torch.Tensor) or source.device.type == "cpu":
        return False
    if not args[1:] and "device" not in kwargs:  # .cpu(), or .to(dtype)
        return len(args) == 1 and not kwargs
    return any(str(value).startswith("cpu") for value in (*args[1:], *kwargs.values()))


class WaitCounter(TorchFunctionMode):
    """Counts the torch calls that make the host wait for the device, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        name = None
        if func in _WAITING_CALLS:
            name = getattr(func, "__name__", str(func))
        elif func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and _has_mask_index(args):
            name = "mask indexing"
        elif func in (torch.Tensor.to, torch.Tensor.cpu) and _to_host(args, kwargs or {}):
            name = "to host"
        if name is not None:
            self.counts[name] = self.counts.get(name, 0) + 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@contextlib.contextmanager
def counting_waits(device: torch.device) -> Iterator[WaitCounter]:
    """A :class:`WaitCounter`; on CUDA the driver's own synchronisation warnings are counted too (as ``cuda``)."""
    counter = WaitCounter()
    with warnings.catch_warnings(record=True) as caught, counter:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counter
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
    driver = sum("synchroniz" in str(warning.message) for warning in caught)
    if driver:
        counter.counts["cuda"] = driver


@dataclass
class Row:
    """One method on one model."""

    model: str
    method: str
    status: str = "ok"
    max_difference: float | None = None
    correlation: float | None = None
    waits: int | None = None
    waits_more_passes: int | None = None
    waits_more_images: int | None = None
    wait_names: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None
    peak_mib: float | None = None

    @property
    def failed(self) -> bool:
        equal = self.method in RANDOM_METHODS or self.max_difference is None or self.max_difference <= TOLERANCE
        passes = self.waits_more_passes
        no_loop_waits = self.waits is None or passes is None or passes <= self.waits
        return self.status != "ok" or not equal or not no_loop_waits


def build_models(quick: bool) -> dict[str, Callable[[], nn.Module]]:
    """Seeded constructors of the two models (small ones with ``quick``)."""

    def seeded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        def make() -> nn.Module:
            torch.manual_seed(0)
            return build().eval()

        return make

    if quick:
        return {
            "resnet18": seeded(lambda: torchvision.models.resnet18(weights=None)),
            "vit(tiny)": seeded(
                lambda: torchvision.models.VisionTransformer(
                    image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
                )
            ),
        }
    return {
        "resnet50": seeded(lambda: torchvision.models.resnet50(weights=None)),
        "vit_s16_6": seeded(
            lambda: torchvision.models.VisionTransformer(
                image_size=224, patch_size=16, num_layers=6, num_heads=6, hidden_dim=384, mlp_dim=1536
            )
        ),
    }


def make_cam(name: str, model: nn.Module, batch_size: int) -> Any:
    """The method with its automatic target layer and reshape, :data:`METHOD_OPTIONS`, no progress bar."""
    cam = METHODS[name](model=model, **METHOD_OPTIONS.get(name, {}))  # type: ignore[call-arg]
    if hasattr(cam, "batch_size"):
        cam.batch_size = batch_size
    if hasattr(cam, "progress"):
        cam.progress = False
    return cam


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _maps(name: str, model: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    torch.manual_seed(0)
    return np.asarray(make_cam(name, model, batch_size)(x))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    scale = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / scale) if scale > 0 else float("nan")


def check_method(
    name: str, models: tuple[nn.Module, nn.Module], inputs: dict[str, torch.Tensor], args: argparse.Namespace, row: Row
) -> None:
    """Fill ``row``: equality with the CPU, waits in the loops, time and memory."""
    on_cpu, on_device = models
    device = torch.device(args.device)
    small = inputs["small"]
    expected = _maps(name, on_cpu, small, args.batch_size)
    got = _maps(name, on_device, small.to(device), args.batch_size)
    row.max_difference = float(np.abs(got - expected).max())
    row.correlation = _correlation(got, expected)

    with counting_waits(device) as counter:
        _maps(name, on_device, small.to(device), args.batch_size)
    row.waits, row.wait_names = counter.total, dict(counter.counts)
    with counting_waits(device) as counter:
        _maps(name, on_device, small.to(device), max(1, args.batch_size // 4))
    row.waits_more_passes = counter.total
    with counting_waits(device) as counter:
        _maps(name, on_device, torch.cat([small, small]).to(device), args.batch_size)
    row.waits_more_images = counter.total

    full = inputs["full"].to(device)
    cam = make_cam(name, on_device, args.batch_size)
    cam(full)  # warm-up
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    for _ in range(args.repeats):
        _synchronize(device)
        start = time.perf_counter()
        cam(full)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    row.seconds = statistics.median(times)
    if device.type == "cuda":
        row.peak_mib = (torch.cuda.max_memory_allocated(device) - base) / 2**20


def format_table(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| model | method | status | max abs diff vs CPU | corr | waits / call | with 4x passes | with 2x images | "
        "s / call | peak MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def number(value: float | int | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in rows:
        status = "FAIL" if row.failed and row.status == "ok" else row.status
        names = ", ".join(f"{key} {value}" for key, value in row.wait_names.items())
        waits = number(row.waits, "d") + (f" ({names})" if names else "")
        lines.append(
            f"| {row.model} | {row.method} | {status} | {number(row.max_difference, '.2e')} | "
            f"{number(row.correlation, '.4f')} | {waits} | {number(row.waits_more_passes, 'd')} | "
            f"{number(row.waits_more_images, 'd')} | "
            f"{number(row.seconds, '.3f')} | {number(row.peak_mib, '.0f')} |"
        )
    return "\n".join(lines)


def default_device() -> str | None:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: cuda, else mps)")
    parser.add_argument("--quick", action="store_true", help="resnet18 and a tiny ViT at 32 px: checks the script")
    parser.add_argument("--methods", default=None, help="comma-separated registry names (default: all)")
    parser.add_argument("--batch", type=int, default=None, help="images in the timed batch (8; 2 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64, help="perturbation methods' inputs per pass")
    parser.add_argument("--compare-size", type=int, default=64, help="input side of the equality / wait checks")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    args.device = args.device or default_device()
    args.batch = args.batch or (2 if args.quick else 8)
    if args.device is None:
        print("no CUDA or MPS device here; run with --device cpu --quick to check the script itself", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    size = 32 if args.quick else 224
    compare = 32 if args.quick else args.compare_size
    names = args.methods.split(",") if args.methods else list(METHODS)
    print(f"torch {torch.__version__}, device {device}", end="")
    if device.type == "cuda":
        print(f" ({torch.cuda.get_device_name(device)})", end="")
    print(f"; CPU threads {torch.get_num_threads()}; timed batch {args.batch} at {size}; compared at {compare}")
    rows: list[Row] = []
    for model_name, build in build_models(args.quick).items():
        vit = "vit" in model_name
        torch.manual_seed(1)
        inputs = {"small": torch.randn(2, 3, compare if not vit else size, compare if not vit else size)}
        inputs["full"] = torch.randn(args.batch, 3, size, size)
        models = (build(), build().to(device))
        for name in names:
            row = Row(model_name, name)
            rows.append(row)
            try:
                check_method(name, models, inputs, args, row)
            except (ValueError, TypeError, RuntimeError, NotImplementedError) as error:
                first = str(error).splitlines()[0] if str(error) else type(error).__name__
                row.status = f"n/a: {type(error).__name__}: {first[:90]}"
            print(format_table([row]).splitlines()[-1], flush=True)
    print()
    print(format_table(rows))
    checked = [row for row in rows if row.status == "ok"]
    failed = [row for row in checked if row.failed]
    print(
        f"\n{len(checked)} method x model checked, {len(rows) - len(checked)} not applicable, {len(failed)} failed "
        f"(tolerance {TOLERANCE}; random methods {', '.join(sorted(RANDOM_METHODS))} by correlation only)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
