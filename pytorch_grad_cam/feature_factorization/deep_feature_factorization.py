"""Deep Feature Factorization."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.core.checks import check_callable, check_input_tensor, check_model, check_positive_int
from pytorch_grad_cam.core.model import eval_mode, model_device
from pytorch_grad_cam.utils.image import create_labels_legend, scale_cam_tensor, show_factorization_on_image


def dff(activations: np.ndarray | torch.Tensor, n_components: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative matrix factorization of a batch of activations into concepts and their heatmaps.

    With ``V`` the ``(C, B·h·w)`` matrix of activations (NaN → 0), each channel shifted by its minimum
    ``o_c`` so that it is non-negative: ``V - o ≈ W H``, ``W`` ``(C, k)``, ``H`` ``(k, B·h·w)`` (scikit-learn
    ``NMF(init="random", random_state=0)``, as the reference). The concepts are ``W + o`` and the
    heatmaps are ``H`` reshaped to ``(B, k, h, w)``.

    Args:
        activations: ``(B, C, h, w)`` (or ``(B, C, d, h, w)``) activations; not modified.
        n_components: the number of concepts ``k``.

    Returns:
        ``concepts`` ``(C, k)`` and ``explanations`` ``(B, k, h, w)``.
    """
    check_positive_int(n_components, "n_components")
    values = activations.detach().cpu().numpy() if isinstance(activations, torch.Tensor) else np.asarray(activations)
    if values.ndim < 3:
        raise ValueError(f"activations must have shape (B, C, h, w); got {values.shape}")
    batch_size, channels = values.shape[:2]
    spatial = values.shape[2:]
    matrix = np.nan_to_num(np.moveaxis(values, 1, 0).reshape(channels, -1), nan=0.0)
    offset = matrix.min(axis=-1)
    from sklearn.decomposition import NMF  # scikit-learn takes seconds to import: only when DFF runs

    model = NMF(n_components=n_components, init="random", random_state=0)
    weights = model.fit_transform(matrix - offset[:, None])
    concepts = weights + offset[:, None]
    explanations = np.moveaxis(model.components_.reshape(n_components, batch_size, *spatial), 0, 1)
    return concepts, explanations


class DeepFeatureFactorization:
    """Deep Feature Factorization — Collins et al. 2018, https://arxiv.org/abs/1806.10206

    The activations ``A`` of one layer over a batch are factorized with NMF (:func:`dff`),
    ``A - o ≈ W H``: every column of ``W`` is a concept (a channel embedding) and every row of ``H`` tells
    where that concept is present. The heatmaps are min-max scaled per concept and resized to the input.
    ``computation_on_concepts`` (e.g. the model's classifier head) maps the concept embeddings to scores.

    Args:
        model: the network.
        target_layer: the layer whose activations are factorized (a module, or a list of one module).
        reshape_transform: optional transform of the layer's output into ``(B, C, h, w)`` maps (ViT).
        computation_on_concepts: optional callable applied to the ``(k, C)`` concept embeddings.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module | Sequence[nn.Module],
        reshape_transform: Callable[[Any], torch.Tensor] | None = None,
        computation_on_concepts: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        check_model(model)
        candidates = list(target_layer) if isinstance(target_layer, (list, tuple)) else [target_layer]
        if len(candidates) != 1 or not isinstance(candidates[0], nn.Module):
            raise TypeError(f"target_layer must be one torch.nn.Module (e.g. model.layer4); got {target_layer!r}")
        layer = candidates[0]
        if not any(module is layer for module in model.modules()):
            raise ValueError(f"target_layer ({type(layer).__name__}) is not a submodule of the model")
        check_callable(computation_on_concepts, "computation_on_concepts")
        self.model = model
        self.computation_on_concepts = computation_on_concepts
        self.activations_and_grads = ActivationsAndGradients(model, [layer], reshape_transform)
        self.activations_and_grads.needs_gradients = False

    def __call__(
        self, input_tensor: torch.Tensor, n_components: int = 16
    ) -> tuple[np.ndarray, list[np.ndarray]] | tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Concepts and per-concept heatmaps of a batch.

        Args:
            input_tensor: ``(B, C, H, W)`` input.
            n_components: the number of concepts.

        Returns:
            ``concepts`` ``(C, k)``, a list of one ``np.float32`` ``(k, H, W)`` heatmap stack per image (each
            map in [0, 1]) and, with ``computation_on_concepts``, its ``(k, ...)`` outputs as numpy.
        """
        input_tensor = check_input_tensor(input_tensor, (4,))
        device = model_device(self.model)
        with eval_mode(self.model), torch.no_grad():
            self.activations_and_grads(input_tensor.to(device))
            activations = self.activations_and_grads.activations[0]
        if activations.ndim != 4:
            raise ValueError(
                f"target_layer gives activations of shape {tuple(activations.shape)}; (B, C, h, w) maps are "
                "needed: pass a reshape_transform (e.g. for a vision transformer) or pick another layer"
            )
        concepts, explanations = dff(activations.float(), n_components=n_components)
        height, width = input_tensor.shape[2:]
        maps = torch.from_numpy(np.float32(explanations)).to(device)
        scaled = scale_cam_tensor(maps.flatten(0, 1), (height, width)).reshape(*maps.shape[:2], height, width)
        heatmaps = list(scaled.cpu().numpy())
        if self.computation_on_concepts is None:
            return concepts, heatmaps
        with eval_mode(self.model), torch.no_grad():
            concept_tensor = torch.from_numpy(np.float32(concepts).T.copy()).to(device)
            concept_outputs = self.computation_on_concepts(concept_tensor)
        return concepts, heatmaps, concept_outputs.detach().cpu().numpy()

    def release(self) -> None:
        """Remove the hooks (idempotent; they only exist during a call)."""
        self.activations_and_grads.release()

    def __enter__(self) -> DeepFeatureFactorization:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def run_dff_on_image(
    model: nn.Module,
    target_layer: nn.Module,
    classifier: Callable[[torch.Tensor], torch.Tensor] | None,
    img_pil: Any,
    img_tensor: torch.Tensor,
    reshape_transform: Callable[[Any], torch.Tensor] | None = None,
    n_components: int = 5,
    top_k: int = 2,
    labels: Mapping[int, str] | Sequence[str] | None = None,
) -> np.ndarray:
    """The image beside its Deep Feature Factorization, with a legend of each concept's top classes.

    Args:
        model: the network.
        target_layer: the layer to factorize.
        classifier: maps ``(k, C)`` concept embeddings to class scores (e.g. the model's head); ``None``
            renders no legend.
        img_pil: the RGB image (PIL image or ``(H, W, 3)`` uint8 array).
        img_tensor: the preprocessed image ``(C, H, W)``.
        reshape_transform: as for :class:`DeepFeatureFactorization`.
        n_components: the number of concepts.
        top_k: classes listed per concept.
        labels: class index → name; default ``model.config.id2label`` (Hugging Face) or the indices.

    Returns:
        ``uint8`` ``(H, W', 3)``: the image, then the factorization (and the legend).
    """
    image = np.asarray(img_pil)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"img_pil must be an RGB image of shape (H, W, 3); got {image.shape}")
    if not isinstance(img_tensor, torch.Tensor) or img_tensor.ndim != 3:
        shape = tuple(img_tensor.shape) if isinstance(img_tensor, torch.Tensor) else type(img_tensor).__name__
        raise ValueError(f"img_tensor must be a (C, H, W) tensor; got {shape}")
    with DeepFeatureFactorization(model, target_layer, reshape_transform, classifier) as factorization:
        result = factorization(img_tensor[None], n_components)
    concept_labels = None
    if len(result) == 3:  # exactly when classifier is not None (it is the factorization's computation_on_concepts)
        scores = torch.softmax(torch.from_numpy(result[2]), dim=-1).numpy()
        if labels is None:
            config = getattr(model, "config", None)
            labels = getattr(config, "id2label", None) or [str(i) for i in range(scores.shape[-1])]
        concept_labels = create_labels_legend(scores, labels=labels, top_k=top_k)
    visualization = show_factorization_on_image(
        np.float32(image) / 255, result[1][0], image_weight=0.3, concept_labels=concept_labels
    )
    return np.hstack((np.uint8(image), visualization))
