"""Class activation maps of a Swin Transformer (torchvision ``swin_t``).

    python usage_examples/swinT_example.py --method gradcam --output swinT_cam.jpg

torchvision's Swin stages output ``(B, H, W, C)`` maps; ``swinT_reshape_transform`` moves the channels first
(it also accepts timm's ``(B, N, C)`` token sequences and infers their square grid). The target layer is the
first LayerNorm of the last block.
"""

from __future__ import annotations

import torchvision
from example_utils import base_parser, load_rgb, save_overlays, seed

from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform

METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "swinT_cam.jpg")
    parser.add_argument("--method", default="gradcam", choices=sorted(METHODS))
    parser.add_argument("--category", type=int, default=None, help="class to explain (default: the top class)")
    args = parser.parse_args()
    seed()
    weights = torchvision.models.Swin_T_Weights.DEFAULT if args.pretrained else None
    model = torchvision.models.swin_t(weights=weights).to(args.device).eval()

    rgb = load_rgb(args.image, args.size)
    input_tensor = preprocess_image(rgb, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).to(args.device)
    targets = None if args.category is None else [ClassifierOutputTarget(args.category)]
    target_layers = [model.features[-1][-1].norm1]
    with METHODS[args.method](model, target_layers, reshape_transform=swinT_reshape_transform) as cam:
        grayscale = cam(input_tensor, targets=targets)
        category = int(cam.outputs.argmax(dim=-1)[0]) if args.category is None else args.category
    save_overlays(args.output, rgb, [grayscale[0]], [f"{args.method} class {category}"])


if __name__ == "__main__":
    main()
