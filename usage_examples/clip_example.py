"""CLIP-style image-text explanations with a two-tower model built locally (no download).

    python usage_examples/clip_example.py --labels "a cat" "a dog" "a car" --output clip_cam.jpg

Two ways to explain an embedding model:

1. *zero-shot classifier*: wrap image and text towers in a module whose output is ``(B, labels)``
   similarities (``logits_per_image``); any classifier target then picks a label;
2. *similarity to a concept*: explain the image tower alone with ``SimilarityToConceptTarget(text_embedding)``.

The image tower here is a small Vision Transformer with random weights, and the text tower a bag of hashed
words: the maps show the mechanics, not a trained model's knowledge. With ``open_clip`` or Hugging Face
``transformers`` the same wrapper pattern applies (``model.get_image_features`` / ``get_text_features``).
"""

from __future__ import annotations

import zlib

import torch
from example_utils import base_parser, load_rgb, save_overlays, seed
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SimilarityToConceptTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

VOCABULARY = 1000


class TinyClip(nn.Module):
    """Image tower (ViT) and text tower (bag of hashed words) projecting into one embedding space."""

    def __init__(self, image_size: int, dim: int = 64) -> None:
        super().__init__()
        self.visual = VisionTransformer(
            image_size=image_size, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=dim
        )
        nn.init.normal_(self.visual.heads.head.weight, std=0.02)  # torchvision zero-initialises the head
        self.text = nn.EmbeddingBag(VOCABULARY, dim)
        self.logit_scale = nn.Parameter(torch.tensor(4.6))

    @staticmethod
    def tokenize(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Words hashed into the vocabulary, as EmbeddingBag's flat ``(tokens, offsets)``."""
        words = [[zlib.crc32(word.encode()) % VOCABULARY for word in label.lower().split()] for label in labels]
        offsets = torch.tensor([0] + [len(w) for w in words[:-1]]).cumsum(0)
        return torch.tensor([t for w in words for t in w]), offsets

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.visual(pixels), dim=-1)

    def encode_text(self, labels: list[str]) -> torch.Tensor:
        tokens, offsets = self.tokenize(labels)
        return nn.functional.normalize(self.text(tokens, offsets), dim=-1)


class ImageClassifier(nn.Module):
    """The multi-input wrapper: the CAM sees ``pixels -> (B, labels)``; the text side is fixed here."""

    def __init__(self, clip: TinyClip, labels: list[str]) -> None:
        super().__init__()
        self.clip = clip
        with torch.no_grad():
            self.register_buffer("text_features", clip.encode_text(labels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        image_features = self.clip.encode_image(pixels)
        return self.clip.logit_scale.exp() * image_features @ self.text_features.T  # logits_per_image


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "clip_cam.jpg")
    parser.add_argument("--labels", nargs="+", default=["a cat", "a dog", "a car", "a person", "a shoe"])
    args = parser.parse_args()
    if args.pretrained:
        parser.error("--pretrained: this example builds its CLIP-style model locally; see the docstring")
    seed()
    size = args.size - args.size % 16
    clip = TinyClip(size).to(args.device).eval()
    rgb = load_rgb(args.image, size)
    pixels = preprocess_image(rgb, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]).to(args.device)
    target_layers = [clip.visual.encoder.layers[-1].ln_1]

    # 1. zero-shot classifier over the labels
    classifier = ImageClassifier(clip, args.labels).eval()
    with GradCAM(classifier, target_layers, reshape_transform=vit_reshape_transform) as cam:
        shown = args.labels[:2]
        by_label = [cam(pixels, [ClassifierOutputTarget(i)])[0] for i in range(len(shown))]
        probabilities = cam.outputs.softmax(dim=-1)[0]
    for label, probability in zip(args.labels, probabilities.tolist()):
        print(f"{label}: {probability:.3f}")

    # 2. the image tower alone, explained by its similarity to a text concept
    concept = clip.encode_text(args.labels[:1])[0].detach()
    with GradCAM(clip.visual, target_layers, reshape_transform=vit_reshape_transform) as cam:
        by_concept = cam(pixels, [SimilarityToConceptTarget(concept)])[0]

    titles = [*(f"label '{label}'" for label in shown), f"similarity '{args.labels[0]}'"]
    save_overlays(args.output, rgb, [*by_label, by_concept], titles)


if __name__ == "__main__":
    main()
