"""The one batch engine: score any indexable collection of images in batches, with an error row per unreadable one.

Every caller that scores more than one picture goes through `score_images`: the predictor's `predict`, the CLI's
sharded runs, the ablation study, the neighbour index, the Space's Batch tab and evaluation. Images are decoded by
`memorability.images.load_image` (in DataLoader workers when asked), so that a truncated JPEG costs one error row
naming it, never a crashed run, and a source is read only when its batch is decoded: a zip member, a Parquet row or
an ablated picture is never held longer than its batch.
"""

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .images import ImageLoadError, ImageSource, load_image
from .modeling_memorability import MemorabilityOutput

# Called with an index and its decoded picture, in the worker that decoded it: a thumbnail, a face count ...
Extract = Callable[[int, Any], Any]


class Scorer(Protocol):
    """What the engine needs of a predictor: its batch size, image processor and forward."""

    batch_size: int
    processor: Any

    def forward(self, pixel_values: torch.Tensor) -> MemorabilityOutput: ...


@dataclass(frozen=True)
class ScoredImage:
    """One row: a score with the spread of the model's heads around it (0 for one head) and, when asked, the
    embedding; or the one-sentence reason there is none. `extra` is what the caller's `extract` made of the decoded
    picture (a thumbnail, a face count)."""

    name: str
    score: float | None
    uncertainty: float | None = None
    error: str | None = None
    embedding: np.ndarray | None = None
    extra: Any = None


def consecutive_batches(start: int, stop: int, size: int) -> list[range]:
    """Indices start..stop-1 cut into runs of at most `size`."""
    return [range(first, min(first + size, stop)) for first in range(start, stop, size)]


class ImageDataset(Dataset):
    """Decode and preprocess images (in DataLoader workers), turning unreadable ones into error messages."""

    def __init__(self, sources: Sequence[ImageSource], names: Sequence[str], processor, extract: Extract | None):
        self.sources = sources
        self.names = names
        self.processor = processor
        self.extract = extract

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None, Any]:
        try:
            image = load_image(self.sources[index], name=Path(self.names[index]).name)
        except ImageLoadError as error:
            return index, None, str(error), None
        extra = self.extract(index, image) if self.extract is not None else None
        return index, self.processor(image, return_tensors="pt")["pixel_values"][0], None, extra


def collate_images(items: list[tuple[int, torch.Tensor | None, str | None, Any]]) -> dict:
    """Stack the decoded images of a batch; keep every index, error and extra so that output order is input order."""
    good = [(index, pixels) for index, pixels, _, _ in items if pixels is not None]
    return {
        "indices": [index for index, _ in good],
        "pixel_values": torch.stack([pixels for _, pixels in good]) if good else torch.empty(0),
        "all_indices": [index for index, _, _, _ in items],
        "errors": [error for _, _, error, _ in items],
        "extras": [extra for _, _, _, extra in items],
    }


def score_images(
    scorer: Scorer,
    sources: Sequence[ImageSource],
    names: Sequence[str],
    batches: Iterable[Sequence[int]] | None = None,
    num_workers: int = 0,
    progress=None,
    extract: Extract | None = None,
    embeddings: bool = False,
) -> Iterator[ScoredImage]:
    """Score `sources` (paths, bytes, PIL images, or any Sequence that reads them lazily) named by `names`.

    Yields one `ScoredImage` per index of `batches` (lists of indices; default: consecutive runs of the scorer's
    batch size), in that order, so that a caller can cut the output at its own boundaries (chunks, shards).
    `num_workers` processes decode; `progress` (tqdm-like) advances per image; `embeddings` keeps each embedding.
    """
    loader = DataLoader(
        ImageDataset(sources, names, scorer.processor, extract),
        batch_sampler=consecutive_batches(0, len(sources), scorer.batch_size) if batches is None else batches,
        num_workers=num_workers,
        collate_fn=collate_images,
    )
    for batch in loader:
        output = scorer.forward(batch["pixel_values"]) if batch["indices"] else None
        position = {index: row for row, index in enumerate(batch["indices"])}
        if progress is not None:  # before the rows: a consumer may stop at a batch's last row
            progress.update(len(batch["all_indices"]))
        for index, error, extra in zip(batch["all_indices"], batch["errors"], batch["extras"]):
            row = position.get(index)
            yield ScoredImage(
                name=names[index],
                score=None if row is None else float(output.scores[row]),
                uncertainty=None if row is None else float(output.uncertainty[row]),
                error=error,
                embedding=None if row is None or not embeddings else output.embeddings[row].numpy(),
                extra=extra,
            )


def score_each_once(
    scorer: Scorer,
    sources: Sequence[ImageSource],
    names: Sequence[str],
    keys: Sequence[Hashable],
    progress=None,
) -> list[ScoredImage]:
    """A row per index, as `score_images` gives, but each distinct key (what a source reads: a file, a zip member)
    decoded and scored once: a photo listed ten times in a request costs one decode. `progress` counts the distinct
    images."""
    first: dict[Hashable, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    distinct = sorted(first.values())
    batches = [distinct[start : start + scorer.batch_size] for start in range(0, len(distinct), scorer.batch_size)]
    rows = dict(zip(distinct, score_images(scorer, sources, names, batches, progress=progress)))
    return [replace(rows[first[key]], name=names[index]) for index, key in enumerate(keys)]


__all__ = ["ScoredImage", "Scorer", "collate_images", "consecutive_batches", "score_each_once", "score_images"]
