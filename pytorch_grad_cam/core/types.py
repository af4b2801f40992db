"""Type aliases of the public signatures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.core.targets import Target

#: The layers a CAM explains: a list (or tuple, ``nn.ModuleList``) of submodules of the model.
Layers = Sequence[nn.Module]
#: Turns a layer's output (e.g. ViT tokens ``(B, N, C)``) into a ``(B, C, h, w)`` map.
ReshapeTransform = Callable[[Any], torch.Tensor]
#: A model, or ``None`` where a wrapper is given a CAM object instead.
OptionalModel = nn.Module | None
#: A reshape transform, or ``None`` for layers whose output is already a map.
Reshape = ReshapeTransform | None
#: The targets of one call: one per image, or ``None`` for the method's default (each image's top class).
Targets = Sequence[Target] | None
#: Maps ``(B, H, W)`` as a numpy array or a tensor (a metric's ``cams``).
Maps = np.ndarray | torch.Tensor
