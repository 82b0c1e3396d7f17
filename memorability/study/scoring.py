"""Scoring for the ablation study: every image under every variant, with a per-image cache that makes runs resumable.

A variant is the original picture or one ablation with resolved parameters. Each process takes its shard (image
index modulo the number of processes), lays out the pictures still missing image by image (`VariantPictures`), and
scores them with the one batch engine (`memorability.batch_scoring.score_images`), batch by batch, appending the
records to its own part of the cache (JSON lines keyed by image id, variant name and a hash of the parameters). A
killed run loses at most the batch being scored; a rerun scores only what is missing, so a changed parameter
rescores that ablation alone. `merge` turns the records of every part back into one per-image table in the data's
order.
"""

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from accelerate import Accelerator
from PIL import Image
from tqdm.auto import tqdm

from ..ablations import get_ablation
from ..batch_scoring import score_images
from ..errors import MemorabilityError
from ..faces import detect_faces
from ..images import ImageSource, load_image
from ..inference import MemorabilityPredictor

ORIGINAL = "original"
CACHE_DIR = "cache"
CACHE_META = "meta.json"
GROUPS = ("all", "with_face", "without_face")

Records = dict[tuple[str, str, str], dict]  # (image id, variant name, parameter hash) → record


class StudyError(MemorabilityError, ValueError):
    """A study that cannot run as asked (bad ablation, parameter, subset or cache); one sentence says why."""


@dataclass(frozen=True)
class StudyImages:
    """The images of a study in the data's order: ids, human scores (None where unknown), and a source per image
    read only when it is scored (a path, or a LaMem row's bytes from `DatasetImages`)."""

    ids: list[str]
    human: list[float | None]
    sources: Sequence[ImageSource]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Variant:
    """The original or one ablation with resolved parameters; `key` names its results in the cache."""

    name: str
    params: dict[str, float]

    @property
    def key(self) -> str:
        text = json.dumps({"name": self.name, "params": self.params}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def apply(self, image: Image.Image) -> Image.Image:
        return image if self.name == ORIGINAL else get_ablation(self.name)(image, **self.params)


@dataclass
class StudyTable:
    """The merged per-image results, in the data's order; `errors` holds the reason an image has no scores."""

    image_ids: list[str]
    human: np.ndarray  # NaN where there is no human score
    original: np.ndarray  # NaN for unreadable images
    ablated: dict[str, np.ndarray]
    changed: dict[str, np.ndarray]  # whether each ablation changed each picture's pixels (False where unreadable)
    faces: np.ndarray  # detected faces on the original, -1 for unreadable images
    errors: list[str | None]

    @property
    def readable(self) -> np.ndarray:
        return np.array([error is None for error in self.errors], dtype=bool)

    @property
    def has_human(self) -> bool:
        return bool(self.readable.any() and np.isfinite(self.human[self.readable]).all())

    def group_masks(self) -> dict[str, np.ndarray]:
        readable = self.readable
        return {"all": readable, "with_face": readable & (self.faces > 0), "without_face": readable & (self.faces == 0)}


class ScoreCache:
    """Per-image results as JSON lines, one file per process; a line is a record or, cut short by a kill, skipped."""

    def __init__(self, out_dir: str | os.PathLike):
        self.folder = Path(out_dir) / CACHE_DIR

    def check(self, meta: dict[str, object]) -> None:
        """Refuse a cache made with another model, precision or image source: its scores would be wrong here."""
        path = self.folder / CACHE_META
        if path.is_file() and json.loads(path.read_text()) != meta:
            raise StudyError(
                f"{self.folder} holds scores of another model, precision or image source; use another --out-dir "
                "or pass --overwrite."
            )

    def reset(self, meta: dict[str, object], clear: bool) -> None:
        """Create the cache (emptied first if `clear`) and record what its scores belong to, atomically."""
        if clear:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f"{CACHE_META}.tmp"
        temporary.write_text(json.dumps(meta, indent=2))
        temporary.replace(self.folder / CACHE_META)

    def read(self) -> Records:
        """Every complete record of every part, keyed by (image id, variant, parameter hash)."""
        records = {}
        for part in sorted(self.folder.glob("part-*.jsonl")):
            for line in part.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # the last line of a killed run
                    continue
                records[(record["image_id"], record["variant"], record["key"])] = record
        return records

    def append(self, rank: int, records: list[dict]) -> None:
        """Add one batch's records to this process's part, flushed, so a kill loses at most the batch being scored.

        A line cut short by a kill gets its newline first, so the first new record is not glued onto it.
        """
        with (self.folder / f"part-{rank}.jsonl").open("a+b") as handle:
            text = "\n" * ends_mid_line(handle) + "".join(json.dumps(record) + "\n" for record in records)
            handle.write(text.encode())
            handle.flush()
            os.fsync(handle.fileno())


def ends_mid_line(handle: BinaryIO) -> bool:
    """Whether a file opened for reading ends without a newline (a record cut short by a kill)."""
    end = handle.seek(0, os.SEEK_END)
    if end == 0:
        return False
    handle.seek(end - 1)
    return handle.read(1) != b"\n"


def missing_variants(image_id: str, variants: list[Variant], done: Records) -> list[Variant]:
    """The variants of an image still to score; none for an image already known to be unreadable."""
    original = done.get((image_id, ORIGINAL, variants[0].key))
    if original is not None and original["error"] is not None:
        return []
    return [variant for variant in variants if (image_id, variant.name, variant.key) not in done]


class VariantPictures(Sequence):
    """The pictures one process scores, image by image: job k is (image index, variant). Each image is decoded once
    for all its variants (the last one decoded is kept), and `facts` tells the cache what the scores cannot: the
    faces on an original, and whether an ablation changed any pixel (a photo without a face, or without a region
    that stands out, is left as it was)."""

    def __init__(self, sources: Sequence[ImageSource], ids: list[str], jobs: list[tuple[int, Variant]]):
        self.sources, self.ids, self.jobs = sources, ids, jobs
        self.decoded: tuple[int, Image.Image] | None = None

    def __len__(self) -> int:
        return len(self.jobs)

    def original(self, index: int) -> Image.Image:
        """The image, upright RGB, or `ImageLoadError` (an error row for each of its variants)."""
        if self.decoded is None or self.decoded[0] != index:
            self.decoded = None
            self.decoded = index, load_image(self.sources[index], name=self.ids[index])
        return self.decoded[1]

    def __getitem__(self, job: int) -> Image.Image:
        index, variant = self.jobs[job]
        return variant.apply(self.original(index))

    def facts(self, job: int, picture: Image.Image) -> dict:
        index, variant = self.jobs[job]
        if variant.name == ORIGINAL:
            return {"faces": len(detect_faces(picture))}
        return {"changed": picture.tobytes() != self.original(index).tobytes()}


def score_shard(
    predictor: MemorabilityPredictor,
    images: StudyImages,
    variants: list[Variant],
    cache: ScoreCache,
    done: Records,
    accelerator: Accelerator,
    progress: bool,
    num_workers: int = 0,
) -> None:
    """Score this process's share (every num_processes-th image) of what the cache (`done`) does not hold yet."""
    shard = range(accelerator.process_index, len(images), accelerator.num_processes)
    jobs = [(index, variant) for index in shard for variant in missing_variants(images.ids[index], variants, done)]
    pictures = VariantPictures(images.sources, images.ids, jobs)
    names = [images.ids[index] for index, _ in jobs]
    label = "scoring" if accelerator.num_processes == 1 else f"scoring (rank {accelerator.process_index})"
    rank = accelerator.process_index
    with tqdm(total=len(jobs), desc=label, unit="picture", disable=not progress, position=rank) as bar:
        rows = score_images(predictor, pictures, names, num_workers=num_workers, progress=bar, extract=pictures.facts)
        records = []
        for (index, variant), row in zip(jobs, rows):
            records += record(images.ids[index], variant, row)
            if len(records) >= predictor.batch_size:  # a kill loses at most this batch
                cache.append(rank, records)
                records = []
        cache.append(rank, records)


def record(image_id: str, variant: Variant, row) -> list[dict]:
    """The cache record of one scored picture: an unreadable image is recorded once, as its original's error."""
    base = {"image_id": image_id, "variant": variant.name, "key": variant.key, "score": row.score}
    if variant.name == ORIGINAL:
        return [base | {"faces": -1 if row.error else row.extra["faces"], "error": row.error}]
    return [] if row.error else [base | {"params": variant.params, "changed": row.extra["changed"]}]


def merge(images: StudyImages, variants: list[Variant], records: Records) -> StudyTable:
    """The per-image table of the study from the cache records, in the data's order."""
    original = [records[(image_id, ORIGINAL, variants[0].key)] for image_id in images.ids]
    errors = [entry["error"] for entry in original]

    def column(variant: Variant, field: str, missing: float | bool) -> np.ndarray:
        return np.array(
            [
                missing if error is not None else records[(image_id, variant.name, variant.key)][field]
                for image_id, error in zip(images.ids, errors)
            ]
        )

    return StudyTable(
        image_ids=list(images.ids),
        human=np.array([np.nan if value is None else value for value in images.human], dtype=np.float64),
        original=column(variants[0], "score", np.nan).astype(np.float64),
        ablated={variant.name: column(variant, "score", np.nan).astype(np.float64) for variant in variants[1:]},
        changed={variant.name: column(variant, "changed", False).astype(bool) for variant in variants[1:]},
        faces=np.array([entry["faces"] for entry in original], dtype=np.int64),
        errors=errors,
    )


__all__ = [
    "GROUPS",
    "ORIGINAL",
    "ScoreCache",
    "StudyError",
    "StudyImages",
    "StudyTable",
    "Variant",
    "VariantPictures",
    "merge",
    "missing_variants",
    "score_shard",
]
