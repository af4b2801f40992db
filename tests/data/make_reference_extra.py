"""Regenerate ``tests/data/reference_extra.npz`` from the reference release (grad-cam 1.5.7).

Not part of the test suite, and not importable by it: run it with a virtualenv that holds the *reference*
package (not this project), from the repository root::

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch==2.14.1 torchvision==0.29.1 grad-cam==1.5.7
    /tmp/refenv/bin/python tests/data/make_reference_extra.py

It covers the three reference modules that ``expected.npz`` does not: ``pytorch_grad_cam.sobel_cam``,
``pytorch_grad_cam.sess`` and ``pytorch_grad_cam.ablation_cam_multilayer``, on the golden tiny CNN and input
(see GOLDEN.md), each entry made right after ``torch.manual_seed(1); np.random.seed(1)``.

The reference's ``ablation_cam_multilayer.AblationCAM`` raises ``TypeError`` on every call (its
``get_cam_weights`` still has the grad-cam 1.2 signature, and its last-batch trimming calls a method with
``self`` twice). The numbers stored for it come from the reference's own code with only those two call bugs
bypassed by the small subclass below; everything it computes is the reference's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import pytorch_grad_cam

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "reference_extra.npz"
sys.path.insert(0, str(HERE.parent))
from golden_model import SESS_CASES, build_tiny_cnn, golden_layers  # noqa: E402  (needs only torch)


def seed() -> None:
    torch.manual_seed(1)
    np.random.seed(1)


def sobel_entries(data: dict[str, np.ndarray], input_tensor: torch.Tensor) -> None:
    from pytorch_grad_cam.sobel_cam import sobel_cam

    first = input_tensor[0].permute(1, 2, 0).numpy()
    image = np.uint8(255 * (first - first.min()) / (first.max() - first.min()))
    seed()
    data["sobel_cam/img"] = image
    data["sobel_cam/out"] = sobel_cam(image)
    seed()
    data["sobel_cam/img_float"] = np.float32(image) / 255
    data["sobel_cam/out_float"] = sobel_cam(data["sobel_cam/img_float"])
    seed()
    noise = np.uint8(np.random.randint(0, 256, size=(17, 23, 3)))
    data["sobel_cam/noise_img"] = noise
    data["sobel_cam/noise_out"] = sobel_cam(noise)


#: SESS variants: (layers, targets or None, constructor keywords, call keywords).
def sess_entries(data: dict[str, np.ndarray], input_tensor: torch.Tensor) -> None:
    from pytorch_grad_cam import SESS
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    for key, (layer_name, with_targets, kwargs) in SESS_CASES.items():
        model = build_tiny_cnn()
        kwargs = dict(kwargs)
        if "base_method" in kwargs:
            kwargs["base_method"] = getattr(pytorch_grad_cam, kwargs["base_method"])
        seed()
        targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)] if with_targets else None
        cam = SESS(model, golden_layers(model, layer_name), **kwargs)
        data[key] = np.float64(cam(input_tensor, targets))


def ablation_multilayer_entries(data: dict[str, np.ndarray], input_tensor: torch.Tensor) -> None:
    import pytorch_grad_cam.ablation_cam_multilayer as multilayer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class CallableAblationCAM(multilayer.AblationCAM):
        """The reference class with its two call bugs bypassed (see the module docstring)."""

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
            categories = [target.category for target in targets]
            return multilayer.AblationCAM.get_cam_weights(self, input_tensor, categories, activations, grads)

        def trim_ablation_layer_batch_indices(self, *args):
            keep = args[-1]
            for ablation_layer in self.ablation_layers:
                ablation_layer.indices = ablation_layer.indices[:keep]

    for layer_name in ("one", "two_same_channels", "bn_relu"):
        for variant in ("targets", "argmax"):
            if layer_name == "two_same_channels" and variant == "argmax":
                continue
            model = build_tiny_cnn()
            chosen = golden_layers(model, layer_name)
            seed()
            targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)] if variant == "targets" else None
            cam = CallableAblationCAM(model, chosen)
            cam.batch_size = 16
            data[f"AblationCAMMultilayer/{layer_name}/{variant}"] = np.float64(cam(input_tensor, targets))
    # The class as the reference ships it: every call fails.
    model = build_tiny_cnn()
    try:
        multilayer.AblationCAM(model, [model[6]])(input_tensor, [ClassifierOutputTarget(1)] * 2)
    except TypeError:
        data["AblationCAMMultilayer/reference_call_raises_TypeError"] = np.array(True)


def main() -> int:
    if Path(pytorch_grad_cam.__file__).resolve().parent == (HERE.parents[1] / "pytorch_grad_cam").resolve():
        print("run this script with the reference grad-cam 1.5.7 installed, not this project", file=sys.stderr)
        return 2
    input_tensor = torch.load(HERE / "input.pt", weights_only=True)
    data: dict[str, np.ndarray] = {}
    sobel_entries(data, input_tensor)
    sess_entries(data, input_tensor)
    ablation_multilayer_entries(data, input_tensor)
    np.savez_compressed(OUTPUT, **data)
    for key, value in data.items():
        print(f"{key:55s} {value.dtype} {value.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
