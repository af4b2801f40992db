"""The golden tiny CNN of tests/data/GOLDEN.md: shared by the tests (through conftest) and by
tests/data/make_reference_extra.py, which runs with the reference release instead of this project (so this
module needs nothing but torch)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

DATA = Path(__file__).parent / "data"


def build_tiny_cnn() -> nn.Sequential:
    """The golden model (tests/data/GOLDEN.md), weights loaded, in eval mode."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 5),
    )
    model.load_state_dict(torch.load(DATA / "tiny_cnn.pt", weights_only=True))
    return model.eval()
