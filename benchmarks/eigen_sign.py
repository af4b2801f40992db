"""Which sign of the first principal component points the EigenCAM family at the object?

The first principal component of a layer's activations has an arbitrary sign (torch and numpy even disagree on
some layers). This script compares orientation rules on ``N`` held-out demo scenes (the shipped demo CNN, its
target layer ``model.features[-1]``, the true class as the target) for the methods that project on a principal
component: EigenCAM (``A``), EigenGradCAM (``∂y/∂A ⊙ A``), SegEigenCAM (``|∂y/∂A| ⊙ A``), KPCA-CAM (kernel PCA
of ``A``) and GradCAM with ``eigen_smooth`` (``w_c A_c``). Each map is ``ReLU(oriented projection)``, combined
as the library does (min-max scaled, resized), and scored with the pointing game and the energy pointing game.

Rules (``p`` the projection, ``X`` the decomposed tensor, positions × channels):

* ``raw``: the sign torch's SVD (or scikit-learn's KernelPCA) returned — the reference release;
* ``lobe``: the larger-magnitude lobe positive, ``|max p| ≥ |min p|`` (Seg-Eigen-CAM, Eq. 13);
* ``energy``: ``p`` correlates positively with the channel sum ``Σ_c X_c`` (the library's ``"energy"``);
* ``norm``: ``p`` correlates positively with the channel norm ``‖X_n‖₂`` per position (the library's default,
  ``"norm"``);
* ``mean``: ``p`` correlates positively with the projection on the mean channel vector, ``X μ``;
* ``oracle``: the better of the two signs per scene, by the pointing game (an upper bound for any rule).

The demo's own target layer is ``features[3]``; ``features[2]`` / ``features[1]`` are shallower layers where the
object dominates the activations less, so the rules differ. The share of scenes where numpy's SVD returns the
other sign than torch's is printed too. ``--model`` picks another shipped CNN and ``--scenario`` another benchmark
scenario (:mod:`pytorch_grad_cam.demo.scenarios`); the mask scored is what the principal component should find:
the object (scenarios 1 and 4), both objects (scenario 2: the component cannot tell classes apart), the marker
(scenario 3, with ``--model shortcut_cnn``).

    python benchmarks/eigen_sign.py                       # N = 200, layers features[3], [2], [1]: 1-3 min
    python benchmarks/eigen_sign.py --n 400 --layers 2,1   # the shallower layers on more scenes
    python benchmarks/eigen_sign.py --model mlp_head_cnn --scenario distractors
    python benchmarks/eigen_sign.py --model shortcut_cnn --scenario shortcut

The rows of the library's own orientations (``raw``, ``lobe``, ``energy``, ``norm``) are checked against the CAM
classes (``orientation=...``) at ``features[3]`` on ``--check`` scenes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from pytorch_grad_cam import KPCA_CAM, EigenCAM, EigenGradCAM, GradCAM, SegEigenCAM
from pytorch_grad_cam.core.combine import mean_of_scaled
from pytorch_grad_cam.core.projection import centered_rows, orient, project_on_first_component
from pytorch_grad_cam.demo import demo_target_layers, load_demo_model
from pytorch_grad_cam.demo.scenarios import SCENARIOS, BenchmarkScenes
from pytorch_grad_cam.demo.train import HELDOUT_SEED
from pytorch_grad_cam.metrics import energy_pointing_game, pointing_game
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_kernel

RULES = ("raw", "lobe", "energy", "norm", "mean")
METHODS = ("EigenCAM", "EigenGradCAM", "SegEigenCAM", "KPCA-CAM", "GradCAM eigen_smooth")


def decomposed_tensors(
    model: torch.nn.Module, inputs: torch.Tensor, labels: np.ndarray, layer: int
) -> dict[str, torch.Tensor]:
    """What each method decomposes at ``model.features[layer]``, ``(N, C, h, w)``, from one forward and backward
    pass on the demo CNN."""
    with torch.no_grad():
        activations = model.features[: layer + 1](inputs)
    activations.requires_grad_(True)
    features = model.features[layer + 1 :](activations)
    if getattr(model, "head", "linear") == "mlp":
        features = model.neck(features)
    logits = model.classifier(model.pool(features).flatten(1))
    (gradients,) = torch.autograd.grad(logits[torch.arange(len(labels)), torch.as_tensor(labels)].sum(), activations)
    activations = activations.detach()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return {
        "EigenCAM": activations,
        "EigenGradCAM": gradients * activations,
        "SegEigenCAM": gradients.abs() * activations,
        "KPCA-CAM": activations,
        "GradCAM eigen_smooth": weights * activations,
    }


def reference_correlation(projection: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``projection`` negated per image where it correlates negatively with ``reference`` (both ``(N, h, w)``)."""
    flat = projection.reshape(len(projection), -1)
    ref = reference.reshape(len(reference), -1)
    score = (flat * (ref - ref.mean(dim=1, keepdim=True))).sum(dim=1)
    return torch.where((score < 0)[:, None, None], -projection, projection)


def oriented(rule: str, projection: torch.Tensor, decomposed: torch.Tensor) -> torch.Tensor:
    """``projection`` (raw sign) oriented by ``rule``."""
    if rule in ("raw", "lobe", "energy", "norm"):
        return orient(projection, decomposed, rule)  # type: ignore[arg-type]
    mean = decomposed.mean(dim=(2, 3))  # (N, C), uncentred
    return reference_correlation(projection, torch.einsum("nchw,nc->nhw", decomposed, mean))


def final_maps(projection: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """The library's single-layer map: ReLU, min-max scaled, resized to ``size``."""
    return mean_of_scaled([projection.clamp_min(0)], size).numpy()


def check_library(
    model: torch.nn.Module, inputs: torch.Tensor, labels: np.ndarray, maps: dict[tuple[str, str], np.ndarray]
) -> float:
    """Largest difference between this script's maps and the CAM classes' for the library's orientations."""
    layers = demo_target_layers(model)
    targets = [ClassifierOutputTarget(int(label)) for label in labels]
    classes: dict[str, Callable[..., np.ndarray]] = {
        "EigenCAM": lambda o: EigenCAM(model, layers, orientation=o)(inputs, targets),
        "EigenGradCAM": lambda o: EigenGradCAM(model, layers, orientation=o)(inputs, targets),
        "SegEigenCAM": lambda o: SegEigenCAM(model, layers, orientation=o)(inputs, targets),
        "KPCA-CAM": lambda o: KPCA_CAM(model, layers, orientation=o)(inputs, targets),
        "GradCAM eigen_smooth": lambda o: GradCAM(model, layers, orientation=o)(inputs, targets, eigen_smooth=True),
    }
    worst = 0.0
    for method, run in classes.items():
        for rule in ("raw", "lobe", "energy", "norm"):
            worst = max(worst, float(np.abs(run(rule) - maps[(method, rule)]).max()))
    return worst


def score_layer(
    model: torch.nn.Module, inputs: torch.Tensor, labels: np.ndarray, masks: np.ndarray, layer: int
) -> tuple[dict[tuple[str, str], tuple[float, float]], dict[tuple[str, str], np.ndarray], dict[str, float]]:
    """Scores ``{(method, rule): (pointing game, energy pointing game)}`` at ``model.features[layer]``, the maps,
    and per method the share of scenes where numpy's SVD returns the other sign than torch's."""
    size = (inputs.shape[2], inputs.shape[3])
    decomposed = decomposed_tensors(model, inputs, labels, layer)
    scores: dict[tuple[str, str], tuple[float, float]] = {}
    maps: dict[tuple[str, str], np.ndarray] = {}
    disagree: dict[str, float] = {}
    for method in METHODS:
        tensor = decomposed[method]
        raw = get_2d_projection_kernel(tensor) if method == "KPCA-CAM" else project_on_first_component(tensor, "raw")
        both_hits, both_energy = [], []
        for rule in RULES:
            maps[(method, rule)] = final_maps(oriented(rule, raw, tensor), size)
            hits = pointing_game(maps[(method, rule)], masks)
            energy = energy_pointing_game(maps[(method, rule)], masks)
            scores[(method, rule)] = (float(np.mean(hits)), float(np.mean(energy)))
            if rule == "raw":
                flipped = final_maps(-raw, size)
                both_hits = [hits, pointing_game(flipped, masks)]
                both_energy = [energy, energy_pointing_game(flipped, masks)]
        best = np.argmax(np.stack(both_hits) + 1e-3 * np.stack(both_energy), axis=0)
        picks = np.arange(len(best))
        scores[(method, "oracle")] = (
            float(np.mean(np.stack(both_hits)[best, picks])),
            float(np.mean(np.stack(both_energy)[best, picks])),
        )
        if method != "KPCA-CAM":
            rows = centered_rows(tensor).double().numpy()
            ours = raw.reshape(len(raw), -1).double().numpy()
            signs = [float(np.dot(r @ np.linalg.svd(r, full_matrices=False)[2][0], o)) for r, o in zip(rows, ours)]
            disagree[method] = float(np.mean(np.array(signs) < 0))
    return scores, maps, disagree


def main(argv: list[str] | None = None) -> None:
    """Print the pointing game and energy pointing game of every rule × method, per layer, side by side."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="held-out scenes (default 200)")
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED, help="scene seed (default: the held-out seed)")
    parser.add_argument(
        "--layers", default="3,2,1", help="indices i of model.features[i] to explain (default 3,2,1; 3 is the demo's)"
    )
    parser.add_argument("--check", type=int, default=8, help="scenes checked against the CAM classes (0: none)")
    parser.add_argument(
        "--model", choices=("cnn", "mlp_head_cnn", "shortcut_cnn"), default="cnn", help="shipped CNN (default cnn)"
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default=None, help="default: the model's own scenario")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = load_demo_model(name=args.model)
    scenario = args.scenario or ("shortcut" if args.model == "shortcut_cnn" else "single")
    if (scenario == "shortcut") != (args.model == "shortcut_cnn"):
        parser.error("the shortcut scenario goes with --model shortcut_cnn, and only it")
    explanations = BenchmarkScenes(scenario, args.n, args.seed).explanations()
    inputs, labels = explanations.inputs, explanations.labels
    masks = explanations.right | explanations.wrong if scenario == "pair" else explanations.right
    rules = (*RULES, "oracle")
    print(
        f"N = {len(labels)} explanations of {args.n} held-out {scenario} scenes (seed {args.seed}), {args.model}, "
        "true-class targets"
    )
    print("pointing game / energy pointing game; oracle = the better sign per scene")
    for layer in (int(text) for text in args.layers.split(",")):
        scores, maps, disagree = score_layer(model, inputs, labels, masks, layer)
        shape = tuple(model.features[: layer + 1](inputs[:1]).shape[1:])
        print(f"\nmodel.features[{layer}] {shape}")
        print(f"{'method':<22}" + "".join(f"{rule:>13}" for rule in rules))
        for method in METHODS:
            cells = "".join(f"{scores[(method, r)][0]:>6.3f}/{scores[(method, r)][1]:.3f}" for r in rules)
            print(f"{method:<22}{cells}")
        print("numpy's SVD sign differs from torch's on: " + ", ".join(f"{m} {d:.0%}" for m, d in disagree.items()))
        if args.check and layer == 3:
            k = min(args.check, args.n)
            sub = {key: value[:k] for key, value in maps.items()}
            diff = check_library(model, inputs[:k], labels[:k], sub)
            print(f"CAM classes (orientation=raw/lobe/energy) vs this script on {k} scenes: max |diff| {diff:.1e}")
    print(f"\nmeasured in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
