"""Class activation maps of a video classifier (torchvision ``r3d_18``): one map per frame.

    python usage_examples/video_3d_example.py --frames 8 --output video_cam.jpg

Inputs of 3-D models are ``(B, C, D, H, W)`` (video: D = time; medical volumes: D = depth); the maps come
back as ``(B, D, H, W)``, resized with ``scipy.ndimage.zoom``. The clip here is the photo panning sideways;
the weights are random unless ``--pretrained`` (Kinetics-400) is given.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from example_utils import base_parser, load_rgb, save_overlays, seed

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM

METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "video_cam.jpg", default_size=112)
    parser.add_argument("--frames", type=int, default=8, help="clip length")
    parser.add_argument("--method", default="gradcam", choices=sorted(METHODS))
    args = parser.parse_args()
    seed()
    weights = torchvision.models.video.R3D_18_Weights.DEFAULT if args.pretrained else None
    model = torchvision.models.video.r3d_18(weights=weights).to(args.device).eval()

    wide = load_rgb(args.image, (args.size + 4 * args.frames, args.size))
    frames = [wide[:, 4 * t : 4 * t + args.size] for t in range(args.frames)]  # a slow pan
    mean = np.float32([0.432, 0.395, 0.376])
    std = np.float32([0.228, 0.221, 0.217])
    clip = torch.from_numpy(np.stack([(f - mean) / std for f in frames])).permute(3, 0, 1, 2)[None]
    with METHODS[args.method](model, [model.layer4]) as cam:
        maps = cam(clip.to(args.device))[0]  # (D, H, W)
    shown = sorted({0, args.frames // 2, args.frames - 1})
    save_overlays(args.output, frames[0], [maps[t] for t in shown], [f"frame {t}" for t in shown])


if __name__ == "__main__":
    main()
