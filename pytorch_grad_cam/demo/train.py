"""Train the demo CNN on generated scenes (seeded, CPU, a few minutes).

Usage::

    python -m pytorch_grad_cam.demo.train [--out PATH] [--epochs N] [--seed S] [--train-size N]
                                          [--heldout-size N] [--batch-size N] [--lr LR] [--threads N]

The training scenes are ``SceneDataset(train_size, seed)``; the held-out scenes, used only to report the
accuracy, are ``SceneDataset(heldout_size, HELDOUT_SEED)``, a seed no training run may use. The weights
(float16, with the held-out accuracy and the settings in their metadata) go to ``--out``, by default the
file the package ships (``pytorch_grad_cam/demo/weights/demo_cnn.pt``).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.core.checks import check_positive_int
from pytorch_grad_cam.demo.model import DEMO_WEIGHTS, DemoCNN, save_demo_model
from pytorch_grad_cam.demo.scenes import SceneDataset, normalize

#: Seed of the held-out scenes reported by the training script.
HELDOUT_SEED: int = 1_000_000
#: Seed of the held-out scenes of the test suite (never used for training either).
TEST_SEED: int = 2_000_000
_RESERVED_SEEDS = (HELDOUT_SEED, TEST_SEED)


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


def _tensors(dataset: SceneDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's normalised images ``(N, 3, H, W)`` and labels ``(N,)``, built one scene at a time."""
    images = torch.empty((len(dataset), 3, dataset.size, dataset.size))
    labels = torch.empty(len(dataset), dtype=torch.int64)
    for index in range(len(dataset)):
        image, labels[index], _ = dataset.scene(index)
        images[index] = normalize(image)
    return images, labels


def train(
    out: Path = DEMO_WEIGHTS,
    epochs: int = 12,
    seed: int = 0,
    train_size: int = 16_000,
    heldout_size: int = 2_000,
    batch_size: int = 64,
    lr: float = 3e-3,
    threads: int = 2,
) -> dict[str, float]:
    """Train the demo CNN, print progress, save it to ``out`` and return the final figures.

    Args:
        out: where to write the weights.
        epochs: passes over the training scenes.
        seed: seeds the training scenes, the initialisation and the batch order.
        train_size: number of training scenes.
        heldout_size: number of held-out scenes for the reported accuracy.
        batch_size: scenes per optimisation step.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        threads: CPU threads for torch.

    Returns:
        ``{"heldout_accuracy", "train_accuracy", "wall_time_s", "parameters"}``.
    """
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

    train_images, train_labels = _tensors(SceneDataset(train_size, seed))
    heldout_images, heldout_labels = _tensors(SceneDataset(heldout_size, HELDOUT_SEED))
    print(
        f"generated {train_size} training and {heldout_size} held-out scenes in {time.perf_counter() - start:.1f} s",
        flush=True,
    )

    model = DemoCNN()
    parameters = sum(p.numel() for p in model.parameters())
    steps_per_epoch = (train_size + batch_size - 1) // batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
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
    save_demo_model(
        model.eval(),
        out,
        {
            **results,
            "heldout_seed": HELDOUT_SEED,
            "heldout_size": heldout_size,
            "seed": seed,
            "epochs": epochs,
            "train_size": train_size,
            "batch_size": batch_size,
            "lr": lr,
            "threads": threads,
            "torch": str(torch.__version__),
            "numpy": np.__version__,
            "machine": platform.machine(),
        },
    )
    print(
        f"final held-out accuracy {heldout_accuracy:.4f} on {heldout_size} scenes; "
        f"wall time {wall_time:.1f} s; {parameters} parameters; weights written to {out} "
        f"({Path(out).stat().st_size / 1e6:.2f} MB)",
        flush=True,
    )
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Train the pytorch_grad_cam demo CNN on generated scenes.")
    parser.add_argument("--out", type=Path, default=DEMO_WEIGHTS, help="output weights file")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=16_000)
    parser.add_argument("--heldout-size", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    train(args.out, args.epochs, args.seed, args.train_size, args.heldout_size, args.batch_size, args.lr, args.threads)


if __name__ == "__main__":
    main()
