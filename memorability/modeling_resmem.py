"""ResMem's network as a backbone of ours: a transformers ResNet (ResNet-152 by default) with its classifier, beside
an AlexNet-style branch, written from the published architecture (see `configuration_resmem`).

`ResMemModel` holds the parts; how they are run block by block, pooled and read as feature maps (Grad-CAM at the
ResNet's stages or at the branch's conv5) is declared once in `memorability.backbones.ResMemFamily`, as for every
other backbone. This module imports only torch and transformers, so that the Hub can ship it as remote code;
importing it registers the model with `AutoModel`.
"""

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel, ResNetConfig, ResNetModel

from .configuration_resmem import ResMemConfig

LRN_SIZE = 5  # AlexNet's local response normalisation over 5 neighbouring channels


class ResMemBranch(nn.Module):
    """conv1 (11×11, stride 4) → ReLU → max pool → LRN → conv2 (5×5, 2 groups) → ReLU → max pool → LRN →
    conv3 … conv5 (3×3, 2 groups, each → ReLU) → max pool → flatten: ResMem's second reading of the photo."""

    def __init__(self, channels: list[int]):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.conv1 = nn.Conv2d(3, c1, kernel_size=11, stride=4)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=2)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=3, padding=1, groups=2)
        self.conv4 = nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=2)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        self.lrn = nn.LocalResponseNorm(LRN_SIZE)

    def normalize(self, hidden: torch.Tensor) -> torch.Tensor:
        """LRN in float32: PyTorch has no bf16 kernel for it on the CPU (its avg_pool3d)."""
        return self.lrn(hidden.float()).to(hidden.dtype)

    def conv5_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The branch up to conv5 and its ReLU: the feature map Grad-CAM can explain (B, C, 13, 13 at 227 px)."""
        hidden = self.normalize(self.pool(torch.relu(self.conv1(pixel_values))))
        hidden = self.normalize(self.pool(torch.relu(self.conv2(hidden))))
        hidden = torch.relu(self.conv3(hidden))
        hidden = torch.relu(self.conv4(hidden))
        return torch.relu(self.conv5(hidden))

    def pooled(self, conv5: torch.Tensor) -> torch.Tensor:
        """The last max pool, flattened channel by channel (`flatten`, not `view`: channels_last maps too)."""
        return torch.flatten(self.pool(conv5), 1)


class ResMemPreTrainedModel(PreTrainedModel):
    config: ResMemConfig
    config_class = ResMemConfig
    base_model_prefix = "resmem"
    main_input_name = "pixel_values"
    input_modalities = ("image",)


class ResMemModel(ResMemPreTrainedModel):
    """The two readings of a photo: `resnet` and its `classifier` (the logits), and `branch`."""

    def __init__(self, config: ResMemConfig):
        super().__init__(config)
        self.resnet = ResNetModel(
            ResNetConfig(
                embedding_size=config.resnet_embedding_size,
                hidden_sizes=config.resnet_hidden_sizes,
                depths=config.resnet_depths,
                layer_type="bottleneck",
            )
        )
        self.classifier = nn.Linear(config.resnet_hidden_sizes[-1], config.resnet_classes)
        self.branch = ResMemBranch(config.branch_channels)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> torch.Tensor:
        """The features the head reads (B, hidden_size): the branch's, then the ResNet's logits."""
        pooled = self.resnet(pixel_values).pooler_output.flatten(1)
        branch = self.branch.pooled(self.branch.conv5_features(pixel_values))
        return torch.cat([branch, self.classifier(pooled)], dim=1)


AutoModel.register(ResMemConfig, ResMemModel, exist_ok=True)

__all__ = ["ResMemBranch", "ResMemModel"]
