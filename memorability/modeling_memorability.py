"""The memorability regressor: a transformers ResNet backbone and an MLP head that outputs one score in [0, 1].

This module imports only torch, transformers and its sibling configuration module, so that the Hub can ship it as
remote code (`trust_remote_code=True`) where the `memorability` package is not installed.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel, ResNetForImageClassification, ResNetModel
from transformers.utils import ModelOutput

from .configuration_memorability import MemorabilityConfig


@dataclass
class MemorabilityOutput(ModelOutput):
    """What [`MemorabilityModel`] returns.

    Args:
        loss: mean squared error against `labels`, when labels were given.
        scores: predicted memorability, shape (batch,), in [0, 1] when `config.sigmoid_output`.
        embeddings: pooled backbone features, shape (batch, config.embedding_size); neighbours search these.
    """

    loss: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None


LAMEM_MEAN = 0.756
LAMEM_MEAN_LOGIT = math.log(LAMEM_MEAN / (1 - LAMEM_MEAN))


class BackboneWeightsError(RuntimeError):
    """ImageNet weights could not be loaded into the backbone; the message says how to proceed."""


class MemorabilityPreTrainedModel(PreTrainedModel):
    config: MemorabilityConfig
    config_class = MemorabilityConfig
    base_model_prefix = "memorability"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["ResNetConvLayer", "ResNetShortCut"]

    def _init_weights(self, module: nn.Module) -> None:
        if not isinstance(module, nn.Linear):
            super()._init_weights(module)
        elif module is self.head[-1]:
            # An untrained model predicts LaMem's mean score (0.756) with small spread, so training starts near the
            # trivial solution instead of at a saturated sigmoid.
            nn.init.normal_(module.weight, std=0.01)
            nn.init.constant_(module.bias, LAMEM_MEAN_LOGIT if self.config.sigmoid_output else LAMEM_MEAN)
        else:
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


class MemorabilityModel(MemorabilityPreTrainedModel):
    """ResNet backbone → pooled features → Linear/ReLU/Dropout × N → Linear → sigmoid.

    The two steps are public, as in timm: `embed()` gives the pooled features (neighbour search) and
    `forward_head()` turns features into scores; `forward_features()` gives the last feature map (Grad-CAM).
    """

    def __init__(self, config: MemorabilityConfig):
        super().__init__(config)
        self.backbone = ResNetModel(config.backbone_config)
        layers: list[nn.Module] = []
        width = config.embedding_size
        for hidden in config.head_hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.head_dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)
        self.post_init()

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Last backbone feature map, (batch, embedding_size, h, w)."""
        return self.backbone(pixel_values, return_dict=True).last_hidden_state

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pooling of a feature map into embeddings, (batch, embedding_size)."""
        return features.mean(dim=(2, 3))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, (batch, embedding_size)."""
        return self.pool(self.forward_features(pixel_values))

    def forward_head(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Scores from embeddings, (batch,)."""
        scores = self.head(embeddings).squeeze(-1)
        return torch.sigmoid(scores) if self.config.sigmoid_output else scores

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MemorabilityOutput | tuple:
        embeddings = self.embed(pixel_values)
        scores = self.forward_head(embeddings)
        loss = None
        if labels is not None:
            loss = nn.functional.mse_loss(scores.float(), labels.to(scores.device, torch.float32))
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return tuple(value for value in (loss, scores, embeddings) if value is not None)
        return MemorabilityOutput(loss=loss, scores=scores, embeddings=embeddings)

    def load_backbone_weights(self, source: str) -> None:
        """Copy the backbone of an ImageNet `ResNetForImageClassification` (Hub id or local folder) into ours.

        Every backbone weight must be matched: a missing or unexpected key raises, so a typo never silently
        leaves a random backbone. The classifier of the source is dropped.
        """
        try:
            classifier = ResNetForImageClassification.from_pretrained(source, use_safetensors=True)
        except (OSError, ValueError) as error:
            raise BackboneWeightsError(
                f"Could not load ImageNet backbone weights from '{source}' ({first_line(error)}); pass a local "
                "folder holding a ResNetForImageClassification checkpoint, or `--backbone-weights none` for an "
                "explicit random initialisation."
            ) from None
        try:
            self.backbone.load_state_dict(classifier.resnet.state_dict(), strict=True)
        except RuntimeError as error:
            raise BackboneWeightsError(
                f"The weights in '{source}' do not fit this model's backbone: {first_line(error)}"
            ) from None


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for one-sentence errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["MemorabilityModel", "MemorabilityOutput", "MemorabilityPreTrainedModel", "BackboneWeightsError"]
