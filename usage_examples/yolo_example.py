"""EigenCAM on a YOLO-style single-stage detector (no target, no gradient).

    python usage_examples/yolo_example.py --output yolo_cam.jpg

Single-stage detectors (YOLO, SSD, RetinaNet heads) return a dense ``(B, anchors, 5 + classes)`` tensor that
post-processing (thresholds, NMS) turns into boxes, often outside autograd. EigenCAM needs neither a target
nor gradients: it projects a layer's activations on their first principal component, so ``cam(x)`` works on
any such model; the usual target layers are the last backbone/neck layers before the detection heads. For
an ultralytics YOLO, wrap ``model.model`` and pick e.g. ``model.model.model[-2]``.

The detector here is built locally with random weights: it shows the mechanics, not trained detections.
"""

from __future__ import annotations

import torch
from example_utils import base_parser, load_rgb, save_overlays, seed
from torch import nn

from pytorch_grad_cam import EigenCAM


class TinyYolo(nn.Module):
    """Backbone (three strided conv stages), a neck, and a dense head: per cell and anchor x, y, w, h, obj, classes."""

    def __init__(self, num_classes: int = 80, anchors: int = 3) -> None:
        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.SiLU())

        self.backbone = nn.Sequential(stage(3, 16), stage(16, 32), stage(32, 64), stage(64, 128))
        self.neck = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), nn.SiLU())
        self.head = nn.Conv2d(128, anchors * (5 + num_classes), 1)
        self.anchors = anchors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.head(self.neck(self.backbone(x)))
        b, _, h, w = raw.shape
        return raw.view(b, self.anchors, -1, h * w).permute(0, 1, 3, 2).reshape(b, self.anchors * h * w, -1)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "yolo_cam.jpg", default_size=640)
    args = parser.parse_args()
    if args.pretrained:
        parser.error("--pretrained: this example's detector is built locally; see the docstring for ultralytics")
    seed()
    model = TinyYolo().to(args.device).eval()
    rgb = load_rgb(args.image, args.size)
    input_tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(args.device)
    with EigenCAM(model, [model.neck]) as cam:
        grayscale = cam(input_tensor)[0]  # targets=None: EigenCAM does not use them
        print(f"detector output: {tuple(cam.outputs.shape)}")
    save_overlays(args.output, rgb, [grayscale], ["EigenCAM neck"])


if __name__ == "__main__":
    main()
