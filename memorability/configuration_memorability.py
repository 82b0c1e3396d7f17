"""Configuration of the memorability regressor: a ResNet backbone and a small MLP head."""

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig, ResNetConfig
from transformers.configuration_utils import SubConfigSpec


@strict
class MemorabilityConfig(PretrainedConfig):
    r"""
    Every hyper-parameter of [`MemorabilityModel`]; the model reads nothing else, so `config.json` plus
    `model.safetensors` rebuild it exactly.

    Args:
        backbone_config (`ResNetConfig` or `dict`, *optional*):
            The ResNet backbone. Defaults to ResNet50 (`microsoft/resnet-50`'s architecture). A ResNet-18 or a tiny
            ResNet works too: the head's input width follows `backbone_config.hidden_sizes[-1]`.
        head_hidden_sizes (`list[int]`, *optional*, defaults to `(512, 256)`):
            Widths of the hidden layers of the regression head (each Linear → ReLU → Dropout).
        head_dropout (`float`, *optional*, defaults to 0.3):
            Dropout after each hidden layer of the head.
        sigmoid_output (`bool`, *optional*, defaults to `True`):
            Squash the score into [0, 1], the range of LaMem's human scores.
    """

    model_type = "memorability"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=ResNetConfig, model_type="resnet")}

    backbone_config: dict | ResNetConfig | None = None
    head_hidden_sizes: list[int] | tuple[int, ...] = (512, 256)
    head_dropout: float = 0.3
    sigmoid_output: bool = True

    def __post_init__(self, **kwargs):
        self.head_hidden_sizes = list(self.head_hidden_sizes)
        if isinstance(self.backbone_config, dict):
            # transformers resolves a backbone dict by its model_type; ours is always a ResNet.
            self.backbone_config = {"model_type": "resnet", **self.backbone_config}
        super().__post_init__(**kwargs)

    @property
    def embedding_size(self) -> int:
        """Width of the pooled backbone features that the head reads (2048 for ResNet50)."""
        return self.backbone_config.hidden_sizes[-1]


__all__ = ["MemorabilityConfig"]
