"""Named backbones, and the functions that build a fresh model (and its image processor) from a preset name or from
any pretrained transformers vision model, with or without its weights."""

import os
from pathlib import Path

import torch
from transformers import AutoImageProcessor, ResNetConfig

from .configuration_memorability import MemorabilityConfig
from .hub_ids import require_hub
from .image_processing import DEFAULT_IMAGE_SIZE, make_image_processor
from .modeling_memorability import BackboneWeightsError, MemorabilityModel, backbone_config_of, first_line

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
# Encoders for train/embed.py that need no download: random weights, named as such. They try the pipeline (embed,
# fit heads, score, push) offline; what their heads learn is only what the data itself teaches a random projection.
ENCODER_PRESETS = {
    "tiny-random-clip": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                             image_size=64, patch_size=16),
}  # fmt: skip
ENCODER_PRESET_SEED = 0  # the same weights every time: a rerun resumes, fit_head.py finds the encoder unchanged


def build_model(
    backbone: str = "resnet50",
    backbone_weights: str = DEFAULT_WEIGHTS,
    head_hidden_sizes: list[int] | None = None,
    head_dropout: float | None = None,
) -> MemorabilityModel:
    """A new model. `backbone` names a preset (`BACKBONES`) or is the Hub id / folder of a pretrained vision model of
    a supported family (ResNet, ConvNeXt, DINOv2, ViT, CLIP, SigLIP; a full CLIP or SigLIP gives its vision tower).
    `backbone_weights` is "default" (the preset's ImageNet checkpoint, or the pretrained model's own weights), "none"
    (an explicit random initialisation), or a Hub id / local folder to load them from, strictly."""
    head = {}
    if head_hidden_sizes is not None:
        head["head_hidden_sizes"] = head_hidden_sizes
    if head_dropout is not None:
        head["head_dropout"] = head_dropout
    if backbone in BACKBONES:
        overrides, default_source = BACKBONES[backbone]
        config = ResNetConfig(**overrides)
    else:
        require_hub(backbone, "the backbone")
        config, default_source = pretrained_backbone_config(backbone), backbone
    model = MemorabilityModel(MemorabilityConfig(backbone_config=config, **head))
    source = default_source if backbone_weights == DEFAULT_WEIGHTS else backbone_weights
    if source is None and backbone_weights == DEFAULT_WEIGHTS:
        return model  # the tiny preset has no ImageNet checkpoint: random by design
    if source != NO_WEIGHTS:
        require_hub(source, "the backbone weights")
        model.load_backbone_weights(source)
    return model


def pretrained_backbone_config(source: str):
    """The vision config of a pretrained model, or a `BackboneWeightsError` naming the presets and the way out."""
    try:
        return backbone_config_of(source)
    except (OSError, ValueError) as error:
        raise BackboneWeightsError(
            f"'{source}' is neither a preset ({', '.join(BACKBONES)}) nor a pretrained vision model that could be "
            f"loaded ({first_line(error)}): pass a preset, a local folder, or a Hub id while online."
        ) from None


def backbone_processor(backbone: str, image_size: int = DEFAULT_IMAGE_SIZE):
    """Our image processor at `image_size`, normalised as the backbone was pretrained: ImageNet's mean and std for the
    presets, the pretrained model's own where it ships an image processor (CLIP's and SigLIP's differ)."""
    if backbone in BACKBONES:
        return make_image_processor(image_size)
    require_hub(backbone, "the backbone")
    try:
        pretrained = AutoImageProcessor.from_pretrained(backbone)
    except (OSError, ValueError):
        return make_image_processor(image_size)
    return make_image_processor(image_size, tuple(pretrained.image_mean), tuple(pretrained.image_std))


def preset_encoder(name: str) -> tuple[MemorabilityModel, object]:
    """An `ENCODER_PRESETS` encoder (a CLIP vision tower with seeded random weights) as `embeddings.encoder_model`
    gives a pretrained one: a fp32 model with a zero head, and CLIP's image processor at the preset's size."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig

    settings = ENCODER_PRESETS[name]
    size = settings["image_size"]
    config = MemorabilityConfig(
        backbone_config=CLIPVisionConfig(**settings), head_hidden_sizes=[], sigmoid_output=False
    )
    with torch.random.fork_rng():
        torch.manual_seed(ENCODER_PRESET_SEED)
        model = MemorabilityModel(config)
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return model.eval(), processor


def save_untrained_model(
    folder: str | os.PathLike, backbone: str = "resnet50", image_size: int = DEFAULT_IMAGE_SIZE
) -> Path:
    """A preset with random weights and its image processor, saved as a trained model is: for speed measurements,
    where the weights do not matter."""
    folder = Path(folder)
    build_model(backbone, backbone_weights=NO_WEIGHTS).save_pretrained(folder)
    make_image_processor(image_size).save_pretrained(folder)
    return folder
