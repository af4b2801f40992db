"""Type aliases of the public signatures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core.targets import Target

#: The layers a CAM explains: a list (or tuple, ``nn.ModuleList``) of submodules of the model.
TargetLayers = Sequence[nn.Module]
#: Turns a layer's output (e.g. ViT tokens ``(B, N, C)``) into a ``(B, C, h, w)`` map.
ReshapeTransform = Callable[[Any], torch.Tensor]
#: A reshape transform, or ``None`` for layers whose output is already a map.
Reshape = ReshapeTransform | None
#: The targets of one call: one per image, or ``None`` for the method's default (each image's top class).
Targets = list[Target] | None
