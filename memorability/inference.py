"""Scoring images with a trained model: load once, then score PIL images, paths or whole folders in batches."""

import copy
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.data import DataLoader, Dataset
from safetensors import SafetensorError
from transformers import AutoImageProcessor

from .errors import MemorabilityError
from .images import ImageLoadError, ImageSource, load_image
from .modeling_memorability import MemorabilityModel, first_line
from .runtime import cpu_has_fast_bf16, default_device

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MODEL_ENV = "MEMORABILITY_MODEL"


class ModelLoadError(MemorabilityError, OSError):
    """A model folder or Hub id that cannot be loaded; the message says which and why in one sentence."""


@dataclass(frozen=True)
class ScoredFile:
    """One row of a batch-scoring run: a score, or the reason there is none."""

    path: str
    score: float | None
    error: str | None = None


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

    Scores come from the predictor's own copy of the backbone (`scoring_backbone`): batch norm folded into the
    convolution before it, in the compute dtype, channels_last on the CPU in bf16/fp16. Folding saves one pass over
    every feature map (about 4% at batch 32 on our 2-core CPU, within noise at batch 1: bench/inference.py); a copy
    in the compute dtype beats autocast, which casts every weight again at every call (batch 1 was 7-20% slower).
    The head stays in fp32, and `model` stays the user's fp32 model, untouched. `compile=True` compiles the scoring
    backbone with weight freezing: about 10% faster per batch of 32 on our 2-core CPU, but the first batch of each
    new shape compiles for 20-30 s there, so it pays off only on long runs.
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
        reduced_on_cpu = self.device.type == "cpu" and self.dtype != torch.float32
        self.memory_format = torch.channels_last if reduced_on_cpu else torch.contiguous_format
        self.model = model.eval().to(self.device)
        self.scoring_backbone = fold_batch_norm(self.model.backbone).to(self.dtype, memory_format=self.memory_format)
        self.backbone = (
            torch.compile(self.scoring_backbone, dynamic=False, options={"freezing": True})
            if compile
            else self.scoring_backbone
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
    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B,) and embeddings (B, D) in float32 on the CPU: the scoring backbone, then the model's head."""
        features = self.backbone(self.prepare(pixel_values), return_dict=True).last_hidden_state
        embeddings = self.model.pool(features.float())
        return self.model.forward_head(embeddings).float().cpu(), embeddings.cpu()

    def predict(self, images: ImageSource | Sequence[ImageSource]) -> float | np.ndarray:
        """Score one image (→ float) or a list of images (→ array), batch by batch."""
        if not isinstance(images, (list, tuple)):
            return float(self.predict([images])[0])
        scores = [
            self.forward(self.preprocess(images[start : start + self.batch_size]))[0]
            for start in range(0, len(images), self.batch_size)
        ]
        return torch.cat(scores).numpy() if scores else np.zeros(0, dtype=np.float32)

    def score_files(
        self, paths: Sequence[str | os.PathLike], num_workers: int = 0, progress=None
    ) -> Iterator[ScoredFile]:
        """Score files in batches with decoding in `num_workers` processes; unreadable files become error rows.

        Yields one `ScoredFile` per path, in input order. `progress` (a tqdm-like object) is advanced per file.
        """
        return self.score_images(paths, [str(path) for path in paths], num_workers, progress)

    def score_images(
        self,
        sources: Sequence[ImageSource],
        names: Sequence[str],
        num_workers: int = 0,
        progress=None,
        batches: Iterable[Sequence[int]] | None = None,
    ) -> Iterator[ScoredFile]:
        """Score any indexable collection of images (paths, bytes read lazily ...) named by `names`.

        `batches` (lists of indices, default: consecutive runs of `batch_size`) fixes which images go together and
        in which order the rows come out, so that a caller can cut the output at its own boundaries.
        """
        loader = DataLoader(
            ImageDataset(sources, names, self.processor),
            batch_sampler=consecutive_batches(0, len(sources), self.batch_size) if batches is None else batches,
            num_workers=num_workers,
            collate_fn=collate_images,
        )
        for batch in loader:
            scores = self.forward(batch["pixel_values"])[0].tolist() if batch["indices"] else []
            by_index = dict(zip(batch["indices"], scores))
            if progress is not None:  # before the rows: a consumer may stop at a batch's last row
                progress.update(len(batch["all_indices"]))
            for index, error in zip(batch["all_indices"], batch["errors"]):
                yield ScoredFile(names[index], by_index.get(index), error)


class ImageDataset(Dataset):
    """Decode and preprocess images (in DataLoader workers), turning unreadable ones into error messages."""

    def __init__(self, sources: Sequence[ImageSource], names: Sequence[str], processor):
        self.sources = sources
        self.names = names
        self.processor = processor

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = load_image(self.sources[index], name=Path(self.names[index]).name)
        except ImageLoadError as error:
            return index, None, str(error)
        return index, self.processor(image, return_tensors="pt")["pixel_values"][0], None


def fold_batch_norm(backbone: nn.Module) -> nn.Module:
    """An eval-mode copy of a ResNet backbone with every batch norm folded into the convolution before it.

    The same function of the input (up to rounding), for inference only: the folded layers have no running
    statistics left to train.
    """
    folded = copy.deepcopy(backbone).eval().requires_grad_(False)
    for module in folded.modules():
        normalization = getattr(module, "normalization", None)
        if isinstance(normalization, nn.BatchNorm2d) and isinstance(getattr(module, "convolution", None), nn.Conv2d):
            module.convolution = fuse_conv_bn_eval(module.convolution, normalization)
            module.normalization = nn.Identity()
    return folded


def consecutive_batches(start: int, stop: int, size: int) -> list[range]:
    """Indices start..stop-1 cut into runs of at most `size`."""
    return [range(first, min(first + size, stop)) for first in range(start, stop, size)]


def collate_images(items: list[tuple[int, torch.Tensor | None, str | None]]) -> dict:
    """Stack the decoded images of a batch; keep every index and error so that output order is input order."""
    good = [(index, pixels) for index, pixels, _ in items if pixels is not None]
    return {
        "indices": [index for index, _ in good],
        "pixel_values": torch.stack([pixels for _, pixels in good]) if good else torch.empty(0),
        "all_indices": [index for index, _, _ in items],
        "errors": [error for _, _, error in items],
    }


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
    from .demo import demo_model_dir

    if (demo_model_dir() / "config.json").is_file():
        return str(demo_model_dir())
    raise ModelLoadError(
        f"No model given: pass --model with a folder or Hub id, set {MODEL_ENV}, or build the demo model with "
        "`memorability demo-model`."
    )
