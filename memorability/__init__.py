"""memorability: predict how memorable a photograph is, show why, and retrain and study the model.

Importing the package registers `MemorabilityConfig` / `MemorabilityModel` with transformers' Auto classes, so
`AutoModel.from_pretrained(saved_dir)` returns a `MemorabilityModel`. It imports only what that needs (torch and
transformers' model classes); everything else (the image processor's torchvision, ONNX Runtime, datasets, Gradio,
OpenCV ...) loads where it is used, so that a command starts in the time those imports take.
"""

from transformers import AutoConfig, AutoModel

from .configuration_memorability import MemorabilityConfig
from .images import ImageLoadError, load_image
from .modeling_memorability import BackboneWeightsError, MemorabilityModel, MemorabilityOutput

__version__ = "0.1.0"

AutoConfig.register(MemorabilityConfig.model_type, MemorabilityConfig, exist_ok=True)
AutoModel.register(MemorabilityConfig, MemorabilityModel, exist_ok=True)


def load_predictor(*args, **kwargs):
    """Load a model once and score images with it; see `memorability.inference.load_predictor`."""
    from .inference import load_predictor as load

    return load(*args, **kwargs)


def make_image_processor(*args, **kwargs):
    """The image processor a model of ours is saved with; see `memorability.image_processing`."""
    from .image_processing import make_image_processor as make

    return make(*args, **kwargs)


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
