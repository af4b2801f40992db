"""Explaining an ultralytics YOLO detection (v8 and later) with EigenCAM and Grad-CAM.

    python usage_examples/yolo_example.py --output yolo_cam.jpg                     # offline, random weights
    python usage_examples/yolo_example.py --weights yolov8n.pt --score-threshold 0.25   # your trained model
    python usage_examples/yolo_example.py --pretrained                              # downloads yolov8n.pt

Needs ``pip install ultralytics``. ``YOLO(...).model`` is a plain ``nn.Module``; in eval mode it returns, before
any NMS, ``(predictions, raw)`` with ``predictions`` of shape ``(B, 4 + classes, anchors)`` (box centre and size
in input pixels, class probabilities), all inside autograd. So:

- ``yolo_detections(output)`` runs a plain NMS on it and gives the boxes the model detected;
- ``YOLOBoxScoreTarget(labels, boxes)`` scores, for each reference box, the best probability of its class among
  the predictions overlapping it (IoU >= 0.5): gradient methods explain that number;
- EigenCAM needs no target and no gradient.

Name the layer: a detector is no classifier, and the automatic choice lands in the head (the DFL). The inputs of
the Detect head (``model.model[-1].f``: the neck outputs at strides 8, 16, 32) are the natural layers.

Without ``--weights`` / ``--pretrained`` the network is ``YOLO("yolov8n.yaml")`` with random weights (offline):
the boxes are arbitrary, the mechanics are real. Its weights are redrawn (Kaiming-normal), because ultralytics'
initialisation makes a fresh network's activations vanish and every map would be blank.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, cast

import torch
from example_utils import base_parser, draw_boxes, load_rgb, save_overlays, seed
from torch import nn

from pytorch_grad_cam import EigenCAM, GradCAM
from pytorch_grad_cam.utils.model_targets import YOLOBoxScoreTarget, yolo_detections


def load_model(weights: str | None, config: str) -> Any:
    """The ultralytics detection network: trained ``weights`` (a .pt path or name) or ``config`` with random
    weights, spread so that its activations do not vanish."""
    if weights is None:
        os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    model = cast(nn.Module, YOLO(weights or config).model)  # the network inside the YOLO wrapper
    if weights is None:
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.weight.requires_grad:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model.float().eval()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "yolo_cam.jpg", default_size=640)
    parser.add_argument("--weights", default=None, help="a trained ultralytics .pt file (default: random weights)")
    parser.add_argument("--config", default="yolov8n.yaml", help="model configuration for random weights")
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="indices in model.model (default: P3)")
    parser.add_argument("--score-threshold", type=float, default=0.0, help="keep detections above this score")
    parser.add_argument("--max-boxes", type=int, default=3, help="explain at most this many detections")
    args = parser.parse_args()
    if importlib.util.find_spec("ultralytics") is None:
        sys.exit("yolo_example.py needs ultralytics: pip install ultralytics")
    if args.size % 32:
        parser.error(f"--size must be a multiple of 32 (the YOLO stride); got {args.size}")
    seed()
    weights = "yolov8n.pt" if args.pretrained and args.weights is None else args.weights
    model = load_model(weights, args.config).to(args.device)
    names = getattr(model, "names", {})
    detect_inputs = list(model.model[-1].f)  # the neck outputs the Detect head reads
    indices = args.layers if args.layers is not None else detect_inputs[:1]
    layers = [model.model[i] for i in indices]

    rgb = load_rgb(args.image, args.size)
    input_tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(args.device)  # RGB in [0, 1], as YOLO expects

    with EigenCAM(model, layers) as cam:
        eigen = cam(input_tensor)[0]  # no target: the first principal component of the layer
        output = cam.outputs
    found = yolo_detections(output, score_threshold=args.score_threshold, max_detections=args.max_boxes)[0]
    boxes, labels = found["boxes"].cpu().numpy(), found["labels"].tolist()
    captions = [f"{names.get(c, c)} {s:.2f}" for c, s in zip(labels, found["scores"].tolist())]
    print(f"layers {indices}; detections: {captions or 'none'}")

    maps, titles = [eigen], ["EigenCAM"]
    if labels:
        target = YOLOBoxScoreTarget(labels, boxes)
        with GradCAM(model, layers) as cam:
            maps.append(cam(input_tensor, [target])[0])
        titles.append("GradCAM (boxes)")
    save_overlays(args.output, draw_boxes(rgb, boxes, captions), maps, titles)


if __name__ == "__main__":
    main()
