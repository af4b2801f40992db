"""Explaining a semantic segmentation (torchvision DeepLabV3 / FCN) with SemanticSegmentationTarget.

    python usage_examples/segmentation_example.py --model deeplabv3_resnet50 --output segmentation_cam.jpg
    python usage_examples/segmentation_example.py --pretrained --category cat

A segmentation model returns per-pixel class scores (torchvision: a dict whose ``"out"`` entry is
``(B, classes, H, W)``; the target reads that entry, no wrapper needed). ``SemanticSegmentationTarget(c, mask)``
explains ``Σ mask · out[c]``: *why are these pixels class c*. The mask is usually the predicted region of
the class; a hand-drawn region works too. A binary (one-channel) segmenter is category 0.

Without ``--pretrained`` the weights are random (offline): the predicted regions are arbitrary.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from example_utils import base_parser, load_rgb, save_overlays, seed

from pytorch_grad_cam import GradCAM, HiResCAM
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

MODELS = {
    "deeplabv3_resnet50": lambda model: [model.backbone.layer4],
    "fcn_resnet50": lambda model: [model.backbone.layer4],
    "deeplabv3_mobilenet_v3_large": lambda model: [model.backbone["16"]],
}
VOC = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "segmentation_cam.jpg", default_size=256)
    parser.add_argument("--model", default="deeplabv3_mobilenet_v3_large", choices=sorted(MODELS))
    parser.add_argument("--method", default="gradcam", choices=["gradcam", "hirescam"])
    parser.add_argument("--category", default=None, help="class name to explain (default: the largest region)")
    args = parser.parse_args()
    seed()
    builder = getattr(torchvision.models.segmentation, args.model)
    if args.pretrained:
        model = builder(weights="DEFAULT")
    else:
        model = builder(weights=None, weights_backbone=None, num_classes=len(VOC), aux_loss=False)
    model = model.to(args.device).eval()

    rgb = load_rgb(args.image, args.size)
    input_tensor = preprocess_image(rgb, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).to(args.device)
    with torch.no_grad():
        predicted = model(input_tensor)["out"][0].argmax(dim=0).cpu().numpy()
    if args.category is None:
        counts = np.bincount(predicted.ravel(), minlength=len(VOC))
        counts[0] = 0 if counts[1:].any() else counts[0]  # prefer an object over the background
        category = int(counts.argmax())
    else:
        category = VOC.index(args.category)
    mask = np.float32(predicted == category)
    if not mask.any():
        mask[:] = 1  # the class is predicted nowhere: explain its score over the whole image
    method = {"gradcam": GradCAM, "hirescam": HiResCAM}[args.method]
    with method(model, MODELS[args.model](model)) as cam:
        grayscale = cam(input_tensor, targets=[SemanticSegmentationTarget(category, mask)])[0]
    region = rgb * 0.5 + mask[..., None] * np.float32([0.5, 0, 0])
    save_overlays(args.output, region, [grayscale], [f"{args.method} '{VOC[category]}'"])


if __name__ == "__main__":
    main()
