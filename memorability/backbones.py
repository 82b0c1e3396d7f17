"""The transformers vision backbones a memorability model can stand on, each declared once: its feature blocks, how
it pools, and how its hidden states read as a feature map.

A family says where features can be taken (`feature_info`, in the spirit of timm's: module, channels, reduction)
and runs the backbone block by block, so that the model's forward, Grad-CAM (which splits that forward at a block)
and the predictor's fast copy never name a backbone's attributes themselves. Each family reproduces its backbone's
own forward exactly (tests/test_backbones.py checks it against the transformers model's outputs):
- CNNs (ResNet, ConvNeXt) pool by global average, as their transformers poolers do (ConvNeXt then applies its final
  LayerNorm); their blocks' outputs are feature maps already.
- Vision transformers pool by their own convention: the CLS token after the final LayerNorm (ViT, DINOv2, CLIP),
  or SigLIP's attention-pooling head (the mean of the patch tokens where a SigLIP has no head). Their blocks' outputs
  are tokens; the patch tokens, reshaped to their grid, are the feature map.

This module imports only torch and transformers, so that the Hub can ship it with the model as remote code.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from transformers import PreTrainedConfig

Block = Callable[[torch.Tensor], torch.Tensor]


class UnsupportedBackboneError(ValueError):
    """A backbone config of a model type no family declares; the message lists the supported ones."""


@dataclass(frozen=True)
class FeatureInfo:
    """One place features can be taken: the module's path in the model, its channels and its stride in pixels."""

    module: str
    channels: int
    reduction: int


def submodule(root: nn.Module, path: str) -> nn.Module:
    """`root.a.b.0` for the path "a.b.0"."""
    return root.get_submodule(path)


class BackboneFamily:
    """How one family of transformers vision models is built, run block by block, pooled and read as a map.

    Subclasses set `model_types`, `stem` (module paths run in order on the pixels, before the first block) and
    `blocks` (the path of the ModuleList of blocks), and override what differs.
    """

    model_types: tuple[str, ...] = ()
    stem: tuple[str, ...] = ()
    blocks: str = ""
    # Extra arguments for AutoModel.from_config: parts of a backbone this model never runs are not built.
    build_kwargs: dict = {}
    # CNN feature maps run faster channels_last on the CPU in reduced precision; tokens have no such layout.
    channels_last: bool = False
    pooling: str = ""  # how `pool` turns the last block into embeddings, in words (model cards, the README)

    def block_modules(self, backbone: nn.Module) -> list[tuple[str, nn.Module]]:
        """(path under the backbone, module) for the stem's last module and every block, input side first."""
        layers = submodule(backbone, self.blocks)
        return [(self.stem[-1], submodule(backbone, self.stem[-1]))] + [
            (f"{self.blocks}.{index}", layer) for index, layer in enumerate(layers)
        ]

    def run_stem(self, backbone: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = pixel_values
        for path in self.stem:
            hidden = submodule(backbone, path)(hidden)
        return hidden

    def run_block(self, block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return block(hidden)

    def feature_blocks(self, backbone: nn.Module) -> list[tuple[str, Block]]:
        """The backbone as a chain of functions, stem first: running them in order is the backbone's forward up to
        its pooling. Names are module paths under the backbone."""
        stem_name = self.stem[-1]
        chain: list[tuple[str, Block]] = [(stem_name, lambda pixels: self.run_stem(backbone, pixels))]
        for name, module in self.block_modules(backbone)[1:]:
            chain.append((name, lambda hidden, module=module: self.run_block(module, hidden)))
        return chain

    def pool(self, backbone: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, D) from the last block's output."""
        raise NotImplementedError

    def explained(self, hidden) -> torch.Tensor:
        """The tensor of a block's output that a feature map is read from: the output itself, for a backbone that
        reads the photo one way (ResMem carries two tensors between its blocks)."""
        return hidden

    def feature_map(self, hidden: torch.Tensor, config: PreTrainedConfig, size: tuple[int, int]) -> torch.Tensor:
        """A block's output as (B, C, h, w) for an input of `size` (H, W)."""
        return hidden

    def feature_info(self, config: PreTrainedConfig) -> list[FeatureInfo]:
        raise NotImplementedError

    def default_cam_block(self, config: PreTrainedConfig) -> int:
        """Index (into `feature_blocks`) of the block Grad-CAM explains by default: the last."""
        return len(self.feature_info(config)) - 1

    def fold_batch_norm(self, backbone: nn.Module) -> None:
        """Fold batch norm into the convolution before it, in place (inference only); nothing where there is none."""


class ConvolutionalFamily(BackboneFamily):
    """Stages of feature maps under `encoder.stages`, fastest channels_last in reduced precision on the CPU."""

    blocks = "encoder.stages"
    channels_last = True


class ResNetFamily(ConvolutionalFamily):
    model_types = ("resnet",)
    stem = ("embedder",)
    pooling = "global average pooling"

    def pool(self, backbone: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.float().mean(dim=(2, 3))  # ResNetModel's AdaptiveAvgPool2d((1, 1)), in float32

    def feature_info(self, config: PreTrainedConfig) -> list[FeatureInfo]:
        reduction = 8 if config.downsample_in_first_stage else 4  # the stem's stride-2 conv and max pool: 4
        stages = []
        for index, channels in enumerate(config.hidden_sizes):
            reduction = reduction * 2 if index else reduction
            stages.append(FeatureInfo(f"{self.blocks}.{index}", channels, reduction))
        return [FeatureInfo(self.stem[-1], config.embedding_size, 4)] + stages

    def fold_batch_norm(self, backbone: nn.Module) -> None:
        """Every ResNetConvLayer / ResNetShortCut holds a `convolution` followed by its `normalization`."""
        for module in backbone.modules():
            normalization = getattr(module, "normalization", None)
            convolution = getattr(module, "convolution", None)
            if isinstance(normalization, nn.BatchNorm2d) and isinstance(convolution, nn.Conv2d):
                module.convolution = fuse_conv_bn_eval(convolution, normalization)
                module.normalization = nn.Identity()


class ConvNextFamily(ConvolutionalFamily):
    model_types = ("convnext",)
    stem = ("embeddings",)
    pooling = "global average pooling, then the final LayerNorm"

    def pool(self, backbone: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return backbone.layernorm(hidden.mean(dim=(-2, -1)))  # ConvNextModel's pooler_output

    def feature_info(self, config: PreTrainedConfig) -> list[FeatureInfo]:
        stem = FeatureInfo(self.stem[-1], config.hidden_sizes[0], config.patch_size)
        return [stem] + [
            FeatureInfo(f"{self.blocks}.{index}", channels, config.patch_size * 2**index)
            for index, channels in enumerate(config.hidden_sizes)
        ]


class VisionTransformerFamily(BackboneFamily):
    """Tokens in, tokens out: `prefix_tokens` (CLS) come before the patch tokens."""

    prefix_tokens = 1
    pooling = "the CLS token after the final LayerNorm"

    def run_block(self, block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return block(hidden, None)  # no attention mask: every token of a picture attends to every other

    def feature_map(self, hidden: torch.Tensor, config: PreTrainedConfig, size: tuple[int, int]) -> torch.Tensor:
        """The patch tokens (B, N, D) as (B, D, H / patch, W / patch), row by row as the patches were cut."""
        rows, columns = size[0] // config.patch_size, size[1] // config.patch_size
        patches = hidden[:, self.prefix_tokens :]
        return patches.transpose(1, 2).reshape(hidden.shape[0], hidden.shape[2], rows, columns)

    def feature_info(self, config: PreTrainedConfig) -> list[FeatureInfo]:
        names = [self.stem[-1]] + [f"{self.blocks}.{index}" for index in range(config.num_hidden_layers)]
        return [FeatureInfo(name, config.hidden_size, config.patch_size) for name in names]

    def default_cam_block(self, config: PreTrainedConfig) -> int:
        """The input of the last block: a CLS-token model's pooled output reads only the CLS token of the last
        block's output, so the score's gradient on its patch tokens is zero there and the map would be flat. (The
        layer pytorch-grad-cam's documentation picks for ViTs, `blocks[-1].norm1`, sees the same tensor.)"""
        return max(0, len(self.feature_info(config)) - 2)


class ViTFamily(VisionTransformerFamily):
    model_types = ("vit",)
    stem = ("embeddings",)
    blocks = "layers"
    build_kwargs = {"add_pooling_layer": False}  # ViT's tanh pooler is a classification pre-logit; we pool the CLS

    def pool(self, backbone: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return backbone.layernorm(hidden)[:, 0]


class Dinov2Family(VisionTransformerFamily):
    model_types = ("dinov2",)
    stem = ("embeddings",)
    blocks = "encoder.layer"

    def pool(self, backbone: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return backbone.layernorm(hidden)[:, 0]  # Dinov2Model's pooler_output


class ClipVisionFamily(VisionTransformerFamily):
    model_types = ("clip_vision_model",)
    stem = ("embeddings", "pre_layrnorm")
    blocks = "encoder.layers"

    def pool(self, backbone: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return backbone.post_layernorm(hidden[:, 0])  # CLIPVisionModel's pooler_output


class SiglipVisionFamily(VisionTransformerFamily):
    model_types = ("siglip_vision_model",)
    stem = ("embeddings",)
    blocks = "encoder.layers"
    prefix_tokens = 0  # SigLIP has no CLS token
    pooling = "SigLIP's attention-pooling head over the patch tokens (their mean where it has none)"

    def pool(self, backbone: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        tokens = backbone.post_layernorm(hidden)
        return backbone.head(tokens) if backbone.config.vision_use_head else tokens.mean(dim=1)

    def default_cam_block(self, config: PreTrainedConfig) -> int:
        """The last block: SigLIP pools every patch token (attention pooling or mean), so its map is not flat."""
        return len(self.feature_info(config)) - 1


class ResMemFamily(BackboneFamily):
    """ResMem (`memorability.modeling_resmem`): a ResNet and an AlexNet-style branch that both read the photo. The
    ResNet's blocks carry the pixels beside their feature map, so that the branch, the last block, reads the photo
    too: the hidden state between blocks is (pixels, map), then (the ResNet's last map, the branch's conv5 map), the
    map Grad-CAM reads always second."""

    model_types = ("resmem",)
    channels_last = True
    pooling = (
        "the ResNet's 1,000 class logits (global average pooling, then its classifier) beside the AlexNet-style "
        "branch's conv5 features (max-pooled, flattened), concatenated"
    )
    resnet = ResNetFamily()

    def feature_blocks(self, backbone: nn.Module) -> list[tuple[str, Block]]:
        chain: list[tuple[str, Block]] = [("resnet.embedder", lambda pixels: (pixels, backbone.resnet.embedder(pixels)))]
        for index, stage in enumerate(backbone.resnet.encoder.stages):
            chain.append((f"resnet.encoder.stages.{index}", lambda hidden, stage=stage: (hidden[0], stage(hidden[1]))))
        chain.append(("branch.conv5", lambda hidden: (hidden[1], backbone.branch.conv5_features(hidden[0]))))
        return chain

    def pool(self, backbone: nn.Module, hidden: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The branch's pooled conv5 features, then the ResNet's logits (in the classifier's dtype), as ResMem
        concatenates them."""
        resnet, conv5 = hidden
        classifier = backbone.classifier
        logits = classifier(resnet.float().mean(dim=(2, 3)).to(classifier.weight.dtype))
        return torch.cat([backbone.branch.pooled(conv5).float(), logits.float()], dim=1)

    def explained(self, hidden) -> torch.Tensor:
        return hidden[1]

    def feature_info(self, config: PreTrainedConfig) -> list[FeatureInfo]:
        stages = [FeatureInfo(f"resnet.encoder.stages.{index}", channels, 4 * 2**index)
                  for index, channels in enumerate(config.resnet_hidden_sizes)]  # fmt: skip
        branch = FeatureInfo("branch.conv5", config.branch_channels[-1], 16)  # 227 px → 13 cells: about 17 px each
        return [FeatureInfo("resnet.embedder", config.resnet_embedding_size, 4), *stages, branch]

    def fold_batch_norm(self, backbone: nn.Module) -> None:
        self.resnet.fold_batch_norm(backbone.resnet)  # the branch has none (LRN is no batch norm)


FAMILIES: tuple[BackboneFamily, ...] = (
    ResNetFamily(),
    ConvNextFamily(),
    Dinov2Family(),
    ViTFamily(),
    ClipVisionFamily(),
    SiglipVisionFamily(),
    ResMemFamily(),
)
SUPPORTED_MODEL_TYPES = tuple(model_type for family in FAMILIES for model_type in family.model_types)


def backbone_family(config: PreTrainedConfig) -> BackboneFamily:
    """The family that runs backbones of this config's model type."""
    for family in FAMILIES:
        if config.model_type in family.model_types:
            return family
    raise UnsupportedBackboneError(
        f"No memorability backbone family for model type '{config.model_type}'; supported: "
        f"{', '.join(SUPPORTED_MODEL_TYPES)}."
    )


__all__ = [
    "FAMILIES",
    "SUPPORTED_MODEL_TYPES",
    "BackboneFamily",
    "FeatureInfo",
    "UnsupportedBackboneError",
    "backbone_family",
]
