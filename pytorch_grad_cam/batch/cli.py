"""``grad-cam-dataset``: explain every image of a folder, resumably, on one process or under ``torchrun``.

::

    grad-cam-dataset IMAGES/ --output-dir out --model resnet50 --method gradcam --metric road
    torchrun --nproc_per_node=2 -m pytorch_grad_cam.batch IMAGES/ --output-dir out --model demo

Files are taken in sorted order of their relative paths; each is decoded as RGB, resized to the model's
input size and normalised (ImageNet statistics). The results go to ``out/shards/*.npz`` and ``out/index.csv``
(see ``docs/dataset_pipeline.md``); running the same command again resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.batch import storage
from pytorch_grad_cam.batch.folder import FINGERPRINTS, IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset
from pytorch_grad_cam.batch.pipeline import explain_dataset, map_metric
from pytorch_grad_cam.cli import CLIError, default_target_layers, load_torchvision_model, report_error
from pytorch_grad_cam.methods import METHOD_NAMES, get_method


def _metric_factories() -> dict[str, Callable[[], Any]]:
    from pytorch_grad_cam.metrics import (
        Complexity,
        DeletionAUC,
        DropInConfidence,
        IncreaseInConfidence,
        InsertionAUC,
        ROADCombined,
    )
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange

    return {
        "road": lambda: ROADCombined(percentiles=[20, 40, 60, 80]),
        "cam_mult_image": CamMultImageConfidenceChange,
        "drop_in_confidence": DropInConfidence,
        "increase_in_confidence": IncreaseInConfidence,
        "deletion": DeletionAUC,
        "insertion": InsertionAUC,
        "complexity": lambda: map_metric(Complexity()),
    }


#: The ``--metric`` names.
METRIC_NAMES: tuple[str, ...] = (
    "road",
    "cam_mult_image",
    "drop_in_confidence",
    "increase_in_confidence",
    "deletion",
    "insertion",
    "complexity",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grad-cam-dataset",
        description="Explain every image of a folder with a CAM method; one .npz shard per batch and an index. "
        "Run under torchrun for several processes; run again to resume.",
    )
    parser.add_argument("image_dir", help="folder of images (searched recursively, sorted by relative path)")
    parser.add_argument("--output-dir", required=True, help="where the shards, manifest and index.csv go")
    parser.add_argument(
        "--model",
        default="resnet50",
        help="torchvision model name, or 'demo' for the project's offline model (default: resnet50)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="state_dict file instead of the torchvision weights (for demo: a demo weights file)",
    )
    parser.add_argument("--method", default="gradcam", help=f"CAM method, one of: {', '.join(METHOD_NAMES)}")
    parser.add_argument(
        "--target-layer",
        action="append",
        default=None,
        help="dotted path of a target layer, e.g. layer4.2 (repeatable; default: per model family)",
    )
    parser.add_argument("--target", type=int, default=None, help="class index to explain (default: the top class)")
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        choices=METRIC_NAMES,
        help="metric computed per image and written to the index (repeatable)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch and per shard (default: 32)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader decoding workers (default: 2)")
    parser.add_argument("--image-size", type=int, default=None, help="input side (default: the model's)")
    parser.add_argument(
        "--map-dtype",
        choices=("float32", "float16"),
        default="float32",
        help="dtype of the stored maps (default: float32, exact)",
    )
    parser.add_argument("--aug-smooth", action="store_true", help="test-time augmentation smoothing")
    parser.add_argument("--eigen-smooth", action="store_true", help="first principal component smoothing")
    parser.add_argument(
        "--device", default=None, help="torch device (default: cpu; under torchrun with GPUs, cuda:LOCAL_RANK)"
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="torch intra-op threads per process (torchrun sets OMP_NUM_THREADS=1)",
    )
    parser.add_argument(
        "--fingerprint",
        choices=FINGERPRINTS,
        default="stat",
        help="how a resumed run tells that an image file changed: its size and modification time (stat, default) "
        "or a hash of its bytes (sha256, reads every file again)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parts, per shard (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--fail-after-shards", type=int, default=None, help=argparse.SUPPRESS)  # test hook
    return parser


def _load_model(
    args: argparse.Namespace,
) -> tuple[nn.Module, list[nn.Module], Any, int, Sequence[float], Sequence[float]]:
    from pytorch_grad_cam.utils.find_layers import get_layer_by_name

    if args.model == "demo":
        from pytorch_grad_cam.demo import demo_target_layers, load_demo_model
        from pytorch_grad_cam.demo.scenes import MEAN, SCENE_SIZE, STD

        model: nn.Module
        try:
            model = load_demo_model(path=args.weights)
        except (FileNotFoundError, ValueError) as error:
            raise CLIError(f"{'--weights' if args.weights else '--model demo'}: {error}") from None
        layers, reshape, size, mean, std = demo_target_layers(model), None, SCENE_SIZE, MEAN, STD
    else:
        loaded = load_torchvision_model(args.model, args.weights)
        model, size = loaded.model, loaded.size
        layers, reshape = default_target_layers(args.model, model)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    if args.target_layer:
        try:
            layers = [get_layer_by_name(model, path) for path in args.target_layer]
        except ValueError as error:
            raise CLIError(f"--target-layer: {error}") from None
    return model, layers, reshape, args.image_size or size, mean, std


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``grad-cam-dataset`` / ``python -m pytorch_grad_cam.batch``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        get_method(args.method)
        for name, value, low in (
            ("--batch-size", args.batch_size, 1),
            ("--num-workers", args.num_workers, 0),
            ("--num-threads", args.num_threads, 1),
            ("--image-size", args.image_size, 1),
        ):
            if value is not None and value < low:
                raise CLIError(f"{name} must be at least {low}; got {value}")
        if not os.path.isdir(args.image_dir):
            raise CLIError(f"image_dir must be a folder of images; got {args.image_dir!r}")
        if int(os.environ.get("RANK", "0")) == 0:  # before loading the model; rank 0 creates the folder
            storage.prepare_output_dir(Path(args.output_dir), "--output-dir")
        if args.num_threads is not None:
            torch.set_num_threads(args.num_threads)
        model, layers, reshape, size, mean, std = _load_model(args)
        dataset = ImageFolderDataset(args.image_dir, size=size, mean=mean, std=std, fingerprint=args.fingerprint)
        factories = _metric_factories()
        metrics = {name: factories[name]() for name in dict.fromkeys(args.metric)}
        run = explain_dataset(
            dataset,
            model,
            layers,
            args.output_dir,
            args.method,
            reshape_transform=reshape,
            settings={"model": args.model},
            target=args.target,
            metrics=metrics,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            map_dtype=args.map_dtype,
            aug_smooth=args.aug_smooth,
            eigen_smooth=args.eigen_smooth,
            seed=args.seed,
            device=args.device,
            progress=not args.no_progress,
            fail_after_shards=args.fail_after_shards,
        )
        if run.rank == 0:
            print(os.fspath(run.index_path))
        return 0
    except (
        CLIError,
        ValueError,
        storage.OutputDirInUse,
        OSError,
    ) as error:  # OSError: a full disk, saying what was kept
        return report_error("grad-cam-dataset", error)
