"""Sanity checks for saliency maps: model-parameter randomisation (Adebayo et al. 2018, "Sanity Checks for
Saliency Maps", https://arxiv.org/abs/1810.03292).

An explanation that describes the model must change when the model's learned parameters are replaced by random
ones. The check re-draws the parameters of the model's layers, from the output towards the input, and compares
each map of the randomised model with the map of the trained one:

* ``mode="cascading"``: step ``k`` randomises the ``k + 1`` top layers together (cumulative);
* ``mode="independent"``: step ``k`` randomises layer ``k`` alone.

Similarities, per image (maps min-max scaled to [0, 1] first):

* Spearman rank correlation ``ρ = pearson(rank(a), rank(b))`` (average ranks for ties; two constant maps
  count as ``1`` if equal, a constant and a varying map as ``0``);
* SSIM (Wang et al. 2004), 11 × 11 Gaussian window (σ = 1.5, smaller for small maps), ``C1 = 0.01²``,
  ``C2 = 0.03²``, averaged over the valid positions.

Verdict: ``"sensitive"`` when the mean similarity over the images (``metric``) falls below ``threshold`` at some
step, ``"insensitive"`` otherwise — a method whose maps survive the randomisation of the whole model (e.g. an
edge detector) does not explain the model. The model's parameters are restored on every exit path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam.core.checks import check_callable, check_choice, check_model, check_real, describe
from pytorch_grad_cam.core.model import eval_mode
from pytorch_grad_cam.core.perturbation import progress_bar
from pytorch_grad_cam.core.scaling import scale_cam_tensor
from pytorch_grad_cam.core.targets import ClassifierOutputTarget
from pytorch_grad_cam.core.types import Targets
from pytorch_grad_cam.metrics.pointing_game import check_maps

__all__ = ["RandomizationResult", "model_randomization_check", "spearman_correlation", "ssim"]

MODES = ("cascading", "independent")
METRICS = ("spearman", "ssim")
Explainer = Callable[[torch.Tensor, Any], Any]


def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    first, second = check_maps(a, "a"), check_maps(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"a and b must have the same shape; got {tuple(first.shape)} and {tuple(second.shape)}")
    return first, second.to(first.device, first.dtype)


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based) of a 1-D tensor, ties sharing the mean of their positions."""
    order = torch.argsort(values)
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(values.dtype)
    mean_rank = ends - (counts.to(values.dtype) - 1) / 2
    ranks = torch.empty_like(values)
    ranks[order] = mean_rank[inverse]
    return ranks


def spearman_correlation(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Spearman's rank correlation between ``a[i]`` and ``b[i]`` for each map of two ``(B, H, W)`` batches.

    Returns:
        float64 ``(B,)`` in [-1, 1]; two constant maps give 1 if equal (0 otherwise), one constant map gives 0.
    """
    first, second = _pair(a, b)
    result = []
    for x, y in zip(first.flatten(1), second.flatten(1)):
        flat_x, flat_y = bool((x == x[0]).all()), bool((y == y[0]).all())
        if flat_x or flat_y:
            result.append(1.0 if flat_x and flat_y and bool((x == y).all()) else 0.0)
            continue
        rx, ry = _ranks(x), _ranks(y)
        rx, ry = rx - rx.mean(), ry - ry.mean()
        result.append(float((rx * ry).sum() / (rx.norm() * ry.norm())))
    return np.asarray(result, dtype=np.float64)


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, data_range: float = 1.0) -> np.ndarray:
    """Structural similarity (Wang et al. 2004, https://doi.org/10.1109/TIP.2003.819861) of each pair of maps.

    ``SSIM = (2 μa μb + C1)(2 σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))`` with local Gaussian statistics
    (11 × 11 window, σ = 1.5; a window of the map's smaller side when the map is smaller), ``C1 = (0.01 L)²``,
    ``C2 = (0.03 L)²``, ``L = data_range``; the mean over the valid positions.

    Returns:
        float64 ``(B,)``; 1 for identical maps.
    """
    first, second = _pair(a, b)
    size = min(11, *first.shape[1:])
    size -= 1 - size % 2
    t = torch.arange(size, dtype=first.dtype, device=first.device) - (size - 1) / 2
    window = torch.exp(-(t**2) / (2 * 1.5**2))
    window = window / window.sum()
    kernel = (window[:, None] * window[None, :])[None, None]

    def local(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x[:, None], kernel)[:, 0]

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = local(first), local(second)
    var_a = local(first * first) - mu_a**2
    var_b = local(second * second) - mu_b**2
    cov = local(first * second) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return value.flatten(1).mean(dim=1).cpu().numpy().astype(np.float64)


@dataclass
class RandomizationResult:
    """The outcome of :func:`model_randomization_check`.

    Attributes:
        mode: ``"cascading"`` or ``"independent"``.
        layers: the randomised layers' names, in step order (output first).
        spearman: ``(steps, B)`` rank correlations between the original and the randomised maps.
        ssim: ``(steps, B)`` SSIM between the original and the randomised maps.
        metric: the similarity the verdict uses (``"spearman"`` or ``"ssim"``).
        threshold: the verdict's threshold.
    """

    mode: str
    layers: list[str]
    spearman: np.ndarray
    ssim: np.ndarray
    metric: str
    threshold: float

    @property
    def similarity(self) -> np.ndarray:
        """The verdict's similarity per step, averaged over the images: ``(steps,)``."""
        return getattr(self, self.metric).mean(axis=1)

    @property
    def verdict(self) -> str:
        """``"sensitive"`` when the maps lost their similarity (``< threshold``) at some step, else
        ``"insensitive"``."""
        return "sensitive" if float(self.similarity.min()) < self.threshold else "insensitive"

    def __str__(self) -> str:
        lines = [
            f"{self.mode} randomisation: {self.verdict} (min mean {self.metric} "
            f"{self.similarity.min():.3f}, threshold {self.threshold})",
            f"{'layer':<32} {'spearman':>9} {'ssim':>7}",
        ]
        for name, rho, structure in zip(self.layers, self.spearman.mean(axis=1), self.ssim.mean(axis=1)):
            lines.append(f"{name:<32} {rho:>9.3f} {structure:>7.3f}")
        return "\n".join(lines)


def _parameter_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters, output first (reverse registration order)."""
    owning = [(name, module) for name, module in model.named_modules() if any(True for _ in module.parameters(False))]
    return owning[::-1]


def _randomize(module: nn.Module, generator: torch.Generator, recurse: bool) -> None:
    """Re-draw every parameter of ``module`` (and of its children with ``recurse``) from ``N(0, s²)``, ``s`` the
    parameter's own spread (or the layer's largest parameter's spread for a constant one, e.g. a zero bias)."""
    parameters = list(module.parameters(recurse=recurse))
    spreads = [float(p.detach().float().std()) if p.numel() > 1 else float(p.detach().abs().max()) for p in parameters]
    fallback = next((s for s in sorted(spreads, reverse=True) if s > 0), 1.0)
    with torch.no_grad():
        for parameter, spread in zip(parameters, spreads):
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
            parameter.copy_((noise * (spread if spread > 0 else fallback)).to(parameter.device, parameter.dtype))


def model_randomization_check(
    explainer: Explainer,
    model: nn.Module,
    input_tensor: torch.Tensor,
    targets: Targets = None,
    mode: str = "cascading",
    layers: Sequence[nn.Module] | None = None,
    metric: str = "spearman",
    threshold: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> RandomizationResult:
    """Model-parameter randomisation test (Adebayo et al. 2018, https://arxiv.org/abs/1810.03292).

    Args:
        explainer: ``explainer(input_tensor, targets)`` → ``(B, H, W)`` maps (numpy or torch); a CAM object of
            this library built on ``model`` fits, e.g. ``GradCAM(model, [model.layer4[-1]])``.
        model: the model whose parameters are randomised (in place, restored afterwards).
        input_tensor: the images to explain.
        targets: one target per image; ``None`` fixes each image's top class of the trained model, so that the
            randomised models are asked about the same class.
        mode: ``"cascading"`` (top layers randomised cumulatively) or ``"independent"`` (one layer at a time).
        layers: the layers to randomise, in step order; default: every module that owns parameters, from the
            output to the input.
        metric: the similarity of the verdict, ``"spearman"`` or ``"ssim"``.
        threshold: the verdict is ``"sensitive"`` when the mean similarity falls below it at some step.
        seed: seed of the random parameters.
        progress: show a tqdm progress bar over the steps.

    Returns:
        A :class:`RandomizationResult` (``verdict``, ``spearman``, ``ssim``, ``layers``; ``print`` it for a table).
    """
    check_callable(explainer, "explainer", allow_none=False, example="explainer(input_tensor, targets)")
    check_model(model)
    if not isinstance(input_tensor, torch.Tensor):
        raise TypeError(f"input_tensor must be a torch.Tensor; got {describe(input_tensor)}")
    check_choice(mode, "mode", MODES)
    check_choice(metric, "metric", METRICS)
    threshold = check_real(threshold, "threshold")
    names = {id(module): name or "<model>" for name, module in model.named_modules()}
    if layers is None:
        chosen = _parameter_layers(model)
    else:
        if isinstance(layers, nn.Module) or not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list of modules of the model or None; got {describe(layers)}")
        for index, layer in enumerate(layers):
            if not isinstance(layer, nn.Module) or id(layer) not in names:
                raise ValueError(f"layers[{index}] must be a submodule of the model; got {describe(layer)}")
        chosen = [(names[id(layer)], layer) for layer in layers]
        for index, (name, layer) in enumerate(chosen):
            if not any(True for _ in layer.parameters()):
                raise ValueError(f"layers[{index}] ({name}) has no parameters to randomise")
    # A layer the user names is randomised whole (a block with its children); the default list holds the
    # modules that own parameters directly, each randomised alone.
    recurse = layers is not None
    if not chosen:
        raise ValueError("the model has no parameters to randomise (layers must own parameters)")
    if targets is None:
        with torch.no_grad(), eval_mode(model):
            output = model(input_tensor)
        if isinstance(output, torch.Tensor) and output.ndim == 2:
            targets = [ClassifierOutputTarget(int(c)) for c in output.argmax(dim=1).tolist()]

    def explain() -> torch.Tensor:
        maps = explainer(input_tensor, targets)
        return scale_cam_tensor(check_maps(maps, "the explainer's maps").float())

    saved = {id(p): (p, p.detach().clone()) for _, layer in chosen for p in layer.parameters(recurse)}
    generator = torch.Generator().manual_seed(seed)
    original = explain()
    rhos, structures = [], []
    try:
        with progress_bar(len(chosen), progress, f"{mode} randomisation") as bar:
            for _, layer in chosen:
                if mode == "independent":
                    _restore(saved)
                _randomize(layer, generator, recurse)
                randomized = explain()
                rhos.append(spearman_correlation(original, randomized))
                structures.append(ssim(original, randomized))
                bar.update()
    finally:
        _restore(saved)
    return RandomizationResult(
        mode, [name for name, _ in chosen], np.stack(rhos), np.stack(structures), metric, threshold
    )


def _restore(saved: dict[int, tuple[nn.Parameter, torch.Tensor]]) -> None:
    with torch.no_grad():
        for parameter, value in saved.values():
            parameter.copy_(value)
