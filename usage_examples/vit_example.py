"""Class activation maps of a Vision Transformer (torchvision ViT-B/16 or a timm DeiT).

    python usage_examples/vit_example.py --method gradcam --output vit_cam.jpg
    python usage_examples/vit_example.py --model deit_tiny_distilled_patch16_224   # timm, distillation token

A ViT outputs tokens ``(B, 1 + h*w, C)``; ``vit_reshape_transform`` drops the extra tokens (class,
distillation, registers) and lays the patch tokens out on their ``h × w`` grid, inferred from the count.
The target layer is the first LayerNorm of the last block: the last block's *output* only reaches the
classifier through the class token, so its patch tokens get no gradient (the library warns if you pick it).
"""

from __future__ import annotations

import torchvision
from example_utils import base_parser, load_rgb, save_overlays, seed
from torch import nn

from pytorch_grad_cam import AblationCAM, EigenCAM, EigenGradCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.ablation_layer import AblationLayerVit
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
}


def build_model(name: str, size: int, pretrained: bool) -> tuple[nn.Module, nn.Module]:
    """The model and its target layer."""
    if name == "vit_b_16":
        weights = torchvision.models.ViT_B_16_Weights.DEFAULT if pretrained else None
        model = torchvision.models.vit_b_16(weights=weights, image_size=224 if pretrained else size)
        if not pretrained:
            # torchvision initialises the head to zero: with random weights every gradient would be zero.
            nn.init.normal_(model.heads.head.weight, std=0.02)
        return model, model.encoder.layers[-1].ln_1
    import timm  # pip install timm

    kwargs = {} if pretrained else {"img_size": size}
    model = timm.create_model(name, pretrained=pretrained, **kwargs)
    return model, model.blocks[-1].norm1


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "vit_cam.jpg")
    parser.add_argument("--model", default="vit_b_16", help="vit_b_16 (torchvision) or a timm ViT/DeiT name")
    parser.add_argument("--method", default="gradcam", choices=sorted(METHODS))
    parser.add_argument("--aug-smooth", action="store_true", help="test-time augmentation smoothing")
    parser.add_argument("--eigen-smooth", action="store_true", help="first principal component smoothing")
    args = parser.parse_args()
    seed()
    model, target_layer = build_model(args.model, args.size, args.pretrained)
    model = model.to(args.device).eval()
    size = 224 if args.pretrained else args.size

    rgb = load_rgb(args.image, size)
    input_tensor = preprocess_image(rgb, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]).to(args.device)
    extra = {"ablation_layer": AblationLayerVit()} if args.method == "ablationcam" else {}
    with METHODS[args.method](model, [target_layer], reshape_transform=vit_reshape_transform, **extra) as cam:
        if hasattr(cam, "batch_size"):
            cam.batch_size = 32  # ScoreCAM and AblationCAM run batches of perturbed inputs
        grayscale = cam(input_tensor, targets=None, aug_smooth=args.aug_smooth, eigen_smooth=args.eigen_smooth)
        category = int(cam.outputs.argmax(dim=-1)[0])
    save_overlays(args.output, rgb, [grayscale[0]], [f"{args.method} class {category}"])


if __name__ == "__main__":
    main()
