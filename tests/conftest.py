"""Shared fixtures: the golden tiny CNN, its input and the reference release's expected outputs."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from golden_model import DATA, build_tiny_cnn
from torch import nn

__all__ = ["DATA", "build_tiny_cnn"]


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module (``benchmarks`` is not a package)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the module runs
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def golden_targets() -> list:
    """The golden files' explicit targets (tests/data/GOLDEN.md): classes 1 and 3 for the two images."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


def hook_count(model: nn.Module) -> int:
    """Number of forward / backward / pre-forward hooks left on any module of ``model``."""
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


@pytest.fixture
def tiny_cnn() -> nn.Sequential:
    return build_tiny_cnn()


@pytest.fixture
def golden_input() -> torch.Tensor:
    return torch.load(DATA / "input.pt", weights_only=True)


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(DATA / "expected.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny-tensor tests (threads only add overhead there, and stall on a
    shared CPU). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1)
    np.random.seed(1)
