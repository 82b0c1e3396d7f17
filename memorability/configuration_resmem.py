"""The configuration of ResMem's network as a backbone of ours (model type "resmem").

ResMem (Needell & Bainbridge, "Embracing New Techniques in Deep Learning for Estimating Image Memorability",
Computational Brain & Behavior, 2022) reads a photo two ways and concatenates what each gives: a ResNet-152's 1,000
class logits, and the 9,216 features of an AlexNet-style branch (five convolutions, local response normalisation,
max pooling). Its regression head (fc6 … fc12, then a sigmoid) is our ordinary MLP head on those 10,216 features.
The defaults are the published network's; tests build smaller ones of the same shape.

This module imports only transformers, so that the Hub can ship it with the model as remote code; importing it
registers the configuration with `AutoConfig`.
"""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig


def pooled_side(image_size: int) -> int:
    """The side of the branch's last feature map: conv1 (11, stride 4), max pool (3, 2), conv2 (5, padding 2, same
    size), max pool, conv3 to conv5 (3, padding 1, same size), max pool: 227 → 55 → 27 → 13 → 6."""
    side = (image_size - 11) // 4 + 1
    for _ in range(3):
        side = (side - 3) // 2 + 1
    return side


@strict
class ResMemConfig(PretrainedConfig):
    r"""
    Args:
        resnet_depths (`list[int]`, defaults to ResNet-152's `[3, 8, 36, 3]`): bottleneck blocks per stage.
        resnet_hidden_sizes (`list[int]`, defaults to `[256, 512, 1024, 2048]`): output channels per stage.
        resnet_embedding_size (`int`, defaults to 64): channels of the ResNet's stem.
        resnet_classes (`int`, defaults to 1000): the ResNet's logits that the head reads (its ImageNet classifier,
            retrained for memorability in the published model).
        branch_channels (`list[int]`, defaults to `[48, 256, 384, 384, 256]`): output channels of the branch's conv1
            to conv5 (conv2 to conv5 in two groups, as in AlexNet).
        image_size (`int`, defaults to 227): the side of the square input, which fixes the branch's feature count.
    """

    model_type = "resmem"

    resnet_depths: list[int] | tuple[int, ...] = (3, 8, 36, 3)
    resnet_hidden_sizes: list[int] | tuple[int, ...] = (256, 512, 1024, 2048)
    resnet_embedding_size: int = 64
    resnet_classes: int = 1000
    branch_channels: list[int] | tuple[int, ...] = (48, 256, 384, 384, 256)
    image_size: int = 227

    def __post_init__(self, **kwargs):
        self.resnet_depths = list(self.resnet_depths)
        self.resnet_hidden_sizes = list(self.resnet_hidden_sizes)
        self.branch_channels = list(self.branch_channels)
        super().__post_init__(**kwargs)

    @property
    def branch_features(self) -> int:
        """The branch's features: its last channels on the last pooled map (9,216 = 256 × 6 × 6 at 227 px)."""
        return self.branch_channels[-1] * pooled_side(self.image_size) ** 2

    @property
    def hidden_size(self) -> int:
        """The width of what the head reads: the branch's features and the ResNet's logits (10,216)."""
        return self.branch_features + self.resnet_classes


AutoConfig.register(ResMemConfig.model_type, ResMemConfig, exist_ok=True)

__all__ = ["ResMemConfig"]
