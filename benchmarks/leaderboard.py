"""Leaderboard: every CAM method on held-out demo scenes, scored against the ground truth and by perturbation.

For each CAM method of :data:`pytorch_grad_cam.methods.METHOD_NAMES` that applies to the shipped demo CNN (the
ViT-only ones are skipped, and the output says so), the maps of held-out benchmark scenes (the object's true class
as the target, ``ClassifierOutputTarget(label)``) are scored per image with

* **pointing game** (↑): whether the map's maximum lies on the object's mask (``--tolerance`` pixels);
* **energy pointing game** (↑): the share of the map's energy inside the mask;
* **deletion AUC** (↓) / **insertion AUC** (↑) (RISE): the true class's softmax probability as the most salient
  pixels are deleted (set to 0, the dataset mean after normalisation) / inserted into a blurred copy;
* **ROAD combined** (↑): ``mean_p (LeRF_p - MoRF_p) / 2`` over ``--road-percentiles`` with noisy linear
  imputation, scored on the true class's softmax probability (``ClassifierOutputSoftmaxTarget``);
* **seconds per image**: the wall time of the method's call on all its scenes (one batch) divided by their
  number, measured in the same run (a warm-up pass runs first; on a shared machine the figures are noisy).

Every mean comes with its bootstrap 95 % interval (:func:`pytorch_grad_cam.metrics.bootstrap_interval`), and the
methods that a paired bootstrap (:func:`pytorch_grad_cam.metrics.paired_bootstrap`) cannot tell apart from the best
on the ranking metric (the pointing game) are marked ``≈``. The map metrics use ``--n`` scenes (``--n-slow`` for
the slow perturbation methods of :data:`SLOW_METHODS`), the perturbation metrics the first ``--n-perturbation`` of
them (they cost a hundred forward passes and more per image). Methods whose maps are bitwise identical share
their perturbation scores (computed once: the same maps give the same scores).

It writes a Markdown table (sorted by pointing game, then energy pointing game) with the date, the machine and
the ``N`` values, every per-image score as CSV and JSON next to it, and a figure: the CAMs of a few scenes over the
images, the object's mask as a white contour.

    python benchmarks/leaderboard.py                                   # the default run, ~10 min on 2 cores
    python benchmarks/leaderboard.py --quick --output-dir /tmp/board   # seconds: 4 methods on a few scenes
    python benchmarks/leaderboard.py --n 8 --methods gradcam,randomcam # a quick look

``torch.manual_seed(--torch-seed)`` is called before each method and before each of its metrics, so every
row is repeatable on its own (RandomCAM's weights, ROAD's imputation noise, SS-CAM's mask noise); the bootstrap
uses ``--bootstrap-seed``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import io
import json
import math
import os
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.core import BaseCAM
from pytorch_grad_cam.demo import SceneDataset, demo_target_layers, load_demo_model, normalize
from pytorch_grad_cam.demo.train import HELDOUT_SEED
from pytorch_grad_cam.finer_cam import similar_classes_target
from pytorch_grad_cam.methods import METHOD_NAMES, METHODS, get_method
from pytorch_grad_cam.metrics import (
    BootstrapInterval,
    DeletionAUC,
    InsertionAUC,
    PairedComparison,
    ROADCombined,
    bootstrap_interval,
    energy_pointing_game,
    paired_bootstrap,
    pointing_game,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Methods that need a Vision Transformer (they declare attention maps among their needs), and so cannot run on
#: the demo CNN.
VIT_ONLY: dict[str, str] = {
    name: "ViT-only: needs attention blocks and a token reshape_transform"
    for name, cls in METHODS.items()
    if issubclass(cls, BaseCAM) and cls.needs.attention_maps
}
#: The baseline every method must beat.
BASELINE = "randomcam"
#: Images per forward pass of the perturbation methods (ScoreCAM family, AblationCAM, GroupCAM) and metrics.
DEFAULT_BATCH_SIZE = 64
#: Constructor arguments of the methods, beyond ``model`` / ``target_layers`` (their library defaults
#: otherwise). Listed in the Markdown output.
METHOD_KWARGS: dict[str, dict[str, Any]] = {
    "sscam": {"num_samples": 35, "std": 2.0},
    "iscam": {"num_samples": 10},
    "opticam": {"iterations": 50, "learning_rate": 0.1},
    "smoothgradcam++": {"num_samples": 8, "noise_level": 0.15},
    "groupcam": {"groups": 32},
}
#: Per-image CAM targets of methods that explain something other than the plain logit of the true class
#: (the metrics always score the true class). FinerCAM given a ClassifierOutputTarget would be GradCAM.
METHOD_TARGETS: dict[str, Callable[[int], Any]] = {
    "finercam": lambda label: similar_classes_target(alpha=1, target_idx=label)
}
#: Facts about the methods on this model, printed under the table.
REMARKS: tuple[str, ...] = (
    "With a global-average-pooling + linear head after the target layer the gradients are constant over space "
    "and the logit is linear in the activations, so `gradcam`, `hirescam`, `xgradcam`, `cam` and `shapleycam` "
    "give the same map up to scale, as do `layercam` and `gradcamelementwise` (activations are non-negative), "
    "and `polycam` with one target layer is `scorecam`.",
    "`eigencam` / `eigengradcam` / `kpcacam` orient their principal component by default "
    '(`orientation="energy"`: positive correlation with the channel sum; `segeigencam`: the larger lobe); '
    '`orientation="raw"` keeps the reference\'s arbitrary SVD sign, which points at the background here.',
    "`finercam` explains `similar_classes_target(alpha=1, target_idx=label)` (the true class against "
    "the classes ranked 1–3 closest to it); `fullgrad` ignores the target layer (all biases are used).",
)
#: Methods whose call costs a hundred forward passes per image and more (SS-CAM, IS-CAM, SESS, Opti-CAM, the
#: Score-CAM family): they are run on the first ``n_slow`` scenes only.
SLOW_METHODS: frozenset[str] = frozenset({"sscam", "iscam", "sess", "opticam", "scorecam", "polycam"})
DEFAULT_N = 500
DEFAULT_N_SLOW = 50
DEFAULT_N_PERTURBATION = 50
DEFAULT_ROAD_PERCENTILES: tuple[float, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)
DEFAULT_STEPS = 50
DEFAULT_FIGURE_IMAGES = 4
DEFAULT_CONFIDENCE = 0.95
#: Significant digits of the per-image scores written to CSV / JSON.
SCORE_DIGITS = 6
DEFAULT_RESAMPLES = 10_000
#: The per-image metrics, in table order: (attribute of :class:`MethodResult`, table header, scored on the first
#: ``n_perturbation`` scenes only).
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("pointing_game", "pointing game ↑", False),
    ("energy_pointing_game", "energy pointing game ↑", False),
    ("deletion_auc", "deletion AUC ↓", True),
    ("insertion_auc", "insertion AUC ↑", True),
    ("road_combined", "ROAD combined ↑", True),
)
#: The metric that ranks the methods and on which each is compared with the best (paired bootstrap).
RANKING_METRIC = "pointing_game"
#: The settings of ``--quick``: a few methods (one slow) on a few scenes, a run of seconds (used by the tests).
QUICK: dict[str, Any] = {
    "n": 8,
    "n_slow": 4,
    "n_perturbation": 4,
    "methods": ["gradcam", "gradcam++", "randomcam", "scorecam"],
    "steps": 4,
    "road_percentiles": (50.0,),
    "resamples": 1000,
    "figure_images": 2,
}


@dataclass
class LeaderboardConfig:
    """The settings of one leaderboard run (see :func:`build_parser` for their meaning).

    ``out_csv`` / ``out_json`` receive every per-image score; ``None`` skips an output.
    """

    n: int = DEFAULT_N
    n_slow: int = DEFAULT_N_SLOW
    n_perturbation: int = DEFAULT_N_PERTURBATION
    methods: list[str] | None = None
    seed: int = HELDOUT_SEED
    torch_seed: int = 0
    tolerance: float = 0.0
    steps: int = DEFAULT_STEPS
    road_percentiles: tuple[float, ...] = DEFAULT_ROAD_PERCENTILES
    batch_size: int = DEFAULT_BATCH_SIZE
    figure_images: int = DEFAULT_FIGURE_IMAGES
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    bootstrap_seed: int = 0
    threads: int | None = None
    out_md: Path | None = REPO_ROOT / "docs" / "leaderboard.md"
    out_figure: Path | None = REPO_ROOT / "docs" / "images" / "leaderboard.png"
    out_csv: Path | None = REPO_ROOT / "docs" / "leaderboard_scores.csv"
    out_json: Path | None = REPO_ROOT / "docs" / "leaderboard_scores.json"
    command: str | None = None
    verbose: bool = True


@dataclass
class MethodResult:
    """One row of the leaderboard: a method's per-image scores, their means and intervals, and its speed.

    The float attributes are the means of :attr:`scores` (``pointing_game`` is the share of hits).
    ``scores[metric]`` holds one score per scene, in scene order: ``n`` of them for the map metrics, the first
    ``n_perturbation`` for the perturbation metrics. ``versus_best`` is the paired comparison on the ranking
    metric with the best method (``None`` for the best itself, until :func:`compare_with_best` runs).
    """

    name: str
    class_name: str
    pointing_game: float
    energy_pointing_game: float
    deletion_auc: float
    insertion_auc: float
    road_combined: float
    seconds_per_image: float
    n: int = 0
    n_perturbation: int = 0
    scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    intervals: dict[str, BootstrapInterval] = field(default_factory=dict, repr=False)
    versus_best: PairedComparison | None = None
    shares_scores_with: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def like_best(self) -> bool:
        """Whether the paired bootstrap cannot tell this method from the best on the ranking metric (the best
        itself included)."""
        return self.versus_best is None or not self.versus_best.distinguishable


@dataclass
class Leaderboard:
    """The outcome of :func:`run_leaderboard`: rows sorted best first, the skipped methods and the Markdown."""

    results: list[MethodResult]
    skipped: dict[str, str]
    markdown: str
    wall_seconds: float
    cams: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))


# ------------------------------------------------------------------------------------------------- set-up
def select_methods(requested: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """The methods to run (command-line names, in :data:`METHOD_NAMES` order unless given) and the skipped ones.

    Args:
        requested: method names (case-insensitive), or ``None`` for every method.

    Returns:
        ``(names, skipped)``: ``skipped`` maps each ViT-only name asked for to the reason.

    Raises:
        TypeError: if ``requested`` is not a sequence of strings.
        ValueError: for an unknown or repeated name, or when nothing is left to run.
    """
    if requested is None:
        names = list(METHOD_NAMES)
    else:
        if isinstance(requested, str) or not all(isinstance(name, str) for name in requested):
            raise TypeError(f"methods must be a list of method names (str); got {requested!r}")
        names = [name.strip().lower() for name in requested if name.strip()]
        for name in names:
            get_method(name)  # raises ValueError with the known names and close matches
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"methods must not repeat a name; got {', '.join(repeated)} more than once")
    skipped = {name: VIT_ONLY[name] for name in names if name in VIT_ONLY}
    kept = [name for name in names if name not in VIT_ONLY]
    if not kept:
        raise ValueError(f"no CAM method left to run on the demo CNN (skipped: {', '.join(skipped) or 'none'})")
    return kept, skipped


def load_scenes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
    """``n`` held-out scenes: RGB images ``(n, H, W, 3)`` in [0, 1], labels ``(n,)``, masks ``(n, H, W)`` and
    the normalised input batch ``(n, 3, H, W)``."""
    images, labels, masks = SceneDataset(n, seed).arrays()
    return images, labels, masks, normalize(images)


def machine_description() -> str:
    """``"<CPU model> (<n> cores), torch <version>"`` from ``/proc/cpuinfo`` (or :mod:`platform`)."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu} ({cores} cores, {torch.get_num_threads()} torch threads), torch {torch.__version__}"


def _check_config(config: LeaderboardConfig, training_seed: int | None) -> None:
    """Validate the run's settings (TypeError / ValueError naming the setting)."""
    integers = ("n", "n_slow", "n_perturbation", "seed", "torch_seed", "steps", "batch_size", "figure_images")
    for name in (*integers, "resamples", "bootstrap_seed"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if config.bootstrap_seed < 0:
        raise ValueError(f"bootstrap_seed must be non-negative; got {config.bootstrap_seed}")
    if isinstance(config.confidence, bool) or not isinstance(config.confidence, (int, float)):
        raise TypeError(f"confidence must be a number in (0, 1); got {type(config.confidence).__name__}")
    if not 0 < config.confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1); got {config.confidence}")
    for name in ("n", "n_slow", "n_perturbation", "steps", "batch_size", "resamples"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be a positive int; got {getattr(config, name)}")
    if config.seed < 0 or config.figure_images < 0:
        raise ValueError(f"seed and figure_images must be non-negative; got {config.seed}, {config.figure_images}")
    if training_seed is not None and config.seed == training_seed:
        raise ValueError(
            f"seed {config.seed} is the demo model's training seed; use held-out scenes "
            f"(e.g. {HELDOUT_SEED}, the training script's held-out seed)"
        )
    if not config.road_percentiles:
        raise ValueError("road_percentiles must hold at least one percentile")
    for percentile in config.road_percentiles:
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.integer, np.floating)):
            raise TypeError(f"road_percentiles must be numbers; got {percentile!r}")
        if not 0 < percentile < 100:
            raise ValueError(f"road_percentiles must lie in (0, 100); got {percentile}")
    if isinstance(config.tolerance, bool) or not isinstance(config.tolerance, (int, float)):
        raise TypeError(f"tolerance must be a number of pixels; got {type(config.tolerance).__name__}")
    if not (config.tolerance >= 0 and math.isfinite(config.tolerance)):
        raise ValueError(f"tolerance must be a non-negative number of pixels; got {config.tolerance}")
    if config.threads is not None and (
        isinstance(config.threads, bool) or not isinstance(config.threads, int) or config.threads < 1
    ):
        raise ValueError(f"threads must be a positive int or None; got {config.threads!r}")


# ------------------------------------------------------------------------------------------------ running
def make_cam(name: str, model: nn.Module, target_layers: list[nn.Module], batch_size: int) -> Any:
    """The CAM object of ``name`` for the demo model: :data:`METHOD_KWARGS`, ``batch_size``, no progress bar."""
    cam = get_method(name)(model=model, target_layers=target_layers, **METHOD_KWARGS.get(name, {}))
    if hasattr(cam, "batch_size"):
        cam.batch_size = batch_size
    if hasattr(cam, "progress"):
        cam.progress = False
    return cam


def _collect(caught: list[warnings.WarningMessage], notes: list[str], prefix: str) -> None:
    for warning in caught:
        text = f"{prefix}: {str(warning.message).splitlines()[0]}"
        if text not in notes:
            notes.append(text)


def _warm_up(model: nn.Module, target_layers: list[nn.Module], inputs: torch.Tensor, labels: np.ndarray) -> None:
    """One GradCAM call on the whole batch, so that the first method timed does not pay torch's one-time
    start-up and allocation costs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam = make_cam("gradcam", model, target_layers, DEFAULT_BATCH_SIZE)
        with cam:
            cam(inputs, [ClassifierOutputTarget(int(label)) for label in labels])


def _maps_key(cams: np.ndarray) -> str:
    """A digest of the maps' bytes and shape: equal keys mean bitwise-identical maps."""
    return hashlib.sha256(repr(cams.shape).encode() + np.ascontiguousarray(cams).tobytes()).hexdigest()


def evaluate_method(
    name: str,
    model: nn.Module,
    target_layers: list[nn.Module],
    inputs: torch.Tensor,
    labels: np.ndarray,
    masks: np.ndarray,
    config: LeaderboardConfig,
    cache: dict[str, tuple[str, dict[str, np.ndarray]]] | None = None,
) -> tuple[MethodResult, np.ndarray]:
    """Run one method on all the given scenes, time it and score its maps; returns the row and the maps.

    The map metrics score every scene, the perturbation metrics the first ``config.n_perturbation``.

    Args:
        name: the method's command-line name.
        model: the demo model.
        target_layers: its target layers.
        inputs: ``(N, 3, H, W)`` normalised scenes.
        labels: ``(N,)`` true classes.
        masks: ``(N, H, W)`` object masks.
        config: the run's settings.
        cache: maps digest → (method, perturbation scores) of the methods run before; bitwise-identical maps
            reuse those scores (the metrics are seeded the same way, so they would be recomputed identically).
            Updated in place.

    Returns:
        ``(result, maps)``: the row (means, per-image scores, intervals; no comparison yet) and ``(N, H, W)`` maps.
    """
    targets = [ClassifierOutputTarget(int(label)) for label in labels]
    cam_targets = [METHOD_TARGETS[name](int(label)) for label in labels] if name in METHOD_TARGETS else targets
    notes: list[str] = []
    torch.manual_seed(config.torch_seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cam = make_cam(name, model, target_layers, config.batch_size)
        with cam:
            start = time.perf_counter()
            cams = cam(inputs, cam_targets)
            seconds = time.perf_counter() - start
    _collect(caught, notes, "cam")
    cams = np.asarray(cams, dtype=np.float32)
    if not np.isfinite(cams).all():
        notes.append("cam: non-finite values, set to 0")
        cams = np.nan_to_num(cams, nan=0.0, posinf=0.0, neginf=0.0)
    zero = int((cams.reshape(len(cams), -1).max(axis=1) <= 0).sum())
    if zero:
        notes.append(f"{zero} of {len(cams)} maps are zero everywhere (a miss, energy 0)")

    count = len(inputs)
    k = min(config.n_perturbation, count)
    key = _maps_key(cams[:k])
    shared = cache.get(key) if cache is not None else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores: dict[str, np.ndarray] = {
            "pointing_game": np.asarray(pointing_game(cams, masks, tolerance=config.tolerance), dtype=np.float64),
            "energy_pointing_game": np.asarray(energy_pointing_game(cams, masks), dtype=np.float64),
        }
        if shared is not None:
            scores.update({metric: values.copy() for metric, values in shared[1].items()})
        else:
            part, part_targets = inputs[:k], targets[:k]
            torch.manual_seed(config.torch_seed)
            deletion = DeletionAUC(config.steps, batch_size=config.batch_size)(part, cams[:k], part_targets, model)
            insertion = InsertionAUC(config.steps, batch_size=config.batch_size)(part, cams[:k], part_targets, model)
            torch.manual_seed(config.torch_seed)
            road = ROADCombined(list(config.road_percentiles))(
                part, cams[:k], [ClassifierOutputSoftmaxTarget(int(label)) for label in labels[:k]], model
            )
            perturbation = {
                "deletion_auc": np.asarray(deletion, dtype=np.float64).reshape(k),
                "insertion_auc": np.asarray(insertion, dtype=np.float64).reshape(k),
                "road_combined": np.asarray(road, dtype=np.float64).reshape(k),
            }
            scores.update(perturbation)
            if cache is not None:
                cache[key] = (name, perturbation)
    expected = ("zero everywhere", "no known pixel")  # reported above / explained in the ROAD settings
    _collect([w for w in caught if not any(text in str(w.message) for text in expected)], notes, "metrics")
    intervals = {
        metric: bootstrap_interval(scores[metric], config.confidence, config.resamples, config.bootstrap_seed)
        for metric, _, _ in METRICS
    }
    result = MethodResult(
        name=name,
        class_name=METHOD_NAMES[name],
        pointing_game=intervals["pointing_game"].mean,
        energy_pointing_game=intervals["energy_pointing_game"].mean,
        deletion_auc=intervals["deletion_auc"].mean,
        insertion_auc=intervals["insertion_auc"].mean,
        road_combined=intervals["road_combined"].mean,
        seconds_per_image=seconds / count,
        n=count,
        n_perturbation=k,
        scores=scores,
        intervals=intervals,
        shares_scores_with=shared[0] if shared is not None else None,
        notes=notes,
    )
    return result, cams


def sort_results(results: Sequence[MethodResult]) -> list[MethodResult]:
    """Best first: by pointing game, then energy pointing game, then insertion AUC (all descending)."""
    return sorted(results, key=lambda r: (-r.pointing_game, -r.energy_pointing_game, -r.insertion_auc, r.name))


def compare_with_best(results: Sequence[MethodResult], config: LeaderboardConfig) -> None:
    """Set ``versus_best`` of every row but the first (the best): the paired bootstrap of its per-image scores on
    :data:`RANKING_METRIC` against the best's, on the scenes both were scored on (the first ``min(n)``)."""
    if not results:
        return
    best = results[0]
    best.versus_best = None
    for result in results[1:]:
        k = min(best.n, result.n)
        result.versus_best = paired_bootstrap(
            result.scores[RANKING_METRIC][:k],
            best.scores[RANKING_METRIC][:k],
            config.confidence,
            config.resamples,
            config.bootstrap_seed,
        )


# ------------------------------------------------------------------------------------------------- output
def _comparison_cell(rank: int, result: MethodResult) -> str:
    """``best`` for the first row, ``≈`` when the paired bootstrap cannot tell the row from the best, else empty."""
    if rank == 1:
        return "best"
    return "≈" if result.like_best else ""


def format_table(results: Sequence[MethodResult]) -> str:
    """The Markdown table of ``results`` in their order: every mean with its interval, ``N`` (map metrics /
    perturbation metrics; ``*`` for the slow methods' smaller ``N``), the comparison with the best; the baseline's
    name is marked."""
    header = ["#", "method", "N", "≈ best", *(title for _, title, _ in METRICS), "s / image"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---:", ":---", "---:", ":---:"] + ["---:"] * (len(METRICS) + 1)) + "|",
    ]
    for rank, result in enumerate(results, start=1):
        label = f"`{result.name}`" + (" (baseline)" if result.name == BASELINE else "")
        slow = "*" if result.name in SLOW_METHODS else ""
        cells = [
            str(rank),
            label,
            f"{result.n}{slow} / {result.n_perturbation}",
            _comparison_cell(rank, result),
            *(
                result.intervals[metric].format(3) if metric in result.intervals else f"{getattr(result, metric):.3f}"
                for metric, _, _ in METRICS
            ),
            f"{result.seconds_per_image:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header_line(config: LeaderboardConfig, date: str | None = None) -> str:
    """``Date, machine, N`` line above the table."""
    date = date or datetime.date.today().isoformat()
    n_slow = min(config.n_slow, config.n)
    n_perturbation = min(config.n_perturbation, config.n)
    return (
        f"{date} · {machine_description()} · N = {config.n} held-out scenes "
        f"(`SceneDataset({config.n}, seed={config.seed})`), true labels as targets; the slow methods "
        f"({', '.join(f'`{name}`' for name in sorted(SLOW_METHODS))}, marked `*`) on the first {n_slow}; "
        f"deletion, insertion and ROAD on the first {n_perturbation} of each method's scenes"
        + (
            ""
            if (config.n, config.n_slow, config.n_perturbation) == (DEFAULT_N, DEFAULT_N_SLOW, DEFAULT_N_PERTURBATION)
            else f" — **a reduced run**: the default is N = {DEFAULT_N} ({DEFAULT_N_SLOW} for the slow methods, "
            f"{DEFAULT_N_PERTURBATION} for the perturbation metrics)"
        )
    )


def settings_lines(config: LeaderboardConfig, model: nn.Module) -> list[str]:
    """The metric and method settings, as Markdown bullet points."""
    percentiles = ", ".join(f"{p:g}" for p in config.road_percentiles)
    accuracy = getattr(model, "metadata", {}).get("heldout_accuracy")
    method_kwargs = "; ".join(
        f"{name}: " + ", ".join(f"{key}={value}" for key, value in kwargs.items())
        for name, kwargs in METHOD_KWARGS.items()
    )
    return [
        "- Model: the shipped demo CNN (`load_demo_model()`, target layer `model.features[-1]`, 96 × 8 × 8"
        + (f"; held-out accuracy {accuracy:.4f}" if accuracy is not None else "")
        + "), 64 × 64 scenes.",
        f"- Pointing game: maximum of the map on the object's mask (tolerance {config.tolerance:g} px; a map "
        "whose maximum is a plateau hits only if all of it does). Energy pointing game: share of the map's sum "
        "inside the mask.",
        f"- Deletion / insertion AUC (RISE): {config.steps} steps of {64 * 64 // config.steps}–"
        f"{-(-64 * 64 // config.steps)} pixels, softmax probability of the true class; deletion sets pixels to 0 "
        "(the dataset mean after normalisation), insertion starts from the image blurred (Gaussian 11 px, σ = 5).",
        f"- ROAD combined: `ROADCombined(percentiles=[{percentiles}])`, noisy linear imputation (noise 0.01), "
        "scored on the true class's softmax probability (`ClassifierOutputSoftmaxTarget`); range [-0.5, 0.5]. "
        "As in the reference, MoRF removes the pixels at or above the p-th percentile, so for a map with more "
        "than p % exact zeros (any ReLU'd CAM with a compact blob) it removes every pixel (then imputed as 0 "
        "+ noise).",
        f"- Each score is the mean over the scenes with its {100 * config.confidence:g} % bootstrap percentile "
        f"interval in brackets (`bootstrap_interval`, {config.resamples} resamples, seed {config.bootstrap_seed}; "
        "the pointing game's mean is the share of hits). **≈ best**: a paired bootstrap of the per-image "
        "pointing-game differences with the best method (`paired_bootstrap`, on the scenes both were run on) "
        f"gives a {100 * config.confidence:g} % interval that holds 0, so the two are not distinguishable on "
        "these scenes; the ranking among the ≈ rows is not significant. **N**: scenes of the map metrics / of "
        "the perturbation metrics.",
        "- Seconds per image: one call on all the method's scenes divided by their number, after a warm-up, "
        f"measured in this run; perturbation methods and metrics use batch_size={config.batch_size}, progress "
        "bars off.",
        f"- Method settings (library defaults otherwise): {method_kwargs}. "
        f"`torch.manual_seed({config.torch_seed})` before each method and each of its perturbation metrics.",
    ]


def build_markdown(
    config: LeaderboardConfig,
    model: nn.Module,
    results: Sequence[MethodResult],
    skipped: dict[str, str],
    wall_seconds: float,
    figure_path: Path | None,
    md_path: Path | None,
    csv_path: Path | None = None,
    json_path: Path | None = None,
) -> str:
    """The whole Markdown page: title, header line, table, links to the per-image scores, settings, skipped
    methods, notes, figure."""
    lines = ["# CAM leaderboard on the demo scenes", "", header_line(config), "", format_table(results), ""]
    if csv_path is not None or json_path is not None:
        written = [
            f"[`{Path(os.path.relpath(path, md_path.parent) if md_path is not None else path).as_posix()}`]"
            f"({Path(os.path.relpath(path, md_path.parent) if md_path is not None else path).as_posix()})"
            for path in (csv_path, json_path)
            if path is not None
        ]
        lines += [
            "Every per-image score (method, image index, label, metric values; empty where a metric was not run "
            "on that scene): " + " and ".join(written) + ".",
            "",
        ]
    lines += settings_lines(config, model)
    lines += [f"- {remark}" for remark in REMARKS]
    baseline = next((result for result in results if result.name == BASELINE), None)
    if baseline is not None:
        below = [f"`{r.name}` ({r.pointing_game:.3f})" for r in results if r.pointing_game < baseline.pointing_game]
        lines.append(
            f"- Below the `{BASELINE}` baseline ({baseline.pointing_game:.3f}) on the pointing game (means): "
            + (", ".join(below) if below else "none")
            + "."
        )
    shared = [result for result in results if result.shares_scores_with is not None]
    if shared:
        lines.append(
            "- Bitwise-identical maps on the perturbation metrics' scenes (their deletion, insertion and ROAD "
            "scores are computed once): "
            + ", ".join(f"`{result.name}` = `{result.shares_scores_with}`" for result in shared)
            + "."
        )
    if skipped:
        lines.append("- Skipped: " + "; ".join(f"`{name}` ({reason})" for name, reason in skipped.items()) + ".")
    command = config.command or "python benchmarks/leaderboard.py"
    lines.append(f"- Whole run: {wall_seconds:.0f} s wall time (`{command}`).")
    noted = [result for result in results if result.notes]
    if noted:
        lines += ["", "Notes from the run (warnings raised while computing or scoring the maps):", ""]
        for result in noted:
            lines.append(f"- `{result.name}`: " + "; ".join(result.notes))
    if figure_path is not None:
        relative = os.path.relpath(figure_path, md_path.parent) if md_path is not None else str(figure_path)
        lines += [
            "",
            f"![CAMs of the first {config.figure_images} scenes]({Path(relative).as_posix()})",
            "",
            f"The first {config.figure_images} scenes; methods in leaderboard order, each map over its image, "
            "the object's mask as a white contour; a ✓ marks a pointing-game hit.",
        ]
    return "\n".join(lines) + "\n"


def write_scores(
    results: Sequence[MethodResult],
    labels: np.ndarray,
    config: LeaderboardConfig,
    csv_path: Path | None,
    json_path: Path | None,
) -> None:
    """Write every per-image score: a CSV row per (method, scene) and a JSON document with the summaries.

    CSV columns: ``method, image, label`` and one column per metric of :data:`METRICS` (empty where the metric
    was not run on that scene), :data:`SCORE_DIGITS` significant digits. JSON: the settings, the labels, and per
    method its ``N`` values, seconds per image, means with intervals, the paired comparison with the best and the
    per-image scores (in scene order).
    """
    metrics = [metric for metric, _, _ in METRICS]
    if csv_path is not None:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["method", "image", "label", *metrics])
            for result in results:
                for image in range(result.n):
                    values = [
                        f"{float(result.scores[metric][image]):.{SCORE_DIGITS}g}"
                        if image < len(result.scores[metric])
                        else ""
                        for metric in metrics
                    ]
                    writer.writerow([result.name, image, int(labels[image]), *values])
    if json_path is not None:
        document = {
            "settings": {
                "n": config.n,
                "n_slow": min(config.n_slow, config.n),
                "n_perturbation": min(config.n_perturbation, config.n),
                "slow_methods": sorted(SLOW_METHODS),
                "seed": config.seed,
                "torch_seed": config.torch_seed,
                "tolerance": config.tolerance,
                "steps": config.steps,
                "road_percentiles": list(config.road_percentiles),
                "confidence": config.confidence,
                "resamples": config.resamples,
                "bootstrap_seed": config.bootstrap_seed,
                "ranking_metric": RANKING_METRIC,
                "machine": machine_description(),
                "date": datetime.date.today().isoformat(),
            },
            "labels": [int(label) for label in labels],
            "methods": [
                {
                    "rank": rank,
                    "method": result.name,
                    "class": result.class_name,
                    "n": result.n,
                    "n_perturbation": result.n_perturbation,
                    "seconds_per_image": result.seconds_per_image,
                    "like_best": result.like_best,
                    "versus_best": None
                    if result.versus_best is None
                    else {
                        "mean_difference": result.versus_best.difference.mean,
                        "low": result.versus_best.difference.low,
                        "high": result.versus_best.difference.high,
                        "distinguishable": result.versus_best.distinguishable,
                    },
                    "summary": {
                        metric: {"mean": interval.mean, "low": interval.low, "high": interval.high}
                        for metric, interval in result.intervals.items()
                    },
                    "scores": {
                        metric: [float(f"{value:.{SCORE_DIGITS}g}") for value in result.scores[metric]]
                        for metric in metrics
                    },
                    "shares_scores_with": result.shares_scores_with,
                    "notes": result.notes,
                }
                for rank, result in enumerate(results, start=1)
            ],
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_figure(
    path: Path,
    images: np.ndarray,
    masks: np.ndarray,
    cams: dict[str, np.ndarray],
    results: Sequence[MethodResult],
    tolerance: float = 0.0,
    columns: int = 3,
) -> Path:
    """A grid of methods × images: each method a block of its maps over the images with the mask contour.

    Args:
        path: the PNG to write (its folder is created).
        images: ``(k, H, W, 3)`` RGB images in [0, 1].
        masks: ``(k, H, W)`` bool masks.
        cams: method name → maps ``(≥ k, H, W)``.
        results: the rows in the order to draw them.
        tolerance: the pointing game's tolerance (for the ✓ marks).
        columns: method blocks per figure row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pytorch_grad_cam.utils.image import show_cam_on_image

    count = len(images)
    if count == 0:
        raise ValueError("write_figure needs at least one image")
    blocks: list[tuple[str, Callable[[int], np.ndarray], np.ndarray | None]] = [("input", lambda i: images[i], None)]
    for result in results:
        maps = cams[result.name]
        blocks.append(
            (
                f"{result.name}  (PG {result.pointing_game:.2f})",
                lambda i, maps=maps: show_cam_on_image(images[i], maps[i], use_rgb=True),
                maps,
            )
        )
    rows = -(-len(blocks) // columns)
    gap = 0.15  # a narrow empty column between method blocks
    ratios = ([1.0] * count + [gap]) * columns
    figure, grid = plt.subplots(
        rows,
        len(ratios) - 1,
        figsize=(1.05 * (columns * count + gap * (columns - 1)), 1.2 * rows),
        squeeze=False,
        gridspec_kw={"width_ratios": ratios[:-1]},
    )
    for axis in grid.ravel():
        axis.axis("off")
    axes = grid[:, [c for c in range(len(ratios) - 1) if (c + 1) % (count + 1) != 0]]
    for index, (title, draw, maps) in enumerate(blocks):
        row, block = divmod(index, columns)
        for i in range(count):
            axis = axes[row, block * count + i]
            axis.imshow(draw(i))
            axis.contour(masks[i].astype(float), levels=[0.5], colors="white", linewidths=0.8)
            if maps is not None and bool(pointing_game(maps[i : i + 1], masks[i : i + 1], tolerance)[0]):
                axis.text(0.04, 0.96, "✓", color="white", fontsize=7, ha="left", va="top", transform=axis.transAxes)
        axes[row, block * count].set_title(title, fontsize=8, loc="left")
    figure.tight_layout(pad=0.3, w_pad=0.1, h_pad=0.4)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=90)
    plt.close(figure)
    from PIL import Image  # a matplotlib dependency

    buffer.seek(0)
    with Image.open(buffer) as rendered:  # a 256-colour palette: a third of the size, no visible change
        rendered.convert("RGB").quantize(colors=256).save(path, optimize=True)
    return path


# ---------------------------------------------------------------------------------------------------- main
def run_leaderboard(config: LeaderboardConfig) -> Leaderboard:
    """Run every selected method on ``config.n`` scenes, write the Markdown and the figure, return the rows.

    Raises:
        TypeError, ValueError: for bad settings or method names.
    """
    start = time.perf_counter()
    if not isinstance(config, LeaderboardConfig):
        raise TypeError(f"config must be a LeaderboardConfig; got {type(config).__name__}")
    names, skipped = select_methods(config.methods)
    model = load_demo_model()
    _check_config(config, getattr(model, "metadata", {}).get("seed"))
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    say: Callable[..., None] = (lambda *a: print(*a, flush=True)) if config.verbose else (lambda *a: None)
    for name, reason in skipped.items():
        say(f"skipping {name}: {reason}")
    images, labels, masks, inputs = load_scenes(config.n, config.seed)
    target_layers = demo_target_layers(model)
    n_slow = min(config.n_slow, config.n)
    _warm_up(model, target_layers, inputs[:n_slow], labels[:n_slow])
    say(header_line(config))
    results, all_cams = [], {}
    cache: dict[str, tuple[str, dict[str, np.ndarray]]] = {}
    for name in names:
        method_start = time.perf_counter()
        count = n_slow if name in SLOW_METHODS else config.n
        try:
            result, cams = evaluate_method(
                name, model, target_layers, inputs[:count], labels[:count], masks[:count], config, cache
            )
        except (TypeError, ValueError, RuntimeError) as error:  # one broken method must not end the run
            skipped[name] = f"failed: {type(error).__name__}: {str(error).splitlines()[0]}"
            warnings.warn(f"leaderboard: {name} {skipped[name]}", stacklevel=2)
            continue
        results.append(result)
        all_cams[name] = cams
        say(
            f"{name:>20s}  N {result.n:4d}/{result.n_perturbation:<4d} PG {result.pointing_game:.3f}  "
            f"EPG {result.energy_pointing_game:.3f}  del {result.deletion_auc:.3f}  ins {result.insertion_auc:.3f}  "
            f"ROAD {result.road_combined:+.3f}  {result.seconds_per_image:.4f} s/img  "
            f"(with metrics {time.perf_counter() - method_start:.1f} s)"
            + (f"  [scores of {result.shares_scores_with}]" if result.shares_scores_with else "")
            + (f"  notes: {' | '.join(result.notes)}" if result.notes else "")
        )
    results = sort_results(results)
    compare_with_best(results, config)
    figure_path = None
    if config.out_figure is not None and config.figure_images > 0 and results:
        k = min(config.figure_images, *(len(cams) for cams in all_cams.values()))
        figure_path = write_figure(config.out_figure, images[:k], masks[:k], all_cams, results, config.tolerance)
    write_scores(results, labels, config, config.out_csv, config.out_json)
    wall = time.perf_counter() - start
    markdown = build_markdown(
        config, model, results, skipped, wall, figure_path, config.out_md, config.out_csv, config.out_json
    )
    if config.out_md is not None:
        Path(config.out_md).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out_md).write_text(markdown, encoding="utf-8")
    say("")
    say(markdown)
    written = [str(path) for path in (config.out_md, figure_path, config.out_csv, config.out_json) if path]
    say(f"wall time {wall:.1f} s" + (f"; wrote {', '.join(written)}" if written else ""))
    return Leaderboard(results, skipped, markdown, wall, all_cams, labels)


def _percentiles(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 10,50,90; got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``benchmarks/leaderboard.py`` (options left unset take :data:`QUICK`'s value under
    ``--quick``, the defaults otherwise)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a run of seconds: {len(QUICK['methods'])} methods ({', '.join(QUICK['methods'])}) on {QUICK['n']} "
        f"scenes ({QUICK['n_slow']} for the slow ones, {QUICK['n_perturbation']} for the perturbation metrics), "
        f"{QUICK['steps']} deletion / insertion steps, {QUICK['resamples']} bootstrap resamples",
    )
    parser.add_argument("--n", type=int, default=None, help=f"held-out scenes of the map metrics (default {DEFAULT_N})")
    parser.add_argument(
        "--n-slow",
        type=int,
        default=None,
        help=f"scenes of the slow methods {', '.join(sorted(SLOW_METHODS))} (default {DEFAULT_N_SLOW})",
    )
    parser.add_argument(
        "--n-perturbation",
        type=int,
        default=None,
        help=f"scenes (the first of each method's) of deletion, insertion and ROAD (default {DEFAULT_N_PERTURBATION})",
    )
    parser.add_argument(
        "--methods",
        type=str,
        default=None,
        help="comma-separated method names (default: every method that applies to a CNN)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=HELDOUT_SEED,
        help=f"seed of the scenes (default {HELDOUT_SEED}, the training script's held-out seed)",
    )
    parser.add_argument("--torch-seed", type=int, default=0, help="torch.manual_seed before each method (default 0)")
    parser.add_argument("--tolerance", type=float, default=0.0, help="pointing-game tolerance in pixels (default 0)")
    parser.add_argument("--steps", type=int, default=None, help=f"deletion / insertion steps (default {DEFAULT_STEPS})")
    parser.add_argument(
        "--road-percentiles",
        type=_percentiles,
        default=None,
        help="ROAD percentiles, comma-separated (default 10,20,...,90)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"images per forward pass of perturbation methods and metrics (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=DEFAULT_CONFIDENCE,
        help=f"confidence of the bootstrap intervals and of the paired test (default {DEFAULT_CONFIDENCE})",
    )
    parser.add_argument(
        "--resamples", type=int, default=None, help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})"
    )
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument(
        "--figure-images",
        type=int,
        default=None,
        help=f"scenes shown per method in the figure (default {DEFAULT_FIGURE_IMAGES}; 0: no figure)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=REPO_ROOT / "docs",
        help="folder of leaderboard.md, leaderboard_scores.csv / .json and images/leaderboard.png (default docs/)",
    )
    parser.add_argument(
        "--out-md", type=Path, default=None, help="Markdown output (default <output-dir>/leaderboard.md)"
    )
    parser.add_argument(
        "--out-figure", type=Path, default=None, help="figure output (default <output-dir>/images/leaderboard.png)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    return parser


def config_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> LeaderboardConfig:
    """The :class:`LeaderboardConfig` of parsed arguments: :data:`QUICK` or the defaults fill the unset options;
    the per-image scores go next to the Markdown (``<stem>_scores.csv`` / ``.json``)."""
    defaults: dict[str, Any] = {
        "n": DEFAULT_N,
        "n_slow": DEFAULT_N_SLOW,
        "n_perturbation": DEFAULT_N_PERTURBATION,
        "methods": None,
        "steps": DEFAULT_STEPS,
        "road_percentiles": DEFAULT_ROAD_PERCENTILES,
        "resamples": DEFAULT_RESAMPLES,
        "figure_images": DEFAULT_FIGURE_IMAGES,
    }
    if args.quick:
        defaults.update(QUICK)
    given = {name: getattr(args, name) for name in defaults if getattr(args, name) is not None}
    if "methods" in given:
        given["methods"] = given["methods"].split(",")
    chosen = {**defaults, **given}
    out_md = args.out_md if args.out_md is not None else args.output_dir / "leaderboard.md"
    out_figure = args.out_figure if args.out_figure is not None else args.output_dir / "images" / "leaderboard.png"
    command = shlex.join(["python", "benchmarks/leaderboard.py", *(argv if argv is not None else sys.argv[1:])])
    return LeaderboardConfig(
        **chosen,
        seed=args.seed,
        torch_seed=args.torch_seed,
        tolerance=args.tolerance,
        batch_size=args.batch_size,
        confidence=args.confidence,
        bootstrap_seed=args.bootstrap_seed,
        threads=args.threads,
        out_md=out_md,
        out_figure=out_figure,
        out_csv=out_md.with_name(f"{out_md.stem}_scores.csv"),
        out_json=out_md.with_name(f"{out_md.stem}_scores.json"),
        command=command,
        verbose=not args.quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run_leaderboard(config_from_args(args, argv))
    except (TypeError, ValueError) as error:
        print(f"leaderboard.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
