"""A frozen encoder's embeddings of every image of a dataset, computed once and kept as a `datasets` Parquet table.

`embed` runs one pass of a pretrained vision model (any backbone family: CLIP, SigLIP, DINOv2, ViT, ConvNeXt,
ResNet; a Hub id or a folder) over a LaMem folder, a CSV of scored photos or a Parquet table, through the one batch
engine and the same resumable, sharded parts as `memorability predict` (a kill loses at most a chunk; several
processes under `accelerate launch` share the work). An unreadable image is skipped and counted, as in training.

The output folder holds `data/train-*.parquet` (`image_id`, `embedding`) and `embeddings_info.json`: which encoder
(its id or folder, its revision where the Hub gave one, and a hash of its weights, config and processor), its image
processor, whether each embedding was averaged with its mirror image's (`flip`), and the counts. The Parquet files
carry the same record in their own metadata. `train/fit_head.py` fits light heads on it in minutes on a CPU.
"""

import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from accelerate import Accelerator
from datasets import Dataset, Features, List, Value, concatenate_datasets
from transformers import AutoImageProcessor
from transformers.utils.hub import cached_file, extract_commit_hash

from .configuration_memorability import MemorabilityConfig
from .data import SPLITS, describe_data, load_lamem
from .errors import MemorabilityError
from .fingerprint import model_fingerprint
from .inference import MemorabilityPredictor
from .presets import BACKBONES, ENCODER_PRESETS, preset_encoder
from .hub_ids import require_hub
from .modeling_memorability import BackboneWeightsError, MemorabilityModel, backbone_config_of, first_line
from .run_output import OutputError, replaced_folder
from .scoring_inputs import DatasetInputs
from .sharding import RunOptions, ScoringSummary, score_in_parts
from .tables import parquet_files, save_table

INFO_FILE = "embeddings_info.json"
PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


class EmbeddingsError(MemorabilityError, ValueError):
    """An embeddings folder that cannot be read or written as asked; one sentence says why."""


@dataclass(frozen=True)
class Embeddings:
    """A table read back: image ids, their embeddings (N, D) float32, and what made them."""

    ids: list[str]
    vectors: np.ndarray
    info: dict

    def rows(self, ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """The embeddings of `ids` in that order, and the ids that have none (unreadable when embedded)."""
        position = {image_id: row for row, image_id in enumerate(self.ids)}
        found = [image_id for image_id in ids if image_id in position]
        return self.vectors[[position[image_id] for image_id in found]], [i for i in ids if i not in position]


def load_encoder(
    source: str, device=None, precision: str = "auto", batch_size: int = 32, flip: bool = False
) -> MemorabilityPredictor:
    """A pretrained vision model (Hub id or folder) as a frozen encoder to embed with (`encoder_model`)."""
    model, processor = encoder_model(source)
    return MemorabilityPredictor(model, processor, device, precision, batch_size, flip=flip)


def encoder_model(source: str, revision: str | None = None) -> tuple[MemorabilityModel, object]:
    """A pretrained vision model (Hub id or folder; `revision`: a Hub commit, e.g. the one embeddings were made
    with), or an `ENCODER_PRESETS` name (random weights, offline), as a fp32 `MemorabilityModel` and its own image
    processor: its backbone, pooled by its family's convention. The head is a zero linear layer: its scores are not
    used, and a deterministic head keeps the fingerprint the same from one run to the next (so a rerun resumes, and
    fit_head.py can tell the encoder has not changed)."""
    if source in ENCODER_PRESETS:
        model, processor = preset_encoder(source)
    elif source in BACKBONES:
        raise BackboneWeightsError(
            f"'{source}' is a training preset, not a pretrained encoder: pass a Hub id or folder of a pretrained vision "
            f"model, or {', '.join(ENCODER_PRESETS)} to try the pipeline offline with random weights."
        )
    else:
        require_hub(source, "the encoder")
        try:
            processor = AutoImageProcessor.from_pretrained(source, revision=revision)
        except (OSError, ValueError) as error:
            raise BackboneWeightsError(f"Could not load the image processor of '{source}' ({first_line(error)}).") from None
        config = MemorabilityConfig(
            backbone_config=backbone_config_of(source, revision), head_hidden_sizes=[], sigmoid_output=False
        )
        model = MemorabilityModel(config)
        model.load_backbone_weights(source, revision)
    torch.nn.init.zeros_(model.head[-1].weight)
    torch.nn.init.zeros_(model.head[-1].bias)
    return model.eval(), processor


def hub_revision(source: str) -> str | None:
    """The Hub commit a model id resolved to (its cache holds each commit's files under snapshots/<commit>/), or
    None for a local folder."""
    if Path(source).is_dir() or source in ENCODER_PRESETS:
        return None
    path = cached_file(source, "config.json", _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)  # fmt: skip
    return extract_commit_hash(path, None)


def encoder_info(encoder: MemorabilityPredictor, source: str) -> dict:
    """What made the embeddings: the encoder (as given, its Hub revision if any, a hash of what it computes), its
    processor, the precision and whether mirror images were averaged in."""
    config = encoder.model.config.backbone_config
    return {
        "encoder": str(source),
        "revision": hub_revision(source),
        "model_type": config.model_type,
        "fingerprint": model_fingerprint(encoder),
        "embedding_size": encoder.model.config.embedding_size,
        "processor": encoder.processor.to_dict(),
        "precision": PRECISION_NAMES[encoder.dtype],
        "flip": encoder.flip,
    }


def all_images(data: str | os.PathLike) -> Dataset:
    """Every image of the data once: a LaMem index's train, validation and test are a partition of all of them."""
    splits = load_lamem(data, split=1)
    return concatenate_datasets([splits[name] for name in SPLITS])


def refuse_other_folders(out: Path) -> None:
    """An existing output must be an embeddings folder (rewritten by a rerun), never anything else."""
    if out.exists() and not (out.is_dir() and ((out / INFO_FILE).is_file() or not any(out.iterdir()))):
        raise OutputError(f"{out} exists and is not an embeddings folder; choose another --out.")


def embed(
    encoder: MemorabilityPredictor,
    source: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    accelerator: Accelerator,
    options: RunOptions = RunOptions(),
) -> ScoringSummary | None:
    """Embed every image of `data` into the folder `out` (see the module's docstring); every process calls this, the
    first returns the summary."""
    inputs = DatasetInputs(all_images(data), str(data))
    info = {**encoder_info(encoder, source), "data": describe_data(data)["name"]}
    write = partial(write_table, info=info)
    return score_in_parts(encoder, inputs, Path(out), accelerator, write, refuse_other_folders, options, embeddings=True)


def write_table(out: Path, rows, info: dict) -> tuple[int, int]:
    """The table of the readable images' embeddings and embeddings_info.json, staged beside `out` and moved in place
    whole; returns (embedded, skipped)."""
    ids, vectors, skipped = [], [], []
    for row in rows:
        if row["error"] is None:
            ids.append(row["path"])
            vectors.append(np.asarray(row["embedding"], dtype=np.float32))
        else:
            skipped.append(row["error"])
    if not ids:
        raise EmbeddingsError(f"No image could be read, so there is nothing to embed (the first: {skipped[0]}).")
    size = len(vectors[0])
    features = Features({"image_id": Value("string"), "embedding": List(Value("float32"), length=size)})
    table = Dataset.from_dict({"image_id": ids, "embedding": np.stack(vectors)}, features=features)
    record = {**info, "images": len(ids), "skipped": len(skipped), "first_skipped": skipped[:5]}
    with replaced_folder(out) as staging:
        save_table(table, staging, provenance=record)
        (staging / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return len(ids), len(skipped)


def read_embeddings(folder: str | os.PathLike) -> Embeddings:
    """A table written by `embed`, or one sentence saying why it is not one."""
    folder = Path(folder)
    files = parquet_files(folder / "data") if (folder / "data").is_dir() else []
    if not files or not (folder / INFO_FILE).is_file():
        raise EmbeddingsError(f"{folder}: not an embeddings folder (expected data/*.parquet and {INFO_FILE}).")
    table = pq.read_table([str(path) for path in files], columns=["image_id", "embedding"])
    column = table["embedding"].combine_chunks()
    vectors = column.flatten().to_numpy().reshape(len(table), -1).astype(np.float32, copy=False)
    return Embeddings(table["image_id"].to_pylist(), vectors, json.loads((folder / INFO_FILE).read_text()))


__all__ = ["Embeddings", "EmbeddingsError", "embed", "encoder_info", "load_encoder", "read_embeddings"]
