"""Named backbones and the one function that builds a fresh model from a name, with or without ImageNet weights."""

import os
from pathlib import Path

from transformers import ResNetConfig

from .configuration_memorability import MemorabilityConfig
from .image_processing import DEFAULT_IMAGE_SIZE, make_image_processor
from .modeling_memorability import MemorabilityModel

# Architectures match the Hub checkpoints named beside them, so their ImageNet weights load key for key.
BACKBONES: dict[str, tuple[dict, str | None]] = {
    "resnet50": ({}, "microsoft/resnet-50"),
    "resnet18": (
        {"layer_type": "basic", "depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512]},
        "microsoft/resnet-18",
    ),
    # For tests, the demo model and the learnability benchmark: trains from scratch in minutes on a CPU.
    "tiny": (
        {"layer_type": "basic", "embedding_size": 16, "depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 128]},
        None,
    ),
}
NO_WEIGHTS = "none"
DEFAULT_WEIGHTS = "default"


def build_model(
    backbone: str = "resnet50",
    backbone_weights: str = DEFAULT_WEIGHTS,
    head_hidden_sizes: list[int] | None = None,
    head_dropout: float | None = None,
) -> MemorabilityModel:
    """A new model: `backbone` names a preset; `backbone_weights` is "default" (the preset's ImageNet checkpoint),
    "none" (an explicit random initialisation), or a Hub id / local folder of a ResNetForImageClassification."""
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone '{backbone}'; choose one of {', '.join(BACKBONES)}.")
    overrides, default_source = BACKBONES[backbone]
    head = {}
    if head_hidden_sizes is not None:
        head["head_hidden_sizes"] = head_hidden_sizes
    if head_dropout is not None:
        head["head_dropout"] = head_dropout
    model = MemorabilityModel(MemorabilityConfig(backbone_config=ResNetConfig(**overrides), **head))
    source = default_source if backbone_weights == DEFAULT_WEIGHTS else backbone_weights
    if source is None and backbone_weights == DEFAULT_WEIGHTS:
        return model  # the tiny preset has no ImageNet checkpoint: random by design
    if source != NO_WEIGHTS:
        model.load_backbone_weights(source)
    return model


def save_untrained_model(
    folder: str | os.PathLike, backbone: str = "resnet50", image_size: int = DEFAULT_IMAGE_SIZE
) -> Path:
    """A preset with random weights and its image processor, saved as a trained model is: for speed measurements,
    where the weights do not matter."""
    folder = Path(folder)
    build_model(backbone, backbone_weights=NO_WEIGHTS).save_pretrained(folder)
    make_image_processor(image_size).save_pretrained(folder)
    return folder
