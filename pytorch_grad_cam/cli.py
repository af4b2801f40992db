"""``cam.py`` / ``grad-cam``: explain one image with any CAM method, from the command line.

Writes ``<method>_cam.jpg`` (the CAM over the image), ``<method>_gb.jpg`` (guided backpropagation) and
``<method>_cam_gb.jpg`` (their product) into ``--output-dir``, at the resolution of the input image (the model
sees it resized to its input size; the maps are upsampled back, bilinearly); ``--compare`` writes every method
into one figure instead.

Quiet unless ``--verbose``: no progress bars, and each warning a method raises is summarised as one line on
stderr, ``warning (<method>): <message>``. ``--verbose --no-progress`` shows the warnings in full without bars.

``python cam.py --model demo`` runs offline on the project's own trained model and example image.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from pytorch_grad_cam.methods import METHOD_NAMES, get_method

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The photo explained when ``--image-path`` is not given (shipped with the package; see its CREDITS.md).
DEFAULT_PHOTO = Path(__file__).parent / "demo" / "assets" / "chelsea.png"


class CLIError(Exception):
    """A user error on the command line: printed as one line, exit status 2."""


def report_error(program: str, error: Exception) -> int:
    """Print a user error as one line ``<program>: error: ...`` on stderr; the exit status 2."""
    print(f"{program}: error: {error}", file=sys.stderr)
    return 2


@dataclass
class Setup:
    """Everything one run needs, resolved from the command line."""

    model: nn.Module
    target_layers: list[nn.Module]
    reshape_transform: Callable[[Any], torch.Tensor] | None
    rgb_img: np.ndarray  # float32 RGB in [0, 1], the model's input size
    input_tensor: torch.Tensor
    class_names: Sequence[str] | None
    photo: np.ndarray  # float32 RGB in [0, 1], the input image at its own resolution (where outputs go)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cam.py",
        description="Compute a Class Activation Map for one image and save it with guided backpropagation.",
    )
    parser.add_argument(
        "--image-path",
        type=str,
        default=None,
        help="input image (default: the demo scene for --model demo, else a bundled cat photo)",
    )
    parser.add_argument(
        "--method",
        type=str,
        default="gradcam",
        help=f"CAM method, one of: {', '.join(METHOD_NAMES)} (default: gradcam)",
    )
    parser.add_argument(
        "--aug-smooth", action="store_true", help="test-time augmentation smoothing (flip x brightness, averaged)"
    )
    parser.add_argument(
        "--eigen-smooth", action="store_true", help="keep the first principal component of the weighted activations"
    )
    parser.add_argument(
        "--device", type=str, default=None, help="torch device: cpu, cuda, cuda:N, mps, hpu (default: cpu)"
    )
    parser.add_argument("--output-dir", type=str, default="output", help="where the images are written")
    parser.add_argument(
        "--model",
        type=str,
        default="resnet50",
        help="torchvision model name (ImageNet weights through torchvision's cache), timm:<name> for a timm "
        "model (its pretrained weights through the Hugging Face hub cache; needs timm), or 'demo' for the "
        "project's offline model (default: resnet50)",
    )
    parser.add_argument(
        "--weights", type=str, default=None, help="a state_dict file to load instead of the pretrained weights"
    )
    parser.add_argument(
        "--target-layer",
        type=str,
        action="append",
        default=None,
        help="dotted path of a target layer, e.g. layer4.2 or features.-1 (repeatable; default: chosen "
        "automatically from a forward pass, printed on stderr)",
    )
    parser.add_argument(
        "--target", type=str, default=None, help="class index or class name to explain (default: the top class)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="batch size of the perturbation methods (scorecam, ablationcam)"
    )
    parser.add_argument(
        "--compare", action="store_true", help="run every method and write them into one figure, compare.png"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show progress bars and the methods' warnings in full (default: no bars, one line per warning)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars, with --verbose too (without --verbose there are none already)",
    )
    return parser


# --------------------------------------------------------------------------------------------- resolution
def resolve_device(name: str | None) -> torch.device:
    """The torch device for ``--device``, checked for availability."""
    if name is None:
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise CLIError(f"--device: {name!r} is not a torch device string ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CLIError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) available")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise CLIError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif device.type == "hpu":
        try:
            import habana_frameworks.torch.core  # noqa: F401
        except ImportError:
            raise CLIError(f"--device {name}: Habana HPU support (habana_frameworks) is not installed") from None
    elif device.type != "cpu":
        raise CLIError(f"--device {name}: expected cpu, cuda, cuda:N, mps or hpu")
    return device


def read_image(path: str) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``; :func:`unit_float` and :func:`model_image` convert it (a huge
    photo is resized before any float copy of it is made)."""
    if not os.path.isfile(path):
        raise CLIError(f"--image-path: no such file: {path}")
    from pytorch_grad_cam.utils.image import decode_image_file

    try:
        bgr = decode_image_file(path)
    except OSError as error:
        raise CLIError(f"--image-path: cannot read {path}: {error.strerror or error}") from None
    if bgr is None:
        raise CLIError(f"--image-path: cannot read {path} as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def unit_float(image: np.ndarray) -> np.ndarray:
    """A uint8 image as float32 in [0, 1] (``x / 255``, one allocation), a float image as a float32 copy."""
    if image.dtype != np.uint8:
        return np.array(image, dtype=np.float32)
    values = image.astype(np.float32)
    values /= 255
    return values


def model_image(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (uint8 or float RGB) at the model's input size ``(size, size)`` as float32 RGB in [0, 1].

    The resize (``cv2.INTER_AREA``) comes first, on the uint8 pixels, as the reference's tutorials do
    (``cv2.resize`` then ``np.float32(img) / 255``): a photo of any size costs one small float image. An image
    already at the model's size is only converted.
    """
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return unit_float(image)


def auto_target_layers(model: nn.Module, input_tensor: torch.Tensor) -> tuple[list[nn.Module], Callable | None]:
    """The target layer and reshape a CAM would choose without ``target_layers`` (one probe forward pass, see
    :mod:`pytorch_grad_cam.core.layers`); prints ``target layer: <name> (auto; <layout>)`` on stderr."""
    from pytorch_grad_cam.core.layers import choose_target_layer
    from pytorch_grad_cam.core.model import eval_mode

    with eval_mode(model):
        choice = choose_target_layer(model, input_tensor)
    print(f"target layer: {choice.name} (auto; {choice.detail()})", file=sys.stderr)
    return [choice.layer], choice.reshape


def default_target_layers(model_name: str, torchvision_model: nn.Module) -> tuple[list[nn.Module], Callable | None]:
    """A target layer (and reshape transform) per torchvision model family, by name (kept for scripts; cam.py
    chooses with :func:`auto_target_layers`)."""
    from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform

    model: Any = torchvision_model  # each family has its own attributes

    family = model_name.lower()
    if family.startswith(("resnet", "resnext", "wide_resnet")):
        return [model.layer4[-1]], None
    if family.startswith("vit_"):
        return [model.encoder.layers[-1].ln_1], vit_reshape_transform
    if family.startswith("swin"):
        return [model.features[-1][-1].norm1], swinT_reshape_transform
    if family.startswith("regnet"):
        return [model.trunk_output[-1]], None
    if family.startswith("mnasnet"):
        return [model.layers[-1]], None
    if hasattr(model, "features") and isinstance(model.features, nn.Sequential):
        return [model.features[-1]], None
    convs = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise CLIError(f"--model {model_name}: no Conv2d layer found; pass --target-layer")
    return [convs[-1]], None


def load_weights_file(model: nn.Module, weights_path: str, name: str) -> nn.Module:
    """``model`` (built without pretrained weights) with the state dict of ``weights_path``, in eval mode."""
    if not os.path.isfile(weights_path):
        raise CLIError(f"--weights: no such file: {weights_path}")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # an unreadable file fails in pickle, zip or torch: one message for all
        raise CLIError(
            f"--weights: cannot read {weights_path} as a PyTorch weights file ({type(error).__name__}: {error})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise CLIError(f"--weights: {weights_path} holds {type(state).__name__}, not a state dict of tensors")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CLIError(f"--weights: {weights_path} does not fit {name}: {error}") from None
    return model.eval()


@dataclass
class LoadedModel:
    """A model from the command line with what preprocessing needs."""

    model: nn.Module
    class_names: Sequence[str] | None
    size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


def load_timm_model(name: str, weights_path: str | None) -> LoadedModel:
    """``--model timm:<name>``: a timm model with its pretrained weights (through the Hugging Face hub cache) or
    ``weights_path``, its input size, normalisation and (for ImageNet models) class names."""
    try:
        import timm
        import timm.data
    except ImportError:
        raise CLIError(f"--model timm:{name}: timm is not installed (pip install timm)") from None
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise CLIError(f"--model: unknown timm model {name!r}.{hint}")
    if weights_path is not None:
        model = load_weights_file(timm.create_model(name, pretrained=False), weights_path, f"timm:{name}")
    else:
        try:
            model = timm.create_model(name, pretrained=True).eval()
        except (OSError, RuntimeError, ValueError) as error:  # hub errors are OSErrors; a bad file fails later
            raise CLIError(
                f"--model timm:{name}: could not load its pretrained weights ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}). timm downloads them once into the Hugging "
                "Face hub cache; offline, use --model demo, --weights PATH (a state_dict file), or fill that cache."
            ) from None
    config = timm.data.resolve_data_config({}, model=model)
    class_names: Sequence[str] | None = None
    subset = timm.data.infer_imagenet_subset(model)
    if subset is not None and getattr(model, "num_classes", None) == timm.data.ImageNetInfo(subset).num_classes():
        info = timm.data.ImageNetInfo(subset)
        class_names = [info.index_to_description(index) for index in range(info.num_classes())]
    mean, std = tuple(map(float, config["mean"])), tuple(map(float, config["std"]))
    return LoadedModel(model, class_names, int(config["input_size"][-1]), mean, std)


def load_torchvision_model(name: str, weights_path: str | None) -> LoadedModel:
    """A torchvision classifier with its ImageNet weights (or ``weights_path``), its class names, input size."""
    from torchvision import models

    try:
        builder = models.get_model_builder(name)
    except ValueError:
        import difflib

        known = models.list_models(module=models)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise CLIError(
            f"--model: unknown torchvision classification model {name!r}.{hint} Or use --model demo (offline)."
        ) from None
    weights_enum = models.get_model_weights(name)
    default = weights_enum.DEFAULT
    categories = default.meta.get("categories")
    size = 224
    if weights_path is not None:
        return LoadedModel(load_weights_file(builder(weights=None), weights_path, name), categories, size)
    try:
        model = builder(weights=default)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad checkpoint a RuntimeError
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise CLIError(
            f"--model {name}: could not load its pretrained weights ({type(error).__name__}: {error}). "
            f"They are downloaded once into {cache}; offline, use --model demo (the project's own model), "
            "--weights PATH (a state_dict file), or copy the checkpoint into that cache."
        ) from None
    crop = getattr(default.transforms(), "crop_size", None)
    if crop:
        size = int(crop[0])
    return LoadedModel(model.eval(), categories, size)


def resolve_target(target: str | None, class_names: Sequence[str] | None, num_classes: int) -> int | None:
    """``--target`` as a class index (``None`` explains the top class)."""
    if target is None:
        return None
    if target.lstrip("-").isdigit():
        index = int(target)
        if not 0 <= index < num_classes:
            raise CLIError(f"--target: class index must be in [0, {num_classes}); got {index}")
        return index
    if class_names:
        lowered = [name.lower() for name in class_names]
        if target.lower() in lowered:
            return lowered.index(target.lower())
        for index, name in enumerate(lowered):  # one of the synonyms of a description ("tabby, tabby cat")
            if target.lower() in (part.strip() for part in name.split(",")):
                return index
        import difflib

        close = difflib.get_close_matches(target.lower(), lowered, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise CLIError(f"--target: unknown class name {target!r}.{hint}")
    raise CLIError(f"--target: {target!r} is not a class index and this model has no class names")


def make_setup(args: argparse.Namespace, device: torch.device) -> Setup:
    from pytorch_grad_cam.utils.find_layers import get_layer_by_name
    from pytorch_grad_cam.utils.image import preprocess_image

    mean: tuple[float, ...]
    std: tuple[float, ...]
    if args.model == "demo":
        from pytorch_grad_cam import demo
        from pytorch_grad_cam.demo import scenes

        demo_model = demo.load_demo_model()
        model: nn.Module = demo_model
        class_names: Sequence[str] | None = demo.DEMO_CLASSES
        rgb_img = demo.demo_image()[0] if args.image_path is None else read_image(args.image_path)
        size = scenes.SCENE_SIZE
        mean, std = scenes.MEAN, scenes.STD
        target_layers, reshape = demo.demo_target_layers(demo_model), None
    else:
        if args.model.startswith("timm:"):
            loaded = load_timm_model(args.model[len("timm:") :], args.weights)
        else:
            loaded = load_torchvision_model(args.model, args.weights)
        model, class_names, size = loaded.model, loaded.class_names, loaded.size
        mean, std = loaded.mean, loaded.std
        rgb_img = read_image(str(DEFAULT_PHOTO if args.image_path is None else args.image_path))
        target_layers, reshape = [], None  # chosen from the input below, unless --target-layer names them
    photo = unit_float(rgb_img)
    rgb_img = model_image(rgb_img, size)
    if args.target_layer:
        try:
            target_layers = [get_layer_by_name(model, path) for path in args.target_layer]
        except ValueError as error:
            raise CLIError(f"--target-layer: {error}") from None
    model = model.to(device)
    input_tensor = preprocess_image(rgb_img, mean=list(mean), std=list(std)).to(device)
    if not target_layers:
        target_layers, reshape = auto_target_layers(model, input_tensor)
    return Setup(model, target_layers, reshape, rgb_img, input_tensor, class_names, photo)


# ------------------------------------------------------------------------------------------------- running
def accepts_keyword(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` takes the keyword ``name``: its ``__init__`` names it, or passes ``**kwargs`` on to a
    base class whose ``__init__`` does."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters
        if name in parameters:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return False
    return False


def run_method(setup: Setup, method: str, targets: list | None, args: argparse.Namespace) -> np.ndarray:
    """The grayscale CAM ``(H, W)`` of one method, at the model's input size.

    Without ``--verbose`` progress bars are off and the method's warnings are caught and summarised on stderr,
    one line each (the same message once); ``--no-progress`` turns the bars off with ``--verbose`` too.
    """
    cam_class = get_method(method)
    options: dict[str, Any] = {}
    if (args.no_progress or not args.verbose) and accepts_keyword(cam_class, "progress"):
        options["progress"] = False
    recorder: Any = nullcontext([]) if args.verbose else warnings.catch_warnings(record=True)
    with recorder as caught:
        if not args.verbose:
            warnings.simplefilter("always")
        build: Any = cam_class  # every registered class takes these keywords
        # A method that uses its own layers (FullGrad) gets target layers only when --target-layer names them.
        layers = None if getattr(cam_class, "layers_optional", False) and not args.target_layer else setup.target_layers
        with build(
            model=setup.model, target_layers=layers, reshape_transform=setup.reshape_transform, **options
        ) as cam:
            cam.batch_size = args.batch_size
            grayscale = cam(setup.input_tensor, targets, aug_smooth=args.aug_smooth, eigen_smooth=args.eigen_smooth)
    for line in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        print(f"warning ({method}): {line}", file=sys.stderr)
    return grayscale[0]


def to_photo_size(image: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """An ``(h, w)`` map or ``(h, w, C)`` image at the model's input size, resized bilinearly (half-pixel
    centres) to the photo's ``(H, W)``; float32."""
    from pytorch_grad_cam.core.scaling import resize_cam_tensor

    size = photo.shape[:2]
    values = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    if values.ndim == 2:
        return resize_cam_tensor(values[None], size)[0].numpy()
    return resize_cam_tensor(values.permute(2, 0, 1), size).permute(1, 2, 0).contiguous().numpy()


def write_outputs(setup: Setup, method: str, grayscale: np.ndarray, target: int | None, out_dir: Path) -> list[Path]:
    """Write ``<method>_cam.jpg``, ``<method>_gb.jpg`` and ``<method>_cam_gb.jpg`` at the photo's resolution
    (the map and the guided backpropagation, computed at the model's input size, upsampled to it); returns
    their paths."""
    from pytorch_grad_cam import GuidedBackpropReLUModel
    from pytorch_grad_cam.guided_backprop import cam_gb
    from pytorch_grad_cam.utils.image import deprocess_image, show_cam_on_image

    grayscale = np.clip(to_photo_size(grayscale, setup.photo), 0.0, 1.0)
    cam_image = show_cam_on_image(setup.photo, grayscale, use_rgb=True)
    gb_model = GuidedBackpropReLUModel(model=setup.model, device=setup.input_tensor.device)
    gb = to_photo_size(gb_model(setup.input_tensor, target_category=target), setup.photo)
    paths = [out_dir / f"{method}_cam.jpg", out_dir / f"{method}_gb.jpg", out_dir / f"{method}_cam_gb.jpg"]
    images = [cv2.cvtColor(cam_image, cv2.COLOR_RGB2BGR), deprocess_image(gb), cam_gb(grayscale, gb)]
    for path, image in zip(paths, images):
        if not cv2.imwrite(str(path), image):
            raise CLIError(f"--output-dir: could not write {path}")
    return paths


def write_comparison(setup: Setup, targets: list | None, args: argparse.Namespace, out_dir: Path) -> Path:
    """Every method's CAM over the image in one figure, with its run time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pytorch_grad_cam.utils.image import show_cam_on_image

    names = list(METHOD_NAMES)
    columns = 6
    rows = -(-(len(names) + 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows))
    axes = np.atleast_1d(axes).ravel()
    axes[0].imshow(setup.rgb_img)
    axes[0].set_title("input", fontsize=9)
    for axis, name in zip(axes[1:], names):
        start = time.perf_counter()
        try:
            grayscale = run_method(setup, name, targets, args)
        except (TypeError, ValueError) as error:  # a method that does not apply to this model (LeGrad on a CNN)
            warnings.warn(f"--compare: {name} skipped: {error}", stacklevel=2)
            axis.text(0.5, 0.5, "n/a for\nthis model", ha="center", va="center", fontsize=9)
            axis.set_title(name, fontsize=9)
            continue
        seconds = time.perf_counter() - start
        axis.imshow(show_cam_on_image(setup.rgb_img, grayscale, use_rgb=True))
        axis.set_title(f"{name} ({seconds:.2f}s)", fontsize=9)
    for axis in axes:
        axis.axis("off")
    figure.tight_layout()
    path = out_dir / "compare.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


@contextmanager
def one_line_warnings(enabled: bool) -> Iterator[None]:
    """Inside the block (when ``enabled``), a warning shown on the terminal reads ``cam.py: warning: <message>``
    on one line, without Python's file, line and source; the formatter is restored on exit."""
    if not enabled:
        yield
        return

    def one_line(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
    ) -> str:
        return f"cam.py: warning: {' '.join(str(message).split())}\n"

    original = warnings.formatwarning
    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = original


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cam.py`` and the ``grad-cam`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    with one_line_warnings(not args.verbose):
        return run(args)


def run(args: argparse.Namespace) -> int:
    """Everything :func:`main` does once the command line is parsed; returns the exit status."""
    try:
        if args.method.lower() not in METHOD_NAMES:
            get_method(args.method)  # raises with the list of methods and close matches
        if args.batch_size <= 0:
            raise CLIError(f"--batch-size must be a positive integer; got {args.batch_size}")
        device = resolve_device(args.device)
        setup = make_setup(args, device)
        with torch.no_grad():
            num_classes = setup.model(setup.input_tensor).shape[-1]
        target = resolve_target(args.target, setup.class_names, num_classes)
        targets = None
        if target is not None:
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            targets = [ClassifierOutputTarget(target)]
        out_dir = Path(args.output_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CLIError(f"--output-dir: cannot create the folder {out_dir}: {error.strerror or error}") from None
        if args.compare:
            print(write_comparison(setup, targets, args, out_dir))
            return 0
        method = args.method.lower()
        grayscale = run_method(setup, method, targets, args)
        for path in write_outputs(setup, method, grayscale, target, out_dir):
            print(path)
        return 0
    except (CLIError, ValueError) as error:
        return report_error("cam.py", error)


if __name__ == "__main__":
    sys.exit(main())
