"""LaMem as `datasets`: one loader for the official folder, a CSV of scored photos, our Parquet table or its Hub copy.

Every source gives the same `DatasetDict` (`train`, `validation`, `test`) with the columns `image` (a lazily decoded
`datasets.Image`: a path or embedded bytes, never decoded at load time), `score` (float32, from the split index
asked for: an image's score differs between LaMem's five split indices) and `image_id`; so training, evaluation and
ablations never care where the data came from.

Row order is part of the contract: the official layout keeps each split file's line order, and the table stores
that line number (`order_1..order_5`), so the table (local or on the Hub) gives the very same rows in the very
same order as the folder it was built from.
"""

import csv
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict

from .hub_ids import is_hub_id
from .tables import (
    FEATURES,
    SPLIT_INDICES,
    SPLITS,
    TABLE_FEATURES,
    DataError,
    parquet_files,
    read_table,
    split_table,
    table_files,
    table_provenance,
    table_split_sizes,
)

# How split files and CSV `split` values name the splits; "val" is LaMem's word for validation.
SPLIT_FILE_PREFIX = {"train": "train", "validation": "val", "test": "test"}
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
SPLIT_LINE = re.compile(r"(?P<image_id>[^\s/\\]+)\.jpg (?P<score>\S+)")
CSV_COLUMNS = ("image", "score")
RANDOM_SPLIT = (0.8, 0.1)  # train and validation fractions of a CSV without a split column; test gets the rest
ON_MISSING = ("error", "drop")
LAMEM_SPLIT_SIZES = {"train": 45_000, "validation": 3_741, "test": 10_000}  # per split index, for all five
SAMPLE_DATA_MARKER = "clean_scores.csv"  # what `memorability sample-data` writes: generated, never LaMem

logger = logging.getLogger(__name__)


@dataclass
class Labelled:
    """Scored images of one split, in order: parallel lists, so that a split becomes a Dataset in one call."""

    image_ids: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def add(self, image_id: str, score: float, image: str) -> None:
        self.image_ids.append(image_id)
        self.scores.append(score)
        self.images.append(image)

    def keep(self, wanted: set[str]) -> "Labelled":
        """The rows whose image is in `wanted`, order kept."""
        kept = Labelled()
        for row in zip(self.image_ids, self.scores, self.images):
            if row[2] in wanted:
                kept.add(*row)
        return kept

    def to_dataset(self) -> Dataset:
        return Dataset.from_dict(
            {"image": self.images, "score": self.scores, "image_id": self.image_ids}, features=FEATURES
        )


def load_lamem(
    source: str | os.PathLike,
    split: int = 1,
    on_missing: str = "error",
    seed: int = 0,
    cache_dir: str | None = None,
) -> DatasetDict:
    """LaMem (or any scored photo set) as train / validation / test with `image`, `score` and `image_id`.

    `source`: the official folder (`images/`, `splits/`), a CSV (`image`, `score`, optional `split`), a folder of
    Parquet files written by `save_table`, or a Hub dataset id holding that table. `split` picks the split index
    (1..5) of LaMem sources; a CSV has one split of its own and ignores it. `on_missing="drop"` skips listed images
    that are not on disk (with a warning) instead of refusing them; tables embed their images and miss none. `seed`
    drives the 80/10/10 split of a CSV without a `split` column. `cache_dir` is where `datasets` caches a Parquet or
    Hub table (it converts the Parquet files to Arrow there once).
    """
    if split not in SPLIT_INDICES:
        raise DataError(f"{source}: split index {split!r} is not one of 1, 2, 3, 4, 5.")
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be 'error' or 'drop', not {on_missing!r}.")
    kind = detect_source(source)
    if kind == "official":
        splits = read_official_split(Path(source), split)
        return to_dataset_dict(drop_missing(splits, Path(source) / "images", on_missing))
    if kind == "csv":
        return to_dataset_dict(drop_missing(read_csv(Path(source), seed), Path(source), on_missing))
    return split_table(read_table(source, kind, cache_dir), split)


def detect_source(source: str | os.PathLike) -> str:
    """'official', 'csv', 'table' (a local Parquet folder) or 'hub', from what the path holds."""
    path = Path(source)
    if path.is_dir() and (path / "splits").exists():
        return "official"
    if path.suffix.lower() == ".csv" and path.is_file():
        return "csv"
    if path.is_dir() and parquet_files(path):
        return "table"
    if path.exists():
        raise DataError(f"{path}: not a LaMem folder (no splits/), a .csv file or a folder of .parquet files.")
    if is_hub_id(source):
        return "hub"
    raise DataError(f"{path}: no such LaMem folder, CSV file or Parquet table folder.")


def to_dataset_dict(splits: dict[str, Labelled]) -> DatasetDict:
    return DatasetDict({name: splits[name].to_dataset() for name in SPLITS})


# --- The official layout: images/<id>.jpg and splits/{train,val,test}_{1..5}.txt -------------------------------------


def read_official_split(root: Path, index: int) -> dict[str, Labelled]:
    """The three split files of one split index, checked line by line and for ids listed twice."""
    if not (root / "images").is_dir():
        raise DataError(f"{root / 'images'}: folder missing (the LaMem layout has images/ next to splits/).")
    seen: dict[str, str] = {}
    images = str(root.resolve() / "images")
    splits = {}
    for name in SPLITS:
        labelled = Labelled()
        for image_id, score in read_split_file(split_file(root, name, index), seen):
            labelled.add(image_id, score, os.path.join(images, f"{image_id}.jpg"))
        splits[name] = labelled
    return splits


def split_file(root: Path, name: str, index: int) -> Path:
    path = root / "splits" / f"{SPLIT_FILE_PREFIX[name]}_{index}.txt"
    if not path.is_file():
        raise DataError(f"{path}: split file missing (LaMem has train_{index}, val_{index} and test_{index}.txt).")
    return path


def read_split_file(path: Path, seen: dict[str, str]) -> Iterator[tuple[str, float]]:
    """(image id, score) per line of `<8-digit id>.jpg <score>`; `seen` maps ids to where they were first listed."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        match = SPLIT_LINE.fullmatch(line.rstrip())
        if match is None:
            raise DataError(f"{where}: expected '<id>.jpg <score>' with one space, got {line[:80]!r}.")
        image_id = match["image_id"]
        if image_id in seen:
            raise DataError(f"{where}: {image_id} is listed twice (first in {seen[image_id]}).")
        seen[image_id] = where
        yield image_id, parse_score(match["score"], where)


def parse_score(text: str, where: str) -> float:
    try:
        score = float(text)
    except ValueError:
        raise DataError(f"{where}: score {text!r} is not a number.") from None
    if not 0.0 <= score <= 1.0:  # also refuses nan
        raise DataError(f"{where}: score {text} is outside [0, 1].")
    return score


def drop_missing(splits: dict[str, Labelled], where: Path, on_missing: str) -> dict[str, Labelled]:
    """Refuse (or, with on_missing='drop', skip with a warning) images that are not on disk."""
    listed = [(image_id, image) for s in splits.values() for image_id, image in zip(s.image_ids, s.images)]
    missing = [image_id for image_id, image in listed if not os.path.isfile(image)]
    if not missing:
        return splits
    summary = f"{len(missing):,} of {len(listed):,} images are missing (first: {', '.join(missing[:5])})"
    if on_missing == "error":
        raise DataError(f"{where}: {summary}; pass on_missing='drop' to skip them.")
    warnings.warn(f"{where}: {summary}; dropped them.", stacklevel=3)
    present = {image for _, image in listed if os.path.isfile(image)}
    return {name: labelled.keep(present) for name, labelled in splits.items()}


# --- A CSV of scored photos -------------------------------------------------------------------------------------------


def read_csv(path: Path, seed: int) -> dict[str, Labelled]:
    """Rows of `image` (relative to the CSV), `score` and optional `split`; the image path is the image id."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        absent = [column for column in CSV_COLUMNS if column not in columns]
        if absent:
            raise DataError(f"{path}: missing required column(s) {', '.join(absent)} (found: {', '.join(columns)}).")
        rows = [csv_row(row, f"{path}, line {reader.line_num}") for row in reader]
    check_unique([image_id for image_id, _, _ in rows], path)
    names = [name for _, _, name in rows] if "split" in columns else random_split(len(rows), seed, path)
    folder = str(path.resolve().parent)
    splits = {name: Labelled() for name in SPLITS}
    for (image_id, score, _), name in zip(rows, names):
        splits[name].add(image_id, score, os.path.join(folder, image_id))
    return splits


def csv_row(row: dict[str, str], where: str) -> tuple[str, float, str | None]:
    """(image id, score, split name or None) of one CSV row, checked."""
    image_id = (row["image"] or "").strip()
    if not image_id:
        raise DataError(f"{where}: the image column is empty.")
    name = None
    if "split" in row:
        name = SPLIT_NAMES.get((row["split"] or "").strip().lower())
        if name is None:
            raise DataError(f"{where}: split {row['split'] or ''!r} is not train, validation (val) or test.")
    return image_id, parse_score((row["score"] or "").strip(), where), name


def check_unique(image_ids: list[str], path: Path) -> None:
    first: dict[str, int] = {}
    for row, image_id in enumerate(image_ids):
        if image_id in first:
            raise DataError(f"{path}, line {row + 2}: {image_id} is listed twice (first on line {first[image_id]}).")
        first[image_id] = row + 2  # line 1 is the header


def random_split(n: int, seed: int, path: Path) -> list[str]:
    """A seeded 80/10/10 train/validation/test assignment of n rows, announced: it is not an official split."""
    names = np.full(n, "test", dtype=object)
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_validation = (round(n * fraction) for fraction in RANDOM_SPLIT)
    names[order[:n_train]] = "train"
    names[order[n_train : n_train + n_validation]] = "validation"
    logger.warning("no split column in %s: made a seeded 80/10/10 split (seed %d)", path, seed)
    return list(names)


# --- The one-row-per-image table: image, image_id, score_i, split_i, order_i for i = 1..5 -----------------------------


def lamem_to_table(root: str | os.PathLike, on_missing: str = "error") -> Dataset:
    """The official folder as one row per image (sorted by id) with every split index's score, split and line number.

    The `image` column holds paths; `save_table` embeds the bytes, so the Parquet files stand on their own.
    """
    root = Path(root)
    if detect_source(root) != "official":
        raise DataError(f"{root}: not a LaMem folder (no splits/ folder).")
    columns: dict[str, dict[str, object]] = {}
    images: dict[str, str] = {}
    for index in SPLIT_INDICES:
        splits = drop_missing(read_official_split(root, index), root / "images", on_missing)
        for name, labelled in splits.items():
            for order, (image_id, score, image) in enumerate(zip(labelled.image_ids, labelled.scores, labelled.images)):
                images[image_id] = image
                columns.setdefault(image_id, {}).update(
                    {f"score_{index}": score, f"split_{index}": name, f"order_{index}": order}
                )
    check_partitions(columns, root)
    ids = sorted(columns)
    data = {"image": [images[i] for i in ids], "image_id": ids}
    data |= {name: [columns[i][name] for i in ids] for name in TABLE_FEATURES if name not in data}
    return Dataset.from_dict(data, features=TABLE_FEATURES)


def check_partitions(columns: dict[str, dict[str, object]], root: Path) -> None:
    """Every split index must list every image: the table has no cell for an image an index leaves out."""
    for index in SPLIT_INDICES:
        absent = [image_id for image_id, row in columns.items() if f"score_{index}" not in row]
        if absent:
            raise DataError(
                f"{root / 'splits'}: split index {index} leaves out {len(absent):,} image(s) that another index "
                f"lists (first: {', '.join(sorted(absent)[:5])})."
            )


def describe_data(source: str | os.PathLike) -> dict[str, object]:
    """What the data is, for every figure measured on it: a name, its kind, and whether it is real LaMem.

    A folder is LaMem when its fifteen split files have LaMem's sizes and it is not our generated sample data. A
    Parquet table (local or on the Hub) is LaMem only when its own files say so (`save_table` records the verdict on
    the folder `push_dataset` built it from) and its split columns still have LaMem's sizes: any other table, such as
    generated data saved as one, is named for what is known of it, a Parquet table.
    """
    kind = detect_source(source)
    path = Path(source)
    if kind == "official" and (path / SAMPLE_DATA_MARKER).is_file():
        return {"name": f"generated sample data ({path.name})", "kind": "sample", "is_lamem": False}
    if kind == "official":
        real_sizes = all(
            sum(1 for _ in split_file(path, role, index).open()) == size
            for role, size in LAMEM_SPLIT_SIZES.items()
            for index in SPLIT_INDICES
        )
        if real_sizes:
            return {"name": "LaMem", "kind": kind, "is_lamem": True}
        return {"name": f"LaMem-format folder ({path.name})", "kind": kind, "is_lamem": False}
    if kind == "csv":
        return {"name": f"scored photos ({path.name})", "kind": kind, "is_lamem": False}
    files = table_files(source, kind)
    said_lamem = (table_provenance(files) or {}).get("is_lamem") is True
    if said_lamem and table_split_sizes(files) == dict.fromkeys(SPLIT_INDICES, LAMEM_SPLIT_SIZES):
        return {"name": "LaMem", "kind": kind, "is_lamem": True}
    return {"name": f"Parquet table ({path.name if kind == 'table' else source})", "kind": kind, "is_lamem": False}
