"""Tiny configs of every supported backbone family (random weights, 32-px inputs), for tests that run each family
through every path: building, saving, remote code, Grad-CAM, scoring, neighbours, the study and the Space."""

from pathlib import Path

import torch
from transformers import (
    CLIPVisionConfig,
    ConvNextConfig,
    Dinov2Config,
    PretrainedConfig,
    ResNetConfig,
    SiglipVisionConfig,
    ViTConfig,
)

from memorability import MemorabilityConfig, MemorabilityModel, make_image_processor

IMAGE_SIZE = 32
TRANSFORMER = dict(
    hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, image_size=IMAGE_SIZE, patch_size=8
)


def tiny_backbone(family: str) -> PretrainedConfig:
    """A two- or three-block backbone of the named family."""
    if family == "resnet":
        return ResNetConfig(layer_type="basic", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    if family == "convnext":
        return ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
    if family == "dinov2":
        return Dinov2Config(**{key: value for key, value in TRANSFORMER.items() if key != "intermediate_size"}, mlp_ratio=2)
    if family == "vit":
        return ViTConfig(**TRANSFORMER)
    if family == "clip":
        return CLIPVisionConfig(**TRANSFORMER)
    if family == "siglip":
        return SiglipVisionConfig(**TRANSFORMER)
    raise ValueError(family)


FAMILIES = ("resnet", "convnext", "dinov2", "vit", "clip", "siglip")


def tiny_model(family: str, seed: int = 0) -> MemorabilityModel:
    """An eval-mode model whose scores spread (a wide last layer), so that comparisons between paths can fail."""
    torch.manual_seed(seed)
    model = MemorabilityModel(MemorabilityConfig(backbone_config=tiny_backbone(family), head_hidden_sizes=[16]))
    torch.nn.init.normal_(model.head[-1].weight, std=1.0)
    return model.eval()


def save_tiny_model(folder: Path, family: str, seed: int = 0) -> Path:
    """`tiny_model` saved with a 32-px image processor, as a trained model is saved."""
    tiny_model(family, seed).save_pretrained(folder)
    make_image_processor(IMAGE_SIZE).save_pretrained(folder)
    return folder


def save_tiny_encoder(folder: Path, family: str, seed: int = 0) -> Path:
    """A pretrained-looking encoder folder, as `train/embed.py --encoder` takes one from the Hub: the backbone alone,
    with its family's own image processor at 32 px (CLIP's and SigLIP's normalisation, DINOv2's BiT processor)."""
    from transformers import BitImageProcessor, CLIPImageProcessor, SiglipImageProcessor

    tiny_model(family, seed).backbone.save_pretrained(folder)
    square = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = {
        "clip": lambda: CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size=square),
        "siglip": lambda: SiglipImageProcessor(size=square),
        "dinov2": lambda: BitImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size=square),
    }[family]()
    processor.save_pretrained(folder)
    return folder
