"""Leaderboard: every CAM method on held-out benchmark scenes whose ground truth the model is known to use.

Runs (model × scenario, :data:`DEFAULT_RUNS`): the shipped demo models (:data:`pytorch_grad_cam.demo.model.DEMO_MODELS`:
the GAP + linear CNN, a CNN with a non-linear head, a small ViT, and a CNN trained on a shortcut) on the four
scenarios of :mod:`pytorch_grad_cam.demo.scenarios`:

1. **one object** — pointing game, energy pointing game, deletion / insertion AUC (RISE) and ROAD combined;
2. **two objects of different classes** — each class explained in turn: the class-discriminative pointing game
   (the map's maximum on that class's object, not on the other) and the relevance share (positive relevance in
   the right object / in both); a class-agnostic method scores at most 0.5 on both, by construction;
3. **a known shortcut** — a model trained where a small marker alone decides the label: the pointing game on the
   marker (not on the larger shape) and the marker's relevance share; the model's reliance is verified by
   intervention (removing the marker changes its prediction, removing the shape does not) and reported;
4. **distractor objects of no class** — the pointing game and relevance share of the object against the
   distractor objects, and the energy pointing game.

For each run every CAM method of :data:`pytorch_grad_cam.methods.METHOD_NAMES` that applies (the ViT-only ones run
on the ViT only) explains the true class(es) (``ClassifierOutputTarget(label)``); scores are per scene (in scenario
2 the mean of its two explanations), each mean with its bootstrap 95 % interval
(:func:`pytorch_grad_cam.metrics.bootstrap_interval`), and the methods that a paired bootstrap
(:func:`pytorch_grad_cam.metrics.paired_bootstrap`) cannot tell apart from the best on the scenario's ranking metric
(the first column) are marked ``≈``. The map metrics use ``--n`` scenes (``--n-slow`` for the slow perturbation
methods of :data:`SLOW_METHODS`), the perturbation metrics the first ``--n-perturbation`` of them. Methods whose
maps are bitwise identical share their perturbation scores (computed once).

It writes a Markdown page (a headline table of every run's ranking metric, the models' accuracies, then one table
per model × scenario), the headline table into the README between its leaderboard markers, every per-scene score as
CSV and JSON, and one figure per scenario: the maps of a few scenes over the images, the right object's mask as a
white contour and the wrong region's as a red one.

    python benchmarks/leaderboard.py                                   # the default run, ~25 min on 2 cores
    python benchmarks/leaderboard.py --quick --output-dir /tmp/board   # seconds: 4 methods, 4 runs, a few scenes
    python benchmarks/leaderboard.py --n 8 --methods gradcam,randomcam --runs vit:pair   # a quick look

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
import re
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
from pytorch_grad_cam.demo import normalize
from pytorch_grad_cam.demo.model import (
    DEMO_MODELS,
    DemoViT,
    demo_reshape_transform,
    demo_target_layers,
    load_demo_model,
)
from pytorch_grad_cam.demo.scenarios import INTERVENTIONS, SCENARIOS, BenchmarkScenes, Explanations
from pytorch_grad_cam.demo.train import HELDOUT_SEED
from pytorch_grad_cam.finer_cam import similar_classes_target
from pytorch_grad_cam.methods import METHOD_NAMES, METHODS, get_method
from pytorch_grad_cam.metrics import (
    BootstrapInterval,
    DeletionAUC,
    InsertionAUC,
    InterventionResult,
    PairedComparison,
    ROADCombined,
    bootstrap_interval,
    discriminative_pointing_game,
    energy_pointing_game,
    intervention_effect,
    paired_bootstrap,
    pointing_game,
    relevance_share,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Methods that need a Vision Transformer (they declare attention maps among their needs): run on the ViT only.
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
#: Per-explanation CAM targets of methods that explain something other than the plain logit of the true class
#: (the metrics always score the true class). FinerCAM given a ClassifierOutputTarget would be GradCAM.
METHOD_TARGETS: dict[str, Callable[[int], Any]] = {
    "finercam": lambda label: similar_classes_target(alpha=1, target_idx=label)
}
#: Facts about the methods on these models, printed under the tables.
REMARKS: tuple[str, ...] = (
    "On the GAP + linear CNN (`cnn`, `shortcut_cnn`) the gradients are constant over space and the logit is linear "
    "in the activations, so `gradcam`, `hirescam`, `xgradcam`, `cam` and `shapleycam` give the same map up to "
    "scale, as do `layercam` and `gradcamelementwise` (activations are non-negative), and `polycam` with one target "
    "layer is `scorecam`. The `mlp_head_cnn`'s head (conv 1×1 + ReLU, pooling, MLP) separates them; on it `cam` "
    "does not apply (its last linear layer does not read the target layer's channels).",
    "`eigencam` / `eigengradcam` / `kpcacam` orient their principal component by default "
    '(`orientation="norm"`: positive correlation with the per-position norm; `segeigencam`: the larger lobe); '
    '`orientation="raw"` keeps the reference\'s arbitrary SVD sign. They ignore the target class (`eigencam`, '
    "`kpcacam`, `segeigencam`): in scenario 2 they give both classes the same map, and so score at most 0.5.",
    "`finercam` explains `similar_classes_target(alpha=1, target_idx=label)` (the true class against "
    "the classes ranked 1–3 closest to it); `fullgrad` ignores the target layer (all biases are used).",
    "On the ViT the target layer is `model.blocks[-1].norm1` with `vit_reshape_transform` (class token dropped, "
    "8 × 8 patch grid); `legrad` reads the attention maps of that block and the model's own head.",
)
#: Methods whose call costs a hundred forward passes per image and more (SS-CAM, IS-CAM, SESS, Opti-CAM, the
#: Score-CAM family): they are run on the first ``n_slow`` scenes only.
SLOW_METHODS: frozenset[str] = frozenset({"sscam", "iscam", "sess", "opticam", "scorecam", "polycam"})
#: The default runs (model, scenario), in report order.
DEFAULT_RUNS: tuple[tuple[str, str], ...] = (
    ("cnn", "single"),
    ("mlp_head_cnn", "single"),
    ("vit", "single"),
    ("cnn", "pair"),
    ("mlp_head_cnn", "pair"),
    ("vit", "pair"),
    ("shortcut_cnn", "shortcut"),
    ("cnn", "distractors"),
    ("mlp_head_cnn", "distractors"),
    ("vit", "distractors"),
)
#: Scenario titles, in the order of :data:`pytorch_grad_cam.demo.scenarios.SCENARIOS`.
SCENARIO_TITLES: dict[str, str] = {
    "single": "Scenario 1 — one object",
    "pair": "Scenario 2 — two objects of different classes",
    "shortcut": "Scenario 3 — a known shortcut",
    "distractors": "Scenario 4 — distractor objects of no class",
}
SCENARIO_SHORT: dict[str, str] = {
    "single": "1 one object",
    "pair": "2 two classes",
    "shortcut": "3 shortcut",
    "distractors": "4 distractors",
}
DEFAULT_N = 500
DEFAULT_N_SLOW = 20
DEFAULT_N_PERTURBATION = 25
DEFAULT_ROAD_PERCENTILES: tuple[float, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)
DEFAULT_STEPS = 50
#: The pointing game's tolerance in pixels: half a cell of the models' 8 × 8 maps (every model's target layer has
#: stride 8), as the original pointing game's 15 px is about half a cell of a stride-32 ImageNet network.
DEFAULT_TOLERANCE = 4.0
DEFAULT_FIGURE_IMAGES = 4
DEFAULT_CONFIDENCE = 0.95
#: Significant digits of the per-scene scores written to CSV / JSON.
SCORE_DIGITS = 6
DEFAULT_RESAMPLES = 10_000
#: The methods drawn in the figures (those of them that ran), in this order.
FIGURE_METHODS: tuple[str, ...] = (
    "gradcam",
    "hirescam",
    "gradcam++",
    "layercam",
    "scorecam",
    "ablationcam",
    "eigencam",
    "fullgrad",
    "legrad",
    "randomcam",
)


@dataclass(frozen=True)
class Metric:
    """A per-scene score: its key (in :attr:`MethodResult.scores`, the CSV and the JSON), its column title, whether
    higher is better, and whether it is a perturbation metric (run on the first ``n_perturbation`` scenes)."""

    key: str
    title: str
    higher_is_better: bool = True
    perturbation: bool = False


#: The metrics of each scenario, in table order; the first ranks the methods.
SCENARIO_METRICS: dict[str, tuple[Metric, ...]] = {
    "single": (
        Metric("pointing_game", "pointing game ↑"),
        Metric("energy_pointing_game", "energy pointing game ↑"),
        Metric("deletion_auc", "deletion AUC ↓", higher_is_better=False, perturbation=True),
        Metric("insertion_auc", "insertion AUC ↑", perturbation=True),
        Metric("road_combined", "ROAD combined ↑", perturbation=True),
    ),
    "pair": (
        Metric("discriminative_pointing_game", "discriminative pointing game ↑"),
        Metric("relevance_share", "relevance share right / both ↑"),
    ),
    "shortcut": (
        Metric("discriminative_pointing_game", "pointing game on the marker ↑"),
        Metric("relevance_share", "relevance share marker / (marker + shape) ↑"),
    ),
    "distractors": (
        Metric("discriminative_pointing_game", "pointing game ↑"),
        Metric("relevance_share", "relevance share object / (object + distractors) ↑"),
        Metric("energy_pointing_game", "energy pointing game ↑"),
    ),
}
#: The settings of ``--quick``: a few methods (one slow) on a few scenes of four runs (used by the tests).
QUICK: dict[str, Any] = {
    "n": 8,
    "n_slow": 4,
    "n_perturbation": 4,
    "methods": ["gradcam", "gradcam++", "randomcam", "scorecam"],
    "runs": [("cnn", "single"), ("vit", "pair"), ("shortcut_cnn", "shortcut"), ("mlp_head_cnn", "distractors")],
    "steps": 4,
    "road_percentiles": (50.0,),
    "resamples": 1000,
    "figure_images": 2,
}
README_START = "<!-- leaderboard:start -->"
README_END = "<!-- leaderboard:end -->"


@dataclass
class LeaderboardConfig:
    """The settings of one leaderboard run (see :func:`build_parser` for their meaning).

    ``out_csv`` / ``out_json`` receive every per-scene score, ``out_figures`` the folder of the figures,
    ``out_readme`` a file whose leaderboard markers enclose the headline table; ``None`` skips an output.
    """

    n: int = DEFAULT_N
    n_slow: int = DEFAULT_N_SLOW
    n_perturbation: int = DEFAULT_N_PERTURBATION
    methods: list[str] | None = None
    runs: list[tuple[str, str]] | None = None
    seed: int = HELDOUT_SEED
    torch_seed: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    steps: int = DEFAULT_STEPS
    road_percentiles: tuple[float, ...] = DEFAULT_ROAD_PERCENTILES
    batch_size: int = DEFAULT_BATCH_SIZE
    figure_images: int = DEFAULT_FIGURE_IMAGES
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    bootstrap_seed: int = 0
    threads: int | None = None
    out_md: Path | None = REPO_ROOT / "docs" / "leaderboard.md"
    out_figures: Path | None = REPO_ROOT / "docs" / "images"
    out_csv: Path | None = REPO_ROOT / "docs" / "leaderboard_scores.csv"
    out_json: Path | None = REPO_ROOT / "docs" / "leaderboard_scores.json"
    out_readme: Path | None = None
    command: str | None = None
    verbose: bool = True


@dataclass
class MethodResult:
    """One row of a run's table: a method's per-scene scores, their means and intervals, and its speed.

    ``scores[metric]`` holds one score per scene, in scene order: ``n`` of them for the map metrics, the first
    ``n_perturbation`` for the perturbation metrics. ``versus_best`` is the paired comparison on the scenario's
    ranking metric with the best method (``None`` for the best itself, until :func:`compare_with_best` runs).
    """

    name: str
    class_name: str
    seconds_per_image: float
    n: int = 0
    n_perturbation: int = 0
    scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    intervals: dict[str, BootstrapInterval] = field(default_factory=dict, repr=False)
    versus_best: PairedComparison | None = None
    shares_scores_with: str | None = None
    notes: list[str] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        """The mean of ``metric`` over the scenes it was scored on."""
        return self.intervals[metric].mean

    @property
    def like_best(self) -> bool:
        """Whether the paired bootstrap cannot tell this method from the best on the ranking metric (the best
        itself included)."""
        return self.versus_best is None or not self.versus_best.distinguishable


@dataclass
class RunResult:
    """One run (model × scenario): its rows sorted best first, the skipped methods, the model's accuracy on the
    scenes, the intervention test (scenario 3) and the maps."""

    model: str
    scenario: str
    results: list[MethodResult]
    skipped: dict[str, str]
    accuracy: float
    interventions: dict[str, InterventionResult] = field(default_factory=dict)
    cams: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    explanations: Explanations | None = field(repr=False, default=None)

    @property
    def ranking_metric(self) -> str:
        """The metric that ranks this run's methods."""
        return SCENARIO_METRICS[self.scenario][0].key

    @property
    def label(self) -> str:
        """``model · scenario``."""
        return f"{self.model} · {self.scenario}"


@dataclass
class Leaderboard:
    """The outcome of :func:`run_leaderboard`: the runs in order, the Markdown and the headline table."""

    runs: list[RunResult]
    markdown: str
    headline: str
    wall_seconds: float

    def run(self, model: str, scenario: str) -> RunResult:
        """The run of ``model`` on ``scenario``."""
        for run in self.runs:
            if (run.model, run.scenario) == (model, scenario):
                return run
        raise KeyError(f"no run {model} · {scenario}")


# ------------------------------------------------------------------------------------------------- set-up
def select_methods(requested: Sequence[str] | None, vit: bool = False) -> tuple[list[str], dict[str, str]]:
    """The methods to run on a model (command-line names, in :data:`METHOD_NAMES` order unless given) and the
    skipped ones.

    Args:
        requested: method names (case-insensitive), or ``None`` for every method.
        vit: whether the model is a Vision Transformer (the ViT-only methods run on it).

    Returns:
        ``(names, skipped)``: ``skipped`` maps each ViT-only name asked for on a CNN to the reason.

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
    skipped = {} if vit else {name: VIT_ONLY[name] for name in names if name in VIT_ONLY}
    kept = [name for name in names if name not in skipped]
    if not kept:
        raise ValueError(f"no CAM method left to run on a CNN (skipped: {', '.join(skipped) or 'none'})")
    return kept, skipped


def select_runs(requested: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The runs to do: ``requested`` (model, scenario) pairs validated, or :data:`DEFAULT_RUNS`.

    Raises:
        TypeError: if ``requested`` is not a sequence of pairs of strings.
        ValueError: for an unknown model or scenario, a repeated run, a shortcut model on another scenario or the
            other way round, or an empty list.
    """
    if requested is None:
        return list(DEFAULT_RUNS)
    if isinstance(requested, str) or not all(
        isinstance(run, (tuple, list)) and len(run) == 2 and all(isinstance(part, str) for part in run)
        for run in requested
    ):
        raise TypeError(f"runs must be a list of (model, scenario) pairs of str; got {requested!r}")
    runs = [(str(model), str(scenario)) for model, scenario in requested]
    if not runs:
        raise ValueError("runs must hold at least one (model, scenario) pair")
    for model, scenario in runs:
        if model not in DEMO_MODELS:
            raise ValueError(f"runs: unknown model {model!r}; expected one of {tuple(DEMO_MODELS)}")
        if scenario not in SCENARIOS:
            raise ValueError(f"runs: unknown scenario {scenario!r}; expected one of {SCENARIOS}")
        if (DEMO_MODELS[model].scenario == "shortcut") != (scenario == "shortcut"):
            raise ValueError(
                f"runs: {model} · {scenario} does not fit: the shortcut scenario is for the shortcut model "
                "(shortcut_cnn), whose classes are markers, and only it"
            )
    repeated = sorted({f"{m}:{s}" for m, s in runs if runs.count((m, s)) > 1})
    if repeated:
        raise ValueError(f"runs must not repeat a run; got {', '.join(repeated)} more than once")
    return runs


def load_explanations(scenario: str, n: int, seed: int) -> Explanations:
    """The explanations of ``n`` held-out scenes of ``scenario`` (one per labelled object of each scene)."""
    return BenchmarkScenes(scenario, n, seed).explanations()  # type: ignore[arg-type]


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


def _check_config(config: LeaderboardConfig) -> None:
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


def _check_seed(config: LeaderboardConfig, model_name: str, model: nn.Module) -> None:
    training_seed = getattr(model, "metadata", {}).get("seed")
    if training_seed is not None and config.seed == training_seed:
        raise ValueError(
            f"seed {config.seed} is the {model_name} model's training seed; use held-out scenes "
            f"(e.g. {HELDOUT_SEED}, the training script's held-out seed)"
        )


# ------------------------------------------------------------------------------------------------ running
def make_cam(name: str, model: nn.Module, batch_size: int) -> Any:
    """The CAM object of ``name`` for a demo model (its target layers and reshape transform):
    :data:`METHOD_KWARGS`, ``batch_size``, no progress bar."""
    cam = get_method(name)(
        model=model,
        target_layers=demo_target_layers(model),  # type: ignore[arg-type]
        reshape_transform=demo_reshape_transform(model),  # type: ignore[arg-type]
        **METHOD_KWARGS.get(name, {}),
    )
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


def _warm_up(model: nn.Module, inputs: torch.Tensor, labels: np.ndarray) -> None:
    """One GradCAM call on the batch, so that the first method timed does not pay torch's one-time start-up and
    allocation costs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with make_cam("gradcam", model, DEFAULT_BATCH_SIZE) as cam:
            cam(inputs, [ClassifierOutputTarget(int(label)) for label in labels])


def _maps_key(cams: np.ndarray) -> str:
    """A digest of the maps' bytes and shape: equal keys mean bitwise-identical maps."""
    return hashlib.sha256(repr(cams.shape).encode() + np.ascontiguousarray(cams).tobytes()).hexdigest()


def map_scores(scenario: str, cams: np.ndarray, explanations: Explanations, tolerance: float) -> dict[str, np.ndarray]:
    """The scenario's map metrics (not the perturbation ones) per explanation."""
    right, wrong = explanations.right, explanations.wrong
    scores: dict[str, np.ndarray] = {}
    for metric in SCENARIO_METRICS[scenario]:
        if metric.key == "pointing_game":
            values = pointing_game(cams, right, tolerance=tolerance)
        elif metric.key == "discriminative_pointing_game":
            values = discriminative_pointing_game(cams, right, wrong, tolerance=tolerance)
        elif metric.key == "energy_pointing_game":
            values = energy_pointing_game(cams, right)
        elif metric.key == "relevance_share":
            values = relevance_share(cams, right, wrong)
        else:
            continue
        scores[metric.key] = np.asarray(values, dtype=np.float64)
    return scores


def perturbation_scores(
    model: nn.Module, inputs: torch.Tensor, cams: np.ndarray, labels: np.ndarray, config: LeaderboardConfig
) -> dict[str, np.ndarray]:
    """Deletion AUC, insertion AUC and ROAD combined of each map, on the true class's softmax probability."""
    targets = [ClassifierOutputTarget(int(label)) for label in labels]
    k = len(inputs)
    torch.manual_seed(config.torch_seed)
    deletion = DeletionAUC(config.steps, batch_size=config.batch_size)(inputs, cams, targets, model)
    insertion = InsertionAUC(config.steps, batch_size=config.batch_size)(inputs, cams, targets, model)
    torch.manual_seed(config.torch_seed)
    road = ROADCombined(list(config.road_percentiles))(
        inputs, cams, [ClassifierOutputSoftmaxTarget(int(label)) for label in labels], model
    )
    return {
        "deletion_auc": np.asarray(deletion, dtype=np.float64).reshape(k),
        "insertion_auc": np.asarray(insertion, dtype=np.float64).reshape(k),
        "road_combined": np.asarray(road, dtype=np.float64).reshape(k),
    }


def evaluate_method(
    name: str,
    model: nn.Module,
    scenario: str,
    explanations: Explanations,
    config: LeaderboardConfig,
    cache: dict[str, tuple[str, dict[str, np.ndarray]]] | None = None,
) -> tuple[MethodResult, np.ndarray]:
    """Run one method on all the given explanations, time it and score its maps; returns the row and the maps.

    The map metrics score every scene, the perturbation metrics (scenario 1) the first ``config.n_perturbation``.

    Args:
        name: the method's command-line name.
        model: the demo model.
        scenario: the scenario of the explanations.
        explanations: what to explain.
        config: the run's settings.
        cache: maps digest → (method, perturbation scores) of the methods run before on the same model and scenes;
            bitwise-identical maps reuse those scores (the metrics are seeded the same way, so they would be
            recomputed identically). Updated in place.

    Returns:
        ``(result, maps)``: the row (means, per-scene scores, intervals; no comparison yet) and ``(E, H, W)`` maps.
    """
    labels = explanations.labels
    cam_targets = [
        METHOD_TARGETS[name](int(label)) if name in METHOD_TARGETS else ClassifierOutputTarget(int(label))
        for label in labels
    ]
    notes: list[str] = []
    torch.manual_seed(config.torch_seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with make_cam(name, model, config.batch_size) as cam:
            start = time.perf_counter()
            cams = cam(explanations.inputs, cam_targets)
            seconds = time.perf_counter() - start
    _collect(caught, notes, "cam")
    cams = np.asarray(cams, dtype=np.float32)
    if not np.isfinite(cams).all():
        notes.append("cam: non-finite values, set to 0")
        cams = np.nan_to_num(cams, nan=0.0, posinf=0.0, neginf=0.0)
    zero = int((cams.reshape(len(cams), -1).max(axis=1) <= 0).sum())
    if zero:
        notes.append(f"{zero} of {len(cams)} maps are zero everywhere (a miss, energy 0)")

    count = len(explanations.images)
    metrics = SCENARIO_METRICS[scenario]
    needs_perturbation = any(metric.perturbation for metric in metrics)
    k = min(config.n_perturbation, count) if needs_perturbation else 0
    shared = None
    expected = ("zero everywhere", "no known pixel", "are empty")  # reported above / explained in the settings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = {
            key: explanations.per_scene(values)
            for key, values in map_scores(scenario, cams, explanations, config.tolerance).items()
        }
        if needs_perturbation:
            part = explanations.first(k)
            key = _maps_key(cams[: len(part.labels)])
            shared = cache.get(key) if cache is not None else None
            if shared is not None:
                perturbation = {metric: values.copy() for metric, values in shared[1].items()}
            else:
                perturbation = perturbation_scores(model, part.inputs, cams[: len(part.labels)], part.labels, config)
                if cache is not None:
                    cache[key] = (name, perturbation)
            scores.update({key: part.per_scene(values) for key, values in perturbation.items()})
    _collect([w for w in caught if not any(text in str(w.message) for text in expected)], notes, "metrics")
    intervals = {
        metric.key: bootstrap_interval(scores[metric.key], config.confidence, config.resamples, config.bootstrap_seed)
        for metric in metrics
    }
    result = MethodResult(
        name=name,
        class_name=METHOD_NAMES[name],
        seconds_per_image=seconds / len(labels),
        n=count,
        n_perturbation=k,
        scores=scores,
        intervals=intervals,
        shares_scores_with=shared[0] if shared is not None else None,
        notes=notes,
    )
    return result, cams


def sort_results(results: Sequence[MethodResult], scenario: str) -> list[MethodResult]:
    """Best first: by the scenario's metrics in table order (each in its better direction), then by name."""
    metrics = [metric for metric in SCENARIO_METRICS[scenario] if not metric.perturbation] + [
        metric for metric in SCENARIO_METRICS[scenario] if metric.perturbation
    ]

    def key(result: MethodResult) -> tuple[Any, ...]:
        return (*(-result.mean(m.key) if m.higher_is_better else result.mean(m.key) for m in metrics), result.name)

    return sorted(results, key=key)


def compare_with_best(results: Sequence[MethodResult], metric: str, config: LeaderboardConfig) -> None:
    """Set ``versus_best`` of every row but the reference: the paired bootstrap of its per-scene scores on ``metric``
    against the reference's, on the scenes both were scored on (the first ``min(n)``).

    The reference is the first row (rows sorted best first) among those scored on every scene: a slow method's
    mean over its few scenes may come first, but a comparison with it on those few scenes could not tell anything
    apart (the baseline included)."""
    if not results:
        return
    most = max(result.n for result in results)
    best = next(result for result in results if result.n == most)
    best.versus_best = None
    for result in results:
        if result is best:
            continue
        k = min(best.n, result.n)
        result.versus_best = paired_bootstrap(
            result.scores[metric][:k],
            best.scores[metric][:k],
            config.confidence,
            config.resamples,
            config.bootstrap_seed,
        )


def model_accuracy(model: nn.Module, explanations: Explanations, batch_size: int) -> float:
    """The share of scenes the model gets right: its top-``k`` classes are the scene's ``k`` labels (``k = 2`` in
    scenario 2, 1 otherwise); one forward pass per scene, ``batch_size`` scenes at a time."""
    scenes = len(explanations.images)
    if scenes == 0:
        return float("nan")
    first = np.searchsorted(explanations.scene, np.arange(scenes))  # each scene's first explanation
    counts = np.bincount(explanations.scene, minlength=scenes)
    with torch.no_grad():
        logits = torch.cat(
            [model(explanations.inputs[first[start : start + batch_size]]) for start in range(0, scenes, batch_size)]
        )
    ranked = logits.argsort(dim=1, descending=True).cpu().numpy()
    correct = [
        set(ranked[index, : counts[index]].tolist()) == set(explanations.labels[explanations.scene == index].tolist())
        for index in range(scenes)
    ]
    return float(np.mean(correct))


def shortcut_interventions(
    model: nn.Module, explanations: Explanations, seed: int, batch_size: int
) -> dict[str, InterventionResult]:
    """The shortcut model's predictions on the held-out shortcut scenes of ``explanations`` (seed ``seed``) before
    and after each intervention of :data:`~pytorch_grad_cam.demo.scenarios.INTERVENTIONS` (labels: the unaltered
    scenes' classes)."""
    dataset = BenchmarkScenes("shortcut", len(explanations.images), seed)
    return {
        intervention: intervention_effect(
            model, explanations.inputs, normalize(dataset.images(intervention)), explanations.labels, batch_size
        )
        for intervention in INTERVENTIONS
    }


# ------------------------------------------------------------------------------------------------- output
def _comparison_cell(result: MethodResult) -> str:
    """``best`` for the reference row (the best of the methods scored on every scene), ``≈`` when the paired
    bootstrap cannot tell the row from it, else empty."""
    if result.versus_best is None:
        return "best"
    return "≈" if result.like_best else ""


def format_table(run: RunResult) -> str:
    """The Markdown table of a run's rows in their order: every mean with its interval, ``N`` (map metrics /
    perturbation metrics; ``*`` for the slow methods' smaller ``N``), the comparison with the best; the baseline's
    name is marked."""
    metrics = SCENARIO_METRICS[run.scenario]
    perturbation = any(metric.perturbation for metric in metrics)
    header = ["#", "method", "N", "≈ best", *(metric.title for metric in metrics), "s / image"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---:", ":---", "---:", ":---:"] + ["---:"] * (len(metrics) + 1)) + "|",
    ]
    for rank, result in enumerate(run.results, start=1):
        label = f"`{result.name}`" + (" (baseline)" if result.name == BASELINE else "")
        slow = "*" if result.name in SLOW_METHODS else ""
        cells = [
            str(rank),
            label,
            f"{result.n}{slow}" + (f" / {result.n_perturbation}" if perturbation else ""),
            _comparison_cell(result),
            *(result.intervals[metric.key].format(3) for metric in metrics),
            f"{result.seconds_per_image:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_table(runs: Sequence[RunResult]) -> str:
    """Methods × runs: each run's ranking-metric mean, **bold** for the best and the methods not distinguishable
    from it; methods sorted by their mean rank over the runs they ran in."""
    names: list[str] = []
    for run in runs:
        names += [result.name for result in run.results if result.name not in names]
    ranks: dict[str, list[int]] = {name: [] for name in names}
    cells: dict[tuple[str, int], str] = {}
    for column, run in enumerate(runs):
        for rank, result in enumerate(run.results, start=1):
            ranks[result.name].append(rank)
            value = f"{result.mean(run.ranking_metric):.2f}"
            cells[result.name, column] = f"**{value}**" if result.like_best else value
    order = sorted(names, key=lambda name: (float(np.mean(ranks[name])), name))
    header = ["method", *(f"{run.model}<br>{SCENARIO_SHORT[run.scenario]}" for run in runs)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * len(runs)) + "|"]
    for name in order:
        label = f"`{name}`" + (" (baseline)" if name == BASELINE else "")
        lines.append("| " + " | ".join([label, *(cells.get((name, c), "–") for c in range(len(runs)))]) + " |")
    accuracy = ["model accuracy on these scenes", *(f"{run.accuracy:.3f}" for run in runs)]
    lines.append("| " + " | ".join(f"*{cell}*" for cell in accuracy) + " |")
    return "\n".join(lines)


def header_line(config: LeaderboardConfig, date: str | None = None) -> str:
    """``Date, machine, N`` line above the tables."""
    date = date or datetime.date.today().isoformat()
    n_slow = min(config.n_slow, config.n)
    n_perturbation = min(config.n_perturbation, config.n)
    return (
        f"{date} · {machine_description()} · N = {config.n} held-out scenes per scenario "
        f"(`BenchmarkScenes(scenario, {config.n}, seed={config.seed})`), true labels as targets; the slow methods "
        f"({', '.join(f'`{name}`' for name in sorted(SLOW_METHODS))}, marked `*`) on the first {n_slow}; "
        f"deletion, insertion and ROAD on the first {n_perturbation} of each method's scenes"
        + (
            ""
            if (config.n, config.n_slow, config.n_perturbation) == (DEFAULT_N, DEFAULT_N_SLOW, DEFAULT_N_PERTURBATION)
            else f" — **a reduced run**: the default is N = {DEFAULT_N} ({DEFAULT_N_SLOW} for the slow methods, "
            f"{DEFAULT_N_PERTURBATION} for the perturbation metrics)"
        )
    )


def models_table(runs: Sequence[RunResult], models: dict[str, nn.Module]) -> str:
    """The models: architecture, parameters, training held-out accuracy, accuracy on each scenario's scenes."""
    scenarios = [scenario for scenario in SCENARIOS if any(run.scenario == scenario for run in runs)]
    header = ["model", "architecture", "parameters", "held-out accuracy (training script)"]
    header += [f"accuracy, {SCENARIO_SHORT[s]}" for s in scenarios]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---", ":---"] + ["---:"] * (len(header) - 2)) + "|"]
    for name, model in models.items():
        metadata = getattr(model, "metadata", {})
        accuracy = metadata.get("heldout_accuracy")
        cells = [
            f"`{name}`",
            DEMO_MODELS[name].description,
            f"{sum(p.numel() for p in model.parameters()):,}",
            f"{accuracy:.4f} ({metadata.get('heldout_size', '?')} scenes)" if accuracy is not None else "?",
        ]
        for scenario in scenarios:
            run = next((r for r in runs if (r.model, r.scenario) == (name, scenario)), None)
            cells.append(f"{run.accuracy:.3f}" if run is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def interventions_table(interventions: dict[str, InterventionResult]) -> str:
    """The intervention test: accuracy before / after (against the unaltered scenes' labels), flip rate,
    probability of the unaltered label before and after."""
    what = {
        "no_marker": "marker removed (true class becomes *no marker*)",
        "no_shape": "shape removed (true class unchanged)",
        "swap_marker": "marker swapped for the other pattern (true class swapped)",
    }
    lines = [
        "| intervention | accuracy before | accuracy after | prediction changed | p(label) before | p(label) after |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for name, result in interventions.items():
        lines.append(
            f"| {what.get(name, name)} | {result.accuracy_before:.3f} | {result.accuracy_after:.3f} | "
            f"{result.flip_rate:.3f} | {result.probability_before.mean():.3f} | {result.probability_after.mean():.3f} |"
        )
    return "\n".join(lines)


def settings_lines(config: LeaderboardConfig) -> list[str]:
    """The metric and method settings, as Markdown bullet points."""
    percentiles = ", ".join(f"{p:g}" for p in config.road_percentiles)
    method_kwargs = "; ".join(
        f"{name}: " + ", ".join(f"{key}={value}" for key, value in kwargs.items())
        for name, kwargs in METHOD_KWARGS.items()
    )
    return [
        f"- Pointing game: maximum of the map on the right mask, within {config.tolerance:g} px (half a cell of the "
        "models' 8 × 8 maps: a map of that resolution cannot place its peak more precisely; Zhang et al.'s 15 px are "
        "half a cell of a stride-32 network on 224-px images; a map "
        "whose maximum is a plateau hits only if all of it does). Discriminative pointing game: on the right mask "
        "and not on the wrong one (`discriminative_pointing_game`). Relevance share: positive relevance in the right "
        "mask / in the right and wrong masks (`relevance_share`, 0.5 when neither holds any). Energy pointing "
        "game: share of the map's sum inside the right mask. In scenario 2 a scene's score is the mean of its two "
        "explanations (one per class), so a class-agnostic map scores at most 0.5 there.",
        f"- Deletion / insertion AUC (RISE): {config.steps} steps, softmax probability of the true class; deletion "
        "sets pixels to 0 (the dataset mean after normalisation), insertion starts from the image blurred "
        "(Gaussian 11 px, σ = 5).",
        f"- ROAD combined: `ROADCombined(percentiles=[{percentiles}])`, noisy linear imputation (noise 0.01), "
        "scored on the true class's softmax probability (`ClassifierOutputSoftmaxTarget`); range [-0.5, 0.5]. "
        "As in the reference, MoRF removes the pixels at or above the p-th percentile, so for a map with more "
        "than p % exact zeros (any ReLU'd CAM with a compact blob) it removes every pixel (then imputed as 0 "
        "+ noise).",
        f"- Each score is the mean over the scenes with its {100 * config.confidence:g} % bootstrap percentile "
        f"interval in brackets (`bootstrap_interval`, {config.resamples} resamples, seed {config.bootstrap_seed}). "
        "**best**: the best of the methods run on all N scenes on the table's first metric (a slow method run on "
        "fewer scenes may rank above it). **≈ best**: a paired bootstrap of the per-scene differences with it "
        f"(`paired_bootstrap`, on the scenes both were run on) gives a {100 * config.confidence:g} % "
        "interval that holds 0, so the two are not distinguishable on these scenes; the ranking among the ≈ rows "
        "is not significant. **N**: scenes of the map metrics (/ of the perturbation metrics).",
        "- Seconds per image: one call on all the method's explanations divided by their number, after a warm-up, "
        f"measured in this run; perturbation methods and metrics use batch_size={config.batch_size}, progress "
        "bars off.",
        f"- Method settings (library defaults otherwise): {method_kwargs}. "
        f"`torch.manual_seed({config.torch_seed})` before each method and each of its perturbation metrics.",
    ]


def _relative(path: Path, md_path: Path | None) -> str:
    return Path(os.path.relpath(path, md_path.parent) if md_path is not None else path).as_posix()


def run_section(run: RunResult) -> list[str]:
    """A run's subsection: its table, baseline comparison, shared scores, skipped methods and notes."""
    lines = [f"### `{run.model}` · accuracy {run.accuracy:.3f} on these scenes", "", format_table(run), ""]
    baseline = next((result for result in run.results if result.name == BASELINE), None)
    metric = run.ranking_metric
    if baseline is not None:
        below = [f"`{r.name}` ({r.mean(metric):.3f})" for r in run.results if r.mean(metric) < baseline.mean(metric)]
        lines.append(
            f"- Below the `{BASELINE}` baseline ({baseline.mean(metric):.3f}) on the first metric (means): "
            + (", ".join(below) if below else "none")
            + "."
        )
    shared = [result for result in run.results if result.shares_scores_with is not None]
    if shared:
        lines.append(
            "- Bitwise-identical maps on the perturbation metrics' scenes (scores computed once): "
            + ", ".join(f"`{result.name}` = `{result.shares_scores_with}`" for result in shared)
            + "."
        )
    if run.skipped:
        lines.append("- Skipped: " + "; ".join(f"`{name}` ({reason})" for name, reason in run.skipped.items()) + ".")
    noted = [result for result in run.results if result.notes]
    if noted:
        lines.append(
            "- Warnings raised while computing or scoring the maps: "
            + "; ".join(f"`{result.name}`: " + " / ".join(result.notes) for result in noted)
            + "."
        )
    return [*lines, ""]


SCENARIO_TEXT: dict[str, str] = {
    "single": "One object of a class per scene (`SceneDataset`'s scenes), lines and blobs of no class around it; "
    "the map of the object's class should point at it.",
    "pair": "Two objects of different classes per scene; each class is explained in turn and its map should point "
    "at that class's object, not at the other. A class-agnostic map (the same for both classes) is right for one "
    "of the two at most: 0.5 is its ceiling on both metrics, and the level a method must pass to be class-"
    "discriminative.",
    "shortcut": "One shape of a random class and a small 12 × 12 marker (checkerboard or stripes) at a random "
    "place; the model (`shortcut_cnn`) was trained where the marker *alone* decides the class (and a scene without "
    "marker is a third class), so a faithful map points at the marker, not at the larger shape. The intervention "
    "test below verifies the reliance on the same scenes.",
    "distractors": "The scenes of scenario 1 with one to three objects of no class (ring, L, bar) painted beside "
    "the object, none of them seen in training: the map should stay on the object.",
}


def build_markdown(
    config: LeaderboardConfig,
    runs: Sequence[RunResult],
    models: dict[str, nn.Module],
    wall_seconds: float,
    figures: dict[str, Path],
    md_path: Path | None,
    csv_path: Path | None = None,
    json_path: Path | None = None,
) -> str:
    """The whole Markdown page: header, headline table, models, a section per scenario (tables, intervention
    test, figure), settings and remarks."""
    lines = ["# CAM leaderboard on the benchmark scenes", "", header_line(config), ""]
    lines += [
        "## Headline",
        "",
        "Each run's first metric (pointing game; class-discriminative in scenario 2; on the marker in scenario 3); "
        "**bold**: the best of the methods run on all N scenes and every method a paired bootstrap cannot tell "
        "from it; methods in order of their "
        "mean rank. The last row is the model's accuracy on the run's scenes (top-2 = both classes in "
        "scenario 2).",
        "",
        headline_table(runs),
        "",
    ]
    if csv_path is not None or json_path is not None:
        written = [f"[`{_relative(p, md_path)}`]({_relative(p, md_path)})" for p in (csv_path, json_path) if p]
        lines += [
            "Every per-scene score (run, method, scene, labels, metric values; empty where a metric was not run on "
            "that scene): " + " and ".join(written) + ".",
            "",
        ]
    lines += ["## Models", "", models_table(runs, models), ""]
    lines += [
        "Trained by `python -m pytorch_grad_cam.demo.train --model NAME` from seed 0 (recipes in "
        "`pytorch_grad_cam.demo.train.RECIPES`), shipped as float16; held-out accuracy on 2000 scenes of the "
        "training script's held-out seed.",
        "",
    ]
    for scenario in SCENARIOS:
        scenario_runs = [run for run in runs if run.scenario == scenario]
        if not scenario_runs:
            continue
        lines += [f"## {SCENARIO_TITLES[scenario]}", "", SCENARIO_TEXT[scenario], ""]
        for run in scenario_runs:
            if run.interventions:
                lines += [
                    f"Intervention test of `{run.model}` on the same {config.n} scenes (every other pixel "
                    "unchanged; the labels are those of the unaltered scenes):",
                    "",
                    interventions_table(run.interventions),
                    "",
                ]
            lines += run_section(run)
        if scenario in figures:
            lines += [
                f"![Maps of the first scenes of {scenario}]({_relative(figures[scenario], md_path)})",
                "",
                f"`{scenario_runs[0].model}`; methods in its table's order, each map over its image, the right "
                "mask as a white contour, the wrong one (other class, shape, distractors) as a red one; a ✓ marks "
                "a hit of the first metric.",
                "",
            ]
    lines += ["## Settings and remarks", ""]
    lines += settings_lines(config)
    lines += [f"- {remark}" for remark in REMARKS]
    command = config.command or "python benchmarks/leaderboard.py"
    lines.append(f"- Whole run: {wall_seconds:.0f} s wall time (`{command}`).")
    return "\n".join(lines) + "\n"


def write_scores(
    runs: Sequence[RunResult], config: LeaderboardConfig, csv_path: Path | None, json_path: Path | None
) -> None:
    """Write every per-scene score: a CSV row per (run, method, scene) and a JSON document with the summaries.

    CSV columns: ``model, scenario, method, scene, labels`` and one column per metric of any scenario (empty where
    the metric does not apply or was not run on that scene), :data:`SCORE_DIGITS` significant digits. JSON: the
    settings and per run its accuracy, intervention test, and per method its ``N`` values, seconds per image,
    means with intervals, the paired comparison with the best and the per-scene scores (in scene order).
    """
    metrics: list[str] = []
    for scenario in SCENARIOS:
        metrics += [m.key for m in SCENARIO_METRICS[scenario] if m.key not in metrics]
    if csv_path is not None:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["model", "scenario", "method", "scene", "labels", *metrics])
            for run in runs:
                assert run.explanations is not None
                for result in run.results:
                    for scene in range(result.n):
                        values = [
                            f"{float(result.scores[m][scene]):.{SCORE_DIGITS}g}"
                            if m in result.scores and scene < len(result.scores[m])
                            else ""
                            for m in metrics
                        ]
                        writer.writerow(
                            [run.model, run.scenario, result.name, scene, run.explanations.scene_labels[scene], *values]
                        )
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
                "machine": machine_description(),
                "date": datetime.date.today().isoformat(),
            },
            "runs": [
                {
                    "model": run.model,
                    "scenario": run.scenario,
                    "ranking_metric": run.ranking_metric,
                    "accuracy": run.accuracy,
                    "labels": run.explanations.scene_labels if run.explanations is not None else [],
                    "interventions": {
                        name: {
                            "accuracy_before": result.accuracy_before,
                            "accuracy_after": result.accuracy_after,
                            "flip_rate": result.flip_rate,
                            "probability_before": float(result.probability_before.mean()),
                            "probability_after": float(result.probability_after.mean()),
                        }
                        for name, result in run.interventions.items()
                    },
                    "skipped": run.skipped,
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
                                metric: [float(f"{value:.{SCORE_DIGITS}g}") for value in values]
                                for metric, values in result.scores.items()
                            },
                            "shares_scores_with": result.shares_scores_with,
                            "notes": result.notes,
                        }
                        for rank, result in enumerate(run.results, start=1)
                    ],
                }
                for run in runs
            ],
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_figure(path: Path, run: RunResult, count: int, tolerance: float = 0.0, columns: int = 3) -> Path:
    """A grid of methods × explanations of one run: each method a block of its maps over the first ``count``
    explanations' images, the right mask's contour in white and the wrong one's in red, ✓ on a hit of the
    run's first metric.

    Args:
        path: the PNG to write (its folder is created).
        run: the run (with its maps and explanations).
        count: explanations per block.
        tolerance: the pointing game's tolerance (for the ✓ marks).
        columns: method blocks per figure row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pytorch_grad_cam.utils.image import show_cam_on_image

    explanations = run.explanations
    if explanations is None or count < 1:
        raise ValueError("write_figure needs a run with explanations and count >= 1")
    count = min(count, len(explanations.labels))
    images = explanations.images[explanations.scene[:count]]
    shown = [result for name in FIGURE_METHODS for result in run.results if result.name == name]
    blocks: list[tuple[str, Callable[[int], np.ndarray], np.ndarray | None]] = [("input", lambda i: images[i], None)]
    metric = run.ranking_metric
    for result in shown:
        maps = run.cams[result.name]
        blocks.append(
            (
                f"{result.name}  ({result.mean(metric):.2f})",
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
    right, wrong = explanations.right[:count], explanations.wrong[:count]
    for index, (title, draw, maps) in enumerate(blocks):
        row, block = divmod(index, columns)
        for i in range(count):
            axis = axes[row, block * count + i]
            axis.imshow(draw(i))
            axis.contour(right[i].astype(float), levels=[0.5], colors="white", linewidths=0.8)
            if wrong[i].any():
                axis.contour(wrong[i].astype(float), levels=[0.5], colors="red", linewidths=0.8)
            if maps is not None:
                if metric == "pointing_game":
                    hit = pointing_game(maps[i : i + 1], right[i : i + 1], tolerance)[0]
                else:
                    hit = discriminative_pointing_game(maps[i : i + 1], right[i : i + 1], wrong[i : i + 1], tolerance)[
                        0
                    ]
                if hit:
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


def update_readme(path: Path, headline: str, config: LeaderboardConfig) -> None:
    """Replace the text between the leaderboard markers of ``path`` with the headline table and its date line.

    Raises:
        ValueError: if the file lacks the markers.
    """
    text = Path(path).read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {README_START} ... {README_END} markers to put the headline table between")
    block = f"{README_START}\n{header_line(config)}\n\n{headline}\n{README_END}"
    Path(path).write_text(pattern.sub(lambda _: block, text), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------- main
def run_one(
    model_name: str,
    model: nn.Module,
    scenario: str,
    explanations: Explanations,
    config: LeaderboardConfig,
    say: Callable[..., None],
) -> RunResult:
    """Every selected method on one model × scenario; rows sorted and compared with the best."""
    names, skipped = select_methods(config.methods, vit=isinstance(model, DemoViT))
    for name, reason in skipped.items():
        say(f"skipping {name} on {model_name}: {reason}")
    n_slow = min(config.n_slow, config.n)
    slow_explanations = explanations.first(n_slow)
    results, cams_by_method = [], {}
    cache: dict[str, tuple[str, dict[str, np.ndarray]]] = {}
    for name in names:
        method_start = time.perf_counter()
        part = slow_explanations if name in SLOW_METHODS else explanations
        try:
            result, cams = evaluate_method(name, model, scenario, part, config, cache)
        except (TypeError, ValueError, RuntimeError) as error:  # one broken method must not end the run
            skipped[name] = f"failed: {type(error).__name__}: {str(error).splitlines()[0]}"
            say(f"{name:>20s}  {skipped[name]}")
            continue
        results.append(result)
        cams_by_method[name] = cams
        say(
            f"{name:>20s}  N {result.n:4d}/{result.n_perturbation:<4d} "
            + "  ".join(f"{m.key} {result.mean(m.key):.3f}" for m in SCENARIO_METRICS[scenario])
            + f"  {result.seconds_per_image:.4f} s/img  (with metrics {time.perf_counter() - method_start:.1f} s)"
            + (f"  [scores of {result.shares_scores_with}]" if result.shares_scores_with else "")
            + (f"  notes: {' | '.join(result.notes)}" if result.notes else "")
        )
    results = sort_results(results, scenario)
    compare_with_best(results, SCENARIO_METRICS[scenario][0].key, config)
    accuracy = model_accuracy(model, explanations, config.batch_size)
    interventions = (
        shortcut_interventions(model, explanations, config.seed, config.batch_size) if scenario == "shortcut" else {}
    )
    return RunResult(model_name, scenario, results, skipped, accuracy, interventions, cams_by_method, explanations)


def run_leaderboard(config: LeaderboardConfig) -> Leaderboard:
    """Every selected method on every selected run; write the Markdown, the scores, the figures (and the README's
    headline table); return the runs.

    Raises:
        TypeError, ValueError: for bad settings, method names or runs.
    """
    start = time.perf_counter()
    if not isinstance(config, LeaderboardConfig):
        raise TypeError(f"config must be a LeaderboardConfig; got {type(config).__name__}")
    runs_asked = select_runs(config.runs)
    select_methods(config.methods, vit=any(model == "vit" for model, _ in runs_asked))
    _check_config(config)
    models = {name: load_demo_model(name=name) for name in dict.fromkeys(model for model, _ in runs_asked)}
    for name, model in models.items():
        _check_seed(config, name, model)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    say: Callable[..., None] = (lambda *a: print(*a, flush=True)) if config.verbose else (lambda *a: None)
    say(header_line(config))
    explanations = {
        scenario: load_explanations(scenario, config.n, config.seed)
        for scenario in dict.fromkeys(scenario for _, scenario in runs_asked)  # each scenario's scenes once
    }
    warmed: set[str] = set()
    runs: list[RunResult] = []
    for model_name, scenario in runs_asked:
        model = models[model_name]
        if model_name not in warmed:
            part = explanations[scenario].first(min(config.n_slow, config.n))
            _warm_up(model, part.inputs, part.labels)
            warmed.add(model_name)
        run_start = time.perf_counter()
        say(f"--- {model_name} · {scenario}")
        runs.append(run_one(model_name, model, scenario, explanations[scenario], config, say))
        say(f"--- {model_name} · {scenario}: accuracy {runs[-1].accuracy:.3f}, {time.perf_counter() - run_start:.0f} s")
    figures: dict[str, Path] = {}
    if config.out_figures is not None and config.figure_images > 0:
        for run in runs:
            if run.scenario not in figures and run.results:
                figures[run.scenario] = write_figure(
                    Path(config.out_figures) / f"leaderboard_{run.scenario}.png",
                    run,
                    config.figure_images,
                    config.tolerance,
                )
    write_scores(runs, config, config.out_csv, config.out_json)
    headline = headline_table(runs)
    wall = time.perf_counter() - start
    markdown = build_markdown(config, runs, models, wall, figures, config.out_md, config.out_csv, config.out_json)
    if config.out_md is not None:
        Path(config.out_md).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out_md).write_text(markdown, encoding="utf-8")
    if config.out_readme is not None:
        update_readme(config.out_readme, headline, config)
    say("")
    say(markdown)
    written = [
        str(p) for p in (config.out_md, *figures.values(), config.out_csv, config.out_json, config.out_readme) if p
    ]
    say(f"wall time {wall:.1f} s" + (f"; wrote {', '.join(written)}" if written else ""))
    return Leaderboard(runs, markdown, headline, wall)


def _percentiles(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 10,50,90; got {text!r}") from None


def _runs(text: str) -> list[tuple[str, str]]:
    runs = []
    for part in text.split(","):
        if part.strip():
            model, colon, scenario = part.strip().partition(":")
            if not colon:
                raise argparse.ArgumentTypeError(
                    f"expected model:scenario pairs, e.g. cnn:single,vit:pair; got {text!r}"
                )
            runs.append((model, scenario))
    return runs


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
        f"scenes ({QUICK['n_slow']} for the slow ones, {QUICK['n_perturbation']} for the perturbation metrics) of "
        f"{len(QUICK['runs'])} runs, {QUICK['steps']} deletion / insertion steps, {QUICK['resamples']} bootstrap "
        "resamples",
    )
    parser.add_argument("--n", type=int, default=None, help=f"held-out scenes per scenario (default {DEFAULT_N})")
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
        help="comma-separated method names (default: every method; the ViT-only ones run on the ViT only)",
    )
    parser.add_argument(
        "--runs",
        type=_runs,
        default=None,
        help="comma-separated model:scenario pairs (default: "
        + ",".join(f"{m}:{s}" for m, s in DEFAULT_RUNS)
        + f"); models {', '.join(DEMO_MODELS)}, scenarios {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=HELDOUT_SEED,
        help=f"seed of the scenes (default {HELDOUT_SEED}, the training script's held-out seed)",
    )
    parser.add_argument("--torch-seed", type=int, default=0, help="torch.manual_seed before each method (default 0)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"pointing-game tolerance in pixels (default {DEFAULT_TOLERANCE:g}: half a cell of the 8 × 8 maps)",
    )
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
        help=f"explanations shown per method in the figures (default {DEFAULT_FIGURE_IMAGES}; 0: no figure)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=REPO_ROOT / "docs",
        help="folder of leaderboard.md, leaderboard_scores.csv / .json and images/leaderboard_<scenario>.png "
        "(default docs/)",
    )
    parser.add_argument(
        "--out-md", type=Path, default=None, help="Markdown output (default <output-dir>/leaderboard.md)"
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="a file whose leaderboard markers receive the headline table (default: the repository's README.md "
        "when --output-dir is docs/ and the run is the default one; none otherwise)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    return parser


def config_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> LeaderboardConfig:
    """The :class:`LeaderboardConfig` of parsed arguments: :data:`QUICK` or the defaults fill the unset options;
    the per-scene scores go next to the Markdown (``<stem>_scores.csv`` / ``.json``), the figures into
    ``images/`` beside it."""
    defaults: dict[str, Any] = {
        "n": DEFAULT_N,
        "n_slow": DEFAULT_N_SLOW,
        "n_perturbation": DEFAULT_N_PERTURBATION,
        "methods": None,
        "runs": None,
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
    readme = args.readme
    default_run = not args.quick and not given and args.output_dir.resolve() == (REPO_ROOT / "docs").resolve()
    if readme is None and default_run and args.out_md is None:
        readme = REPO_ROOT / "README.md"
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
        out_figures=out_md.parent / "images",
        out_csv=out_md.with_name(f"{out_md.stem}_scores.csv"),
        out_json=out_md.with_name(f"{out_md.stem}_scores.json"),
        out_readme=readme,
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
