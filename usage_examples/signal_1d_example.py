"""Class activation maps of a 1-D signal model ``(B, C, L)`` (audio, ECG, sensors, spectra).

    python usage_examples/signal_1d_example.py --output signal_cam.png

The CAMs take images ``(B, C, H, W)``; a signal is an image one pixel high:

1. feed ``signal.unsqueeze(2)`` — ``(B, C, 1, L)`` — and wrap the model so it squeezes that axis back;
2. pass ``reshape_transform=lambda t: t.unsqueeze(2)`` so the 1-D target layer's ``(B, C', L')`` activations
   and gradients become ``(B, C', 1, L')``;
3. the result is ``(B, 1, L)``: one weight per sample, ``cam[:, 0]``.

The model is a small 1-D CNN trained for a few seconds to tell a burst on the left from one on the right.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from example_utils import seed
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


class SignalAsImage(nn.Module):
    """Lets a ``(B, C, L)`` model take the CAM's ``(B, C, 1, L)`` input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.squeeze(2))


def signal_reshape_transform(tensor: torch.Tensor) -> torch.Tensor:
    """``(B, C, L)`` activations → ``(B, C, 1, L)``."""
    return tensor.unsqueeze(2)


def make_signals(count: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise with a sine burst in the left (class 0) or right (class 1) half."""
    labels = torch.randint(0, 2, (count,))
    signals = 0.3 * torch.randn(count, 1, length)
    width = length // 8
    t = torch.arange(width, dtype=torch.float32)
    for i, label in enumerate(labels.tolist()):
        start = int(torch.randint(0, length // 2 - width, ()).item()) + label * (length // 2)
        signals[i, 0, start : start + width] += torch.sin(t * 0.8) * 1.5
    return signals, labels


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=256, help="samples per signal")
    parser.add_argument("--size", type=int, default=None, help="alias of --length (the tests' small-size flag)")
    parser.add_argument("--steps", type=int, default=150, help="training steps")
    parser.add_argument("--output", default="signal_cam.png")
    args = parser.parse_args()
    length = args.size or args.length
    seed()
    net = nn.Sequential(
        nn.Conv1d(1, 16, 7, padding=3),
        nn.ReLU(),
        nn.Conv1d(16, 32, 7, stride=2, padding=3),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(32, 2),
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(args.steps):
        signals, labels = make_signals(32, length)
        loss = nn.functional.cross_entropy(net(signals), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()

    signals, labels = make_signals(2, length)
    with GradCAM(SignalAsImage(net), [net[2]], reshape_transform=signal_reshape_transform) as cam:
        maps = cam(signals.unsqueeze(2), [ClassifierOutputTarget(int(label)) for label in labels])[:, 0]

    figure, axes = plt.subplots(len(signals), 1, figsize=(8, 2.2 * len(signals)), sharex=True)
    for axis, signal, cam_map, label in zip(axes, signals[:, 0], maps, labels.tolist()):
        axis.plot(signal.numpy(), color="black", linewidth=0.8)
        axis.imshow(
            cam_map[None],
            aspect="auto",
            cmap="jet",
            alpha=0.4,
            extent=(0, length, float(signal.min()), float(signal.max())),
        )
        axis.set_title(f"class {label} ({'left' if label == 0 else 'right'} burst), GradCAM", fontsize=9)
    figure.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
