"""The explorer's logic, free of any web framework: loading models and images, listing target layers, the top
classes, running CAM methods and scoring their maps against ground-truth masks.

The web page (:mod:`pytorch_grad_cam.app.ui`) only wires these functions to widgets, so everything here is testable
without a browser and without gradio::

    >>> from pytorch_grad_cam.app.explorer import demo_scene, load_model, prepare_input, run_methods, top_classes
    >>> bundle = load_model("demo:cnn")
    >>> scene = demo_scene("single 0")
    >>> rgb, input_tensor = prepare_input(bundle, scene.image)
    >>> best = top_classes(bundle, input_tensor)[0]
    >>> results = run_methods(bundle, rgb, input_tensor, ["gradcam"], best.index, mask=scene.mask_for(best.name))

Every error a user can cause (an image that does not decode, a model that cannot be loaded offline, an unknown
layer) is an :class:`ExplorerError` with a message meant for the page; a method that raises is reported in its
:class:`MethodResult` instead of stopping the others.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.core.checks import check_bool, check_int, describe

__all__ = [
    "AUTO_LAYER",
    "DEMO_PREFIX",
    "ClassScore",
    "ExplorerError",
    "LayerOption",
    "MethodResult",
    "ModelBundle",
    "Scene",
    "decode_image",
    "demo_scene",
    "demo_scene_names",
    "display_image",
    "ground_truth_image",
    "list_target_layers",
    "load_model",
    "method_choices",
    "model_choices",
    "prepare_input",
    "resolve_target_layer",
    "run_methods",
    "score_map",
    "top_classes",
]

#: The layer choice that means "the library's automatic target layer".
AUTO_LAYER = "auto"
#: Model names starting with this prefix are the shipped demo models (``demo:cnn``, ``demo:vit``, ...).
DEMO_PREFIX = "demo:"
#: How many scenes of each benchmark scenario the explorer offers.
SCENES_PER_SCENARIO = 10
#: Overlays are drawn at least this many pixels wide (the demo scenes are 64 × 64).
DISPLAY_SIZE = 256
#: Image files the explorer reads larger than this are refused (bytes).
MAX_IMAGE_BYTES = 50 * 1024 * 1024

ProgressCallback = Callable[[int, int, str], None]


class ExplorerError(ValueError):
    """A problem the user can fix (a bad file, a model that cannot load, an unknown layer): the message is shown
    on the page as it is."""


# ---------------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelBundle:
    """A loaded model with what preprocessing and labelling need.

    Attributes:
        name: the name it was loaded by (``demo:cnn``, ``resnet50``, ``timm:convnext_tiny``).
        model: the network, in eval mode, on the CPU.
        class_names: the names of its outputs, when known.
        size: the side of the square input it expects.
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
    """

    name: str
    model: nn.Module
    class_names: tuple[str, ...] | None
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def class_name(self, index: int) -> str:
        """The name of output ``index`` (``"class 7"`` when the model has no names)."""
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return self.class_names[index]
        return f"class {index}"


def model_choices() -> list[tuple[str, str]]:
    """The shipped demo models as ``(label, name)`` pairs for a model menu (they load offline)."""
    from pytorch_grad_cam.demo.model import DEMO_MODELS

    return [(f"{DEMO_PREFIX}{name} — {spec.description}", f"{DEMO_PREFIX}{name}") for name, spec in DEMO_MODELS.items()]


_MODEL_CACHE: dict[str, ModelBundle] = {}
_MODEL_LOCK = threading.Lock()


def _check_name(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string; got {describe(value)}")
    return value.strip()


def load_model(name: str) -> ModelBundle:
    """A model by name, loaded once and cached for the life of the process.

    Args:
        name: ``demo:<name>`` for a shipped demo model (:data:`~pytorch_grad_cam.demo.model.DEMO_MODELS`; plain
            ``demo`` is ``demo:cnn``), ``timm:<name>`` for a timm model with its pretrained weights, or a torchvision
            classification model name (``resnet50``) with its ImageNet weights. Pretrained weights come from the
            local caches (torchvision's, the Hugging Face hub's), downloaded there once when the network allows.

    Returns:
        The model in eval mode with its class names, input size and normalisation.

    Raises:
        TypeError: ``name`` is not a string.
        ExplorerError: an empty or unknown name, or weights that cannot be loaded (offline and not cached); never
            a model with random weights.
    """
    key = _check_name(name, "name")
    if not key:
        raise ExplorerError("choose a model: a demo model, a torchvision name such as resnet50, or timm:<name>")
    if key == "demo":
        key = f"{DEMO_PREFIX}cnn"
    with _MODEL_LOCK:
        if key not in _MODEL_CACHE:
            _MODEL_CACHE[key] = _load_uncached(key)
        return _MODEL_CACHE[key]


def _load_uncached(key: str) -> ModelBundle:
    from pytorch_grad_cam.cli import CLIError, load_timm_model, load_torchvision_model

    if key.startswith(DEMO_PREFIX):
        from pytorch_grad_cam.demo.model import DEMO_MODELS, load_demo_model
        from pytorch_grad_cam.demo.scenes import MEAN, SCENE_SIZE, STD

        short = key[len(DEMO_PREFIX) :]
        if short not in DEMO_MODELS:
            raise ExplorerError(f"unknown demo model {short!r}; the demo models are {', '.join(DEMO_MODELS)}")
        try:
            model = load_demo_model(name=short)  # type: ignore[arg-type]
        except (OSError, ValueError) as error:
            raise ExplorerError(f"cannot load the demo model {short!r}: {error}") from None
        return ModelBundle(key, model, DEMO_MODELS[short].classes, SCENE_SIZE, MEAN, STD)
    try:
        if key.startswith("timm:"):
            loaded = load_timm_model(key[len("timm:") :], None)
        else:
            loaded = load_torchvision_model(key, None)
    except CLIError as error:
        # The loaders speak to the command line ("--model x: ..."); the page names the model instead.
        message = str(error).removeprefix("--model: ").removeprefix(f"--model {key}: ")
        message = message.replace("--weights PATH (a state_dict file), ", "").replace("--model demo", "a demo model")
        raise ExplorerError(f"cannot load the model {key!r}: {message}") from None
    names = tuple(loaded.class_names) if loaded.class_names is not None else None
    return ModelBundle(key, loaded.model.eval(), names, loaded.size, tuple(loaded.mean), tuple(loaded.std))


# ---------------------------------------------------------------------------------------------------- images
@dataclass
class Scene:
    """An image to explain and, for the demo scenes, the ground truth.

    Attributes:
        title: what the page calls it (``"single 3"``, the uploaded file's name).
        image: float32 RGB ``(H, W, 3)`` in [0, 1].
        objects: class name → bool mask ``(H, W)`` of that object's visible pixels (empty for an upload).
        scenario: the benchmark scenario of a demo scene, ``None`` for an upload.
    """

    title: str
    image: np.ndarray
    objects: dict[str, np.ndarray] = field(default_factory=dict)
    scenario: str | None = None

    def mask_for(self, class_name: str) -> np.ndarray | None:
        """The ground-truth mask of the object of class ``class_name``, or ``None`` when the scene has none."""
        return self.objects.get(class_name)


def demo_scene_names(per_scenario: int = SCENES_PER_SCENARIO) -> list[str]:
    """The demo scenes the explorer offers: ``"<scenario> <index>"`` for every benchmark scenario."""
    from pytorch_grad_cam.demo.scenarios import SCENARIOS

    per_scenario = check_int(per_scenario, "per_scenario", minimum=1)
    return [f"{scenario} {index}" for scenario in SCENARIOS for index in range(per_scenario)]


def demo_scene(name: str) -> Scene:
    """A benchmark scene (held-out seed: scenes the demo models never saw in training) with its ground truth.

    Args:
        name: ``"<scenario> <index>"`` as :func:`demo_scene_names` lists them, e.g. ``"pair 2"``.

    Raises:
        TypeError: ``name`` is not a string.
        ExplorerError: an unknown scenario or an index that is not a non-negative integer.
    """
    from pytorch_grad_cam.demo.scenarios import SCENARIOS, SHORTCUT_CLASSES, BenchmarkScenes
    from pytorch_grad_cam.demo.scenes import SHAPES
    from pytorch_grad_cam.demo.train import HELDOUT_SEED

    text = _check_name(name, "name")
    parts = text.split()
    if len(parts) != 2 or parts[0] not in SCENARIOS or not parts[1].isdigit():
        raise ExplorerError(
            f"unknown demo scene {text!r}; expected '<scenario> <index>' with a scenario of {', '.join(SCENARIOS)}"
        )
    scenario, index = parts[0], int(parts[1])
    scene = BenchmarkScenes(scenario, index + 1, seed=HELDOUT_SEED).scene(index)  # type: ignore[arg-type]
    classes = SHORTCUT_CLASSES if scenario == "shortcut" else SHAPES
    objects = {classes[label]: scene.masks[k] for k, label in enumerate(scene.labels)}
    return Scene(text, scene.image, objects, scenario)


def decode_image(source: str | os.PathLike[str] | bytes, title: str | None = None) -> Scene:
    """An uploaded image file (PNG, JPEG, BMP, TIFF, WebP... anything OpenCV decodes) as a :class:`Scene`.

    Args:
        source: the file's path, or its bytes.
        title: what to call it (default: the file's name).

    Raises:
        TypeError: ``source`` is neither a path nor bytes.
        ExplorerError: the file cannot be read, is empty or too large, or does not decode as an image.
    """
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        title = title or "uploaded image"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        title = title or path.name
        try:
            size = path.stat().st_size
            if size > MAX_IMAGE_BYTES:
                raise ExplorerError(f"{title} is {size / 2**20:.0f} MiB; images up to {MAX_IMAGE_BYTES >> 20} MiB")
            data = path.read_bytes()
        except OSError as error:
            raise ExplorerError(f"cannot read {title}: {error.strerror or error}") from None
    else:
        raise TypeError(f"source must be a file path or bytes; got {describe(source)}")
    if not data:
        raise ExplorerError(f"{title} is empty: upload an image file (PNG, JPEG, ...)")
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ExplorerError(f"{title} is not an image this explorer can decode: upload a PNG, JPEG, BMP, TIFF or WebP")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return Scene(title, rgb.astype(np.float32) / 255.0)


def _check_image(image: Any, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W, 3); got {describe(image)}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"{name} must have shape (H, W, 3); got {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 or float in [0, 1]; got dtype {image.dtype}")
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def prepare_input(bundle: ModelBundle, image: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """The image at the model's input size and the normalised input batch.

    Args:
        bundle: the model (its input size and normalisation).
        image: RGB ``(H, W, 3)``, float in [0, 1] or uint8.

    Returns:
        ``(rgb, input_tensor)``: float32 RGB ``(size, size, 3)`` in [0, 1] and a ``(1, 3, size, size)`` tensor.
    """
    from pytorch_grad_cam.utils.image import preprocess_image

    if not isinstance(bundle, ModelBundle):
        raise TypeError(f"bundle must be a ModelBundle (see load_model); got {describe(bundle)}")
    rgb = _check_image(image)
    if rgb.shape[:2] != (bundle.size, bundle.size):
        shrinking = min(rgb.shape[:2]) > bundle.size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (bundle.size, bundle.size), interpolation=interpolation)
    rgb = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    return rgb, preprocess_image(rgb, mean=list(bundle.mean), std=list(bundle.std))


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A ``(H, W)`` mask as bool at ``shape = (h, w)`` (nearest neighbour)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape (H, W); got {mask.shape}")
    if mask.shape == tuple(shape):
        return mask
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


# ---------------------------------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class LayerOption:
    """A candidate target layer: a module whose output is a map a CAM can use.

    Attributes:
        name: the dotted name (``features.3``, ``blocks.3.norm1``).
        type: the module's class name.
        shape: its output shape on the input.
        layout: ``"NCHW"``, ``"NHWC"`` or ``"tokens"``.
        grid: the map's ``(h, w)``.
        extra_tokens: for tokens, the number of leading non-patch tokens.
        automatic: whether it is the library's automatic choice.
    """

    name: str
    type: str
    shape: tuple[int, ...]
    layout: str
    grid: tuple[int, int]
    extra_tokens: int | None = None
    automatic: bool = False

    @property
    def label(self) -> str:
        """``features.3 · Sequential · (1, 96, 8, 8)`` (with `` · auto`` for the automatic choice)."""
        text = f"{self.name} · {self.type} · {self.shape}"
        if self.layout != "NCHW":
            text += f" · {self.layout}"
        return text + (" · auto" if self.automatic else "")


def list_target_layers(model: nn.Module, input_tensor: torch.Tensor) -> list[LayerOption]:
    """The modules of ``model`` that output a usable map on ``input_tensor``, in the order they finish, each with
    its output shape; the automatic choice is flagged (one forward pass, hooks removed after).

    Raises:
        TypeError: ``model`` is not a module or ``input_tensor`` not a tensor.
    """
    from pytorch_grad_cam.utils.find_layers import list_layers

    table = list_layers(model, input_tensor, maps_only=True)
    return [
        LayerOption(row.name, row.type, tuple(row.shape), row.layout, row.grid, row.extra_tokens, row.chosen)
        for row in table
        if row.layout is not None and row.grid is not None and row.shape is not None and row.runs == 1
    ]


def resolve_target_layer(
    model: nn.Module, input_tensor: torch.Tensor, layer: str = AUTO_LAYER
) -> tuple[nn.Module, Callable[[Any], torch.Tensor] | None, str]:
    """The target layer to use, its ``reshape_transform`` and its name.

    Args:
        model: the network.
        input_tensor: the input it will explain.
        layer: :data:`AUTO_LAYER` for the library's automatic choice, or a dotted name listed by
            :func:`list_target_layers`.

    Raises:
        ExplorerError: no automatic choice is possible, or ``layer`` does not output a usable map.
    """
    from pytorch_grad_cam.core.layers import (
        NHWC,
        TOKENS,
        ChannelsLastReshape,
        TokenGrid,
        TokenGridReshape,
        choose_target_layer,
    )
    from pytorch_grad_cam.core.model import eval_mode

    layer = _check_name(layer, "layer")
    if layer in ("", AUTO_LAYER):
        try:
            with eval_mode(model):
                choice = choose_target_layer(model, input_tensor)
        except ValueError as error:
            raise ExplorerError(str(error)) from None
        return choice.layer, choice.reshape, choice.name
    options = {option.name: option for option in list_target_layers(model, input_tensor)}
    option = options.get(layer)
    if option is None:
        raise ExplorerError(f"layer {layer!r} does not output a map a CAM can use; pick one from the list")
    reshape: Callable[[Any], torch.Tensor] | None = None
    if option.layout == NHWC:
        reshape = ChannelsLastReshape()
    elif option.layout == TOKENS:
        height, width = option.grid
        size = tuple(input_tensor.shape[2:])
        grid = TokenGrid(height, width, option.extra_tokens or 0, max(1, size[0] // height), size[0] % height == 0)
        reshape = TokenGridReshape(grid, size)
    return model.get_submodule(layer), reshape, layer


# --------------------------------------------------------------------------------------------------- classes
@dataclass(frozen=True)
class ClassScore:
    """One of the model's top classes: its index, name and softmax probability."""

    index: int
    name: str
    probability: float

    @property
    def label(self) -> str:
        """``disc · 0.982``."""
        return f"{self.name} · {self.probability:.3f}"


def _logits(bundle: ModelBundle, input_tensor: torch.Tensor) -> torch.Tensor:
    """The model's class scores ``(B, K)`` (no gradients); ``ExplorerError`` when it returns something else."""
    with torch.no_grad():
        output = bundle.model(input_tensor)
    logits = getattr(output, "logits", output)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ExplorerError(f"{bundle.name} does not return class scores (B, K); got {describe(logits)}")
    return logits


def top_classes(bundle: ModelBundle, input_tensor: torch.Tensor, k: int = 5) -> list[ClassScore]:
    """The ``k`` most probable classes (softmax of one forward pass), most probable first.

    Raises:
        ExplorerError: the model does not return one score vector per image.
    """
    k = check_int(k, "k", minimum=1)
    probabilities = torch.softmax(_logits(bundle, input_tensor)[0].float(), dim=0)
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    return [ClassScore(int(i), bundle.class_name(int(i)), float(v)) for v, i in zip(values, indices)]


# --------------------------------------------------------------------------------------------------- methods
def method_choices() -> list[tuple[str, str]]:
    """Every registered CAM method as ``(class name, registry key)``, in the registry's order."""
    from pytorch_grad_cam.methods import METHOD_NAMES

    return [(title, key) for key, title in METHOD_NAMES.items()]


@dataclass
class MethodResult:
    """One method's map and how it did.

    Attributes:
        method: the registry key (``"gradcam"``).
        title: the class name (``"GradCAM"``).
        seconds: wall time of building the CAM and computing the map.
        grayscale: the map ``(size, size)`` in [0, 1] at the model's input size (``None`` when it failed).
        overlay: the map over the image, uint8 RGB, at least :data:`DISPLAY_SIZE` wide (``None`` when it failed).
        pointing_game: 1.0 when the map's maximum lies on the ground-truth object, else 0.0 (``None`` without one).
        relevance_mass: the share of the map's positive relevance inside the object (``None`` without one).
        error: why the method failed (``"ValueError: ..."``), ``None`` when it ran.
        warnings: the messages of the warnings it raised, once each.
    """

    method: str
    title: str
    seconds: float
    grayscale: np.ndarray | None = None
    overlay: np.ndarray | None = None
    pointing_game: float | None = None
    relevance_mass: float | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def caption(self) -> str:
        """``GradCAM · 0.012 s``."""
        return f"{self.title} · {self.seconds:.3f} s"


def score_map(grayscale: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """The pointing game (1.0 hit, 0.0 miss) and the relevance mass accuracy of one map against a mask of its
    shape (:mod:`pytorch_grad_cam.metrics`).

    Raises:
        ValueError: the shapes differ, or the map holds NaN / inf.
    """
    from pytorch_grad_cam.metrics import pointing_game, relevance_mass_accuracy

    cam = np.asarray(grayscale, dtype=np.float64)[None]
    truth = np.asarray(mask, dtype=bool)[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an all-zero map scores 0 mass: the number says it, no warning needed
        hit = pointing_game(cam, truth)[0]
        mass = relevance_mass_accuracy(cam, truth)[0]
    return float(hit), float(mass)


def display_image(image: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """An RGB image (float in [0, 1] or uint8) as uint8, scaled up (bicubic) so its shorter side is at least
    ``size`` pixels."""
    rgb = _check_image(image)
    scale = size / min(rgb.shape[:2])
    if scale > 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return np.uint8(np.clip(rgb, 0.0, 1.0) * 255 + 0.5)


def _overlay(rgb: np.ndarray, grayscale: np.ndarray, size: int) -> np.ndarray:
    from pytorch_grad_cam.utils.image import show_cam_on_image

    scale = max(1.0, size / min(rgb.shape[:2]))
    if scale > 1:
        shape = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        rgb = np.clip(cv2.resize(rgb, shape, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        grayscale = cv2.resize(grayscale.astype(np.float32), shape, interpolation=cv2.INTER_LINEAR)
    return show_cam_on_image(rgb.astype(np.float32), np.clip(grayscale, 0.0, 1.0), use_rgb=True)


def ground_truth_image(image: np.ndarray, mask: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """The image dimmed outside the ground-truth ``mask`` with the object's outline drawn in green, uint8 RGB,
    scaled up as :func:`display_image` does."""
    rgb = _check_image(image)
    truth = np.asarray(mask, dtype=bool)
    if truth.shape != rgb.shape[:2]:
        raise ValueError(f"mask must have the image's shape {rgb.shape[:2]}; got {truth.shape}")
    shown = display_image(np.where(truth[..., None], rgb, 0.3 * rgb), size)
    big = cv2.resize(truth.astype(np.uint8), (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(shown, contours, -1, (0, 255, 0), max(1, shown.shape[0] // 128))
    return shown


_RUN_LOCK = threading.Lock()


def run_methods(
    bundle: ModelBundle,
    rgb: np.ndarray,
    input_tensor: torch.Tensor,
    methods: Sequence[str],
    class_index: int,
    layer: str = AUTO_LAYER,
    mask: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    display_size: int = DISPLAY_SIZE,
    method_bars: bool = False,
) -> list[MethodResult]:
    """Run CAM methods on one image for one class, timing each and scoring each map against ``mask``.

    Runs are serialised (one at a time in the process): the methods put hooks on the shared, cached model.

    Args:
        bundle: the model.
        rgb: the image at the model's input size, float32 RGB in [0, 1] (from :func:`prepare_input`).
        input_tensor: the normalised ``(1, 3, size, size)`` input (from :func:`prepare_input`).
        methods: registry keys (:data:`pytorch_grad_cam.methods.METHODS`), e.g. ``["gradcam", "scorecam"]``.
        class_index: the class to explain.
        layer: :data:`AUTO_LAYER` or a dotted layer name from :func:`list_target_layers`.
        mask: the ground-truth object of ``class_index`` (bool, the image's or the model input's shape), or ``None``.
        progress: called as ``progress(done, total, title)`` before each method and once at the end.
        display_size: the smallest side of the overlays.
        method_bars: let the methods that have one show their tqdm progress bar (the page follows them).

    Returns:
        One :class:`MethodResult` per method, in order; a method that raised has its ``error`` set.

    Raises:
        TypeError: an argument of the wrong type.
        ExplorerError: no method, an unknown method, a class index out of range or an unusable layer.
    """
    from pytorch_grad_cam.methods import get_method
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if not isinstance(bundle, ModelBundle):
        raise TypeError(f"bundle must be a ModelBundle (see load_model); got {describe(bundle)}")
    if isinstance(methods, str) or not isinstance(methods, Sequence):
        raise TypeError(f"methods must be a list of method names such as ['gradcam']; got {describe(methods)}")
    if not methods:
        raise ExplorerError("choose at least one method")
    try:
        classes = [(key.lower(), get_method(key)) for key in methods]
    except (TypeError, ValueError) as error:
        raise ExplorerError(str(error)) from None
    class_index = check_int(class_index, "class_index", minimum=0)
    display_size = check_int(display_size, "display_size", minimum=1)
    method_bars = check_bool(method_bars, "method_bars")
    if not isinstance(input_tensor, torch.Tensor) or input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise TypeError(f"input_tensor must be one image (1, 3, H, W) from prepare_input; got {describe(input_tensor)}")
    rgb = _check_image(rgb, "rgb")
    size = tuple(input_tensor.shape[2:])
    if rgb.shape[:2] != size:
        raise ValueError(f"rgb must have the input's size {size}; got {rgb.shape[:2]}")
    truth = None if mask is None else resize_mask(mask, (int(size[0]), int(size[1])))
    with _RUN_LOCK:
        num_classes = int(_logits(bundle, input_tensor).shape[-1])
        if class_index >= num_classes:
            raise ExplorerError(f"class index {class_index} is out of range: {bundle.name} has {num_classes} classes")
        target_layer, reshape, _ = resolve_target_layer(bundle.model, input_tensor, layer)
        targets = [ClassifierOutputTarget(class_index)]
        results = []
        for done, (key, cam_class) in enumerate(classes):
            if progress is not None:
                progress(done, len(classes), cam_class.__name__)
            result = _run_one(
                key, cam_class, bundle, input_tensor, targets, target_layer, reshape, layer, truth, method_bars
            )
            results.append(result)
            if result.grayscale is not None:
                result.overlay = _overlay(rgb, result.grayscale, display_size)
        if progress is not None:
            progress(len(classes), len(classes), "done")
    return results


def _run_one(
    key: str,
    cam_class: Any,
    bundle: ModelBundle,
    input_tensor: torch.Tensor,
    targets: list,
    target_layer: nn.Module,
    reshape: Callable[[Any], torch.Tensor] | None,
    layer: str,
    truth: np.ndarray | None,
    bars: bool,
) -> MethodResult:
    """One method's map, timing, scores, warnings; a method that raises gives a result with its error."""
    from pytorch_grad_cam.cli import accepts_keyword

    title = cam_class.__name__
    options: dict[str, Any] = {}
    if accepts_keyword(cam_class, "progress"):
        options["progress"] = bars  # a tqdm bar the page's progress tracker can follow
    own_layers = getattr(cam_class, "layers_optional", False) and layer in ("", AUTO_LAYER)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)  # the server's own files (progress trackers), not the method's
        try:
            with cam_class(
                model=bundle.model,
                target_layers=None if own_layers else [target_layer],
                reshape_transform=None if own_layers else reshape,
                **options,
            ) as cam:
                grayscale = cam(input_tensor, targets)[0]
        except Exception as error:  # any method failure is reported on the page, the other methods still run
            seconds = time.perf_counter() - start
            message = " ".join(str(error).split()) or "(no message)"
            return MethodResult(key, title, seconds, error=f"{type(error).__name__}: {message}")
    seconds = time.perf_counter() - start
    messages = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    cam_map = np.asarray(grayscale, dtype=np.float32)
    if not np.isfinite(cam_map).all():
        return MethodResult(key, title, seconds, error="the map holds NaN or inf values", warnings=messages)
    result = MethodResult(key, title, seconds, grayscale=cam_map, warnings=messages)
    if truth is not None:
        result.pointing_game, result.relevance_mass = score_map(cam_map, truth)
    return result
