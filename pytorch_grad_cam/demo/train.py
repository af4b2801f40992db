"""Train the demo models on generated scenes (seeded, CPU, a few minutes each).

Usage::

    python -m pytorch_grad_cam.demo.train [--model NAME] [--out PATH] [--epochs N] [--seed S] [--train-size N]
                                          [--heldout-size N] [--batch-size N] [--lr LR] [--threads N]

``--model`` is one of :data:`~pytorch_grad_cam.demo.model.DEMO_MODELS` (default ``cnn``, the demo CNN); each has
its recipe (:data:`RECIPES`), which the other options override. The training scenes are scenes
``0 … train_size - 1`` of the model's scenario with seed ``seed``: ``SceneDataset(train_size, seed)`` for the
classifiers of shapes, ``ShortcutTrainingScenes(train_size, seed)`` for ``shortcut_cnn`` (every third scene
without its marker). The held-out scenes, used only to report the accuracy, have the seed ``HELDOUT_SEED``,
which no training run may use. The weights (float16, with the held-out accuracy and the settings in their
metadata) go to ``--out``, by default the file the package ships (``pytorch_grad_cam/demo/weights/``).

Runs are deterministic: the same command on the same machine, torch and thread count writes the same weights.
Another CPU (its floating-point kernels: vector width, summation order) gives other weights from the same seed;
``--verify`` retrains a shipped model with the settings in its metadata and reports whether the weights are
bit-identical, and otherwise how far they and the held-out accuracy are (it passes within
:data:`ACCURACY_TOLERANCE` of the shipped accuracy).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.core.checks import check_positive_int
from pytorch_grad_cam.demo.model import DEMO_MODELS, DemoModel, check_model_name, save_demo_model
from pytorch_grad_cam.demo.scenarios import BenchmarkScenes, ShortcutTrainingScenes
from pytorch_grad_cam.demo.scenes import SceneDataset

#: Seed of the held-out scenes reported by the training script.
HELDOUT_SEED: int = 1_000_000
#: Seed of the held-out scenes of the test suite (never used for training either).
TEST_SEED: int = 2_000_000
_RESERVED_SEEDS = (HELDOUT_SEED, TEST_SEED)
#: How far (absolute) the held-out accuracy of a retrained model may be from the shipped one's when the weights
#: are not bit-identical (another CPU): the spread of the accuracy over machines and seeds.
ACCURACY_TOLERANCE: float = 0.015
#: Each model's training settings (``train``'s keyword arguments; the command-line options override them).
RECIPES: dict[str, dict[str, Any]] = {
    "cnn": {"epochs": 12, "train_size": 16_000, "lr": 3e-3, "weight_decay": 5e-4},
    "mlp_head_cnn": {"epochs": 12, "train_size": 16_000, "lr": 3e-3, "weight_decay": 5e-4},
    "vit": {"epochs": 30, "train_size": 16_000, "lr": 2e-3, "weight_decay": 0.05},
    "shortcut_cnn": {"epochs": 6, "train_size": 8_000, "lr": 3e-3, "weight_decay": 5e-4},
}


def build_model(name: str) -> DemoModel:
    """A freshly initialised (from torch's global generator) model of the architecture of ``name``."""
    return DEMO_MODELS[check_model_name(name)].build()


def scenes(name: str, n: int, seed: int) -> SceneDataset | BenchmarkScenes:
    """The ``n`` scenes of seed ``seed`` of the scenario model ``name`` is trained on."""
    scenario = DEMO_MODELS[check_model_name(name)].scenario
    return SceneDataset(n, seed) if scenario == "single" else ShortcutTrainingScenes(n, seed)


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random element of the dihedral group per batch (flips and quarter turns keep every class)."""
    turns = int(torch.randint(4, (1,), generator=generator))
    if turns:
        batch = torch.rot90(batch, turns, dims=(2, 3))
    if bool(torch.randint(2, (1,), generator=generator)):
        batch = batch.flip(3)
    return batch


@torch.inference_mode()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on normalised ``images`` ``(N, 3, H, W)``."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == labels[start : start + batch_size]).sum())
    return correct / max(1, len(images))


def _tensors(dataset: SceneDataset | BenchmarkScenes) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's normalised images ``(N, 3, H, W)`` and labels ``(N,)``, built one scene at a time."""
    images = torch.empty((len(dataset), 3, dataset.size, dataset.size))
    labels = torch.empty(len(dataset), dtype=torch.int64)
    for index in range(len(dataset)):
        images[index], labels[index], _ = dataset[index]
    return images, labels


def train(
    model_name: str = "cnn",
    out: Path | None = None,
    epochs: int | None = None,
    seed: int = 0,
    train_size: int | None = None,
    heldout_size: int = 2_000,
    batch_size: int = 64,
    lr: float | None = None,
    threads: int = 2,
    weight_decay: float | None = None,
) -> dict[str, float]:
    """Train a demo model, print progress, save it to ``out`` and return the final figures.

    Args:
        model_name: which model (:data:`~pytorch_grad_cam.demo.model.DEMO_MODELS`); ``None`` settings come from
            its recipe (:data:`RECIPES`).
        out: where to write the weights (default: the shipped file of ``model_name``).
        epochs: passes over the training scenes.
        seed: seeds the training scenes, the initialisation and the batch order.
        train_size: number of training scenes.
        heldout_size: number of held-out scenes for the reported accuracy.
        batch_size: scenes per optimisation step.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        threads: CPU threads for torch.
        weight_decay: AdamW's weight decay.

    Returns:
        ``{"heldout_accuracy", "train_accuracy", "wall_time_s", "parameters"}``.
    """
    spec = DEMO_MODELS[check_model_name(model_name)]
    recipe = RECIPES[model_name]
    out = spec.weights if out is None else Path(out)
    epochs = recipe["epochs"] if epochs is None else epochs
    train_size = recipe["train_size"] if train_size is None else train_size
    lr = recipe["lr"] if lr is None else lr
    weight_decay = recipe["weight_decay"] if weight_decay is None else weight_decay
    if seed in _RESERVED_SEEDS:
        raise ValueError(f"seed must not be one of the held-out seeds {_RESERVED_SEEDS}; got {seed}")
    for name, value in (
        ("epochs", epochs),
        ("train_size", train_size),
        ("heldout_size", heldout_size),
        ("batch_size", batch_size),
        ("threads", threads),
    ):
        check_positive_int(value, name)
    start = time.perf_counter()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    train_images, train_labels = _tensors(scenes(model_name, train_size, seed))
    heldout_images, heldout_labels = _tensors(scenes(model_name, heldout_size, HELDOUT_SEED))
    print(
        f"generated {train_size} training and {heldout_size} held-out scenes in {time.perf_counter() - start:.1f} s",
        flush=True,
    )

    model = build_model(model_name)
    parameters = sum(p.numel() for p in model.parameters())
    steps_per_epoch = (train_size + batch_size - 1) // batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )
    train_accuracy = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(train_size, generator=generator)
        total_loss, correct = 0.0, 0
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            images = _augment(train_images[index], generator)
            logits = model(images)
            loss = F.cross_entropy(logits, train_labels[index], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(index)
            correct += int((logits.argmax(dim=1) == train_labels[index]).sum())
        train_accuracy = correct / train_size
        heldout_accuracy = evaluate(model, heldout_images, heldout_labels)
        print(
            f"epoch {epoch:2d}/{epochs}  loss {total_loss / train_size:.4f}  train acc {train_accuracy:.4f}  "
            f"held-out acc {heldout_accuracy:.4f}  elapsed {time.perf_counter() - start:.1f} s",
            flush=True,
        )

    heldout_accuracy = evaluate(model, heldout_images, heldout_labels)
    wall_time = time.perf_counter() - start
    results = {
        "heldout_accuracy": heldout_accuracy,
        "train_accuracy": train_accuracy,
        "wall_time_s": round(wall_time, 1),
        "parameters": parameters,
    }
    settings: dict[str, Any] = {
        "heldout_seed": HELDOUT_SEED,
        "heldout_size": heldout_size,
        "seed": seed,
        "epochs": epochs,
        "train_size": train_size,
        "batch_size": batch_size,
        "lr": lr,
        "threads": threads,
    }
    if model_name != "cnn":  # the demo CNN's metadata keeps the keys of its first release
        settings = {"model": model_name, "scenario": spec.scenario, **settings, "weight_decay": weight_decay}
    save_demo_model(
        model.eval(),
        out,
        {
            **results,
            **settings,
            "torch": str(torch.__version__),
            "numpy": np.__version__,
            "machine": platform.machine(),
        },
        classes=spec.classes,
    )
    print(
        f"final held-out accuracy {heldout_accuracy:.4f} on {heldout_size} scenes; "
        f"wall time {wall_time:.1f} s; {parameters} parameters; weights written to {out} "
        f"({Path(out).stat().st_size / 1e6:.2f} MB)",
        flush=True,
    )
    return results


def verify(model_name: str, out: Path) -> dict[str, Any]:
    """Retrain the shipped model ``model_name`` into ``out`` with the settings of its metadata and compare.

    Returns:
        ``{"identical", "max_abs_difference", "shipped_accuracy", "retrained_accuracy", "passed"}``: whether every
        weight is bit-identical, the largest weight difference, the two held-out accuracies, and whether the
        retrained model passes (identical, or within :data:`ACCURACY_TOLERANCE`).
    """
    spec = DEMO_MODELS[check_model_name(model_name)]
    shipped = torch.load(spec.weights, map_location="cpu", weights_only=True)
    settings = shipped["metadata"]
    results = train(
        model_name,
        out,
        settings["epochs"],
        settings["seed"],
        settings["train_size"],
        settings["heldout_size"],
        settings["batch_size"],
        settings["lr"],
        settings["threads"],
        settings.get("weight_decay"),
    )
    retrained = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    identical = all(torch.equal(value, retrained[key]) for key, value in shipped["state_dict"].items())
    difference = max(
        float((value.float() - retrained[key].float()).abs().max()) if value.is_floating_point() else 0.0
        for key, value in shipped["state_dict"].items()
    )
    accuracy = float(settings["heldout_accuracy"])
    report = {
        "identical": identical,
        "max_abs_difference": difference,
        "shipped_accuracy": accuracy,
        "retrained_accuracy": results["heldout_accuracy"],
        "passed": identical or abs(results["heldout_accuracy"] - accuracy) <= ACCURACY_TOLERANCE,
    }
    print(
        f"{model_name}: weights {'bit-identical' if identical else f'differ (max |dw| = {difference:.3g})'}; held-out "
        f"accuracy shipped {accuracy:.4f}, retrained {results['heldout_accuracy']:.4f} -> "
        f"{'PASS' if report['passed'] else 'FAIL'}",
        flush=True,
    )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Train a pytorch_grad_cam demo model on generated scenes.")
    parser.add_argument("--model", choices=tuple(DEMO_MODELS), default="cnn", help="which model (default: cnn)")
    parser.add_argument("--out", type=Path, default=None, help="output weights file (default: the shipped one)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=None, help="default: the model's recipe")
    parser.add_argument("--heldout-size", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="default: the model's recipe")
    parser.add_argument("--weight-decay", type=float, default=None, help="default: the model's recipe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--verify",
        action="store_true",
        help="retrain the shipped --model with its recorded settings into --out (default: a temporary file) and "
        "compare with the shipped weights; exit 1 when it does not pass",
    )
    args = parser.parse_args(argv)
    if args.verify:
        with tempfile.TemporaryDirectory() as folder:
            report = verify(args.model, args.out or Path(folder) / "retrained.pt")
        raise SystemExit(0 if report["passed"] else 1)
    train(
        args.model,
        args.out,
        args.epochs,
        args.seed,
        args.train_size,
        args.heldout_size,
        args.batch_size,
        args.lr,
        args.threads,
        args.weight_decay,
    )


if __name__ == "__main__":
    main()
