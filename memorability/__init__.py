"""memorability: predict how memorable a photograph is, show why, and retrain and study the model.

Importing the package registers `MemorabilityConfig` / `MemorabilityModel` with transformers' Auto classes, so
`AutoModel.from_pretrained(saved_dir)` returns a `MemorabilityModel`.
"""

from transformers import AutoConfig, AutoModel

from .configuration_memorability import MemorabilityConfig
from .image_processing import make_image_processor
from .images import ImageLoadError, load_image
from .modeling_memorability import BackboneWeightsError, MemorabilityModel, MemorabilityOutput

__version__ = "0.1.0"

AutoConfig.register(MemorabilityConfig.model_type, MemorabilityConfig, exist_ok=True)
AutoModel.register(MemorabilityConfig, MemorabilityModel, exist_ok=True)


def load_predictor(*args, **kwargs):
    """Load a model once and score images with it; see `memorability.inference.load_predictor`."""
    from .inference import load_predictor as load

    return load(*args, **kwargs)


__all__ = [
    "BackboneWeightsError",
    "ImageLoadError",
    "MemorabilityConfig",
    "MemorabilityModel",
    "MemorabilityOutput",
    "__version__",
    "load_image",
    "load_predictor",
    "make_image_processor",
]
