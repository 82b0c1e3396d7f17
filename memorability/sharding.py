"""Batch scoring into one CSV that splits over processes and survives a kill.

The images are cut into chunks of `chunk_size` in input order; the processes take the unfinished chunks in turn and
write each one as a Parquet part (`OUT.parts/part-<chunk>-rank<rank>.parquet`) through a temporary file and a
rename, so a part on disk is always complete. A rerun of the same command skips the finished parts; then the first
process merges the parts into the CSV in input order. One process (plain `memorability predict`) takes the same path.
The part folder keeps a manifest of what it holds (inputs, model, precision, chunk size): parts of another run are
never mixed in.
"""

import csv
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from accelerate import Accelerator
from tqdm.auto import tqdm

from .errors import MemorabilityError
from .inference import MemorabilityPredictor, ScoredFile, consecutive_batches
from .scoring_inputs import ScoringInputs

CHUNK_SIZE = 1024
MANIFEST = "manifest.json"
PART_NAME = re.compile(r"part-(?P<chunk>\d{6})-rank(?P<rank>\d+)\.parquet")
PART_SCHEMA = pa.schema(
    [("index", pa.int64()), ("path", pa.string()), ("score", pa.float64()), ("error", pa.string())]
)
CSV_COLUMNS = ("path", "score", "error")


@dataclass(frozen=True)
class ScoringSummary:
    """What a run did, as the first process sees it after the merge (other processes get None)."""

    out: Path
    scored: int
    failed: int
    processes: int
    reused_parts: int
    total_parts: int
    computed: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        """Images read and scored by this run (reused parts left out) per second of wall time, merge included."""
        return self.computed / self.seconds if self.seconds > 0 else float("inf")


def parts_folder(out: Path) -> Path:
    """Where a run writes its parts: beside the CSV, named after it."""
    return out.with_name(out.name + ".parts")


def chunk_span(chunk: int, chunk_size: int, images: int) -> range:
    """The indices of the images in a chunk: chunk_size of them, fewer in the last chunk."""
    return range(chunk * chunk_size, min((chunk + 1) * chunk_size, images))


def part_path(folder: Path, chunk: int, rank: int) -> Path:
    return folder / f"part-{chunk:06d}-rank{rank}.parquet"


def run_fingerprint(inputs: ScoringInputs, predictor: MemorabilityPredictor, chunk_size: int) -> dict:
    """What the parts depend on: parts written under another fingerprint would give another CSV."""
    digest = hashlib.sha256("\n".join(inputs.names).encode()).hexdigest()
    return {
        "images": len(inputs),
        "names_sha256": digest,
        "model": str(predictor.model.name_or_path),
        "dtype": str(predictor.dtype),
        "chunk_size": chunk_size,
    }


def prepare_parts(folder: Path, fingerprint: dict) -> None:
    """(First process only.) Keep the parts of the same run, drop those of another and half-written files."""
    manifest = folder / MANIFEST
    if folder.is_dir() and manifest.is_file() and json.loads(manifest.read_text()) != fingerprint:
        print(f"{folder} holds parts of another run (other images, model or precision); starting afresh.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink()
    manifest.write_text(json.dumps(fingerprint, indent=2) + "\n")


def finished_chunks(folder: Path) -> dict[int, Path]:
    """Chunk number → its part file, for every complete part on disk (temporary files never match)."""
    found = {}
    for path in folder.iterdir():
        match = PART_NAME.fullmatch(path.name)
        if match:
            found[int(match["chunk"])] = path
    return found


def write_part(path: Path, start: int, rows: list[ScoredFile]) -> None:
    """A part appears whole or not at all: written to a hidden temporary file, then renamed."""
    table = pa.table(
        {
            "index": range(start, start + len(rows)),
            "path": [row.path for row in rows],
            "score": [row.score for row in rows],
            "error": [row.error for row in rows],
        },
        schema=PART_SCHEMA,
    )
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def score_chunks(
    predictor: MemorabilityPredictor,
    inputs: ScoringInputs,
    chunks: list[int],
    chunk_size: int,
    folder: Path,
    rank: int,
    num_workers: int,
    progress=None,
) -> None:
    """Score the given chunks in one DataLoader pass (batches never straddle chunks), writing each as it completes."""
    spans = [chunk_span(chunk, chunk_size, len(inputs)) for chunk in chunks]
    batches = [batch for span in spans for batch in consecutive_batches(span.start, span.stop, predictor.batch_size)]
    rows = predictor.score_images(inputs.sources, inputs.names, num_workers, progress, batches=batches)
    for chunk, span in zip(chunks, spans):
        write_part(part_path(folder, chunk, rank), span.start, list(islice(rows, len(span))))


def merged_rows(folder: Path, chunks: int) -> Iterator[dict]:
    """Every row of every part, in input order."""
    finished = finished_chunks(folder)
    missing = [chunk for chunk in range(chunks) if chunk not in finished]
    if missing:
        raise MemorabilityError(f"{folder}: part(s) {missing[:5]} missing after scoring; rerun the same command.")
    for chunk in range(chunks):
        yield from pq.read_table(finished[chunk]).to_pylist()


def write_csv(out: Path, rows: Iterator[dict]) -> tuple[int, int]:
    """The CSV (path, score, error), written through a temporary file; returns (scored, failed)."""
    counts = [0, 0]
    temporary = out.with_name(f".{out.name}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            counts[row["error"] is not None] += 1
            score = "" if row["score"] is None else f"{row['score']:.6f}"
            writer.writerow([row["path"], score, row["error"] or ""])
    os.replace(temporary, out)
    return counts[0], counts[1]


def score_to_csv(
    predictor: MemorabilityPredictor,
    inputs: ScoringInputs,
    out: str | os.PathLike,
    accelerator: Accelerator,
    num_workers: int = 0,
    chunk_size: int = CHUNK_SIZE,
    keep_parts: bool = False,
    progress: bool = True,
) -> ScoringSummary | None:
    """Score `inputs` into the CSV `out` over all of the accelerator's processes, resuming from finished parts.

    Every process calls this; the first returns the summary once the CSV is merged, the others return None.
    """
    started = time.perf_counter()
    out = Path(out)
    folder = parts_folder(out)
    chunks = -(-len(inputs) // chunk_size)
    if accelerator.is_main_process:
        out.parent.mkdir(parents=True, exist_ok=True)
        prepare_parts(folder, run_fingerprint(inputs, predictor, chunk_size))
    accelerator.wait_for_everyone()
    finished = finished_chunks(folder)
    accelerator.wait_for_everyone()  # every process has listed the same parts before any writes a new one
    pending = [chunk for chunk in range(chunks) if chunk not in finished]
    mine = pending[accelerator.process_index :: accelerator.num_processes]
    rank = accelerator.process_index
    label = "scoring" if accelerator.num_processes == 1 else f"scoring (rank {rank})"
    total = sum(len(chunk_span(chunk, chunk_size, len(inputs))) for chunk in mine)
    with tqdm(total=total, desc=label, unit="img", disable=not progress, position=rank) as bar:
        score_chunks(predictor, inputs, mine, chunk_size, folder, rank, num_workers, bar)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return None
    scored, failed = write_csv(out, merged_rows(folder, chunks))
    if not keep_parts:
        shutil.rmtree(folder)
    computed = len(inputs) - sum(len(chunk_span(chunk, chunk_size, len(inputs))) for chunk in finished)
    seconds = time.perf_counter() - started
    return ScoringSummary(out, scored, failed, accelerator.num_processes, len(finished), chunks, computed, seconds)
