"""LaMem as a Parquet table: one row per image with every split index's score, split and line number, written with
the image bytes embedded (as `push_to_hub` lays a dataset out), read back from a folder or the Hub, and cut into
one split index's train / validation / test. The table records in its own files where it came from, so that
`memorability.data.describe_data` can tell real LaMem from anything else saved in the same format.
"""

import json
import os
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict, Features, Image, Value, load_dataset
from datasets.arrow_writer import get_parquet_column_options, get_writer_batch_size_from_data_size
from datasets.config import DEFAULT_CDC_OPTIONS
from datasets.table import embed_table_storage
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from .errors import MemorabilityError
from .hub_ids import HubUnreachableError, require_hub
from .modeling_memorability import first_line

SPLITS = ("train", "validation", "test")
SPLIT_INDICES = (1, 2, 3, 4, 5)
FEATURES = Features({"image": Image(), "score": Value("float32"), "image_id": Value("string")})
TABLE_FEATURES = Features(
    {
        "image": Image(),
        "image_id": Value("string"),
        **{f"score_{i}": Value("float32") for i in SPLIT_INDICES},
        **{f"split_{i}": Value("string") for i in SPLIT_INDICES},
        **{f"order_{i}": Value("int32") for i in SPLIT_INDICES},
    }
)
ROWS_PER_SHARD = 5000  # about 230 MB of LaMem JPEGs (46 kB on average) per Parquet file, under the Hub's 500 MB habit
# The key in each Parquet file's footer under which `save_table` records where the table came from (`describe_data`'s
# verdict on the folder it was built from); no other writer puts it there.
PROVENANCE_KEY = b"memorability.provenance"


class DataError(MemorabilityError, ValueError):
    """Data that cannot be used as given; the message is one sentence naming the file (and line) at fault."""


def save_table(
    table: Dataset,
    out_dir: str | os.PathLike,
    rows_per_shard: int = ROWS_PER_SHARD,
    provenance: dict | None = None,
) -> list[Path]:
    """Write `data/train-0000k-of-0000n.parquet` shards with image bytes embedded, as `push_to_hub` lays them out.

    `provenance` (what the table is, as `describe_data` said of its source) goes into every file's footer.
    """
    data_dir = Path(out_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    num_shards = max(1, -(-len(table) // rows_per_shard))
    paths = []
    for index in range(num_shards):
        shard = table.shard(num_shards, index, contiguous=True).with_format("arrow")
        shard = shard.map(embed_table_storage, batched=True, keep_in_memory=True)
        paths.append(data_dir / f"train-{index:05d}-of-{num_shards:05d}.parquet")
        write_parquet(shard, paths[-1], provenance)
    return paths


def write_parquet(shard: Dataset, path: Path, provenance: dict | None) -> None:
    """The file `Dataset.to_parquet` writes (features in the schema, its column options, row groups of at most 100 MB,
    content-defined chunking for the Hub's deduplication), plus `provenance` in the footer's key-value metadata:
    it travels inside the file, through `load_dataset("parquet")` and the Hub, and `to_parquet` cannot write it."""
    rows = shard.with_format("arrow")[:]
    schema = shard.features.arrow_schema
    options = get_parquet_column_options(shard.features, schema)
    with pq.ParquetWriter(
        path, schema, use_content_defined_chunking=DEFAULT_CDC_OPTIONS, write_page_index=True, **options
    ) as writer:
        writer.write_table(rows, row_group_size=get_writer_batch_size_from_data_size(len(rows), rows.nbytes))
        if provenance is not None:
            writer.add_key_value_metadata({PROVENANCE_KEY: json.dumps(provenance)})


def parquet_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.parquet") if path.is_file())


def table_files(source: str | os.PathLike, kind: str) -> list[Path]:
    """The Parquet files of a table: a local folder's, or those of a Hub dataset (downloaded once, then cached)."""
    return parquet_files(Path(source) if kind == "table" else download_hub_dataset(str(source)))


def download_hub_dataset(repo_id: str) -> Path:
    """A local snapshot of a Hub dataset's Parquet and JSON files (a table, or a neighbour index with its
    index_info.json), or one sentence saying why there is none."""
    try:
        require_hub(repo_id, "the dataset", "dataset")
    except HubUnreachableError as error:
        raise DataError(str(error)) from None
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=["*.parquet", "*.json"]))
    except (OSError, ValueError, HfHubHTTPError) as error:  # offline, not found, gated: all OSError or ValueError
        message = f"{repo_id}: not a local path, and the Hugging Face Hub could not load it ({first_sentence(error)})."
        raise DataError(message) from None


def read_table(source: str | os.PathLike, kind: str, cache_dir: str | None) -> Dataset:
    """The table from a local Parquet folder or the Hub, its columns checked."""
    files = [str(path) for path in table_files(source, kind)]
    if not files:
        raise DataError(f"{source}: holds no Parquet files, so it is not a LaMem table.")
    table = load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)
    absent = [name for name in TABLE_FEATURES if name not in table.column_names]
    if absent:
        raise DataError(f"{source}: not a LaMem table, missing column(s) {', '.join(absent)}.")
    return table


def table_provenance(files: list[Path]) -> dict | None:
    """What `save_table` recorded about the table's source, when every file carries the same record; else None."""
    records = {(pq.ParquetFile(path).metadata.metadata or {}).get(PROVENANCE_KEY) for path in files}
    if len(records) != 1 or None in records:
        return None
    try:
        record = json.loads(records.pop())
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def table_split_sizes(files: list[Path]) -> dict[int, dict[str, int]]:
    """Rows per split (train / validation / test) of every split index, read from the split columns alone."""
    columns = [f"split_{index}" for index in SPLIT_INDICES]
    try:
        table = pq.read_table([str(path) for path in files], columns=columns)
    except (OSError, ValueError, KeyError):  # not our table: a column is missing
        return {}
    return {
        index: {item["values"].as_py(): item["counts"].as_py() for item in pc.value_counts(table[f"split_{index}"])}
        for index in SPLIT_INDICES
    }


def split_table(table: Dataset, index: int) -> DatasetDict:
    """Split index `index` of the table: its rows per split in split-file order, with score_i as `score`."""
    frame = table.select_columns([f"split_{index}", f"order_{index}"]).to_pandas()
    splits = {}
    for name in SPLITS:
        rows = frame[frame[f"split_{index}"] == name].sort_values(f"order_{index}", kind="stable").index
        chosen = table.select(rows.to_numpy()).rename_column(f"score_{index}", "score")
        splits[name] = chosen.select_columns(list(FEATURES))
    return DatasetDict(splits)


def first_sentence(error: BaseException) -> str:
    """An exception's message up to its first full stop, to fit inside a one-sentence error."""
    return first_line(error).split(". ")[0].rstrip(".")
