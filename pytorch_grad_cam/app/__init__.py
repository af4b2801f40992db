"""The interactive explorer: a local web page to try CAM methods on the demo scenes or your own images.

Start it with ``python -m pytorch_grad_cam.app`` (needs the ``app`` extra: ``pip install -e ".[app]"``). The page
runs offline on the shipped demo models; torchvision and timm models work with pretrained weights in the local
caches.

Importing this package does not import gradio: the logic lives in :mod:`pytorch_grad_cam.app.explorer` (plain
functions, no web framework), the page in :mod:`pytorch_grad_cam.app.ui`.
"""

from pytorch_grad_cam.app.explorer import (
    AUTO_LAYER,
    ClassScore,
    ExplorerError,
    LayerOption,
    MethodResult,
    ModelBundle,
    Scene,
    decode_image,
    demo_scene,
    demo_scene_names,
    list_target_layers,
    load_model,
    prepare_input,
    run_methods,
    score_map,
    top_classes,
)

__all__ = [
    "AUTO_LAYER",
    "ClassScore",
    "ExplorerError",
    "LayerOption",
    "MethodResult",
    "ModelBundle",
    "Scene",
    "decode_image",
    "demo_scene",
    "demo_scene_names",
    "list_target_layers",
    "load_model",
    "prepare_input",
    "run_methods",
    "score_map",
    "top_classes",
]
