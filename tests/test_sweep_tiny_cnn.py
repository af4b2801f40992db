"""Sweep on the tiny CNN: every registry method that applies to a CNN, on one layer and on two layers of
different resolutions, for batch {1, 2} × {explicit targets, targets=None}, with the model in training mode.

Every map must be float32 of the input's shape, finite, in [0, 1] and peak at 1 (or be all zeros where the
method allows it); the input must be untouched, no hook left and every module still in training mode.
tests/test_contract.py checks the contract on a batch of 2 at two layers of one resolution; this adds a batch
of 1, the range of the maps for ``targets=None``, the peak, and layers at 24×28 and 12×14 combined.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from conftest import golden_targets, hook_count

from pytorch_grad_cam.core import BaseCAM
from pytorch_grad_cam.methods import METHODS
from pytorch_grad_cam.zhou_cam import CAM

pytestmark = pytest.mark.usefixtures("one_thread")

#: Options that keep the methods running the model many times fast on the tiny model.
FAST: dict[str, dict[str, Any]] = {
    "scorecam": {"progress": False},
    "ablationcam": {"progress": False},
    "smoothgradcam++": {"num_samples": 2, "progress": False},
    "sscam": {"num_samples": 2, "std": 0.2, "progress": False},
    "iscam": {"num_samples": 2, "progress": False},
    "groupcam": {"groups": 4, "progress": False},
    "polycam": {"progress": False},
    "opticam": {"iterations": 3, "progress": False},
    "noisetunnel": {"num_samples": 2, "progress": False},
}
# Group-CAM's map is 0 when no group restores more of the score than the blurred image already has.
MAY_BE_ZERO = {"groupcam"}
# LeGrad needs target layers inside a transformer block (tests/test_legrad.py covers it). (A wrapper's ``needs``
# is its base method's, known only once built.)
NAMES = [name for name, cls in METHODS.items() if not (issubclass(cls, BaseCAM) and cls.needs.attention_maps)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("layers", ["one", "two"])
def test_sweep(tiny_cnn, golden_input, name, layers):
    cls = METHODS[name]
    if layers == "two" and cls is CAM:
        pytest.skip("CAM is defined on the layer feeding the global average pooling only")
    optional = issubclass(cls, BaseCAM) and cls.layers_optional
    if layers == "two" and optional:
        pytest.skip(f"{cls.__name__} ignores the target layers")
    tiny_cnn.train()
    target_layers = [tiny_cnn[6]] if layers == "one" else [tiny_cnn[1], tiny_cnn[6]]
    # built the way cam.py and the dataset pipeline build every method
    cam = cls(model=tiny_cnn, target_layers=[] if optional else target_layers, **FAST.get(name, {}))
    for batch in (1, 2):
        x = golden_input[:batch].clone()
        for targets in (golden_targets()[:batch], None):
            result = cam(x, targets)
            assert result.shape == (batch, 24, 28) and result.dtype == np.float32
            assert np.isfinite(result).all() and result.min() >= 0 and result.max() <= 1
            assert result.max() > 0.99 or (name in MAY_BE_ZERO and result.max() == 0)
            torch.testing.assert_close(x, golden_input[:batch])
            assert hook_count(tiny_cnn) == 0
            assert all(module.training for module in tiny_cnn.modules())
