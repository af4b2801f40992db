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


def golden_layers(model: nn.Sequential, name: str) -> list[nn.Module]:
    """The golden model's layer sets by name (``one`` and ``two`` as in GOLDEN.md)."""
    return {
        "one": [model[6]],
        "two": [model[4], model[6]],
        "bn_relu": [model[3], model[4]],
        "two_same_channels": [model[5], model[6]],
    }[name]


#: The SESS entries of ``reference_extra.npz``: key → (layer set, explicit targets?, constructor keywords, with
#: ``base_method`` given by its class name). Made by tests/data/make_reference_extra.py, checked by
#: tests/test_reference_modules.py.
SESS_CASES: dict[str, tuple[str, bool, dict[str, object]]] = {
    "SESS/one/targets": ("one", True, {}),
    "SESS/one/argmax": ("one", False, {}),
    "SESS/two/targets": ("two", True, {}),
    "SESS/one/max_nosmooth": ("one", True, {"pool": "max", "smooth": False}),
    "SESS/one/raw_scores": ("one", True, {"use_softmax_scores": False}),
    "SESS/one/custom": (
        "one",
        True,
        {
            "scales": [16, 24, 30],
            "window_size": 16,
            "step_size": 6,
            "pre_filter_ratio": 0.5,
            "theta": 0.1,
            "batch_size": 5,
        },
    ),
    "SESS/one/few_scales": ("one", True, {"num_scales": 3, "scale_step_ratio": 0.5}),
    "SESS/one/gradcam++": ("one", True, {"base_method": "GradCAMPlusPlus"}),
}
