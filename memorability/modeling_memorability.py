"""The memorability regressor: a transformers vision backbone and an MLP head that outputs one score in [0, 1].

The backbone runs block by block through its family's declaration (`memorability.backbones`), so that the score is
computed in one place: `forward` here, which the predictor's fast copy and Grad-CAM (which splits it at a block) run
too. This module imports only torch, transformers and its sibling modules, so that the Hub can ship it as remote code
(`trust_remote_code=True`) where the `memorability` package is not installed.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.utils import ModelOutput
from transformers.utils import logging as transformers_logging

from .backbones import Block, FeatureInfo, backbone_family
from .configuration_memorability import MemorabilityConfig
from .modeling_resmem import ResMemModel  # noqa: F401 - registers the ResMem backbone with AutoModel


@dataclass
class MemorabilityOutput(ModelOutput):
    """What [`MemorabilityModel`] returns.

    Args:
        loss: mean squared error against `labels`, when labels were given.
        scores: predicted memorability, shape (batch,), in [0, 1] when `config.sigmoid_output`.
        embeddings: pooled backbone features, shape (batch, config.embedding_size), float32; neighbours search these.
        uncertainty: the spread (standard deviation) of the heads' scores around `scores`, shape (batch,): 0 for a
            model with one head.
    """

    loss: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    uncertainty: torch.FloatTensor | None = None


LAMEM_MEAN = 0.756
LAMEM_MEAN_LOGIT = math.log(LAMEM_MEAN / (1 - LAMEM_MEAN))


class BackboneWeightsError(RuntimeError):
    """Pretrained weights could not be loaded into the backbone; the message says how to proceed."""


class MemorabilityPreTrainedModel(PreTrainedModel):
    config: MemorabilityConfig
    config_class = MemorabilityConfig
    base_model_prefix = "memorability"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module: nn.Module) -> None:
        # The backbone is a PreTrainedModel of its own: transformers initialises it with its own rules.
        if not isinstance(module, nn.Linear):
            super()._init_weights(module)
        elif any(module is head[-1] for head in self.heads):
            # An untrained model predicts LaMem's mean score (0.756) with small spread, so training starts near the
            # trivial solution instead of at a saturated sigmoid.
            nn.init.normal_(module.weight, std=0.01)
            nn.init.constant_(module.bias, LAMEM_MEAN_LOGIT if self.config.sigmoid_output else LAMEM_MEAN)
        else:
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


class MemorabilityModel(MemorabilityPreTrainedModel):
    """Backbone blocks → pooled features → Linear/ReLU/Dropout × N → Linear → sigmoid.

    The steps are public, as in timm: `forward_features` runs the backbone's blocks (from any block on, for
    Grad-CAM), `pool` gives the embeddings (neighbour search), `forward_head` turns embeddings into scores,
    `forward_from` chains them, and `feature_info` says where features can be taken.
    """

    def __init__(self, config: MemorabilityConfig):
        super().__init__(config)
        family = backbone_family(config.backbone_config)
        self.backbone = AutoModel.from_config(config.backbone_config, **family.build_kwargs)
        # One head keeps the `head.*` weight names of models saved before ensembles; several are `head.<i>.*`.
        self.head = build_head(config) if config.num_heads == 1 else nn.ModuleList(build_head(config) for _ in range(config.num_heads))
        self.post_init()

    @property
    def heads(self) -> list[nn.Sequential]:
        return [self.head] if isinstance(self.head, nn.Sequential) else list(self.head)

    @property
    def family(self):
        return backbone_family(self.config.backbone_config)

    @property
    def feature_info(self) -> list[FeatureInfo]:
        """Where features can be taken, input side first; module paths are relative to the model."""
        return [
            FeatureInfo(f"backbone.{info.module}", info.channels, info.reduction)
            for info in self.family.feature_info(self.config.backbone_config)
        ]

    def feature_blocks(self) -> list[tuple[str, Block]]:
        """The backbone as a chain of (module path, function), stem first; see `memorability.backbones`."""
        return [(f"backbone.{name}", block) for name, block in self.family.feature_blocks(self.backbone)]

    def default_cam_layer(self) -> str:
        """The block Grad-CAM explains by default: the last stage of a CNN, the last block whose patch tokens reach a
        transformer's pooled output."""
        return self.feature_info[self.family.default_cam_block(self.config.backbone_config)].module

    def forward_features(self, hidden: torch.Tensor, start: int = 0) -> torch.Tensor:
        """The output of the last block, from the pixels (start=0) or from the output of block `start - 1`."""
        for _, block in self.feature_blocks()[start:]:
            hidden = block(hidden)
        return hidden

    def feature_map(self, hidden: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """A block's output as a feature map (B, C, h, w), for an input of `size` (H, W)."""
        return self.family.feature_map(hidden, self.config.backbone_config, size)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Embeddings (batch, embedding_size) in float32 from the last block's output."""
        return self.family.pool(self.backbone, features).float()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features, (batch, embedding_size)."""
        return self.pool(self.forward_features(pixel_values))

    def forward_from(self, hidden: torch.Tensor, start: int = 0) -> MemorabilityOutput:
        """Scores, embeddings and uncertainty from the pixels (start=0), or from the output of block `start - 1`
        (Grad-CAM): the one place the score is computed."""
        if start == 0:
            hidden = hidden.to(self.backbone.dtype)  # a reduced-precision copy (the predictor's) takes float32 pixels
        return self.score_embeddings(self.pool(self.forward_features(hidden, start)))

    def score_embeddings(self, embeddings: torch.Tensor) -> MemorabilityOutput:
        """Scores (the heads' mean) and uncertainty (their spread) of pooled embeddings, which the output keeps."""
        per_head = self.forward_heads(embeddings)
        return MemorabilityOutput(
            scores=per_head.mean(dim=-1), embeddings=embeddings, uncertainty=per_head.std(dim=-1, correction=0)
        )

    def forward_heads(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Every head's score, (batch, num_heads)."""
        scores = torch.cat([head(embeddings) for head in self.heads], dim=-1)
        return torch.sigmoid(scores) if self.config.sigmoid_output else scores

    def forward_head(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Scores from embeddings, (batch,): the mean of the heads."""
        return self.forward_heads(embeddings).mean(dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MemorabilityOutput | tuple:
        output = self.forward_from(pixel_values)
        if labels is not None:
            loss = nn.functional.mse_loss(output.scores.float(), labels.to(output.scores.device, torch.float32))
            output = MemorabilityOutput(loss=loss, **output)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if return_dict else output.to_tuple()

    def load_backbone_weights(self, source: str, revision: str | None = None) -> None:
        """Copy the weights of a pretrained backbone (Hub id or local folder, at `revision` on the Hub) into ours,
        strictly.

        The source may be the backbone itself or a model built on it (`ResNetForImageClassification`, a full
        `CLIPModel` or `SiglipModel`): its other parts (a classifier, a text tower) are dropped. Every weight of our
        backbone must be found with the right shape: a missing or mismatched key raises, so a typo or another
        architecture never silently leaves a random backbone. Safetensors only.
        """
        model_class = type(self.backbone)
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # the load report lists the dropped parts as "UNEXPECTED"
        try:
            loaded, info = model_class.from_pretrained(
                source,
                config=self.config.backbone_config,  # ours: weights of another shape are refused, not adopted
                ignore_mismatched_sizes=True,  # reported in `info`, and refused below with the first key named
                use_safetensors=True,
                output_loading_info=True,
                revision=revision,
                **self.family.build_kwargs,
            )
        except (OSError, ValueError) as error:
            raise BackboneWeightsError(
                f"Could not load pretrained backbone weights from '{source}' ({first_line(error)}); pass a local "
                f"folder holding a {model_class.__name__} checkpoint (or a model built on it) in safetensors, or "
                "`--backbone-weights none` for an explicit random initialisation."
            ) from None
        finally:
            transformers_logging.set_verbosity(verbosity)
        problems = list(info["missing_keys"]) + [str(key[0]) for key in info["mismatched_keys"]]
        if problems:
            raise BackboneWeightsError(
                f"The weights in '{source}' do not fit this model's backbone: {len(problems)} weight(s) missing or of "
                f"another shape, e.g. {problems[0]}."
            )
        self.backbone.load_state_dict(loaded.state_dict(), strict=True)


def build_head(config: MemorabilityConfig) -> nn.Sequential:
    """Linear → ReLU → Dropout for each hidden size, then Linear to one score (no hidden size: a linear head)."""
    layers: list[nn.Module] = []
    width = config.embedding_size
    for hidden in config.head_hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.head_dropout)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 1))


def backbone_config_of(source: str, revision: str | None = None):
    """The vision config of a pretrained model (Hub id or folder, at `revision` on the Hub): a dual encoder's (CLIP,
    SigLIP) vision tower."""
    config = AutoConfig.from_pretrained(source, revision=revision)
    return getattr(config, "vision_config", None) or config


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for one-sentence errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__



__all__ = [
    "BackboneWeightsError",
    "MemorabilityModel",
    "MemorabilityOutput",
    "MemorabilityPreTrainedModel",
    "backbone_config_of",
]
