"""Configuration of the memorability regressor: a transformers vision backbone and a small MLP head."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .backbones import backbone_family
from .configuration_resmem import ResMemConfig  # noqa: F401 - registers model type "resmem" with AutoConfig


@strict
class MemorabilityConfig(PretrainedConfig):
    r"""
    Every hyper-parameter of [`MemorabilityModel`]; the model reads nothing else, so `config.json` plus
    `model.safetensors` rebuild it exactly.

    Args:
        backbone_config (`PretrainedConfig` or `dict`, *optional*):
            The vision backbone, built through transformers' Auto classes: a `ResNetConfig` (the default, ResNet50:
            `microsoft/resnet-50`'s architecture), `ConvNextConfig`, `Dinov2Config`, `ViTConfig`, `CLIPVisionConfig`
            or `SiglipVisionConfig`. A dict is resolved by its `model_type` (ResNet when it has none, as in configs
            saved before other backbones were supported).
        head_hidden_sizes (`list[int]`, *optional*, defaults to `(512, 256)`):
            Widths of the hidden layers of the regression head (each Linear → ReLU → Dropout).
        head_dropout (`float`, *optional*, defaults to 0.3):
            Dropout after each hidden layer of the head.
        sigmoid_output (`bool`, *optional*, defaults to `True`):
            Squash the score into [0, 1], the range of LaMem's human scores. Heads fitted on frozen embeddings
            (`train/fit_head.py`) regress the score directly and leave it off.
        num_heads (`int`, *optional*, defaults to 1):
            Heads of the same shape on the same embeddings; the score is their mean and `uncertainty` their spread
            (one head per LaMem split index in a fitted ensemble).
        head_splits (`list[int]`, *optional*):
            The LaMem split index each head was fitted on (`train/fit_head.py`), so that LaMem's protocol scores
            test_i with head i alone: the other heads were fitted on images of test_i.
        test_time_flip (`bool`, *optional*, defaults to `False`):
            Heads fitted on embeddings averaged with their mirror image's (`train/embed.py --flip`): the predictor
            then scores each photo that way too, as the heads were fitted and evaluated. `model(...)` itself
            scores the single view it is given.
    """

    model_type = "memorability"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    backbone_config: dict | PretrainedConfig | None = None
    head_hidden_sizes: list[int] | tuple[int, ...] = (512, 256)
    head_dropout: float = 0.3
    sigmoid_output: bool = True
    num_heads: int = 1
    head_splits: list[int] | None = None
    test_time_flip: bool = False

    def __post_init__(self, **kwargs):
        self.head_hidden_sizes = list(self.head_hidden_sizes)
        if isinstance(self.backbone_config, dict) and "model_type" not in self.backbone_config:
            self.backbone_config = {"model_type": "resnet", **self.backbone_config}
        super().__post_init__(**kwargs)
        backbone_family(self.backbone_config)  # an unsupported backbone fails here, in one sentence
        if self.head_splits is not None and len(self.head_splits) != self.num_heads:
            raise ValueError(f"head_splits names {len(self.head_splits)} split indices for {self.num_heads} heads.")

    @property
    def embedding_size(self) -> int:
        """Width of the pooled backbone features that the head reads (2048 for ResNet50, 768 for a ViT-B)."""
        sizes = getattr(self.backbone_config, "hidden_sizes", None)
        return sizes[-1] if sizes else self.backbone_config.hidden_size


__all__ = ["MemorabilityConfig"]
