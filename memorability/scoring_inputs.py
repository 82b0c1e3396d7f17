"""What gets scored: image files, folders, zips, a CSV listing images, a Parquet table, or a `datasets` table.

Every input becomes the same two parallel lists, in input order: a name per image (what the output's `path` column
says) and a source per image (a path, a zip member or a row of a Parquet file, read lazily in the DataLoader worker
that decodes it), so that scoring, sharding and resuming never care where the images came from.
"""

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset
from datasets import Image as ImageFeature

from .archives import Budget, Entry, EntryError, MemberReader, zip_entries
from .errors import MemorabilityError
from .images import list_image_files

IMAGE_COLUMN = "image"
# A zip given to `memorability predict`: no count or total (the user's own files), but one member may inflate to
# at most this, so that a lying header cannot take the machine's memory.
ZIP_BUDGET = Budget(images=2**62, total_bytes=2**62, image_bytes=2**30)


@dataclass(frozen=True)
class TableRow:
    """An image stored in a Parquet file, found by row group so that a worker reads ~100 rows, not the file."""

    path: str
    row_group: int
    row: int


class ImageSources(Sequence):
    """Paths as they are, zip members as their bytes, Parquet rows as their embedded bytes (or stored path); one zip
    open and one row group cached per process. With `root`, a path that does not lie inside it (links resolved) is
    refused instead of read: an error row, whoever wrote the table that named it."""

    def __init__(self, items: list[str | TableRow | Entry], root: Path | None = None):
        self.items = items
        self.root = root
        self.cached: tuple[tuple[str, int], list[bytes | str]] | None = None
        self.members = MemberReader()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> str | bytes:
        item = self.items[index]
        if isinstance(item, str):
            return self.confined(item)
        if isinstance(item, Entry):
            self.confined(item.path)
            return self.members.read(item)
        self.confined(item.path)
        key = (item.path, item.row_group)
        if self.cached is None or self.cached[0] != key:
            column = pq.ParquetFile(item.path).read_row_group(item.row_group, columns=[IMAGE_COLUMN]).column(0)
            images = column.combine_chunks()
            data, paths = images.field("bytes").to_pylist(), images.field("path").to_pylist()
            self.cached = key, [raw if raw is not None else path for raw, path in zip(data, paths)]
        source = self.cached[1][item.row]
        return source if isinstance(source, bytes) else self.confined(source)

    def confined(self, path: str) -> str:
        """`path`, or `EntryError` where it lies outside `root`."""
        if self.root is not None and not is_inside(path, self.root):
            raise EntryError(f"{path}: refused: outside the folder --root allows ({self.root}).")
        return path


def is_inside(path: str | os.PathLike, root: Path) -> bool:
    """Whether `path` lies inside the folder `root` once every link is resolved."""
    try:
        return Path(path).resolve().is_relative_to(root.resolve())
    except (OSError, ValueError, RuntimeError):
        return False


class DatasetImages(Sequence):
    """The `image` column of a `datasets` table (a LaMem split), undecoded: each row's bytes (or path) for
    `memorability.images.load_image`, so that a corrupt image is one error row, not a crash inside `datasets`."""

    def __init__(self, dataset: Dataset):
        self.column = dataset.select_columns([IMAGE_COLUMN]).cast_column(IMAGE_COLUMN, ImageFeature(decode=False))

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, index: int) -> str | bytes:
        image = self.column[index][IMAGE_COLUMN]
        return image["bytes"] or image["path"]


@dataclass
class DatasetInputs:
    """A `datasets` table's images (a LaMem split, or all of them) as a run's inputs: named by image id, read row by
    row, and identified for resuming by the file behind each row: its image file, or for images embedded in a
    Parquet table (a folder or a Hub dataset) the table's name and the `datasets` fingerprint of what was loaded,
    which changes with the table's files (a folder's own modification time does not, when a file in it is
    rewritten) or with a new Hub revision."""

    dataset: Dataset
    source: str
    names: list[str] = field(init=False)
    files: list[str] = field(init=False)
    listings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = list(self.dataset["image_id"])
        undecoded = self.dataset.select_columns([IMAGE_COLUMN]).cast_column(IMAGE_COLUMN, ImageFeature(decode=False))
        table = f"{self.source}@{self.dataset._fingerprint}"
        self.files = [image["path"] if image["bytes"] is None else table for image in undecoded[IMAGE_COLUMN]]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def sources(self) -> DatasetImages:
        return DatasetImages(self.dataset)


@dataclass
class ScoringInputs:
    """Parallel lists in input order: `names[i]` labels the image `sources[i]` opens; `listings` are the CSV and
    Parquet files the images were listed in (an output must never replace them)."""

    names: list[str] = field(default_factory=list)
    items: list[str | TableRow | Entry] = field(default_factory=list)
    listings: list[str] = field(default_factory=list)
    root: Path | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def sources(self) -> ImageSources:
        return ImageSources(self.items, self.root)

    @property
    def files(self) -> list[str]:
        """The file each image is read from: the image file, or the zip or Parquet file that holds it."""
        return [item if isinstance(item, str) else item.path for item in self.items]

    def add_files(self, paths: Sequence[str | os.PathLike]) -> None:
        self.names.extend(str(path) for path in paths)
        self.items.extend(str(path) for path in paths)


def collect_inputs(
    inputs: Sequence[str], exclude: Path | None = None, root: str | os.PathLike | None = None
) -> ScoringInputs:
    """Expand files, folders (recursively), CSV files (column `image`) and Parquet tables into images to score.

    A file is kept whatever its extension (an unreadable one becomes an error row), except `.csv` and `.parquet`,
    which list images, and `.zip`, whose images are read from it (never extracted; see `memorability.archives`); a
    folder holding Parquet files is a table (as `memorability.tables.save_table` writes it).
    Folders are searched without `exclude`: the run's own part folder, whose Parquet parts are no input even when
    the output is written inside an input folder. With `root` (a service scoring tables it did not write), every
    input must lie inside that folder, and a path a table names outside it is an error row, never read.
    """
    collected = ScoringInputs(root=None if root is None else Path(root))
    if root is not None and not Path(root).is_dir():
        raise MemorabilityError(f"--root {root}: no such folder.")
    for item in inputs:
        path = Path(item)
        if collected.root is not None and not is_inside(path, collected.root):
            raise MemorabilityError(f"{item}: outside the folder --root allows ({root}).")
        if path.is_dir():
            add_folder(collected, path, exclude)
        elif path.suffix.lower() == ".csv" and path.is_file():
            collected.add_files(read_image_csv(path))
            collected.listings.append(str(path))
        elif path.suffix.lower() == ".parquet" and path.is_file():
            add_table(collected, path)
        elif path.suffix.lower() == ".zip" and path.is_file():
            add_zip(collected, path)
        elif path.exists():
            collected.add_files([path])
        else:
            raise MemorabilityError(f"{item}: no such file or folder.")
    if not collected.names:
        raise MemorabilityError(f"No image files found in {', '.join(inputs)}.")
    return collected


def add_folder(collected: ScoringInputs, folder: Path, exclude: Path | None = None) -> None:
    """An image folder, or a Parquet table's folder: never both, since which one was meant is a guess."""
    skipped = inside(folder, exclude)
    tables = sorted(path for path in folder.rglob("*.parquet") if path.is_file() and not is_below(path, skipped))
    images = [path for path in list_image_files(folder) if not is_below(path, skipped)]
    if tables and images:
        raise MemorabilityError(
            f"{folder} holds both image files and Parquet files; pass the Parquet files or a folder of images only."
        )
    for table in tables:
        add_table(collected, table)
    collected.add_files(images)


def inside(folder: Path, other: Path | None) -> Path | None:
    """`other` spelled from `folder` (so that paths found in `folder` compare as text) if it lies strictly inside,
    else None."""
    if other is None:
        return None
    try:
        relative = other.resolve().relative_to(folder.resolve())
    except ValueError:
        return None
    return folder / relative if relative.parts else None


def is_below(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.is_relative_to(folder)


def read_image_csv(path: Path) -> list[Path]:
    """The `image` column of a CSV, each path relative to the CSV's folder (absolute paths stay as they are)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if IMAGE_COLUMN not in (reader.fieldnames or []):
            raise MemorabilityError(f"{path}: no '{IMAGE_COLUMN}' column (a header row naming the image paths).")
        return [path.parent / row[IMAGE_COLUMN] for row in reader]


def add_table(collected: ScoringInputs, path: Path) -> None:
    """Every row of a Parquet file with a `datasets.Image` column `image` (struct of bytes and path)."""
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    kind = schema.field(IMAGE_COLUMN).type if IMAGE_COLUMN in schema.names else pa.null()
    if not (pa.types.is_struct(kind) and {"bytes", "path"} <= {kind.field(i).name for i in range(kind.num_fields)}):
        raise MemorabilityError(f"{path}: no '{IMAGE_COLUMN}' column of images (bytes and path, as `datasets` writes).")
    stored = pq.read_table(path, columns=[f"{IMAGE_COLUMN}.path"]).column(0).to_pylist()
    for group in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        collected.items.extend(TableRow(str(path), group, row) for row in range(rows))
    collected.listings.append(str(path))
    collected.names.extend(name or f"{path}#{row}" for row, name in enumerate(stored))


def add_zip(collected: ScoringInputs, path: Path) -> None:
    """The images of a zip, named `ZIP/member`; refused members (zip-slip, encrypted ...) become error rows."""
    for entry in zip_entries(str(path), str(path), ZIP_BUDGET):
        collected.names.append(entry.name if entry.name == str(path) else f"{path}/{entry.name}")
        collected.items.append(entry)
