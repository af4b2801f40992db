"""The project's offline demo: labelled scenes with ground-truth masks and a small CNN trained on them.

>>> from pytorch_grad_cam import GradCAM
>>> from pytorch_grad_cam.demo import demo_image, demo_target_layers, load_demo_model, preprocess
>>> model = load_demo_model()
>>> image, label, mask = demo_image()
>>> with GradCAM(model, demo_target_layers(model)) as cam:
...     heatmap = cam(preprocess(image))[0]

The weights ship with the package (``weights/demo_cnn.pt``); ``python -m pytorch_grad_cam.demo.train``
re-trains them from scratch in a few minutes on a CPU.
"""

from pytorch_grad_cam.demo.model import (
    DEMO_CLASSES,
    DemoCNN,
    demo_target_layers,
    load_demo_model,
    preprocess,
    save_demo_model,
)
from pytorch_grad_cam.demo.scenes import SHAPES, SceneDataset, demo_image, make_scene, normalize

__all__ = [
    "DEMO_CLASSES",
    "SHAPES",
    "DemoCNN",
    "SceneDataset",
    "demo_image",
    "demo_target_layers",
    "load_demo_model",
    "make_scene",
    "normalize",
    "preprocess",
    "save_demo_model",
]
