"""This library side by side with its peers: torchcam 0.5, captum 0.9 and grad-cam 1.5.7, speed and agreement.

What is compared
    For each method that this library and a peer both implement, on torchvision ``resnet18`` / ``resnet50``
    (``weights=None``, seeded, eval mode; the same weights in every library and process), target layer
    ``layer4[-1]`` (FullGrad: every bias layer, as both libraries do; RefineCAM: ``layer3[-1]`` and
    ``layer4[-1]``), the same input tensor (smooth seeded noise) and the same classes: each image's top-1 class
    of the model, passed as ``ClassifierOutputTarget(k)`` / ``class_idx=k`` / ``target=k`` (FinerCAM: ``targets=None``
    in both libraries, which pick the same top class and comparison classes).

    * torchcam 0.5 (GradCAM, GradCAMpp, XGradCAM, LayerCAM, SmoothGradCAMpp, ScoreCAM, SSCAM, ISCAM) and captum
      0.9 (``LayerGradCam``, ``GuidedGradCam``) run in this process.
    * grad-cam 1.5.7 shares our import name ``pytorch_grad_cam``, so it runs in its own virtual environment
      (``benchmarks/.peers/gradcam157``, git-ignored) as a persistent worker process that receives commands as
      JSON lines on stdin and answers on stdout; the weights and the input reach it through ``torch.save`` files.
      That venv holds grad-cam 1.5.7 alone (``pip install --no-deps``); a ``.pth`` file appends this venv's
      site-packages to its ``sys.path``, so torch, torchvision, numpy... are the very same installation, and
      ``pytorch_grad_cam.__file__`` there is checked to point into the peer venv.

What one call is
    * ours and grad-cam 1.5.7: ``cam(input_tensor=x, targets=[ClassifierOutputTarget(k), ...])`` with the CAM
      object built beforehand (not timed) — the same code builds and calls both, numpy maps at input size.
    * torchcam: ``scores = model(x)`` (under ``no_grad`` for the Score-CAM family), ``extractor(class_idx=...,
      scores=scores)``, the layer-resolution map upsampled to the input size (bilinear, ``align_corners=False``)
      and copied to numpy; the extractor (hooks) is built beforehand.
    * captum: ``LayerGradCam.attribute(x, target=..., relu_attributions=True)`` upsampled to the input size with
      ``LayerAttribution.interpolate(..., "bilinear")``; ``GuidedGradCam.attribute(x, target=...,
      interpolate_mode="bilinear")`` reduced to one channel as ``Σ_ch |attr|`` (our GuidedGradCAM map is
      ``norm(L ⊙ Σ_ch |G_ch|)``); both to numpy.

How it is timed
    Every method first gets one untimed warm-up call per library (its maps give the correlation), then
    ``repeats`` timed calls per library, interleaved in one loop: ours, torchcam, captum, grad-cam, then the
    reverse order, and so on. In-process calls are timed around the call; grad-cam 1.5.7's calls are timed
    inside the worker (the pipe is not timed) while this process waits, so the two never run at once.
    Against grad-cam 1.5.7, ours are the calls of a second worker, the same worker code run by this venv's
    interpreter (``ours (worker)`` in the interleaving): the same process set-up on both sides. The same
    forward passes run up to ~10% slower in this process than in a fresh worker (this process holds three
    libraries, several models and its import history; the measured gap moved with what it had imported), so
    an in-process call against a worker call would measure the processes, not the libraries. The
    table gives the medians and ``ratio = peer s / ours s`` (above 1: we are faster). Each library works on
    its own deep copy of the model. ``torch.set_num_threads(--threads)`` (2) in every process; progress
    bars off (``progress=False`` for ours, ``TQDM_DISABLE=1`` for the others).

    The heap (``--heap pinned``, the default): glibc hands large blocks to the system when they are freed and
    moves its thresholds with the process's history, so the same forward passes page-fault more or less from one
    process to the next. Measured on this project's 2-core machine: resnet18 batch 8 forwards took 172-196 ms per
    pass in fresh processes with ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296`` and
    196-224 ms without (3 processes each), and ScoreCAM against grad-cam 1.5.7 (both in worker processes) gave
    0.88 without them and 1.01-1.02 with them (two full runs). So the script starts itself again with those two
    variables set (glibc reads them at start-up; other C libraries ignore them), and every process of the run,
    workers included, has the same fixed policy.
    ``--heap inherit`` keeps the environment's. The table's last line says which.

    The gradient methods run at the full setting (both models, batch 1 and 8, input 224). The perturbation
    methods (ScoreCAM, SS-CAM, IS-CAM, AblationCAM) and SESS (dozens of CAM calls per image) are far too slow
    for that on a CPU (ScoreCAM on resnet50 is 2048 forward passes per image), so they run at a reduced
    setting: resnet18, batch 1, input ``--reduced-size`` (96), ``--reduced-repeats`` (2) timed calls, SS-CAM
    and IS-CAM with ``--samples`` (2) noisy / integration samples in both libraries; the table's ``setting``
    column says which. Perturbation batch size: 32 masked inputs per forward pass in every library.

Agreement
    Pearson correlation of the two maps per image (both at the input size; flattened; guided backprop over
    pixels and channels), averaged over the batch; ``n/a`` where one map is constant. Correlation ignores
    the min-max normalisations. Where the two definitions differ on purpose the ``note`` column says so
    (and ``same_definition`` is false in the JSON); low numbers there are not errors.

How to run (from the repository root, this repository's venv active)
    python benchmarks/bench_peers.py --install   # install the peers into benchmarks/.peers/ and exit
    python benchmarks/bench_peers.py --quick     # smoke run (~2-4 min on 2 busy cores), see below
    python benchmarks/bench_peers.py             # full run (16 min on 2 idle cores, more when shared)
    python benchmarks/bench_peers.py --json peers.json --peers torchcam,captum --methods GradCAM,LayerCAM

``--quick``: resnet18, batch 1, input 64 for every method, one warm-up and one timed call per library for the
gradient methods; the perturbation methods are timed on their first call (cold, marked so) with 1 SS-CAM / IS-CAM
sample. It checks that everything runs; its ratios are rough. ``--reduced-repeats 0`` gives the same cold timing
in a full run. The table also gives ``min peer/ours``, the ratio of the fastest calls: on a shared machine other
loads only add time, so when it and the median ratio disagree the difference is within the noise.

The peers are not dependencies of the package. Missing ones are installed on demand (a message says so;
``--no-install`` skips them instead): torchcam and captum with ``pip install --no-deps --target
benchmarks/.peers/site`` (their requirements — numpy, matplotlib, pillow, packaging, tqdm — are already here,
so no other torch is pulled), grad-cam 1.5.7 into the peer venv as above. After that the script runs offline.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / ".peers"
#: torchcam and captum, installed with ``pip install --no-deps --target`` and appended to ``sys.path``.
INPROC_SITE = PEERS_DIR / "site"
#: The virtual environment holding grad-cam 1.5.7 (it shares our import name).
GRADCAM_VENV = PEERS_DIR / "gradcam157"
PTH_NAME = "_bench_peers_main_venv.pth"

TORCHCAM_VERSION = "0.5.0"
CAPTUM_VERSION = "0.9.0"
GRADCAM_VERSION = "1.5.7"

TORCHCAM, CAPTUM, GRADCAM = "torchcam", "captum", "grad-cam"
#: glibc's heap policy in every process of a run (``--heap pinned``): memory up to 32 MB comes from the heap, and
#: freed memory is kept for reuse instead of being returned to the system.
PINNED_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(4 * 1024**3)}
#: Our calls made in a worker process of this venv, for the comparison with grad-cam 1.5.7's worker.
OURS_WORKER = "ours (worker)"
PEER_NAMES = (TORCHCAM, CAPTUM, GRADCAM)
GRADIENT, PERTURBATION = "gradient", "perturbation"

# --------------------------------------------------------------------------------------------------------------
# Pure helpers (tested in tests/test_bench_peers.py)
# --------------------------------------------------------------------------------------------------------------


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays of the same size, flattened, in float64.

    Returns ``nan`` when either array is constant or holds a non-finite value.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"arrays of different sizes: {x.size} and {y.size}")
    if x.size == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    x = x - x.mean()
    y = y - y.mean()
    denominator = math.sqrt(float(x @ x) * float(y @ y))
    if denominator == 0.0:
        return math.nan
    return float(x @ y) / denominator


def mean_image_correlation(ours: np.ndarray, peer: np.ndarray) -> float:
    """The mean over the batch of the per-image :func:`pearson` of two ``(B, ...)`` arrays of the same shape;
    ``nan`` if any image's correlation is ``nan``."""
    if ours.shape != peer.shape:
        raise ValueError(f"maps of different shapes: {ours.shape} and {peer.shape}")
    return float(np.mean([pearson(ours[index], peer[index]) for index in range(ours.shape[0])]))


def median_ratio(peer_times: Sequence[float], ours_times: Sequence[float]) -> float:
    """``median(peer) / median(ours)``: above 1 when we are faster; ``nan`` when either list is empty."""
    if not peer_times or not ours_times:
        return math.nan
    ours = statistics.median(ours_times)
    return statistics.median(peer_times) / ours if ours > 0 else math.nan


def min_ratio(peer_times: Sequence[float], ours_times: Sequence[float]) -> float:
    """``min(peer) / min(ours)``: the ratio of the least disturbed calls (on a shared machine the other loads
    only ever add time); ``nan`` when either list is empty."""
    if not peer_times or not ours_times:
        return math.nan
    ours = min(ours_times)
    return min(peer_times) / ours if ours > 0 else math.nan


def heap_pinned(environment: Mapping[str, str]) -> bool:
    """Whether ``environment`` already holds :data:`PINNED_HEAP`."""
    return all(environment.get(name) == value for name, value in PINNED_HEAP.items())


def interleaved_order(names: Sequence[str], repeat: int) -> list[str]:
    """The order of the timed calls of one repeat: as given on even repeats, reversed on odd ones, so that no
    library always runs right after another one."""
    return list(names) if repeat % 2 == 0 else list(reversed(names))


@dataclass
class Row:
    """One compared (method, peer, model, batch) with its raw numbers."""

    method: str
    peer: str
    peer_method: str
    model: str
    batch: int
    size: int
    setting: str
    repeats: int
    ours_times: list[float] = field(default_factory=list)
    peer_times: list[float] = field(default_factory=list)
    correlation: float = math.nan
    cold: bool = False
    same_definition: bool = True
    note: str = ""
    error: str = ""

    @property
    def ours_s(self) -> float:
        """Median seconds of our calls (``nan`` without any)."""
        return statistics.median(self.ours_times) if self.ours_times else math.nan

    @property
    def peer_s(self) -> float:
        """Median seconds of the peer's calls (``nan`` without any)."""
        return statistics.median(self.peer_times) if self.peer_times else math.nan

    @property
    def ratio(self) -> float:
        """``peer s / ours s`` (above 1: we are faster)."""
        return median_ratio(self.peer_times, self.ours_times)

    @property
    def min_ratio(self) -> float:
        """``min(peer) / min(ours)``."""
        return min_ratio(self.peer_times, self.ours_times)

    def as_dict(self) -> dict[str, Any]:
        """The row with its medians and ratio, JSON-ready (``nan`` becomes ``None``)."""
        data = asdict(self)
        data.update(ours_s=self.ours_s, peer_s=self.peer_s, ratio=self.ratio, min_ratio=self.min_ratio)
        return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in data.items()}


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def format_seconds(seconds: float) -> str:
    """Seconds with three significant-ish decimals: ``0.0123``, ``0.456``, ``12.3``; ``n/a`` for ``nan``."""
    if math.isnan(seconds):
        return "n/a"
    if seconds < 0.1:
        return f"{seconds:.4f}"
    if seconds < 10:
        return f"{seconds:.3f}"
    return f"{seconds:.1f}"


TABLE_HEADER = (
    "method",
    "model",
    "batch",
    "input",
    "setting",
    "peer",
    "ours s",
    "peer s",
    "peer/ours",
    "min peer/ours",
    "correlation",
    "note",
)


NUMERIC_COLUMNS = frozenset({"batch", "input", "ours s", "peer s", "peer/ours", "min peer/ours", "correlation"})


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (one line per row, numbers right-aligned)."""
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join("---:" if name in NUMERIC_COLUMNS else "---" for name in TABLE_HEADER) + "|",
    ]
    for row in rows:
        note = row.note if not row.error else f"ERROR: {row.error}"
        if not row.same_definition and not row.error:
            note = f"definitions differ: {note}"
        peer = row.peer if row.peer_method == row.method else f"{row.peer} `{row.peer_method}`"
        cells = (
            row.method,
            row.model,
            str(row.batch),
            str(row.size),
            f"{row.setting} (cold)" if row.cold else row.setting,
            peer,
            format_seconds(row.ours_s),
            format_seconds(row.peer_s),
            _number(row.ratio, 2),
            _number(row.min_ratio, 2),
            _number(row.correlation, 3),
            note.replace("|", "\\|"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def slower_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows where the peer's median or its fastest call is below ours (``ratio < 1`` or ``min_ratio < 1``)."""
    return [row for row in rows if row.ratio < 1.0 or row.min_ratio < 1.0]  # nan compares False


def format_slower(rows: Sequence[Row]) -> str:
    """The list of the rows where we are slower than a peer: by both the median and the fastest call
    ("slower"), or by one of the two only ("within the noise")."""
    slower = slower_rows(rows)
    if not slower:
        return "Slower than a peer (median or min ratio < 1): none"
    lines = ["Slower than a peer (median or min ratio < 1):"]
    for row in slower:
        verdict = "slower" if row.ratio < 1.0 and row.min_ratio < 1.0 else "within the noise"
        lines.append(
            f"- {verdict}: {row.method} vs {row.peer} {row.peer_method}, {row.model} batch {row.batch} input "
            f"{row.size}: ours {format_seconds(row.ours_s)} s, peer {format_seconds(row.peer_s)} s, "
            f"ratio {_number(row.ratio, 2)}, min ratio {_number(row.min_ratio, 2)}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# What is compared
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerMethod:
    """A peer's counterpart of one of our methods."""

    peer: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    same_definition: bool = True


@dataclass(frozen=True)
class MethodSpec:
    """One of our methods, how both grad-cam-style libraries build and call it, and its peers.

    ``layers``: ``"last"`` (``layer4[-1]``), ``"last_two"`` (``layer3[-1]``, ``layer4[-1]``) or ``"none"``.
    ``call``: ``"targets"`` (a ``ClassifierOutputTarget`` per image), ``"none"`` (``targets=None``) or ``"guided"``
    (``GuidedBackpropReLUModel(x, target_category=k)``, batch 1 only).
    """

    name: str
    group: str
    peers: tuple[PeerMethod, ...]
    ours_init: dict[str, Any] = field(default_factory=dict)
    ref_init: dict[str, Any] = field(default_factory=dict)
    ref_attrs: dict[str, Any] = field(default_factory=dict)
    layers: str = "last"
    call: str = "targets"
    batch_one_only: bool = False

    def cam_spec(self, ours: bool) -> dict[str, Any]:
        """The JSON-able recipe that :func:`build_cam` / :func:`call_cam` follow in either library."""
        return {
            "cls": self.name,
            "init": self.ours_init if ours else self.ref_init,
            "attrs": {} if ours else self.ref_attrs,
            "layers": self.layers,
            "call": self.call,
        }


SIGN_NOTE = (
    "ours orients the principal component by the data (orientation='norm'), 1.5.7 keeps numpy's arbitrary SVD sign: "
    "r < 0 means an inverted map"
)


def method_specs(samples: int, perturbation_batch: int = 32) -> list[MethodSpec]:
    """Every compared method; ``samples`` noisy / integration samples for SS-CAM and IS-CAM."""
    quiet = {"progress": False, "batch_size": perturbation_batch}
    gc = GRADCAM
    return [
        MethodSpec(
            "GradCAM",
            GRADIENT,
            (
                PeerMethod(TORCHCAM, "GradCAM"),
                PeerMethod(CAPTUM, "LayerGradCam", note="relu_attributions=True, upsampled bilinear (timed)"),
                PeerMethod(gc, "GradCAM"),
            ),
        ),
        MethodSpec("HiResCAM", GRADIENT, (PeerMethod(gc, "HiResCAM"),)),
        MethodSpec("GradCAMElementWise", GRADIENT, (PeerMethod(gc, "GradCAMElementWise"),)),
        MethodSpec("GradCAMPlusPlus", GRADIENT, (PeerMethod(TORCHCAM, "GradCAMpp"), PeerMethod(gc, "GradCAMPlusPlus"))),
        MethodSpec("XGradCAM", GRADIENT, (PeerMethod(TORCHCAM, "XGradCAM"), PeerMethod(gc, "XGradCAM"))),
        MethodSpec("LayerCAM", GRADIENT, (PeerMethod(TORCHCAM, "LayerCAM"), PeerMethod(gc, "LayerCAM"))),
        MethodSpec("EigenCAM", GRADIENT, (PeerMethod(gc, "EigenCAM", note=SIGN_NOTE, same_definition=False),)),
        MethodSpec("EigenGradCAM", GRADIENT, (PeerMethod(gc, "EigenGradCAM", note=SIGN_NOTE, same_definition=False),)),
        MethodSpec("KPCA_CAM", GRADIENT, (PeerMethod(gc, "KPCA_CAM", note=SIGN_NOTE, same_definition=False),)),
        MethodSpec("SegEigenCAM", GRADIENT, (PeerMethod(gc, "SegEigenCAM"),)),
        MethodSpec("FEM", GRADIENT, (PeerMethod(gc, "FEM"),)),
        MethodSpec("FullGrad", GRADIENT, (PeerMethod(gc, "FullGrad", note="all bias layers"),), layers="none"),
        MethodSpec("ShapleyCAM", GRADIENT, (PeerMethod(gc, "ShapleyCAM"),)),
        MethodSpec(
            "FinerCAM",
            GRADIENT,
            (PeerMethod(gc, "FinerCAM", note="targets=None: top class vs ranks 1-3"),),
            call="none",
        ),
        MethodSpec(
            "RefineCAM",
            GRADIENT,
            (PeerMethod(gc, "RefineCAM", note="layers layer3[-1], layer4[-1]"),),
            layers="last_two",
        ),
        MethodSpec(
            "GuidedBackpropReLUModel",
            GRADIENT,
            (PeerMethod(gc, "GuidedBackpropReLUModel", note="batch 1 only: 1.5.7 explains the first image"),),
            call="guided",
            batch_one_only=True,
        ),
        MethodSpec(
            "GuidedGradCAM",
            GRADIENT,
            (
                PeerMethod(
                    CAPTUM,
                    "GuidedGradCam",
                    {"interpolate_mode": "bilinear"},
                    note="captum Σ_ch|L·G| with the ReLU'd GradCAM L; ours norm(min-max-scaled L · Σ_ch|G|)",
                    same_definition=False,
                ),
            ),
        ),
        MethodSpec(
            "SmoothGradCAMPlusPlus",
            GRADIENT,
            (
                PeerMethod(
                    TORCHCAM,
                    "SmoothGradCAMpp",
                    {"num_samples": 4, "std": 0.3},
                    note="random noise (σ=0.3 in both, 4 samples); torchcam's ReLU(∂y/∂A) is the last sample's",
                    same_definition=False,
                ),
            ),
            ours_init={"num_samples": 4, "progress": False},  # noise_level set per input to match σ = 0.3
        ),
        MethodSpec(
            "ScoreCAM",
            PERTURBATION,
            (
                PeerMethod(
                    TORCHCAM,
                    "ScoreCAM",
                    {"batch_size": perturbation_batch},
                    note="torchcam min-max normalises each mask at layer resolution, then upsamples (no corner "
                    "alignment); ours and 1.5.7 upsample (corners aligned), then normalise",
                    same_definition=False,
                ),
                PeerMethod(gc, "ScoreCAM"),
            ),
            ours_init=quiet,
            ref_attrs={"batch_size": perturbation_batch},
        ),
        MethodSpec(
            "SSCAM",
            PERTURBATION,
            (
                PeerMethod(
                    TORCHCAM,
                    "SSCAM",
                    {"batch_size": perturbation_batch, "num_samples": samples, "std": 2.0},
                    note=f"random noise, {samples} samples, std 2.0",
                    same_definition=False,
                ),
            ),
            ours_init={**quiet, "num_samples": samples, "std": 2.0},
        ),
        MethodSpec(
            "ISCAM",
            PERTURBATION,
            (
                PeerMethod(
                    TORCHCAM,
                    "ISCAM",
                    {"batch_size": perturbation_batch, "num_samples": samples},
                    note=f"{samples} samples; torchcam scales the i-th mask by Σ_{{j≤i}} j/N, ours by i/N",
                    same_definition=False,
                ),
            ),
            ours_init={**quiet, "num_samples": samples},
        ),
        MethodSpec(
            "AblationCAM",
            PERTURBATION,
            (PeerMethod(gc, "AblationCAM", note="weights (y-y_c)/|y| vs /y: equal for a positive score"),),
            ours_init=quiet,
            ref_init={"batch_size": perturbation_batch},
        ),
        MethodSpec(
            "SESS",
            PERTURBATION,
            (PeerMethod(gc, "SESS", note="GradCAM on 12 scales of sliding windows"),),
            ours_init={"batch_size": perturbation_batch},
            ref_init={"batch_size": perturbation_batch},
        ),
    ]


# --------------------------------------------------------------------------------------------------------------
# Building and calling a method (the same code for ours and for grad-cam 1.5.7 in its worker)
# --------------------------------------------------------------------------------------------------------------


def target_layers(model: Any, layers: str) -> list[Any]:
    """The target layers of a torchvision resnet for a spec's ``layers`` key."""
    if layers == "none":
        return []
    if layers == "last_two":
        return [model.layer3[-1], model.layer4[-1]]
    return [model.layer4[-1]]


def build_cam(lib: Any, spec: dict[str, Any], model: Any) -> Any:
    """Build ``spec["cls"]`` of the library module ``lib`` (ours or grad-cam 1.5.7) on ``model``."""
    cls = getattr(lib, spec["cls"])
    if spec["call"] == "guided":
        return cls(model)
    cam = cls(model=model, target_layers=target_layers(model, spec["layers"]), **spec["init"])
    for name, value in spec["attrs"].items():
        setattr(cam, name, value)
    return cam


def prepare_input(spec: dict[str, Any], x: Any) -> Any:
    """The input of one call: a fresh copy for guided backprop (1.5.7 marks its input ``requires_grad`` and reads
    its ``.grad``, which would accumulate over calls), the shared tensor otherwise. Not timed."""
    return x.clone() if spec["call"] == "guided" else x


def call_cam(lib: Any, cam: Any, spec: dict[str, Any], x: Any, classes: Sequence[int]) -> np.ndarray:
    """One call of a CAM built by :func:`build_cam`: numpy maps ``(B, H, W)`` (``(1, H, W, C)`` when guided)."""
    if spec["call"] == "guided":
        return np.asarray(cam(x, target_category=int(classes[0])))[None]
    if spec["call"] == "none":
        return np.asarray(cam(input_tensor=x, targets=None))
    target = lib.utils.model_targets.ClassifierOutputTarget
    return np.asarray(cam(input_tensor=x, targets=[target(int(k)) for k in classes]))


def release_cam(cam: Any) -> None:
    """Remove the hooks a CAM object (or the CAMs it wraps) may have left on its model."""
    for obj in (cam, getattr(cam, "base_cam", None), *getattr(cam, "base_cam_per_layer", [])):
        recorder = getattr(obj, "activations_and_grads", None)
        if recorder is not None and hasattr(recorder, "release"):
            recorder.release()


# --------------------------------------------------------------------------------------------------------------
# The worker (grad-cam 1.5.7 in the peer venv, ours in this venv: python -I bench_peers.py --worker)
# --------------------------------------------------------------------------------------------------------------


def worker_main(threads: int) -> int:
    """Serve JSON-line commands on stdin; answers go to the real stdout, everything printed to stderr."""
    protocol: IO[str] = sys.stdout
    sys.stdout = sys.stderr
    import importlib.metadata

    import torch
    import torchvision

    import pytorch_grad_cam as lib

    torch.set_num_threads(threads)
    state: dict[str, Any] = {}
    cams: dict[str, tuple[Any, dict[str, Any]]] = {}

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "hello":
            return {
                "file": lib.__file__,
                "version": importlib.metadata.version("grad-cam"),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        if op == "setup":
            model = getattr(torchvision.models, request["model"])(weights=None)
            model.load_state_dict(torch.load(request["state"], weights_only=True))
            state.update(
                model=model.eval(), x=torch.load(request["input"], weights_only=True), classes=request["classes"]
            )
            return {}
        if op == "make":
            spec = request["spec"]
            cams[request["key"]] = (build_cam(lib, spec, copy.deepcopy(state["model"])), spec)
            return {}
        if op == "call":
            cam, spec = cams[request["key"]]
            if "seed" in request:
                torch.manual_seed(request["seed"])
            x = prepare_input(spec, state["x"])
            start = time.perf_counter()
            maps = call_cam(lib, cam, spec, x, state["classes"])
            seconds = time.perf_counter() - start
            if request.get("save"):
                np.save(request["save"], maps)
            return {"seconds": seconds}
        if op == "drop":
            cam, _ = cams.pop(request["key"])
            release_cam(cam)
            return {}
        raise ValueError(f"unknown op {op!r}")

    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            response = handle(request)
        except Exception:
            response = {"error": traceback.format_exc()}
        protocol.write(json.dumps(response) + "\n")
        protocol.flush()
    return 0


class WorkerError(RuntimeError):
    """The worker answered a command with an error (its traceback is the message)."""


class Worker:
    """The client side of a worker process (grad-cam 1.5.7's, or ours for the comparison with it)."""

    def __init__(self, python: Path, threads: int) -> None:
        self.python = python
        env = {**os.environ, "TQDM_DISABLE": "1"}
        self.process = subprocess.Popen(
            [str(python), "-I", str(Path(__file__).resolve()), "--worker", "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker {self.python} exited (code {self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise WorkerError(answer["error"])
        return answer

    def close(self) -> None:
        """Ask the worker to quit and wait for it."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


# --------------------------------------------------------------------------------------------------------------
# Installing the peers
# --------------------------------------------------------------------------------------------------------------


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", *args]
    print("  $ " + " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)


def inproc_versions() -> dict[str, str]:
    """The versions of torchcam and captum installed in :data:`INPROC_SITE` (missing ones left out)."""
    import importlib.metadata

    if not INPROC_SITE.is_dir():
        return {}
    return {
        dist.metadata["Name"].lower(): dist.version
        for dist in importlib.metadata.distributions(path=[str(INPROC_SITE)])
    }


def peer_python() -> Path:
    """The interpreter of the grad-cam 1.5.7 venv."""
    return GRADCAM_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def gradcam_peer_info() -> dict[str, Any] | None:
    """``pytorch_grad_cam.__file__`` and the grad-cam version as the peer venv sees them, or ``None``."""
    if not peer_python().exists():
        return None
    probe = (
        "import json, importlib.metadata as m, pytorch_grad_cam as p;"
        "print(json.dumps({'file': p.__file__, 'version': m.version('grad-cam')}))"
    )
    result = subprocess.run([str(peer_python()), "-I", "-c", probe], capture_output=True, text=True)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _gradcam_ok(info: dict[str, Any] | None) -> bool:
    return bool(
        info and info["version"] == GRADCAM_VERSION and Path(info["file"]).resolve().is_relative_to(GRADCAM_VENV)
    )


def install_inproc() -> None:
    """torchcam and captum into :data:`INPROC_SITE`, without dependencies (no second torch)."""
    print(
        f"[bench_peers] installing torchcam {TORCHCAM_VERSION} and captum {CAPTUM_VERSION} into {INPROC_SITE}",
        file=sys.stderr,
    )
    INPROC_SITE.mkdir(parents=True, exist_ok=True)
    _pip("--upgrade", "--target", str(INPROC_SITE), f"torchcam=={TORCHCAM_VERSION}", f"captum=={CAPTUM_VERSION}")


def install_gradcam() -> None:
    """A venv with grad-cam 1.5.7 alone, seeing this venv's packages (torch...) through a ``.pth`` file."""
    print(f"[bench_peers] installing grad-cam {GRADCAM_VERSION} into the venv {GRADCAM_VENV}", file=sys.stderr)
    if not peer_python().exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(GRADCAM_VENV)], check=True)
    paths_probe = "import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"
    peer_paths = json.loads(
        subprocess.run([str(peer_python()), "-I", "-c", paths_probe], capture_output=True, text=True, check=True).stdout
    )
    ours = sysconfig.get_paths()
    main_dirs = list(dict.fromkeys([ours["purelib"], ours["platlib"]]))
    peer_site = Path(peer_paths["purelib"])
    peer_site.mkdir(parents=True, exist_ok=True)
    (peer_site / PTH_NAME).write_text("".join(f"{directory}\n" for directory in main_dirs))
    _pip("--upgrade", "--target", str(peer_site), f"grad-cam=={GRADCAM_VERSION}")


def ensure_peers(wanted: Sequence[str], install: str) -> dict[str, str]:
    """Install what is missing of ``wanted`` (``install``: ``"auto"``, ``"force"`` or ``"never"``) and return the
    usable peers with their versions."""
    available: dict[str, str] = {}
    inproc = [name for name in wanted if name in (TORCHCAM, CAPTUM)]
    if inproc:
        versions = inproc_versions()
        expected = {TORCHCAM: TORCHCAM_VERSION, CAPTUM: CAPTUM_VERSION}
        missing = [name for name in inproc if versions.get(name) != expected[name]]
        if (missing and install == "auto") or install == "force":
            if missing:
                print(f"[bench_peers] not installed yet: {', '.join(missing)} (--no-install skips)", file=sys.stderr)
            install_inproc()
            versions = inproc_versions()
        elif missing:
            print(f"[bench_peers] not installed, skipped (--no-install): {', '.join(missing)}", file=sys.stderr)
        available.update({name: versions[name] for name in inproc if versions.get(name) == expected[name]})
    if GRADCAM in wanted:
        info = gradcam_peer_info()
        if (not _gradcam_ok(info) and install == "auto") or install == "force":
            if not _gradcam_ok(info):
                print(
                    f"[bench_peers] not installed yet: grad-cam {GRADCAM_VERSION} (--no-install skips)", file=sys.stderr
                )
            install_gradcam()
            info = gradcam_peer_info()
        if _gradcam_ok(info):
            assert info is not None
            available[GRADCAM] = info["version"]
        elif install == "never":
            print(f"[bench_peers] grad-cam {GRADCAM_VERSION} venv missing, skipped (--no-install)", file=sys.stderr)
        else:
            raise RuntimeError(f"grad-cam {GRADCAM_VERSION} in {GRADCAM_VENV} is not usable: {info}")
    return available


# --------------------------------------------------------------------------------------------------------------
# The participants of one comparison
# --------------------------------------------------------------------------------------------------------------


class Participant:
    """One library's side of a comparison: a warm-up call that returns its maps, then timed calls."""

    def __init__(self, call: Callable[[], np.ndarray], close: Callable[[], None] = lambda: None) -> None:
        self._call, self._close = call, close

    def warm(self) -> tuple[np.ndarray, float]:
        """The first call (seeded): its maps and seconds (used only for a cold comparison)."""
        import torch

        torch.manual_seed(0)
        start = time.perf_counter()
        maps = self._call()
        return maps, time.perf_counter() - start

    def timed(self) -> float:
        """Seconds of one call."""
        start = time.perf_counter()
        self._call()
        return time.perf_counter() - start

    def close(self) -> None:
        """Remove hooks and the like."""
        self._close()


class WorkerParticipant(Participant):
    """A library in a worker (grad-cam 1.5.7, or ours for that comparison); the worker times its own calls and
    saves the warm-up maps to a file."""

    def __init__(self, worker: Worker, key: str, spec: dict[str, Any], scratch: Path) -> None:
        self.worker, self.key, self.scratch = worker, key, scratch
        worker.request("make", key=key, spec=spec)
        super().__init__(self._unused, lambda: None)

    @staticmethod
    def _unused() -> np.ndarray:
        raise AssertionError("timed in the worker")

    def warm(self) -> tuple[np.ndarray, float]:
        path = self.scratch / f"{self.key}.npy"
        seconds = float(self.worker.request("call", key=self.key, seed=0, save=str(path))["seconds"])
        maps: np.ndarray = np.load(path)
        path.unlink()
        return maps, seconds

    def timed(self) -> float:
        return float(self.worker.request("call", key=self.key)["seconds"])

    def close(self) -> None:
        self.worker.request("drop", key=self.key)


def _upsampled(maps: Any, size: Sequence[int]) -> np.ndarray:
    """``(B, h, w)`` torch maps → numpy ``(B, H, W)`` at ``size`` (bilinear, ``align_corners=False``)."""
    import torch.nn.functional as F

    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return np.asarray(maps.detach().cpu().numpy())


def ours_participant(spec: MethodSpec, model: Any, x: Any, classes: list[int]) -> Participant:
    """Our method, built and called by the same code as grad-cam 1.5.7's."""
    import pytorch_grad_cam as lib

    recipe = spec.cam_spec(ours=True)
    if spec.name == "SmoothGradCAMPlusPlus":  # torchcam's absolute σ = 0.3 as our fraction of the value range
        spread = float((x.flatten(1).max(dim=1).values - x.flatten(1).min(dim=1).values).mean())
        recipe = {**recipe, "init": {**recipe["init"], "noise_level": 0.3 / spread}}
    cam = build_cam(lib, recipe, model)
    # our GuidedBackpropReLUModel leaves its input alone: no copy (1.5.7's copy is made outside its timer)
    return Participant(lambda: call_cam(lib, cam, recipe, x, classes), lambda: release_cam(cam))


def torchcam_participant(peer: PeerMethod, model: Any, layer_name: str, x: Any, classes: list[int]) -> Participant:
    """A torchcam extractor: forward, CAM, upsampling to the input size, numpy."""
    import torch
    import torchcam.methods  # type: ignore[import-not-found]

    extractor = getattr(torchcam.methods, peer.name)(model, layer_name, input_shape=tuple(x.shape[1:]), **peer.options)
    gradient_free = peer.name in {"ScoreCAM", "SSCAM", "ISCAM"}

    def call() -> np.ndarray:
        if gradient_free:
            with torch.no_grad():
                scores = model(x)
        else:
            scores = model(x)
        cams = extractor(class_idx=list(classes), scores=scores)
        return _upsampled(cams[0], x.shape[-2:])

    return Participant(call, extractor.remove_hooks)


def captum_participant(peer: PeerMethod, model: Any, layer: Any, x: Any, classes: list[int]) -> Participant:
    """captum's LayerGradCam (upsampled) or GuidedGradCam (summed |·| over channels)."""
    from captum.attr import GuidedGradCam, LayerAttribution, LayerGradCam  # type: ignore[import-not-found]

    size = tuple(x.shape[-2:])
    if peer.name == "LayerGradCam":
        layer_gradcam = LayerGradCam(model, layer)

        def call() -> np.ndarray:
            attribution = layer_gradcam.attribute(x, target=list(classes), relu_attributions=True)
            upsampled = LayerAttribution.interpolate(attribution, size, interpolate_mode="bilinear")
            return np.asarray(upsampled[:, 0].detach().cpu().numpy())

        return Participant(call)
    guided = GuidedGradCam(model, layer)

    def call_guided() -> np.ndarray:
        attribution = guided.attribute(x, target=list(classes), **peer.options)
        return np.asarray(attribution.abs().sum(dim=1).detach().cpu().numpy())

    return Participant(call_guided)


# --------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One model, batch and input size, for one group of methods."""

    group: str
    model: str
    batch: int
    size: int
    repeats: int
    label: str


def settings_for(args: argparse.Namespace) -> list[Setting]:
    """The settings of the run: the full one for gradient methods, the reduced one for perturbation methods."""
    result = [
        Setting(GRADIENT, model, batch, args.size, args.repeats, "full" if not args.quick else "quick")
        for model in args.models
        for batch in args.batches
    ]
    for model in args.reduced_models:
        for batch in args.reduced_batches:
            result.append(
                Setting(
                    PERTURBATION,
                    model,
                    batch,
                    args.reduced_size,
                    args.reduced_repeats,
                    "reduced" if not args.quick else "quick",
                )
            )
    return result


def make_input(batch: int, size: int, seed: int) -> Any:
    """Smooth seeded noise ``(B, 3, size, size)``: 7×7 noise upsampled (bicubic), plus a little fine noise, so the
    maps have structure."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(batch, 3, 7, 7, generator=generator)
    fine = torch.randn(batch, 3, size, size, generator=generator)
    return (F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False) + 0.1 * fine).contiguous()


def run_setting(
    setting: Setting,
    specs: Sequence[MethodSpec],
    peers: dict[str, str],
    worker: Worker | None,
    scratch: Path,
    seed: int,
    ours_worker: Worker | None = None,
) -> list[Row]:
    """Compare every method of ``specs`` (of this setting's group) with its available peers."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = getattr(torchvision.models, setting.model)(weights=None).eval()
    x = make_input(setting.batch, setting.size, seed)
    with torch.no_grad():
        classes = [int(k) for k in model(x).argmax(dim=1)]
    layer_name = f"layer4.{len(model.layer4) - 1}"
    if worker is not None:
        torch.save(model.state_dict(), scratch / "state.pt")
        torch.save(x, scratch / "input.pt")
        for each in (worker, ours_worker):
            if each is not None:
                each.request(
                    "setup",
                    model=setting.model,
                    state=str(scratch / "state.pt"),
                    input=str(scratch / "input.pt"),
                    classes=classes,
                )
    rows: list[Row] = []
    for spec in specs:
        if spec.group != setting.group or (spec.batch_one_only and setting.batch != 1):
            continue
        peer_methods = [peer for peer in spec.peers if peer.peer in peers]
        if not peer_methods:
            continue
        rows.extend(compare(spec, peer_methods, setting, model, x, classes, layer_name, worker, scratch, ours_worker))
    return rows


def compare(
    spec: MethodSpec,
    peer_methods: Sequence[PeerMethod],
    setting: Setting,
    model: Any,
    x: Any,
    classes: list[int],
    layer_name: str,
    worker: Worker | None,
    scratch: Path,
    ours_worker: Worker | None = None,
) -> list[Row]:
    """Warm-up, interleaved timed calls and correlations for one method and its peers.

    grad-cam 1.5.7's calls are compared with ours made in ``ours_worker`` (the same worker code in this venv),
    the in-process peers' calls with ours made in this process."""
    rows = {
        peer.peer: Row(
            spec.name,
            peer.peer,
            peer.name,
            setting.model,
            setting.batch,
            setting.size,
            setting.label,
            setting.repeats,
            cold=setting.repeats == 0,
            same_definition=peer.same_definition,
            note=peer.note,
        )
        for peer in peer_methods
    }
    print(
        f"[bench_peers] {setting.model} b{setting.batch} {setting.size}px {spec.name} ...", file=sys.stderr, flush=True
    )
    participants: dict[str, Participant] = {}
    try:
        participants["ours"] = ours_participant(spec, copy.deepcopy(model), x, classes)
    except Exception:
        for row in rows.values():
            row.error = "ours: " + traceback.format_exc(limit=1).strip().splitlines()[-1]
        return list(rows.values())
    for peer in peer_methods:
        try:
            if peer.peer == TORCHCAM:
                participants[peer.peer] = torchcam_participant(peer, copy.deepcopy(model), layer_name, x, classes)
            elif peer.peer == CAPTUM:
                copied = copy.deepcopy(model)
                participants[peer.peer] = captum_participant(peer, copied, copied.layer4[-1], x, classes)
            else:
                assert worker is not None and ours_worker is not None
                key = f"{spec.name}-{setting.model}-{setting.batch}"
                participants[peer.peer] = WorkerParticipant(worker, key, spec.cam_spec(ours=False), scratch)
                participants[OURS_WORKER] = WorkerParticipant(ours_worker, key, spec.cam_spec(ours=True), scratch)
        except Exception as error:
            rows[peer.peer].error = _short(error)
    try:
        maps: dict[str, np.ndarray] = {}
        times: dict[str, list[float]] = {}
        for name, participant in list(participants.items()):
            try:
                maps[name], first = participant.warm()
                times[name] = [first] if setting.repeats == 0 else []
            except Exception as error:
                if name == "ours":
                    raise
                rows[GRADCAM if name == OURS_WORKER else name].error = _short(error)
                participant.close()
                del participants[name]
        for name in list(participants):
            if name in rows:
                try:
                    rows[name].correlation = mean_image_correlation(maps["ours"], maps[name])
                except ValueError as error:
                    rows[name].note += f" (shapes: {error})"
        for repeat in range(setting.repeats):
            for name in interleaved_order(list(participants), repeat):
                times[name].append(participants[name].timed())
        for name, row in rows.items():
            if name in times:
                ours = OURS_WORKER if name == GRADCAM else "ours"
                row.ours_times, row.peer_times = list(times.get(ours, [])), times[name]
    except Exception as error:
        for row in rows.values():
            row.error = row.error or _short(error)
    finally:
        for participant in participants.values():
            try:
                participant.close()
            except Exception as error:
                print(f"[bench_peers] close failed: {_short(error)}", file=sys.stderr)
    return list(rows.values())


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}"[:200]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--quick`` replaces the defaults of the sizes, models and repeats."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="resnet18, batch 1, input 64, 1 timed call (perturbation: cold), 1 sample"
    )
    parser.add_argument("--install", action="store_true", help="(re)install the peers and exit")
    parser.add_argument("--no-install", action="store_true", help="skip missing peers instead of installing them")
    parser.add_argument(
        "--peers", default=",".join(PEER_NAMES), help="comma-separated subset of: " + ", ".join(PEER_NAMES)
    )
    parser.add_argument("--methods", default="", help="comma-separated subset of our class names (default: all)")
    parser.add_argument("--models", default=None, help="gradient setting models (default resnet18,resnet50)")
    parser.add_argument("--batches", default=None, help="gradient setting batch sizes (default 1,8)")
    parser.add_argument("--size", type=int, default=None, help="gradient setting input size (default 224)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per library, gradient setting (5)")
    parser.add_argument("--reduced-models", default=None, help="perturbation setting models (default resnet18)")
    parser.add_argument("--reduced-batches", default=None, help="perturbation setting batch sizes (default 1)")
    parser.add_argument("--reduced-size", type=int, default=None, help="perturbation setting input size (96)")
    parser.add_argument(
        "--reduced-repeats",
        type=int,
        default=None,
        help="timed calls, perturbation setting (2; 0: time the first call)",
    )
    parser.add_argument("--samples", type=int, default=None, help="SS-CAM / IS-CAM samples in both libraries (2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every process (2)")
    parser.add_argument(
        "--heap",
        choices=("pinned", "inherit"),
        default="pinned",
        help="pinned (default): every process runs with glibc's heap policy fixed (see the module docstring); "
        "inherit: the environment's",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="save the raw numbers here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults: dict[str, Any] = {
        "models": "resnet18" if quick else "resnet18,resnet50",
        "batches": "1" if quick else "1,8",
        "size": 64 if quick else 224,
        "repeats": 1 if quick else 5,
        "reduced_models": "resnet18",
        "reduced_batches": "1",
        "reduced_size": 64 if quick else 96,
        "reduced_repeats": 0 if quick else 2,
        "samples": 1 if quick else 2,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.models = [name for name in args.models.split(",") if name]
    args.reduced_models = [name for name in args.reduced_models.split(",") if name]
    args.batches = [int(value) for value in args.batches.split(",") if value]
    args.reduced_batches = [int(value) for value in args.reduced_batches.split(",") if value]
    args.peers = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = set(args.peers) - set(PEER_NAMES)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; expected some of {', '.join(PEER_NAMES)}")
    args.methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison (or the worker, with ``--worker``)."""
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.threads)
    if args.heap == "pinned" and argv is None and not heap_pinned(os.environ):
        # glibc reads these when the process starts: run again with them (the workers inherit them)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **PINNED_HEAP})
    os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: captum / torchcam bars, if any
    peers = ensure_peers(args.peers, "force" if args.install else "never" if args.no_install else "auto")
    if INPROC_SITE.is_dir() and str(INPROC_SITE) not in sys.path:
        sys.path.append(str(INPROC_SITE))
    if args.install:
        print(f"[bench_peers] installed: {peers}", file=sys.stderr)
        return 0

    import torch
    import torchvision

    import pytorch_grad_cam

    torch.set_num_threads(args.threads)
    specs = method_specs(args.samples)
    if args.methods:
        known = {spec.name for spec in specs}
        if set(args.methods) - known:
            raise SystemExit(f"unknown methods {sorted(set(args.methods) - known)}; known: {', '.join(sorted(known))}")
        specs = [spec for spec in specs if spec.name in args.methods]
    started = time.perf_counter()
    rows: list[Row] = []
    worker: Worker | None = None
    ours_worker: Worker | None = None
    worker_info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as scratch_dir:
        scratch = Path(scratch_dir)
        try:
            if GRADCAM in peers:
                worker = Worker(peer_python(), args.threads)
                worker_info = worker.request("hello")
                if not Path(worker_info["file"]).resolve().is_relative_to(GRADCAM_VENV):
                    raise RuntimeError(f"the worker imported {worker_info['file']}, not grad-cam {GRADCAM_VERSION}")
                print(f"[bench_peers] grad-cam worker: {worker_info}", file=sys.stderr)
                ours_worker = Worker(Path(sys.executable), args.threads)
                ours_file = ours_worker.request("hello")["file"]
                if Path(ours_file).resolve() != Path(pytorch_grad_cam.__file__).resolve():
                    raise RuntimeError(f"our worker imported {ours_file}, not {pytorch_grad_cam.__file__}")
            for setting in settings_for(args):
                rows.extend(run_setting(setting, specs, peers, worker, scratch, args.seed, ours_worker))
        finally:
            for each in (worker, ours_worker):
                if each is not None:
                    each.close()
    wall = time.perf_counter() - started

    print(format_table(rows))
    print()
    print(format_slower(rows))
    meta = {
        "mode": "quick" if args.quick else "full",
        "wall_s": wall,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "ours": pytorch_grad_cam.__file__,
        "peers": peers,
        "worker": worker_info,
        "settings": [asdict(setting) for setting in settings_for(args)],
        "samples": args.samples,
        "seed": args.seed,
        "warm": True,
        "heap": "pinned" if heap_pinned(os.environ) else "inherited",
    }
    print(
        f"\n{meta['mode']} run: {wall:.0f} s wall, {args.threads} torch threads, {os.cpu_count()} CPUs; warm calls; "
        f"{meta['heap']} heap; peers {peers}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"meta": meta, "rows": [row.as_dict() for row in rows]}, indent=1))
        print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
