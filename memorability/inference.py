"""Scoring images with a trained model: load once, then score PIL images, paths or whole folders in batches."""

import copy
import os
import sys
from collections.abc import Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoImageProcessor

from .batch_scoring import score_images
from .cache_paths import demo_model_dir
from .errors import MemorabilityError
from .fingerprint import model_fingerprint
from .int8 import Int8Error, Int8Session, require_int8, usable_int8
from .images import ImageLoadError, ImageSource, describe, load_image
from .modeling_memorability import MemorabilityModel, MemorabilityOutput, first_line
from .runtime import cpu_has_fast_bf16, default_device

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
TORCH_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MODEL_ENV = "MEMORABILITY_MODEL"


class ModelLoadError(MemorabilityError, OSError):
    """A model folder or Hub id that cannot be loaded; the message says which and why in one sentence."""


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for `precision`; "auto" picks bf16 where the hardware computes it natively."""
    if precision == "int8":
        raise ValueError("int8 runs in ONNX Runtime, not torch: load it with load_predictor(model, precision='int8').")
    if precision not in TORCH_PRECISIONS:
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
    each new shape compiles for 20-30 s there, so it pays off only on long runs. `flip=True` averages every output
    with that of the mirrored picture (test-time augmentation, at twice the cost); by default it follows the
    model's `config.test_time_flip` (heads fitted on flipped embeddings).
    """

    def __init__(
        self,
        model: MemorabilityModel,
        processor,
        device: str | torch.device | None = None,
        precision: str = "auto",
        batch_size: int = 32,
        compile: bool = False,
        flip: bool | None = None,
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
        self.flip = model.config.test_time_flip if flip is None else flip

    def preprocess(self, images: Sequence[ImageSource]) -> torch.Tensor:
        """Pixel values for a batch, through the model's own image processor."""
        pictures = [load_image(image) for image in images]
        return self.processor(pictures, return_tensors="pt")["pixel_values"]

    def prepare(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel values on the predictor's device, in its compute dtype and memory format."""
        return pixel_values.to(self.device, self.dtype, memory_format=self.memory_format)

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> MemorabilityOutput:
        """Scores (B,), uncertainties (B,) and embeddings (B, D) in float32 on the CPU. With `flip`, the embedding
        is the mean of the picture's and its mirror image's (a flip of the processed pixels is the flip of the centre
        crop), and the heads score that mean, as heads fitted on flipped embeddings were fitted and evaluated."""
        output = self.network_outputs(pixel_values)
        if not self.flip:
            return output
        embeddings = (output.embeddings + self.network_outputs(pixel_values.flip(-1)).embeddings) / 2
        scored = self.model.score_embeddings(embeddings.to(self.model.device))  # the fp32 heads
        return MemorabilityOutput(**{key: value.float().cpu() for key, value in scored.items()})

    def network_outputs(self, pixel_values: torch.Tensor) -> MemorabilityOutput:
        """One pass of the scoring copy, its outputs in float32 on the CPU."""
        output = self.run(pixel_values=self.prepare(pixel_values), return_dict=True)
        return MemorabilityOutput(**{key: value.float().cpu() for key, value in output.items()})

    def predict(
        self, images: ImageSource | Sequence[ImageSource], return_uncertainty: bool = False
    ) -> float | np.ndarray | tuple:
        """Score one image (→ float) or a list of images (→ array), batch by batch; an unreadable image raises
        `ImageLoadError` naming it. With `return_uncertainty`, (scores, uncertainties): the spread of the model's
        heads around each score (0 for a model of one head)."""
        if not isinstance(images, (list, tuple)):
            scores, spreads = self.predict([images], return_uncertainty=True)
            return (float(scores[0]), float(spreads[0])) if return_uncertainty else float(scores[0])
        rows = list(score_images(self, images, [describe(image) for image in images]))
        for row in rows:
            if row.error is not None:
                raise ImageLoadError(row.error)
        scores = np.asarray([row.score for row in rows], dtype=np.float32)
        spreads = np.asarray([row.uncertainty for row in rows], dtype=np.float32)
        return (scores, spreads) if return_uncertainty else scores


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


class Int8Predictor(MemorabilityPredictor):
    """A predictor whose network runs in int8 on the CPU: the model's `onnx/model_int8.onnx` in ONNX Runtime
    (`memorability.int8`), made by `memorability quantize`. Scores, preprocessing, flip, `predict` and the batch
    engine are the predictor's; `model` is the fp32 model (its config and fingerprint), and `dtype` names the int8
    file by its hash, so that a run's manifest tells its parts from those of any other precision or int8 file.

    It builds no torch scoring copy (the network runs in the session), and it has no gradients: heat maps need a
    torch predictor (`load_predictor(model, precision="bf16")`).
    """

    def __init__(self, model: MemorabilityModel, processor, session: Int8Session, batch_size: int = 32):
        self.device = torch.device("cpu")
        self.model = model.eval()
        self.processor = processor
        self.session = session
        self.dtype = session.label
        self.batch_size = batch_size
        self.flip = model.config.test_time_flip

    @property
    def scoring_model(self) -> MemorabilityModel:
        raise Int8Error(
            "An int8 predictor has no gradients for heat maps; load the model with precision 'bf16' or 'fp32' for them."
        )

    def network_outputs(self, pixel_values: torch.Tensor) -> MemorabilityOutput:
        """One pass of the int8 network in its ONNX Runtime session."""
        return self.session.run(pixel_values)


def load_predictor(
    model: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    batch_size: int = 32,
    compile: bool = False,
) -> MemorabilityPredictor:
    """Load a model folder or Hub id once (default: $MEMORABILITY_MODEL, else the cached demo model).

    `precision="int8"` gives an `Int8Predictor` on the CPU, from the int8 file `memorability quantize` made beside
    the model; "auto" is always a torch precision here (heat maps need gradients): `load_scorer` picks int8."""
    source = resolve_model_source(model)
    if precision == "int8":
        if compile:
            raise Int8Error("--compile applies to the torch precisions: int8 runs in ONNX Runtime, compiled already.")
        if device is not None and torch.device(device).type != "cpu":
            raise Int8Error(f"int8 runs on the CPU (ONNX Runtime), not on {device}: choose another precision there.")
        require_int8(source)  # before the weights: an absent int8 file is refused at once
        loaded, processor = load_model(source)
        return Int8Predictor(loaded, processor, Int8Session(source, model_fingerprint(loaded, processor)), batch_size)
    loaded, processor = load_model(source)
    return MemorabilityPredictor(loaded, processor, device, precision, batch_size, compile)


def load_scorer(
    model: str | os.PathLike | None = None, device: str | torch.device | None = None, precision: str = "auto", **options
) -> MemorabilityPredictor:
    """The predictor that scores many images (the CLI): as `load_predictor` (`options`: batch_size, compile), except
    that "auto" takes the model's int8 file where `prefers_int8` says so; a stale one (made from another model) or
    one with an unreadable record is passed over with a warning on stderr, where `precision="int8"` refuses it."""
    source = resolve_model_source(model)
    device = torch.device(device) if device is not None else default_device()
    try:
        if prefers_int8(source, device, precision, options.get("compile", False)):
            return load_predictor(source, device, "int8", **options)
    except Int8Error as error:  # a stale file or an unreadable record: scored in torch, and said why
        print(f"warning: not scoring in int8: {error}", file=sys.stderr)
    return load_predictor(source, device, precision, **options)


def batch_twin(predictor: MemorabilityPredictor) -> MemorabilityPredictor:
    """For an app that keeps a torch predictor for heat maps (the Space): the same model in int8 to score batches
    with, where `prefers_int8` says so, sharing the predictor's model and processor; else (or where the file is stale,
    with a warning on stderr) the predictor itself."""
    source = predictor.model.name_or_path
    try:
        if prefers_int8(source, predictor.device):
            session = Int8Session(source, model_fingerprint(predictor))
            return Int8Predictor(predictor.model, predictor.processor, session, predictor.batch_size)
    except Int8Error as error:  # a stale file or an unreadable record: batches in torch, and the log says why
        print(f"warning: not scoring batches in int8: {error}", file=sys.stderr)
    return predictor


def prefers_int8(source: str, device: torch.device, precision: str = "auto", compile: bool = False) -> bool:
    """Whether "auto" scores in int8: the model has an int8 file that met the fidelity thresholds when `memorability
    quantize` made it, scoring runs on the CPU, and torch.compile is not asked for. int8 ran 1.5-2x as fast as the
    bare network in bf16 at batch 32 on our 2-core CPU (bench/inference.py; its fidelity: bench/int8_fidelity.py)."""
    return precision == "auto" and device.type == "cpu" and not compile and usable_int8(source)


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
