"""Choosing a target layer, and the reshape of its output, from what one forward pass records.

When a CAM is built without ``target_layers``, its first call runs the model once on the call's input with a
hook on every module (:func:`~pytorch_grad_cam.core.recording.probe_module_outputs`) and reads each module's
output shape. Each output is classified by its *layout*, using the input's size ``H × W``:

* ``NCHW`` — ``(B, C, h, w)``, the grid ``h × w`` a downscaled input (one stride ``s`` with ``h ≈ H / s``,
  ``w ≈ W / s``); used as it is;
* ``NHWC`` — ``(B, h, w, C)``, the channels-last stages of torchvision ``swin_t``, timm Swin, MambaOut,
  MetaFormer; permuted to ``(B, C, h, w)``;
* ``tokens`` — ``(B, N, C)``: ``k`` leading extra tokens (class, distillation, registers; ``k ≤``
  :data:`MAX_EXTRA_TOKENS`) and an ``h × w`` patch grid with ``h = H / p``, ``w = W / p`` for a patch size
  ``p`` (see :func:`solve_token_grid`); the extra tokens are dropped and the patches laid on their grid.

A map needs ``h, w > 1``. The choice (:func:`choose_target_layer`):

1. the *last feature map*: the last module (in the order in which modules finish) that ran once and outputs a
   map, leaving out leaves that compute no features of their own: pooling, normalisation layers (a model's
   final norm) and parameter-free leaves other than activations (identity, dropout, flatten, permutes);
2. for a token map, the input of the last attention instead: the last normalisation layer that finished before
   the last attention module (``nn.MultiheadAttention``, or a module whose type name says attention) started —
   ``blocks[-1].norm1`` (timm), ``encoder.layers[-1].ln_1`` (torchvision), ``layernorm_before`` (Hugging
   Face). After that attention only the class token reaches a class-token classifier, so later layers get no
   gradient on the patches;
3. otherwise, among the modules that hand on the very same tensor (a block, its stage, the whole feature
   extractor), the innermost one that has submodules: ``layer4.1`` (ResNet), ``features`` (VGG, DenseNet),
   ``features.8`` (EfficientNet), ``features.7.1`` (torchvision Swin), ``stages.3.blocks.2`` (timm ConvNeXt);
   the map's own module when none does (the last ``ReLU`` of a flat ``nn.Sequential`` CNN).

:func:`list_layers` lists every module with its output shape and layout, marking the choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.core.checks import describe
from pytorch_grad_cam.core.outputs import tensors_in
from pytorch_grad_cam.core.recording import ModuleRun, is_attention, probe_module_outputs

#: The most leading extra tokens a token sequence may have: a class token and up to 16 register tokens.
MAX_EXTRA_TOKENS = 17

NCHW = "NCHW"
NHWC = "NHWC"
TOKENS = "tokens"


class AmbiguousGridError(ValueError):
    """A token sequence fits several patch grids of the input."""


# ------------------------------------------------------------------------------------------- token grids
@dataclass(frozen=True)
class TokenGrid:
    """A patch grid of a token sequence: ``extra`` leading tokens, then ``height × width`` patches of
    ``patch`` pixels (the patch size that gives this grid from the input's size)."""

    height: int
    width: int
    extra: int
    patch: int
    exact: bool

    def describe(self) -> str:
        extra = f"{self.extra} extra token{'s' if self.extra != 1 else ''}"
        return f"{extra} + {self.height}×{self.width} grid (patch {self.patch})"


def _token_grid_candidates(tokens: int, size: Sequence[int], max_extra: int) -> list[TokenGrid]:
    """Every grid ``h × w`` with ``h = H / p`` and ``w = W / p`` (exact, rounded down or up) for an integer
    patch size ``p``, ``h, w > 1`` and ``0 ≤ N - h·w ≤ max_extra``; one per grid, exact tilings first."""
    height, width = int(size[0]), int(size[1])
    found: dict[tuple[int, int], TokenGrid] = {}
    for patch in range(1, max(height, width) + 1):
        exact = height % patch == 0 and width % patch == 0
        for h, w in {(height // patch, width // patch), (-(-height // patch), -(-width // patch))}:
            if h < min(2, height) or w < min(2, width):
                continue
            extra = tokens - h * w
            if 0 <= extra <= max_extra:
                known = found.get((h, w))
                if known is None or (exact and not known.exact):
                    found[(h, w)] = TokenGrid(h, w, extra, patch, exact and (h, w) == (height // patch, width // patch))
    grids = list(found.values())
    return sorted(grids, key=lambda grid: (not grid.exact, grid.patch))


def solve_token_grid(
    tokens: int,
    size: Sequence[int],
    evidence: Sequence[tuple[int, int]] = (),
    max_extra: int = MAX_EXTRA_TOKENS,
    what: str = "the layer",
    extra_evidence: Sequence[int] = (),
) -> TokenGrid | None:
    """The patch grid of ``tokens`` tokens for an input of spatial size ``size = (H, W)``.

    The candidates are the grids ``h = H / p``, ``w = W / p`` of the integer patch sizes ``p`` with
    ``h·w = N - k`` for ``0 ≤ k ≤ max_extra`` leading extra tokens (and ``h, w > 1``). Grids that tile the input
    exactly (``p`` divides ``H`` and ``W``) come first: when there is one, it is the answer; with none, the
    rounded ones (a patch embedding that drops or pads the border) are considered the same way. When several
    grids remain, ``evidence`` decides: the grids of the feature maps recorded before the layer, most recent
    first (the patch embedding's output); the first of them that is a candidate is the answer. Failing that,
    ``extra_evidence`` (the numbers of extra tokens of the token layers before, most recent first: a model keeps its
    extra tokens from block to block) decides when exactly one candidate has the most recent count.

    Returns:
        The grid, or ``None`` when no grid fits.

    Raises:
        AmbiguousGridError: several grids fit and the evidence does not single one out.
    """
    candidates = _token_grid_candidates(tokens, size, max_extra)
    for group in ([g for g in candidates if g.exact], [g for g in candidates if not g.exact]):
        if len(group) == 1:
            return group[0]
        if len(group) > 1:
            by_grid = {(g.height, g.width): g for g in group}
            for grid in evidence:
                if (grid[0], grid[1]) in by_grid:
                    return by_grid[(grid[0], grid[1])]
            same_extra = [g for g in group if extra_evidence and g.extra == extra_evidence[0]]
            if len(same_extra) == 1:
                return same_extra[0]
            options = "; ".join(g.describe() for g in group)
            raise AmbiguousGridError(
                f"the {tokens} tokens of {what} fit several patch grids of the {size[0]}×{size[1]} input ({options}), "
                "so the number of extra tokens is not known; pass target_layers and "
                "reshape_transform=lambda t: vit_reshape_transform(t, height=..., width=...) (the patch grid's "
                "size, e.g. input height / patch size)"
            )
    return None


def token_grid_for_size(tokens: int, extra: int, patch: int, size: Sequence[int]) -> tuple[int, int] | None:
    """The ``(h, w)`` grid of ``tokens`` tokens with ``extra`` extra tokens and patches of ``patch`` pixels for an
    input of spatial size ``size``: ``h = H / p``, ``w = W / p`` (exact, rounded down or up); ``None`` if none or
    several fit."""
    height, width = int(size[0]), int(size[1])
    grids = {
        (h, w)
        for h in {height // patch, -(-height // patch)}
        for w in {width // patch, -(-width // patch)}
        if h * w + extra == tokens
    }
    return grids.pop() if len(grids) == 1 else None


# ------------------------------------------------------------------------------------ automatic reshapes
class ChannelsLastReshape:
    """``(B, h, w, C)`` channels-last maps → ``(B, C, h, w)`` (the automatic reshape of an ``NHWC`` layer)."""

    layout = NHWC
    #: The channel axis of the layer's raw output.
    channel_axis = -1

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 4:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"the channels-last reshape expects a (B, h, w, C) tensor; got {got}")
        return tensor.permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        return "channels-last (B, h, w, C) → (B, C, h, w)"


class TokenGridReshape:
    """``(B, N, C)`` tokens → ``(B, C, h, w)``: the first ``extra`` tokens dropped, the rest laid on the patch
    grid of the current input (the automatic reshape of a ``tokens`` layer).

    The grid is ``h = H / patch``, ``w = W / patch`` of the input being explained (:attr:`input_size`, which the
    CAM sets before every forward pass), so the same CAM works at any input size of a dynamic-size ViT. The
    result equals ``vit_reshape_transform(t, height=h, width=w)``.
    """

    layout = TOKENS
    #: The channel axis of the layer's raw output.
    channel_axis = -1

    def __init__(self, grid: TokenGrid, input_size: Sequence[int]) -> None:
        self.grid = grid
        self.probe_size = tuple(int(side) for side in input_size)
        #: The spatial size of the input being explained.
        self.input_size = self.probe_size

    @property
    def extra(self) -> int:
        return self.grid.extra

    def grid_size(self, tokens: int) -> tuple[int, int]:
        """``(h, w)`` for a sequence of ``tokens`` tokens at the current :attr:`input_size`."""
        if self.input_size == self.probe_size and tokens == self.grid.extra + self.grid.height * self.grid.width:
            return self.grid.height, self.grid.width
        found = token_grid_for_size(tokens, self.grid.extra, self.grid.patch, self.input_size)
        if found is None:
            raise ValueError(
                f"{tokens} tokens do not form the {self.grid.patch}-pixel patch grid (plus {self.grid.extra} extra "
                f"tokens) of a {self.input_size[0]}×{self.input_size[1]} input; pass "
                "reshape_transform=lambda t: vit_reshape_transform(t, height=..., width=...)"
            )
        return found

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 3:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"the token-grid reshape expects tokens of shape (B, N, C); got {got}")
        height, width = self.grid_size(tensor.shape[1])
        patches = tensor[:, self.grid.extra :, :]
        return patches.reshape(tensor.shape[0], height, width, tensor.shape[2]).permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        return f"tokens → grid ({self.grid.describe()} at {self.probe_size[0]}×{self.probe_size[1]})"


def channel_axis_of(reshape_transform: Any, raw: Any, channels: int) -> int | None:
    """The axis of a layer's raw output ``raw`` that ``reshape_transform`` turns into the channel axis of its
    ``(B, C, *spatial)`` result (``channels`` long): 1 without a transform, the transform's own
    ``channel_axis`` when it declares one, else found by passing each axis's coordinates through the transform.
    ``None`` when it cannot be told (a non-tensor output)."""
    if reshape_transform is None:
        return 1
    declared = getattr(reshape_transform, "channel_axis", None)
    if isinstance(declared, int):
        return declared % raw.ndim if isinstance(raw, torch.Tensor) else declared
    if not isinstance(raw, torch.Tensor) or raw.ndim < 2:
        return None
    sample = raw[:1]
    expected = torch.arange(channels, dtype=torch.float32, device=raw.device)
    for axis in range(1, sample.ndim):
        if sample.shape[axis] != channels:
            continue
        view = [1] * sample.ndim
        view[axis] = channels
        coordinates = expected.view(view).expand(sample.shape)  # float32: exact channel numbers
        try:
            result = reshape_transform(coordinates.contiguous())
        except Exception:  # a transform that cannot take this tensor tells nothing
            continue
        if isinstance(result, torch.Tensor) and result.ndim >= 2 and result.shape[1] == channels:
            target = expected.view([1, channels] + [1] * (result.ndim - 2)).expand(result.shape)
            if torch.equal(result.float(), target):
                return axis
    return None


# ----------------------------------------------------------------------------------------- module kinds
_NORMS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: torch's norms, or a module whose type name ends in ``Norm`` (``LayerNorm2d``,
    ``RmsNorm``, ``ViTLayerNorm``, ...)."""
    name = type(module).__name__.lower()
    return isinstance(module, _NORMS) or name.endswith(("norm", "norm1d", "norm2d", "norm3d"))


#: Type names of activation modules outside torch (timm, Hugging Face).
_ACTIVATION_NAMES = frozenset(
    {
        "relu",
        "relu6",
        "gelu",
        "gelutanh",
        "quickgelu",
        "silu",
        "swish",
        "mish",
        "hardswish",
        "hardsigmoid",
        "sigmoid",
        "tanh",
        "elu",
        "leakyrelu",
        "prelu",
        "softplus",
        "geluactivation",
        "quickgeluactivation",
    }
)


def is_activation(module: nn.Module) -> bool:
    """An element-wise activation: a class of ``torch.nn.modules.activation`` (attention excluded) or a module
    whose type name is an activation's (timm, Hugging Face)."""
    if isinstance(module, nn.MultiheadAttention):
        return False
    kinds = type(module).__mro__
    return any(kind.__module__ == "torch.nn.modules.activation" for kind in kinds if kind is not nn.Module) or (
        type(module).__name__.lower() in _ACTIVATION_NAMES
    )


def is_pooling(module: nn.Module) -> bool:
    """A pooling layer: a class of ``torch.nn.modules.pooling`` or a type name with ``Pool``."""
    return type(module).__module__ == "torch.nn.modules.pooling" or "pool" in type(module).__name__.lower()


def _computes_features(run: ModuleRun) -> bool:
    """Whether the module's output counts as a feature map of the model: a container's, an activation's or a
    leaf with parameters' — not pooling, normalisation (a model's final norm) or parameter-free leaves that only
    move values (identity, dropout, flatten, permutes)."""
    if run.has_children:
        return True
    module = run.module
    if is_norm(module) or is_pooling(module):
        return False
    return next(module.parameters(), None) is not None or is_activation(module)


def _channels_hint(module: nn.Module, shape: tuple[int, ...]) -> str | None:
    """``"first"`` / ``"last"``: which axis of a 4-D output a leaf module's own channels are on, if it says."""
    if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
        return "first"
    if isinstance(module, nn.Linear):
        return "last" if module.out_features == shape[-1] else None
    if isinstance(module, nn.LayerNorm):
        return "last" if tuple(module.normalized_shape) == (shape[-1],) else None
    return None


def _is_grid(grid: Sequence[int], size: Sequence[int]) -> bool:
    """Whether ``grid`` is the input's spatial ``size`` downscaled by one stride ``s`` (each side ``≈ S / s``,
    rounded either way), every side > 1 (unless the input's side is 1)."""
    low, high = 0.0, math.inf
    for side, full in zip(grid, size):
        if side < min(2, full) or side > full:
            return False
        low = max(low, full / (side + 1))
        if side > 1:
            high = min(high, full / (side - 1))
    return low < high


def is_channels_last(output: Any, input_size: Sequence[int], module: nn.Module | None = None) -> bool:
    """Whether a layer's output is clearly a channels-last map ``(B, h, w, C)`` of an input of spatial size
    ``input_size = (H, W)``: axes 1-2 are a downscaled grid of the input and axes 2-3 are not (or both are, and
    ``module`` is a leaf that says its channels are last, e.g. a ``LayerNorm`` over the last axis). ``False`` for
    anything else, including outputs that read as ``(B, C, h, w)`` maps."""
    if not isinstance(output, torch.Tensor) or output.ndim != 4 or len(input_size) != 2:
        return False
    shape = tuple(output.shape)
    last, first = _is_grid(shape[1:3], input_size), _is_grid(shape[2:], input_size)
    if last and first:
        return module is not None and next(module.children(), None) is None and _channels_hint(module, shape) == "last"
    return last


def check_channels_first(output: Any, input_size: Sequence[int], module: nn.Module | None, what: str) -> None:
    """Refuse a target layer given without ``reshape_transform`` whose output is a channels-last map (see
    :func:`is_channels_last`): read as ``(B, C, h, w)`` it would give a map of the wrong axes, silently.

    The core calls it for every target layer when no ``reshape_transform`` is given; ``what`` names the layer
    (``"target_layers[0] (layers.3)"``).

    Raises:
        ValueError: the output is clearly ``(B, h, w, C)``; the message names the reshape to pass.
    """
    if is_channels_last(output, input_size, module):
        shape = tuple(output.shape)
        raise ValueError(
            f"{what} outputs a channels-last map {shape} = (B, h, w, C) for a {input_size[0]}×{input_size[1]} input, "
            "which would be read as (B, C, h, w); pass reshape_transform=swinT_reshape_transform (from "
            "pytorch_grad_cam.utils.reshape_transforms; it moves the channels first), or leave target_layers out "
            "and the layer and its reshape are chosen automatically"
        )


# ------------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class LayerRow:
    """One module of a model as a forward pass saw it (a row of :func:`list_layers`).

    Attributes:
        name: the dotted name (``model.get_submodule(name)``).
        type: the module's class name.
        shape: its output shape, or ``None`` when the output is not a tensor.
        layout: ``"NCHW"``, ``"NHWC"``, ``"tokens"`` (a map a CAM can use), or ``None``.
        grid: the map's ``(h, w)`` (for tokens: the patch grid), when known.
        extra_tokens: for tokens, the number of leading extra tokens.
        chosen: whether it is the automatic choice of target layer.
        runs: how many times the module ran in the pass (a target layer must run once).
        note: why a map-shaped output is not usable, or how the grid was found.
        module: the module itself.
    """

    name: str
    type: str
    shape: tuple[int, ...] | None
    layout: str | None
    grid: tuple[int, int] | None
    extra_tokens: int | None
    chosen: bool
    runs: int
    note: str = ""
    module: nn.Module = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


class LayerTable(list[LayerRow]):
    """The rows of :func:`list_layers` (a list of :class:`LayerRow`), printable as a table."""

    #: Why no layer was chosen, when none was.
    error: str = ""

    @property
    def chosen(self) -> LayerRow | None:
        """The row of the automatic choice, if any."""
        return next((row for row in self if row.chosen), None)

    @property
    def maps(self) -> LayerTable:
        """Only the rows whose output is a usable map."""
        table = LayerTable(row for row in self if row.layout is not None)
        table.error = self.error
        return table

    def __str__(self) -> str:
        header = ("", "layer", "type", "output shape", "layout", "grid")
        lines = [header]
        for row in self:
            shape = "-" if row.shape is None else "(" + ", ".join(map(str, row.shape)) + ")"
            grid = "" if row.grid is None else f"{row.grid[0]}×{row.grid[1]}"
            if row.extra_tokens:
                grid += f" +{row.extra_tokens}"
            layout = ", ".join(part for part in (row.layout, row.note) if part)
            lines.append(("→" if row.chosen else "", row.name, row.type, shape, layout, grid))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)
        chosen = self.chosen
        footer = (
            f"automatic target layer: {chosen.name}" if chosen is not None else f"no automatic choice: {self.error}"
        )
        return f"{text}\n{footer}"


@dataclass(frozen=True)
class LayerChoice:
    """The automatic choice: the target layer, its dotted name, its layout and the reshape of its output."""

    layer: nn.Module
    name: str
    layout: str
    reshape: Callable[[Any], torch.Tensor] | None
    table: LayerTable

    def detail(self) -> str:
        """The layout and how the output becomes a map: ``NCHW``, ``NHWC``, ``tokens: 1 extra token + 14×14 grid
        (patch 16)``."""
        if isinstance(self.reshape, TokenGridReshape):
            return f"{self.layout}: {self.reshape.grid.describe()}"
        return self.layout

    def describe(self) -> str:
        """``layer4.1 (NCHW)``, ``blocks.11.norm1 (tokens: 1 extra token + 14×14 grid (patch 16))``."""
        return f"{self.name} ({self.detail()})"


@dataclass
class _Classified:
    run: ModuleRun
    layout: str | None = None
    grid: tuple[int, int] | None = None
    token_grid: TokenGrid | None = None
    note: str = ""
    #: A map a CAM can use (tokens with an ambiguous grid only when the user gives the reshape).
    usable: bool = False
    #: For tokens whose grid is ambiguous: the solver's message.
    ambiguous: str = ""


def _classify(runs: list[ModuleRun], input_size: tuple[int, ...], batch: int, reshape_given: bool) -> list[_Classified]:
    rows = [_Classified(run) for run in runs]
    hints: dict[tuple[int, ...], str] = {}
    evidence: list[tuple[int, int]] = []  # grids of the maps seen so far, most recent last
    two_d = len(input_size) == 2
    for row in rows:
        run, shape = row.run, row.run.shape
        if shape is None or not run.floating or len(shape) < 3 or shape[0] != batch:
            continue
        if len(shape) == 4 and two_d and not run.has_children:
            hint = _channels_hint(run.module, shape)
            if hint is not None:
                hints[shape] = hint
        if len(shape) == len(input_size) + 2:
            first = _is_grid(shape[2:], input_size)
            last = two_d and _is_grid(shape[1:3], input_size)
            layout: str | None = NCHW if first else NHWC if last else None
            if first and last and hints.get(shape) == "last":
                layout = NHWC
            if layout is None:
                continue
            row.layout, row.usable = layout, True
            row.grid = tuple(shape[2:] if layout == NCHW else shape[1:3])  # type: ignore[assignment]
            if two_d:
                evidence.append(row.grid)  # type: ignore[arg-type]
        elif len(shape) == 3 and two_d:
            try:
                token_grid = solve_token_grid(shape[1], input_size, evidence[::-1], what=repr(run.name))
            except AmbiguousGridError as error:
                row.layout, row.note, row.ambiguous, row.usable = TOKENS, "ambiguous grid", str(error), reshape_given
                continue
            if token_grid is None:
                continue
            row.layout, row.token_grid, row.usable = TOKENS, token_grid, True
            row.grid = (token_grid.height, token_grid.width)
        if row.usable and run.runs != 1:
            row.usable, row.note = False, f"ran {run.runs} times"
    return rows


def _innermost_holder(rows: list[_Classified], chosen: _Classified) -> _Classified:
    """Among the modules that returned the very tensor ``chosen`` returned, the first (innermost) one with
    submodules that ran once; ``chosen`` itself when there is none."""
    origin = chosen.run.alias_of or chosen.run.name
    same = [row for row in rows if row.run.name == origin or row.run.alias_of == origin]
    holders = [row for row in same if row.run.has_children and row.usable]
    return holders[0] if holders else chosen


def _choose(rows: list[_Classified], reshape_given: bool) -> tuple[_Classified | None, str]:
    """The chosen row, or ``None`` and why."""
    maps = [row for row in rows if row.usable or (row.ambiguous and row.run.runs == 1)]
    if not maps:
        return None, "no module outputs a feature map of the input: (B, C, h, w), (B, h, w, C) or tokens (B, N, C)"
    features = [row for row in maps if _computes_features(row.run)]
    last = (features or maps)[-1]
    chosen = _innermost_holder(rows, last)
    if last.layout == TOKENS:
        attentions = [row for row in rows if is_attention(row.run.module) and row.run.start < last.run.end]
        if attentions:
            start = max(row.run.start for row in attentions)  # the last attention to begin (the innermost)
            tokens = last.run.shape[1]  # type: ignore[index]
            before = [
                row
                for row in maps
                if row.layout == TOKENS and row.run.end < start and row.run.shape[1] == tokens  # type: ignore[index]
            ]
            norms = [row for row in before if is_norm(row.run.module)]
            if norms:
                chosen = norms[-1]
            elif before:
                chosen = _innermost_holder(rows, before[-1])
    if chosen.ambiguous and not reshape_given:
        return None, chosen.ambiguous
    return chosen, ""


def _table(rows: list[_Classified], chosen: _Classified | None, error: str) -> LayerTable:
    table = LayerTable(
        LayerRow(
            name=row.run.name,
            type=type(row.run.module).__name__,
            shape=row.run.shape,
            layout=row.layout,
            grid=row.grid,
            extra_tokens=row.token_grid.extra if row.token_grid is not None else None,
            chosen=row is chosen,
            runs=row.run.runs,
            note=row.note,
            module=row.run.module,
        )
        for row in rows
    )
    table.error = error
    return table


def analyse_layers(
    model: nn.Module, input_tensor: torch.Tensor, reshape_given: bool = False
) -> tuple[LayerTable, LayerChoice | None]:
    """Every module's output on ``input_tensor`` (one forward pass, hooks removed after) and the automatic
    choice of target layer, or ``None`` (the table's ``error`` says why). The model runs as it is: the caller
    puts it in eval mode and the input on its device."""
    output: list[Any] = []
    runs = probe_module_outputs(model, input_tensor, output)
    rows = _classify(runs, tuple(input_tensor.shape[2:]), input_tensor.shape[0], reshape_given)
    chosen, error = _choose(rows, reshape_given)
    if chosen is not None and not gives_scores_per_image(output[0], input_tensor.shape[0]):
        chosen, error = (
            None,
            (
                f"it returns {describe(output[0])}, not one score vector or embedding (B, K) per image as classifiers "
                "and embedding models do; for a detector or a segmenter the last map is its score head, so name the "
                "layer (e.g. the last backbone or neck stage)"
            ),
        )
    table = _table(rows, chosen, error)
    if chosen is None or chosen.layout is None:
        return table, None
    reshape: Callable[[Any], torch.Tensor] | None = None
    if chosen.layout == NHWC:
        reshape = ChannelsLastReshape()
    elif chosen.layout == TOKENS and chosen.token_grid is not None:
        reshape = TokenGridReshape(chosen.token_grid, tuple(input_tensor.shape[2:]))
    return table, LayerChoice(chosen.run.module, chosen.run.name, chosen.layout, reshape, table)


def gives_scores_per_image(output: Any, batch: int) -> bool:
    """Whether a model output holds a ``(B, K)`` floating-point tensor for the batch of ``batch`` images (class
    scores, logits in a ``ModelOutput``, an embedding): the automatic layer choice is made for such models only.
    Detection outputs (torchvision's list of dicts, DETR's ``(B, queries, classes)``, YOLO's ``(B, 4 + classes,
    anchors)``) and segmentation score maps hold none."""
    if isinstance(output, (list, tuple)) and output and all(isinstance(item, Mapping) for item in output):
        return False  # one dict of boxes per image (torchvision detection)
    return any(t.ndim == 2 and t.shape[0] == batch and t.is_floating_point() for t in tensors_in(output))


def choose_target_layer(model: nn.Module, input_tensor: torch.Tensor, reshape_given: bool = False) -> LayerChoice:
    """The automatic target layer for ``model`` on ``input_tensor`` (see the module's docstring for the rules).

    Args:
        model: the network (in eval mode, as during a CAM call).
        input_tensor: an input batch on the model's device.
        reshape_given: the user passes a ``reshape_transform``: token layers whose grid cannot be told count too
            (the transform turns them into maps).

    Raises:
        ValueError: no module outputs a map of the input, or the chosen token layer's grid is ambiguous.
    """
    table, choice = analyse_layers(model, input_tensor, reshape_given)
    if choice is None:
        raise ValueError(
            f"cannot choose a target layer for {type(model).__name__} automatically: {table.error}; pass "
            "target_layers (and, for a vision transformer, reshape_transform=lambda t: vit_reshape_transform(t, "
            "height=..., width=...)); pytorch_grad_cam.utils.find_layers.list_layers(model, input_tensor) lists "
            "the candidates"
        )
    return choice
