"""CLIP image-text explanations without a wrapper: which pixels make the image match a prompt.

    python usage_examples/clip_example.py --labels "a cat" "a dog" "a car" --output clip_cam.jpg
    python usage_examples/clip_example.py --library open_clip --labels "a cat" "a dog"

The CAM runs the image side alone and :class:`ImageTextSimilarityTarget` compares the image embedding with
the prompts' text embeddings (computed once), normalising both as CLIP does:

* ``ImageTextSimilarityTarget(text_features, i)`` explains the cosine similarity to prompt ``i``;
* ``ImageTextSimilarityTarget(text_features, i, softmax=True)`` explains CLIP's zero-shot probability of
  prompt ``i`` among all prompts, ``softmax(logit_scale · cosines)[i]``.

The target reads the image embedding from the model's own output: a tensor, open_clip's ``model(image)``
tuple ``(image_features, None, logit_scale)`` (whose ``logit_scale`` it uses), or Hugging Face's
``image_embeds``. ``target_layers`` is omitted: the input of the last attention block is chosen and its tokens
laid on the patch grid automatically.

``--library tiny`` (default) builds a small two-tower model locally (a ViT image tower, a bag of hashed
words for text) with random weights: the maps show the mechanics, not a trained model's knowledge.
``--library open_clip`` uses open_clip's ViT-B-32 (random weights, or OpenAI's with ``--pretrained``, a
download). With Hugging Face ``transformers`` (``--pretrained`` weights need a download)::

    from transformers import AutoTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection
    name = "openai/clip-vit-base-patch32"
    vision = CLIPVisionModelWithProjection.from_pretrained(name).eval()   # output: image_embeds
    text = CLIPTextModelWithProjection.from_pretrained(name).eval()
    tokens = AutoTokenizer.from_pretrained(name)(["a cat", "a dog"], padding=True, return_tensors="pt")
    text_features = text(**tokens).text_embeds.detach()
    maps = GradCAM(vision)(pixel_values, [ImageTextSimilarityTarget(text_features, 0, softmax=True)])

(``CLIPModel`` itself needs the text at every call: run its ``vision_model`` + ``visual_projection`` as
``CLIPVisionModelWithProjection`` does, or wrap it.)
"""

from __future__ import annotations

import logging
import zlib

import torch
from example_utils import base_parser, load_rgb, save_overlays, seed
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.core.outputs import output_for_image
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.model_targets import ImageTextSimilarityTarget

VOCABULARY = 1000
#: CLIP's pixel normalisation (OpenAI's statistics), as open_clip's preprocessing applies it.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


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

    def encode_text(self, labels: list[str]) -> torch.Tensor:
        tokens, offsets = self.tokenize(labels)
        return nn.functional.normalize(self.text(tokens, offsets), dim=-1)


def tiny_clip(size: int, labels: list[str], device: str) -> tuple[nn.Module, torch.Tensor, float | None, int]:
    """The image tower, the prompts' text features, the logit scale and the input side (a multiple of 16)."""
    size -= size % 16
    clip = TinyClip(size).to(device).eval()
    with torch.no_grad():
        text_features = clip.encode_text(labels)
    return clip.visual, text_features, clip.logit_scale.exp().item(), size


def open_clip_model(
    size: int, labels: list[str], device: str, pretrained: bool
) -> tuple[nn.Module, torch.Tensor, float | None, int]:
    """open_clip's ViT-B-32 as it is (``model(image)`` → ``(image_features, None, logit_scale)``), the prompts'
    text features from its own tokenizer (shipped with open_clip, no download), and the input side."""
    import open_clip

    size = size if pretrained else size - size % 32  # random weights: any multiple of the patch size
    logging.getLogger().setLevel(logging.ERROR)  # "No pretrained weights loaded" is expected without --pretrained
    model = open_clip.create_model(
        "ViT-B-32", pretrained="openai" if pretrained else None, force_image_size=None if pretrained else size
    )
    model = model.to(device).eval()
    with torch.no_grad():
        text_features = model.encode_text(open_clip.get_tokenizer("ViT-B-32")(labels).to(device))
    size = model.visual.image_size[0] if pretrained else size
    return model, text_features, None, size  # None: the target reads logit_scale from the model's output


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], "clip_cam.jpg")
    parser.add_argument("--labels", nargs="+", default=["a cat", "a dog", "a car", "a person", "a shoe"])
    parser.add_argument("--library", choices=["tiny", "open_clip"], default="tiny", help="which CLIP model to explain")
    args = parser.parse_args()
    if args.pretrained and args.library == "tiny":
        parser.error("--pretrained: the tiny model is built locally; use --library open_clip")
    seed()
    if args.library == "tiny":
        model, text_features, logit_scale, size = tiny_clip(args.size, args.labels, args.device)
        mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    else:
        model, text_features, logit_scale, size = open_clip_model(args.size, args.labels, args.device, args.pretrained)
        mean, std = CLIP_MEAN, CLIP_STD
    rgb = load_rgb(args.image, size)
    pixels = preprocess_image(rgb, mean=mean, std=std).to(args.device)

    shown = range(min(2, len(args.labels)))
    with GradCAM(model) as cam:  # target_layers omitted: chosen at the first call
        # 1. zero-shot classification: the probability of each prompt among all prompts
        by_label = []
        for i in shown:
            target = ImageTextSimilarityTarget(text_features, i, softmax=True, logit_scale=logit_scale)
            by_label.append(cam(pixels, [target])[0])
        first_image = output_for_image(cam.outputs, 0, 1)  # the output structure, indexed by image
        probabilities = ImageTextSimilarityTarget(text_features, logit_scale=logit_scale).probabilities(first_image)
        # 2. the raw cosine similarity to the first prompt
        by_similarity = cam(pixels, [ImageTextSimilarityTarget(text_features, 0)])[0]
        print(f"target layer: {cam.auto_choice.name if cam.auto_choice else cam.target_layers}")
    for label, probability in zip(args.labels, probabilities.tolist()):
        print(f"{label}: {probability:.3f}")

    titles = [*(f"p('{args.labels[i]}')" for i in shown), f"cosine '{args.labels[0]}'"]
    save_overlays(args.output, rgb, [*by_label, by_similarity], titles)


if __name__ == "__main__":
    main()
