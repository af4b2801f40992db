"""Dataset pipeline throughput: images per second, one process versus N processes under ``torchrun``.

The driver writes a folder of generated PNG images (coloured rectangles, 64×64, the demo model's input
size), then runs the pipeline (``pytorch_grad_cam.batch.explain_dataset``, GradCAM on the demo model's last
block, the ``complexity`` metric, float32 maps) twice, side by side in one invocation:

* one process using all ``--threads`` torch threads, and one process with one thread;
* ``torchrun --nproc_per_node=N`` (gloo), ``threads / N`` torch threads per rank;

each into a fresh output folder, interleaved, ``--repeats`` times (medians are compared). Every run is
timed inside the worker, from just before ``explain_dataset`` (process-group set-up included) to its
return on rank 0 after the merged index is written; interpreter start and imports are not counted. The
maps of the runs are checked to be equal.

The model is the shipped demo model when its weights are present, else (stated in the output) a DemoCNN
with random weights: the same architecture, hence the same cost.

    python benchmarks/bench_pipeline.py             # 1280 images, batch 32, 2 processes, 2 threads, 3 repeats
    python benchmarks/bench_pipeline.py --images 256 --nproc 2 --threads 2 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch


def make_images(folder: Path, count: int, size: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, size - size // 4, 2))
            colour = [int(c) for c in rng.integers(0, 256, 3)]
            cv2.rectangle(img, (x, y), (x + size // 4, y + size // 4), colour, -1)
        cv2.imwrite(str(folder / f"img_{i:05d}.png"), img)


def demo_model() -> tuple[torch.nn.Module, str]:
    from pytorch_grad_cam.demo import DemoCNN, load_demo_model

    try:
        return load_demo_model(), "shipped demo model"
    except (FileNotFoundError, RuntimeError, pickle.UnpicklingError) as error:
        torch.manual_seed(0)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
        return DemoCNN().eval(), f"DemoCNN with random weights (same architecture and cost; demo weights: {reason})"


def worker(args: argparse.Namespace) -> None:
    """One run (a single process, or one rank under torchrun); rank 0 writes its timing to ``args.result``."""
    from pytorch_grad_cam.batch import ImageFolderDataset, explain_dataset, map_metric
    from pytorch_grad_cam.demo.scenes import MEAN, SCENE_SIZE, STD
    from pytorch_grad_cam.metrics import Complexity

    torch.set_num_threads(args.threads_per_process)
    model, description = demo_model()
    dataset = ImageFolderDataset(args.images_dir, size=SCENE_SIZE, mean=MEAN, std=STD)
    start = time.perf_counter()
    run = explain_dataset(
        dataset,
        model,
        [model.features[-1]],
        args.output_dir,
        "gradcam",
        metrics={"complexity": map_metric(Complexity())},
        batch_size=args.batch,
        num_workers=1,
        progress=False,
    )
    seconds = time.perf_counter() - start
    if run.rank == 0:
        Path(args.result).write_text(
            json.dumps({"seconds": seconds, "images": len(dataset), "world_size": run.world_size, "model": description})
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all (split among the ranks)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--images-dir", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--threads-per-process", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from pytorch_grad_cam.batch import read_maps

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root / "images", args.images, 64)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        common = [__file__, "--worker", "--images-dir", str(root / "images"), "--batch", str(args.batch)]
        runs = {
            f"1 process, {args.threads} threads": [sys.executable, *common, "--threads-per-process", str(args.threads)],
            "1 process, 1 thread": [sys.executable, *common, "--threads-per-process", "1"],
            f"{args.nproc} processes": [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={args.nproc}",
                *common,
                "--threads-per-process",
                str(max(1, args.threads // args.nproc)),
            ],
        }
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for repeat in range(args.repeats):  # interleaved, so that a load change on the machine hits all alike
            for number, (name, command) in enumerate(runs.items()):
                out, result = root / f"out{number}_{repeat}", root / f"result{number}_{repeat}.json"
                subprocess.run(
                    [*command, "--output-dir", str(out), "--result", str(result)],
                    check=True,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=1200,
                )
                timing = json.loads(result.read_text())
                seconds[name].append(timing["seconds"])
        rates = {name: args.images / statistics.median(times) for name, times in seconds.items()}
        for name, rate in rates.items():
            runs_text = ", ".join(f"{t:.2f}" for t in seconds[name])
            print(f"{name:>22}: {rate:7.1f} images/s (median of {args.repeats}; seconds: {runs_text})")
        same = np.array_equal(read_maps(root / "out0_0"), read_maps(root / f"out{len(runs) - 1}_0"))
        print(f"model: {timing['model']}")
        print(
            f"GradCAM + complexity metric, {args.images} images 64x64, batch {args.batch}, {args.threads} torch "
            f"thread(s) in all, {os.cpu_count()} CPU core(s) visible; maps identical across runs: {same}"
        )
        names = list(rates)
        for baseline in names[:2]:
            print(f"ratio {names[2]} / {baseline}: {rates[names[2]] / rates[baseline]:.2f}x")


if __name__ == "__main__":
    main()
