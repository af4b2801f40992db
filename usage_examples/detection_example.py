"""Explaining a torchvision Faster R-CNN detection with EigenCAM, AblationCAM or GradCAM.

    python usage_examples/detection_example.py --method eigencam --output detection_cam.jpg
    python usage_examples/detection_example.py --pretrained --score-threshold 0.9   # real detections

A detector returns one dict of ``boxes`` / ``labels`` / ``scores`` per image. ``FasterRCNNBoxScoreTarget``
turns it into a score: for each reference box, the IoU + score of the best-matching detection of the same
label. The reference boxes are usually the detections themselves, so the map says what supports them.

- EigenCAM / AblationCAM explain the whole feature pyramid (``model.backbone``), whose output is a dict of
  levels: ``fasterrcnn_reshape_transform`` resizes and stacks them; AblationCAM also needs
  ``AblationLayerFasterRCNN`` to switch channels off inside that dict.
- Gradient methods need a layer with a tensor output, e.g. ``model.backbone.body.layer4``.

Without ``--pretrained`` the weights are random (offline): the boxes are arbitrary, the mechanics are real.
"""

from __future__ import annotations

import torch
import torchvision
from example_utils import base_parser, draw_boxes, load_rgb, save_overlays, seed

from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM
from pytorch_grad_cam.ablation_layer import AblationLayerFasterRCNN
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from pytorch_grad_cam.utils.reshape_transforms import fasterrcnn_reshape_transform


def build_cam(method: str, model: torch.nn.Module):
    if method == "gradcam":
        return GradCAM(model, [model.backbone.body.layer4])
    if method == "ablationcam":
        return AblationCAM(
            model,
            [model.backbone],
            reshape_transform=fasterrcnn_reshape_transform,
            ablation_layer=AblationLayerFasterRCNN(),
            ratio_channels_to_ablate=0.05,
            batch_size=16,
        )
    return EigenCAM(model, [model.backbone], reshape_transform=fasterrcnn_reshape_transform)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "detection_cam.jpg", default_size=320)
    parser.add_argument("--method", default="eigencam", choices=["eigencam", "ablationcam", "gradcam"])
    parser.add_argument("--score-threshold", type=float, default=0.0, help="keep detections above this score")
    parser.add_argument("--max-boxes", type=int, default=3, help="explain at most this many detections")
    args = parser.parse_args()
    seed()
    if args.pretrained:
        weights = torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.DEFAULT
        categories = weights.meta["categories"]
        model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=weights)
    else:
        categories = [f"class {i}" for i in range(91)]
        model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            min_size=args.size,
            max_size=args.size,
            rpn_post_nms_top_n_test=100,
            box_detections_per_img=args.max_boxes,
        )
        model.roi_heads.score_thresh = 0.0  # random weights give low scores: keep the best boxes anyway
    model = model.to(args.device).eval()

    rgb = load_rgb(args.image, args.size)
    input_tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(args.device)  # detectors normalise inside
    with torch.no_grad():
        detections = model(input_tensor)[0]
    keep = (detections["scores"] >= args.score_threshold).nonzero().flatten()[: args.max_boxes]
    if len(keep) == 0:
        parser.error(f"no detection scored above --score-threshold {args.score_threshold}")
    boxes, labels = detections["boxes"][keep].cpu(), detections["labels"][keep].cpu()
    targets = [FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)]

    with build_cam(args.method, model) as cam:
        grayscale = cam(input_tensor, targets=targets)[0]
    names = [categories[int(label)] for label in labels]
    save_overlays(args.output, draw_boxes(rgb, boxes.numpy(), names), [grayscale], [args.method])


if __name__ == "__main__":
    main()
