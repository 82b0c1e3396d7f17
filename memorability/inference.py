"""Scoring images with a trained model: load once, then score PIL images, paths or whole folders in batches."""

import copy
import os
from collections.abc import Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoImageProcessor

from .batch_scoring import score_images
from .cache_paths import demo_model_dir
from .errors import MemorabilityError
from .images import ImageLoadError, ImageSource, describe, load_image
from .modeling_memorability import MemorabilityModel, MemorabilityOutput, first_line
from .runtime import cpu_has_fast_bf16, default_device

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MODEL_ENV = "MEMORABILITY_MODEL"


class ModelLoadError(MemorabilityError, OSError):
    """A model folder or Hub id that cannot be loaded; the message says which and why in one sentence."""


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for `precision`; "auto" picks bf16 where the hardware computes it natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'.")
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def load_model(source: str | os.PathLike) -> tuple[MemorabilityModel, object]:
    """A model and its image processor from a local folder or a Hub id, or one clear `ModelLoadError`."""
    try:
        # safetensors only: a pickled pytorch_model.bin is never opened, so it cannot run code.
        model = MemorabilityModel.from_pretrained(source, use_safetensors=True)
        processor = AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ModelLoadError(f"Could not load a memorability model from '{source}': {first_line(error)}") from None
    return model, processor


class MemorabilityPredictor:
    """A model in eval mode on one device and precision, with the image processor it was saved with.

    Scores come from the predictor's own fast copy of the model (`scoring_model`, made by `scoring_copy`): a
    `MemorabilityModel` with the same forward and outputs, its backbone in the compute dtype with batch norm folded
    where the backbone has any, channels_last where that helps (CNNs on the CPU in bf16/fp16). Folding saves one pass
    over every feature map (about 4% at batch 32 on our 2-core CPU, within noise at batch 1: bench/inference.py); a
    copy in the compute dtype beats autocast, which casts every weight again at every call (batch 1 was 7-20%
    slower). The head stays in fp32, and `model` stays the user's fp32 model, untouched. `compile=True` compiles the
    scoring copy with weight freezing: about 10% faster per batch of 32 on our 2-core CPU, but the first batch of
    each new shape compiles for 20-30 s there, so it pays off only on long runs.
    """

    def __init__(
        self,
        model: MemorabilityModel,
        processor,
        device: str | torch.device | None = None,
        precision: str = "auto",
        batch_size: int = 32,
        compile: bool = False,
    ):
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = resolve_precision(precision, self.device)
        self.model = model.eval().to(self.device)
        self.memory_format = fast_layout(self.model, self.dtype, self.device)
        self.scoring_model = scoring_copy(self.model, self.dtype, self.memory_format)
        self.run = (
            torch.compile(self.scoring_model, dynamic=False, options={"freezing": True})
            if compile
            else self.scoring_model
        )
        self.processor = processor
        self.batch_size = batch_size

    def preprocess(self, images: Sequence[ImageSource]) -> torch.Tensor:
        """Pixel values for a batch, through the model's own image processor."""
        pictures = [load_image(image) for image in images]
        return self.processor(pictures, return_tensors="pt")["pixel_values"]

    def prepare(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel values on the predictor's device, in its compute dtype and memory format."""
        return pixel_values.to(self.device, self.dtype, memory_format=self.memory_format)

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> MemorabilityOutput:
        """Scores (B,), uncertainties (B,) and embeddings (B, D) in float32 on the CPU, from the scoring copy."""
        output = self.run(pixel_values=self.prepare(pixel_values), return_dict=True)
        return MemorabilityOutput(**{key: value.float().cpu() for key, value in output.items()})

    def predict(self, images: ImageSource | Sequence[ImageSource]) -> float | np.ndarray:
        """Score one image (→ float) or a list of images (→ array), batch by batch; an unreadable image raises
        `ImageLoadError` naming it."""
        if not isinstance(images, (list, tuple)):
            return float(self.predict([images])[0])
        scores = []
        for row in score_images(self, images, [describe(image) for image in images]):
            if row.error is not None:
                raise ImageLoadError(row.error)
            scores.append(row.score)
        return np.asarray(scores, dtype=np.float32)


def fast_layout(model: MemorabilityModel, dtype: torch.dtype, device: torch.device) -> torch.memory_format:
    """channels_last where it helps: a CNN backbone on the CPU in bf16/fp16 (about 2.5x at batch 32 in bf16 on our
    CPU, see ../shared/README.md); a transformer's tokens have no such layout."""
    reduced_on_cpu = device.type == "cpu" and dtype != torch.float32
    return torch.channels_last if reduced_on_cpu and model.family.channels_last else torch.contiguous_format


def scoring_copy(model: MemorabilityModel, dtype: torch.dtype, layout: torch.memory_format) -> MemorabilityModel:
    """An eval-mode, frozen copy of `model` for scoring, with the same forward: the backbone in `dtype` and `layout`,
    batch norm folded where its family has any (the same function of the input up to rounding; nothing left to
    train). The head stays in float32."""
    fast = copy.deepcopy(model).eval().requires_grad_(False)
    fast.family.fold_batch_norm(fast.backbone)
    fast.backbone.to(dtype, memory_format=layout)
    return fast


def load_predictor(
    model: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    batch_size: int = 32,
    compile: bool = False,
) -> MemorabilityPredictor:
    """Load a model folder or Hub id once (default: $MEMORABILITY_MODEL, else the cached demo model)."""
    source = resolve_model_source(model)
    loaded, processor = load_model(source)
    return MemorabilityPredictor(loaded, processor, device, precision, batch_size, compile)


def resolve_model_source(model: str | os.PathLike | None) -> str:
    """The model to load: the argument, else $MEMORABILITY_MODEL, else the demo model if it has been built."""
    if model is not None:
        return str(model)
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    if (demo_model_dir() / "config.json").is_file():
        return str(demo_model_dir())
    raise ModelLoadError(
        f"No model given: pass --model with a folder or Hub id, set {MODEL_ENV}, or build the demo model with "
        "`memorability demo-model`."
    )
