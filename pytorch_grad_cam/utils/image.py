"""Image utilities: scaling CAMs, overlaying them on images, pre/de-processing, factorization rendering.

The scaling functions have a torch core (:func:`scale_cam_tensor`, :func:`resize_cam_tensor`, from
:mod:`pytorch_grad_cam.core.scaling`) used by every method on the model's device; :func:`scale_cam_image` is
its numpy face, with the reference's signature (``target_size`` as ``(W, H)``) and numbers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.core.checks import check_positive_int, check_real
from pytorch_grad_cam.core.scaling import resize_cam_tensor, scale_cam_tensor

__all__ = [
    "create_labels_legend",
    "decode_image_file",
    "deprocess_image",
    "preprocess_image",
    "resize_cam_tensor",
    "scale_accross_batch_and_channels",
    "scale_cam_image",
    "scale_cam_tensor",
    "show_cam_on_image",
    "show_factorization_on_image",
]


#: ``cv2.COLORMAP_JET`` (OpenCV is imported only by the functions that use it).
COLORMAP_JET = 2


def decode_image_file(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The image file at ``path`` as a uint8 BGR array ``(H, W, 3)``, or ``None`` when it does not decode.

    The bytes are read by Python and decoded by OpenCV (``cv2.imdecode``), so every path the operating system
    gives works, names that are not valid UTF-8 included (``cv2.imread`` crashes on those).

    Raises:
        OSError: when the file cannot be read.
    """
    import cv2

    data = np.fromfile(os.fspath(path), dtype=np.uint8)
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _axis_order(target_size: Sequence[int]) -> tuple[int, ...]:
    """The reference's ``(W, H)`` / ``(W, H, D)`` sizes in axis order."""
    return tuple(int(side) for side in reversed(tuple(target_size)))


def scale_cam_image(cam: np.ndarray, target_size: Sequence[int] | None = None) -> np.ndarray:
    """Min-max scale each map of ``cam`` (``(B, H, W)`` or ``(B, D, H, W)``) and resize it to ``target_size``.

    Numpy face of :func:`scale_cam_tensor` with the reference's ``target_size`` order, ``(W, H)`` or
    ``(W, H, D)``; returns ``np.float32``.
    """
    tensor = torch.as_tensor(np.asarray(cam, dtype=np.float32))
    return scale_cam_tensor(tensor, None if target_size is None else _axis_order(target_size)).numpy()


def _as_host_array(value: Any, name: str) -> np.ndarray:
    """A numpy array (tensors are detached and copied to the host); anything else is a ``TypeError``."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array; got {type(value).__name__}")
    return value


def _check_float_image(img: Any, name: str = "img") -> np.ndarray:
    """Validate an ``(H, W, 3)`` (or ``(H, W)`` / ``(H, W, 1)``) float image with values in [0, 1]."""
    if not isinstance(img, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array of shape (H, W, 3), np.float32 in [0, 1]; got {type(img).__name__}"
        )
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(
            f"{name} must be np.float32 with values in [0, 1], e.g. np.float32(img) / 255; got dtype {img.dtype}"
        )
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
        raise ValueError(f"{name} must have shape (H, W, 3), (H, W, 1) or (H, W); got {img.shape}")
    if img.size and np.max(img) > 1:
        raise ValueError(f"{name} must be np.float32 with values in the range [0, 1]; got a maximum of {np.max(img)}")
    return img if img.ndim == 3 else img[:, :, None]


def show_cam_on_image(
    img: np.ndarray,
    mask: np.ndarray | torch.Tensor,
    use_rgb: bool = False,
    colormap: int = COLORMAP_JET,
    image_weight: float = 0.5,
) -> np.ndarray:
    """Overlay a CAM on an image as a colour heatmap.

    ``heatmap = colormap(uint8(255 · mask)) / 255``; ``cam = (1 - w) · heatmap + w · img``; the result is
    ``uint8(255 · cam / max(cam))``. The heatmap is BGR (OpenCV's order) unless ``use_rgb`` is true.

    Args:
        img: the base image, ``(H, W, 3)`` float (np.float32) in [0, 1], in RGB order if ``use_rgb`` else BGR.
        mask: the ``(H, W)`` CAM with values in [0, 1] (numpy array or tensor).
        use_rgb: return an RGB image (pass an RGB ``img``); otherwise BGR.
        colormap: the OpenCV colormap, e.g. ``cv2.COLORMAP_JET``.
        image_weight: the weight ``w`` of the image in the blend, in [0, 1].

    Returns:
        The ``(H, W, 3)`` uint8 overlay.

    Raises:
        TypeError: ``img`` is not a float array (e.g. a uint8 image) or ``mask`` is not an array.
        ValueError: ``img`` has values above 1, ``image_weight`` is outside [0, 1], or the mask's shape
            differs from the image's ``(H, W)``.
    """
    import cv2

    img = _check_float_image(img)
    mask = _as_host_array(mask, "mask")
    image_weight = check_real(image_weight, "image_weight", 0, 1)
    if mask.shape != img.shape[:2]:
        raise ValueError(
            f"mask must have the image's shape (H, W) = {img.shape[:2]}; got {mask.shape} "
            "(resize the CAM to the image, or the image to the CAM)"
        )
    levels = np.uint8(np.clip(255 * mask, 0, 255))
    heatmap = cv2.applyColorMap(levels, colormap)
    if use_rgb:
        heatmap = cv2.cvtColor(heatmap, cv2.COLOR_BGR2RGB)
    heatmap = np.float32(heatmap) / 255
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return np.uint8(255 * cam)


def preprocess_image(
    img: np.ndarray, mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5)
) -> torch.Tensor:
    """Turn an ``(H, W, C)`` image into a normalised ``(1, C, H, W)`` tensor: ``(img - mean) / std``.

    Like torchvision's ``ToTensor`` + ``Normalize``: a uint8 image is first divided by 255, a float image
    is used as is. The caller's array is not modified.

    Args:
        img: ``(H, W, C)`` (or ``(H, W)``) numpy image.
        mean: per-channel mean.
        std: per-channel standard deviation (no zero entry).

    Returns:
        A ``(1, C, H, W)`` tensor.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f"img must be a numpy array of shape (H, W, C); got {type(img).__name__}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"img must have shape (H, W, C) or (H, W); got {img.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)).copy())
    if tensor.dtype == torch.uint8:
        tensor = tensor.to(torch.get_default_dtype()) / 255
    elif not tensor.is_floating_point():
        raise TypeError(f"img must be uint8 or a float array; got dtype {img.dtype}")
    channels = tensor.shape[0]
    mean_t = torch.as_tensor(mean, dtype=tensor.dtype).reshape(-1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype).reshape(-1)
    for name, values in (("mean", mean_t), ("std", std_t)):
        if values.numel() not in (1, channels):
            raise ValueError(f"{name} must have one value per channel ({channels}); got {values.numel()} values")
    if bool((std_t == 0).any()):
        raise ValueError(f"std must not contain zeros; got {std}")
    normalised = (tensor - mean_t[:, None, None]) / std_t[:, None, None]
    return normalised.unsqueeze(0)


def deprocess_image(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Map an arbitrary-valued array (e.g. a guided-backprop gradient) to a viewable uint8 image.

    ``uint8(255 · clip(0.1 · (img - mean) / (std + 1e-5) + 0.5, 0, 1))`` (mean and std over all values).
    """
    img = _as_host_array(img, "img")
    img = img - np.mean(img)
    img = img / (np.std(img) + 1e-5)
    img = img * 0.1
    img = img + 0.5
    img = np.clip(img, 0, 1)
    return np.uint8(img * 255)


def scale_accross_batch_and_channels(
    tensor: np.ndarray | torch.Tensor, target_size: Sequence[int] | None
) -> np.ndarray | torch.Tensor:
    """Min-max scale and resize every ``(b, c)`` map of a ``(B, C, H, W)`` batch independently.

    Built on :func:`scale_cam_tensor` (the reference name, with its spelling). ``target_size`` is
    ``(W, H)``; the result has shape ``(B, C, H, W)`` and is a tensor for a tensor input, else np.float32.
    """
    is_tensor = isinstance(tensor, torch.Tensor)
    values = tensor if isinstance(tensor, torch.Tensor) else torch.as_tensor(np.asarray(tensor, dtype=np.float32))
    if values.ndim < 3:
        raise ValueError(f"tensor must have shape (B, C, H, W); got {tuple(values.shape)}")
    batch, channels = values.shape[:2]
    size = None if target_size is None else _axis_order(target_size)
    scaled = scale_cam_tensor(values.reshape(batch * channels, *values.shape[2:]), size)
    scaled = scaled.reshape(batch, channels, *scaled.shape[1:])
    return scaled if is_tensor else scaled.cpu().numpy()


def create_labels_legend(
    concept_scores: np.ndarray | torch.Tensor, labels: Mapping[int, str] | Sequence[str], top_k: int = 2
) -> list[str]:
    """One legend entry per concept: its ``top_k`` categories as ``"label:score"`` lines.

    Each label is cut to its first three comma-separated names; scores are printed with two decimals.

    Args:
        concept_scores: ``(n_concepts, n_categories)`` scores.
        labels: category index → name (a dict or a list).
        top_k: how many categories to list per concept.

    Returns:
        ``n_concepts`` strings, lines joined with ``"\n"``.
    """
    scores = _as_host_array(concept_scores, "concept_scores")
    if scores.ndim != 2:
        raise ValueError(f"concept_scores must have shape (n_concepts, n_categories); got {scores.shape}")
    top_k = check_positive_int(top_k, "top_k")
    top = np.argsort(scores, axis=1)[:, ::-1][:, :top_k]
    legend = []
    for concept, categories in enumerate(top):
        lines = []
        for category in categories:
            try:
                name = labels[int(category)]
            except (KeyError, IndexError) as error:
                raise ValueError(f"labels has no entry for category {int(category)}") from error
            lines.append(f"{','.join(str(name).split(',')[:3])}:{scores[concept, category]:.2f}")
        legend.append("\n".join(lines))
    return legend


def _render_legend(colors: Sequence[np.ndarray], concept_labels: Sequence[str], height: int, width: int) -> np.ndarray:
    """Draw the concept legend as an ``(height, width, 3)`` uint8 RGB panel (off-screen Agg canvas)."""
    import cv2
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    dpi = float(matplotlib.rcParams["figure.dpi"])
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.axis("off")
    n_components = len(concept_labels)
    font_size = max(1, int(14 * height / 256 / max(1, n_components / 6)))
    line_width = 5 * height / 256
    # matplotlib's ColorType omits numpy arrays, which Line2D accepts (an RGB(A) float array is a valid color)
    lines = [Line2D([0], [0], color=colors[i], lw=line_width) for i in range(n_components)]  # type: ignore[arg-type]
    axes.legend(lines, list(concept_labels), mode="expand", fancybox=True, shadow=True, fontsize=font_size)
    canvas.draw()
    panel = np.asarray(canvas.buffer_rgba())[:, :, :3]
    return cv2.resize(np.ascontiguousarray(panel), (width, height))


def show_factorization_on_image(
    img: np.ndarray,
    explanations: np.ndarray | torch.Tensor,
    colors: Sequence[np.ndarray] | None = None,
    image_weight: float = 0.5,
    concept_labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Colour-code the concept heatmaps of a factorization (e.g. Deep Feature Factorization) on an image.

    Each pixel takes the colour of the concept with the largest heatmap value there, with its brightness
    (HSV value) set to that heatmap value; ``result = uint8(255 · (w · img + (1 - w) · colours))``. With
    ``concept_labels`` a legend panel of the same size is stacked to the right. The caller's arrays are
    not modified.

    Args:
        img: ``(H, W, 3)`` RGB float image in [0, 1].
        explanations: ``(n_components, H, W)`` concept heatmaps in [0, 1].
        colors: one RGB(A) colour (floats in [0, 1]) per component; default: evenly spaced on matplotlib's
            ``gist_rainbow`` colormap.
        image_weight: the weight ``w`` of the image, in [0, 1].
        concept_labels: one legend string per component (see :func:`create_labels_legend`).

    Returns:
        ``(H, W, 3)`` uint8 image, or ``(H, 2W, 3)`` with the legend.
    """
    import cv2

    img = _check_float_image(img)
    explanations = _as_host_array(explanations, "explanations")
    image_weight = check_real(image_weight, "image_weight", 0, 1)
    if explanations.ndim != 3 or explanations.shape[1:] != img.shape[:2]:
        raise ValueError(
            f"explanations must have shape (n_components, H, W) with (H, W) = {img.shape[:2]}; got {explanations.shape}"
        )
    n_components = explanations.shape[0]
    if n_components == 0:
        raise ValueError("explanations must hold at least one component; got 0")
    if colors is None:
        import matplotlib

        colormap = matplotlib.colormaps["gist_rainbow"]
        colors = [np.array(colormap(i)) for i in np.arange(0, 1, 1.0 / n_components)[:n_components]]
    if len(colors) < n_components:
        raise ValueError(f"colors must hold one colour per component ({n_components}); got {len(colors)}")
    if concept_labels is not None and len(concept_labels) != n_components:
        raise ValueError(
            f"concept_labels must hold one label per component ({n_components}); got {len(concept_labels)}"
        )
    winner = explanations.argmax(axis=0)
    height, width = img.shape[:2]
    overlay = np.zeros((height, width, 3), dtype=np.float32)
    for index in range(n_components):
        value = np.where(winner == index, explanations[index], 0)
        color = np.zeros((height, width, 3))
        color[:, :, :] = np.asarray(colors[index], dtype=np.float64)[:3]
        hsv = cv2.cvtColor(np.uint8(color * 255), cv2.COLOR_RGB2HSV)
        hsv[:, :, 2] = np.uint8(np.clip(255 * value, 0, 255))
        overlay += np.float32(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)) / 255
    result = np.uint8((img * image_weight + overlay * (1 - image_weight)) * 255)
    if concept_labels is not None:
        legend = _render_legend(colors, concept_labels, height, width)
        result = np.hstack((result, legend))
    return result
