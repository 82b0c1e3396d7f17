"""Scoring for the ablation study: every image under every variant, with a per-image cache that makes runs resumable.

A variant is the original picture or one ablation with resolved parameters. Each process scores its shard (image
index modulo the number of processes) batch by batch and appends the records to its own part of the cache (JSON
lines keyed by image id, variant name and a hash of the parameters). A killed run loses at most the batch being
scored; a rerun scores only what is missing, so a changed parameter rescores that ablation alone. `merge` turns the
records of every part back into one per-image table in the data's order.
"""

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from accelerate import Accelerator
from PIL import Image
from tqdm.auto import tqdm

from .ablations import detect_faces, get_ablation
from .errors import MemorabilityError
from .fingerprint import model_fingerprint  # re-exported: the study's cache is keyed by the same model hash
from .images import ImageLoadError, load_image
from .inference import MemorabilityPredictor

ORIGINAL = "original"
CACHE_DIR = "cache"
CACHE_META = "meta.json"
GROUPS = ("all", "with_face", "without_face")

Records = dict[tuple[str, str, str], dict]  # (image id, variant name, parameter hash) → record


class StudyError(MemorabilityError, ValueError):
    """A study that cannot run as asked (bad ablation, parameter, subset or cache); one sentence says why."""


@dataclass(frozen=True)
class StudyItem:
    """One image of the study: its id, where its bytes are (a path or the bytes), its human score if any."""

    image_id: str
    source: str | bytes
    human: float | None


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


def missing_variants(item: StudyItem, variants: list[Variant], done: Records) -> list[Variant]:
    """The variants of an image still to score; none for an image already known to be unreadable."""
    original = done.get((item.image_id, ORIGINAL, variants[0].key))
    if original is not None and original["error"] is not None:
        return []
    return [variant for variant in variants if (item.image_id, variant.name, variant.key) not in done]


def batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def score_batch(predictor: MemorabilityPredictor, work: Sequence[tuple[StudyItem, list[Variant]]]) -> list[dict]:
    """Records of one batch: each image decoded once, each missing variant scored for the images that need it."""
    records, pictures = [], {}
    for item, _ in work:
        try:
            pictures[item.image_id] = load_image(item.source, name=item.image_id)
        except ImageLoadError as error:
            records.append({"image_id": item.image_id, "variant": ORIGINAL, "key": Variant(ORIGINAL, {}).key,
                            "score": None, "faces": -1, "error": str(error)})  # fmt: skip
    needs: dict[str, tuple[Variant, list[StudyItem]]] = {}
    for item, variants in work:
        for variant in variants if item.image_id in pictures else []:
            needs.setdefault(variant.name, (variant, []))[1].append(item)
    for variant, items in needs.values():
        scores = predictor.predict([variant.apply(pictures[item.image_id]) for item in items])
        for item, score in zip(items, scores.tolist()):
            record = {"image_id": item.image_id, "variant": variant.name, "key": variant.key, "score": score}
            if variant.name == ORIGINAL:
                record |= {"faces": len(detect_faces(pictures[item.image_id])), "error": None}
            else:
                record["params"] = variant.params
            records.append(record)
    return records


def score_shard(
    predictor: MemorabilityPredictor,
    items: list[StudyItem],
    variants: list[Variant],
    cache: ScoreCache,
    done: Records,
    accelerator: Accelerator,
    progress: bool,
) -> None:
    """Score this process's share (every num_processes-th image) of what the cache (`done`) does not hold yet."""
    shard = items[accelerator.process_index :: accelerator.num_processes]
    work = [(item, missing) for item in shard if (missing := missing_variants(item, variants, done))]
    label = "scoring" if accelerator.num_processes == 1 else f"scoring (rank {accelerator.process_index})"
    with tqdm(total=len(work), desc=label, unit="img", disable=not progress, position=accelerator.process_index) as bar:
        for batch in batches(work, predictor.batch_size):
            cache.append(accelerator.process_index, score_batch(predictor, batch))
            bar.update(len(batch))


def merge(items: list[StudyItem], variants: list[Variant], records: Records) -> StudyTable:
    """The per-image table of the study from the cache records, in the data's order."""
    original = [records[(item.image_id, ORIGINAL, variants[0].key)] for item in items]
    errors = [record["error"] for record in original]

    def scores(variant: Variant) -> np.ndarray:
        return np.array(
            [
                np.nan if error is not None else records[(item.image_id, variant.name, variant.key)]["score"]
                for item, error in zip(items, errors)
            ],
            dtype=np.float64,
        )

    return StudyTable(
        image_ids=[item.image_id for item in items],
        human=np.array([np.nan if item.human is None else item.human for item in items], dtype=np.float64),
        original=scores(variants[0]),
        ablated={variant.name: scores(variant) for variant in variants[1:]},
        faces=np.array([record["faces"] for record in original], dtype=np.int64),
        errors=errors,
    )


__all__ = [
    "GROUPS",
    "ORIGINAL",
    "ScoreCache",
    "StudyError",
    "StudyItem",
    "StudyTable",
    "Variant",
    "merge",
    "missing_variants",
    "model_fingerprint",
    "score_shard",
]
