"""Scoring images with a trained model: load once, then score PIL images, paths or whole folders in batches."""

import copy
import os
import sys
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from transformers import AutoImageProcessor

from .batch_scoring import score_images
from .cache_paths import demo_model_dir
from .errors import MemorabilityError
from .fingerprint import function_of, model_fingerprint
from .hub_ids import require_hub
from .forms import MEASURE_BATCH, Form, candidate_forms, fastest_form, measurement_key
from .int8 import Int8Error, Int8Session, require_int8, usable_int8
from .images import ImageLoadError, ImageSource, describe, load_image
from .modeling_memorability import MemorabilityModel, MemorabilityOutput, first_line
from .runtime import cpu_has_fast_bf16, default_device

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
TORCH_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
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
    require_hub(source, "the model")
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
    where the backbone has any, channels_last where asked (`load_predictor` measures which layout is faster on the
    CPU at hand: `memorability.forms`; without it, a CNN on the CPU in reduced precision). Folding saves one pass
    over every feature map; a copy in the compute dtype beats autocast, which casts every weight again at every
    call. The head stays in fp32, and `model` stays the user's fp32 model, untouched. `compile=True` compiles the
    scoring copy with weight freezing: faster per batch, after a compile of each new batch shape. `flip=True`
    averages every output with that of the mirrored picture (test-time augmentation, at twice the cost); by default
    it follows the model's `config.test_time_flip` (heads fitted on flipped embeddings).
    """

    supports_gradients = True  # heat maps can be computed from this network

    def __init__(
        self,
        model: MemorabilityModel,
        processor,
        device: str | torch.device | None = None,
        precision: str = "auto",
        batch_size: int = 32,
        compile: bool = False,
        flip: bool | None = None,
        channels_last: bool | None = None,
    ):
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = resolve_precision(precision, self.device)
        self.model = model.eval().to(self.device)
        self.memory_format = (
            fast_layout(self.model, self.dtype, self.device)
            if channels_last is None
            else torch.channels_last if channels_last else torch.contiguous_format
        )
        self.scoring_model = scoring_copy(self.model, self.dtype, self.memory_format)
        self.run = (
            torch.compile(self.scoring_model, dynamic=False, options={"freezing": True})
            if compile
            else self.scoring_model
        )
        self.processor = processor
        self.batch_size = batch_size
        self.flip = model.config.test_time_flip if flip is None else flip

    @property
    def form(self) -> Form:
        """The form of the network that computes the scores (its precision and layout)."""
        return Form(DTYPE_NAMES[self.dtype], self.memory_format == torch.channels_last)
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
    """The layout where nothing was measured (a predictor made directly, as training's validation makes one):
    channels_last for a CNN backbone on the CPU in bf16/fp16; a transformer's tokens have no such layout."""
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

    It builds no torch scoring copy (the network runs in the session), and it has no gradients: heat maps come from
    a torch predictor of the same model (`explainer`).
    """

    supports_gradients = False
    form = Form("int8")

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
    """Load a model folder or Hub id once (default: $MEMORABILITY_MODEL, else the cached demo model, said on
    stderr), in one form of its network, which every score it gives comes from.

    "auto", on a CPU: the fastest form on this CPU, measured once per CPU and architecture and cached
    (`memorability.forms`): fp32 or bf16 (bf16 only where the CPU computes it natively), channels_last or not, or the
    model's int8 file (`memorability quantize`) where it runs at least `forms.INT8_MARGIN` times as fast as the best
    float form (an `Int8Predictor`: no gradients; `explainer` gives heat maps). A named precision measures only
    its layouts; "int8" asks for the int8 file by name. On a GPU, "auto" is bf16 (fp16 where it lacks bf16).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'.")
    source = resolve_model_source(model)
    device = torch.device(device) if device is not None else default_device()
    if precision == "int8":
        if compile:
            raise Int8Error("--compile applies to the torch precisions: int8 runs in ONNX Runtime, compiled already.")
        if device.type != "cpu":
            raise Int8Error(f"int8 runs on the CPU (ONNX Runtime), not on {device}: choose another precision there.")
        require_int8(source)  # before the weights: an absent int8 file is refused at once
    loaded, processor = load_model(source)
    session = int8_session(source, loaded, processor, precision, device, compile)
    form = choose_form(loaded, processor, device, precision, session)
    if form.precision == "int8":
        return Int8Predictor(loaded, processor, session, batch_size)
    return MemorabilityPredictor(loaded, processor, device, form.precision, batch_size, compile,
                                 channels_last=form.channels_last)  # fmt: skip


def int8_session(source: str, model, processor, precision: str, device: torch.device, compile: bool):
    """The model's int8 network, where it may be used: asked for by name (refused in one sentence when stale), or
    under "auto" on a CPU without --compile when the file met the fidelity thresholds (a stale file, or one with an
    unreadable record, is passed over with a warning on stderr). None where it is not a candidate."""
    if precision == "int8":
        return Int8Session(source, model_fingerprint(model, processor))
    if precision != "auto" or device.type != "cpu" or compile:
        return None
    try:
        return Int8Session(source, model_fingerprint(model, processor)) if usable_int8(source) else None
    except Int8Error as error:
        print(f"warning: not scoring in int8: {error}", file=sys.stderr)
        return None


def choose_form(model: MemorabilityModel, processor, device: torch.device, precision: str, session=None) -> Form:
    """The form of the network a predictor runs (see `load_predictor`); `session`: the int8 network, a candidate
    where given."""
    if precision == "int8":
        return Form("int8")
    if device.type != "cpu":
        return Form(DTYPE_NAMES[resolve_precision(precision, device)])
    forms = candidate_forms(precision, model.family.channels_last, session is not None)
    if len(forms) == 1:
        return forms[0]
    pixels = processor(Image.new("RGB", (320, 240)), return_tensors="pt")["pixel_values"]
    pixels = pixels.expand(MEASURE_BATCH, *pixels.shape[1:]).contiguous()
    architecture = {"config": function_of(model.config), "input": list(pixels.shape[1:])}
    key = measurement_key(architecture, session.record.get("int8_sha256") if session is not None else None)

    def runner(form: Form):
        if form.precision == "int8":
            return session.run
        copy = scoring_copy(model, form.dtype, form.memory_format)
        return lambda batch: copy(pixel_values=batch.to(form.dtype, memory_format=form.memory_format))

    with torch.inference_mode():
        form, _ = fastest_form(key, forms, runner, pixels, f"this {model.config.backbone_config.model_type} model")
    return form


def explainer(predictor: MemorabilityPredictor) -> MemorabilityPredictor:
    """A predictor with gradients for heat maps of what `predictor` scores: the predictor itself, or for an int8 one
    the same model (shared, not loaded again) in its fastest float form on this CPU."""
    if predictor.supports_gradients:
        return predictor
    form = choose_form(predictor.model, predictor.processor, predictor.device, "auto")
    return MemorabilityPredictor(predictor.model, predictor.processor, predictor.device, form.precision,
                                 predictor.batch_size, channels_last=form.channels_last)  # fmt: skip


DEMO_FALLBACK = (
    "warning: no model given, so the demo model scores: a tiny network trained for a minute on generated pictures, "
    f"whose scores mean nothing about memorability; pass --model (a folder or Hub id) or set {MODEL_ENV}."
)


def resolve_model_source(model: str | os.PathLike | None) -> str:
    """The model to load: the argument, else $MEMORABILITY_MODEL, else the demo model if it has been built (said in
    one line on stderr: its scores must never pass for real ones)."""
    if model is not None:
        return str(model)
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    if (demo_model_dir() / "config.json").is_file():
        print(DEMO_FALLBACK, file=sys.stderr)
        return str(demo_model_dir())
    raise ModelLoadError(
        f"No model given: pass --model with a folder or Hub id, set {MODEL_ENV}, or build the demo model with "
        "`memorability demo-model`."
    )
