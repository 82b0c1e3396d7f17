"""Batch scoring into one output (`memorability predict`'s CSV, or `train/embed.py`'s embeddings table) that splits
over processes and survives a kill.

The images are cut into chunks of `chunk_size` in input order; the processes take the unfinished chunks in turn and
write each one as a Parquet part (`OUT.parts/part-<chunk>-rank<rank>.parquet`) through a temporary file and a
rename, so a part on disk is always complete. A rerun of the same command skips the finished parts; then the first
process merges the parts into the output in input order. One process (plain `memorability predict`) takes the same
path. The part folder keeps a manifest of what its parts were computed from: the model's weights and processor (a
hash), the precision, test-time flip, whether embeddings are kept, the chunk size and a hash per chunk of its
images' names, sizes and modification times. A rerun keeps a part only where all of these match, so a replaced photo
or a model saved again into the same folder is scored afresh, never mixed in. The first process holds a lock on the
folder for the whole run.
"""

import csv
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from . import __version__
from .cache_paths import DEMO_NOTICE, is_demo_model
from .errors import MemorabilityError
from .fingerprint import chunk_fingerprints, model_fingerprint
from .batch_scoring import ScoredImage, consecutive_batches, score_images
from .inference import MODEL_ENV, MemorabilityPredictor
from .run_output import (
    LOCK, OutputError, atomic_file, hold_lock, leftover_temporaries, refuse_unsafe_output, spreadsheet_safe
)
from .scoring_inputs import ScoringInputs

CHUNK_SIZE = 1024
MANIFEST = "manifest.json"
# 1 named the model by its path; 2 had no uncertainty column; 3 no layout: parts of an earlier format are never reused.
MANIFEST_FORMAT = 4
RUN_KEYS = ("format", "model", "precision", "form", "flip", "embeddings", "chunk_size")  # any change: every part
PART_NAME = re.compile(r"part-(?P<chunk>\d{6})-rank(?P<rank>\d+)\.parquet")
PART_FIELDS = [
    ("index", pa.int64()),
    ("path", pa.string()),
    ("score", pa.float64()),
    ("uncertainty", pa.float64()),
    ("error", pa.string()),
]
EMBEDDING_FIELD = ("embedding", pa.list_(pa.float32()))


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
    """Where a run writes its parts: beside its output (the CSV or the table's folder), named after it."""
    return out.with_name(out.name + ".parts")


def chunk_span(chunk: int, chunk_size: int, images: int) -> range:
    """The indices of the images in a chunk: chunk_size of them, fewer in the last chunk."""
    return range(chunk * chunk_size, min((chunk + 1) * chunk_size, images))


def part_path(folder: Path, chunk: int, rank: int) -> Path:
    return folder / f"part-{chunk:06d}-rank{rank}.parquet"


def run_manifest(inputs: ScoringInputs, predictor: MemorabilityPredictor, chunk_size: int, embeddings: bool) -> dict:
    """What the parts depend on: the run (model, precision and layout, test-time flip, whether embeddings are kept,
    chunk size) and, chunk by chunk, the images."""
    return {
        "format": MANIFEST_FORMAT,
        "model": model_fingerprint(predictor),
        "precision": str(predictor.dtype),
        "form": predictor.form.label,
        "flip": predictor.flip,
        "embeddings": embeddings,
        "chunk_size": chunk_size,
        "chunks": chunk_fingerprints(inputs.names, inputs.files, chunk_size),
    }


def read_manifest(path: Path) -> tuple[dict | None, str | None]:
    """The manifest a part folder holds (None if there is none), and why it is unusable if it is damaged."""
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as error:
        return None, f"{path} cannot be read ({type(error).__name__})"
    if not (isinstance(manifest, dict) and isinstance(manifest.get("chunks"), list)):
        return None, f"{path} is not a manifest this version wrote"
    return manifest, None


def stale_chunks(folder: Path, manifest: dict, parts: set[int]) -> set[int]:
    """The chunks among `parts` whose part no longer matches `manifest`: all of them after another run, else those
    whose images changed. Says why on stdout, since the user sees work redone."""
    if not parts:
        return set()
    stored, damage = read_manifest(folder / MANIFEST)
    if stored is None:
        why = damage or f"{folder} holds parts but no manifest"
        print(f"{why}; its parts belong to an unknown run, so scoring starts afresh.")
        return parts
    if any(stored.get(key) != manifest[key] for key in RUN_KEYS):
        print(f"{folder} holds parts of another run (model, precision, flip, columns or chunk size); starting afresh.")
        return parts
    old, new = stored["chunks"], manifest["chunks"]
    stale = {chunk for chunk in parts if chunk >= min(len(old), len(new)) or old[chunk] != new[chunk]}
    if stale:
        print(f"{len(stale)} of {len(parts)} parts hold images that changed since they were scored; scoring again.")
    return stale


def prepare_parts(folder: Path, manifest: dict) -> None:
    """(First process only, holding the lock.) Keep the parts that match `manifest`, delete the others and any
    temporary file a killed run left, then record `manifest` (atomically: a kill never leaves half of one)."""
    parts = part_files(folder)
    stale = stale_chunks(folder, manifest, {chunk for chunk, _ in parts})
    for path in [path for chunk, path in parts if chunk in stale] + leftover_temporaries(folder):
        path.unlink()
    with atomic_file(folder / MANIFEST) as handle:
        json.dump(manifest, handle)


def part_files(folder: Path) -> list[tuple[int, Path]]:
    """(chunk number, part file) for every complete part on disk (temporary files never match)."""
    matches = ((PART_NAME.fullmatch(path.name), path) for path in sorted(folder.iterdir()))
    return [(int(match["chunk"]), path) for match, path in matches if match]


def finished_chunks(folder: Path) -> dict[int, Path]:
    """Chunk number → its part file."""
    return dict(part_files(folder))


def remove_parts(folder: Path) -> None:
    """Delete what a run put in its part folder, and the folder if that empties it; anything else stays."""
    for _, path in part_files(folder):
        path.unlink()
    for name in (MANIFEST, LOCK):
        (folder / name).unlink(missing_ok=True)
    if not any(folder.iterdir()):
        with suppress(OSError):  # a second run has just begun in it
            folder.rmdir()


def write_part(path: Path, start: int, rows: list[ScoredImage], embeddings: bool) -> None:
    """A part appears whole or not at all (`atomic_file`)."""
    columns = {
        "index": range(start, start + len(rows)),
        "path": [row.name for row in rows],
        "score": [row.score for row in rows],
        "uncertainty": [row.uncertainty for row in rows],
        "error": [row.error for row in rows],
    }
    fields = PART_FIELDS
    if embeddings:
        columns["embedding"] = [None if row.embedding is None else row.embedding.tolist() for row in rows]
        fields = [*PART_FIELDS, EMBEDDING_FIELD]
    with atomic_file(path, binary=True) as handle:
        pq.write_table(pa.table(columns, schema=pa.schema(fields)), handle)


def score_chunks(
    predictor: MemorabilityPredictor,
    inputs: ScoringInputs,
    chunks: list[int],
    chunk_size: int,
    folder: Path,
    rank: int,
    num_workers: int,
    progress=None,
    embeddings: bool = False,
) -> None:
    """Score the given chunks in one DataLoader pass (batches never straddle chunks), writing each as it completes."""
    spans = [chunk_span(chunk, chunk_size, len(inputs)) for chunk in chunks]
    batches = [batch for span in spans for batch in consecutive_batches(span.start, span.stop, predictor.batch_size)]
    rows = score_images(predictor, inputs.sources, inputs.names, batches, num_workers, progress, embeddings=embeddings)
    for chunk, span in zip(chunks, spans):
        write_part(part_path(folder, chunk, rank), span.start, list(islice(rows, len(span))), embeddings)


def merged_rows(folder: Path, chunks: int) -> Iterator[dict]:
    """Every row of every part, in input order."""
    finished = finished_chunks(folder)
    missing = [chunk for chunk in range(chunks) if chunk not in finished]
    if missing:
        raise MemorabilityError(f"{folder}: part(s) {missing[:5]} missing after scoring; rerun the same command.")
    for chunk in range(chunks):
        yield from pq.read_table(finished[chunk]).to_pylist()


def write_csv(out: Path, rows: Iterator[dict], uncertainty: bool) -> tuple[int, int]:
    """The CSV (path, score, [uncertainty,] error), written whole or not at all (`atomic_file`); returns (scored,
    failed). The uncertainty column is there for a model of several heads: one head's spread is always 0. Text that
    a spreadsheet would run as a formula is escaped (`spreadsheet_safe`)."""
    columns = ["path", "score", "uncertainty", "error"] if uncertainty else ["path", "score", "error"]
    counts = [0, 0]
    with atomic_file(out) as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            counts[row["error"] is not None] += 1
            numbers = ("" if row[key] is None else f"{row[key]:.6f}" for key in columns[1:-1])
            writer.writerow([spreadsheet_safe(row["path"]), *numbers, spreadsheet_safe(row["error"] or "")])
    return counts[0], counts[1]


@dataclass(frozen=True)
class RunOptions:
    """How a run in parts goes: decoding processes per scoring process, images per part, whether the parts stay
    after the output is written, and whether a progress bar shows."""

    num_workers: int = 0
    chunk_size: int = CHUNK_SIZE
    keep_parts: bool = False
    progress: bool = True


def score_in_parts(
    predictor: MemorabilityPredictor,
    inputs: ScoringInputs,
    out: Path,
    accelerator: Accelerator,
    write: Callable[[Path, Iterator[dict]], tuple[int, int]],
    refuse: Callable[[Path], None],
    options: RunOptions = RunOptions(),
    embeddings: bool = False,
) -> ScoringSummary | None:
    """Score `inputs` over all of the accelerator's processes into parts (resuming from finished ones), then have
    the first process `write(out, rows in input order)` the output, which returns (scored, failed).

    Every process calls this; the first returns the summary, the others None. `refuse(out)` raises `OutputError`
    for an output of the wrong kind; an output that would replace or delete an input, or one another run is writing,
    is refused too, in every process at once.
    """
    chunk_size, num_workers = options.chunk_size, options.num_workers
    started = time.perf_counter()
    folder = parts_folder(out)
    chunks = -(-len(inputs) // chunk_size)
    with ExitStack() as lock:
        refusal = None
        if accelerator.is_main_process:
            try:
                refuse(out)
                refuse_unsafe_output(out, folder, inputs.files + inputs.listings)
                lock.enter_context(hold_lock(folder))
                prepare_parts(folder, run_manifest(inputs, predictor, chunk_size, embeddings))
                for leftover in leftover_temporaries(out.parent, out.name):
                    leftover.unlink()
            except MemorabilityError as error:
                refusal = error
            except OSError as error:  # unwritable, full or vanished: still one sentence, and no rank left waiting
                refusal = OutputError(f"{folder}: cannot prepare the output there ({error.strerror or error}).")
        refusal = broadcast_object_list([refusal])[0]  # the other processes wait here, then stop with the first
        if refusal is not None:
            raise refusal
        finished = finished_chunks(folder)
        accelerator.wait_for_everyone()  # every process has listed the same parts before any writes a new one
        pending = [chunk for chunk in range(chunks) if chunk not in finished]
        mine = pending[accelerator.process_index :: accelerator.num_processes]
        rank = accelerator.process_index
        label = "scoring" if accelerator.num_processes == 1 else f"scoring (rank {rank})"
        total = sum(len(chunk_span(chunk, chunk_size, len(inputs))) for chunk in mine)
        with tqdm(total=total, desc=label, unit="img", disable=not options.progress, position=rank) as bar:
            score_chunks(predictor, inputs, mine, chunk_size, folder, rank, num_workers, bar, embeddings)
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return None
        scored, failed = write(out, merged_rows(folder, chunks))
        if not options.keep_parts:
            remove_parts(folder)
    computed = len(inputs) - sum(len(chunk_span(chunk, chunk_size, len(inputs))) for chunk in finished)
    seconds = time.perf_counter() - started
    return ScoringSummary(out, scored, failed, accelerator.num_processes, len(finished), chunks, computed, seconds)


def refuse_a_folder(out: Path) -> None:
    if out.is_dir():
        raise OutputError(f"The output {out} is a folder; name a CSV file to write the scores to.")


def score_to_csv(
    predictor: MemorabilityPredictor,
    inputs: ScoringInputs,
    out: str | os.PathLike,
    accelerator: Accelerator,
    num_workers: int = 0,
    chunk_size: int = CHUNK_SIZE,
    keep_parts: bool = False,
    progress: bool = True,
    model_argument: str | None = None,
) -> ScoringSummary | None:
    """Score `inputs` into the CSV `out` (`score_in_parts`): path, score, error, and an uncertainty column for a
    model of several heads; then its run record beside it (`run_record_path`): which model, in which form, scored
    how many images. `model_argument`: the model as the user named it (None: it was not named)."""
    ensemble = predictor.model.config.num_heads > 1
    options = RunOptions(num_workers, chunk_size, keep_parts, progress)
    write = partial(write_csv, uncertainty=ensemble)
    summary = score_in_parts(predictor, inputs, Path(out), accelerator, write, refuse_a_folder, options)
    if summary is not None:
        with atomic_file(run_record_path(summary.out)) as handle:
            json.dump(run_record(predictor, model_argument, summary), handle, indent=2)
    return summary


def run_record_path(out: Path) -> Path:
    """Where a CSV's run record goes: `scores.csv` → `scores.run.json`."""
    return out.with_name(out.stem + ".run.json")


def run_record(predictor: MemorabilityPredictor, model_argument: str | None, summary: ScoringSummary) -> dict:
    """How a CSV was made: the model as named (or the demo model it fell back to, said so), its fingerprint, the form
    of the network that scored, and the counts."""
    demo = is_demo_model(predictor.model.name_or_path)
    return {
        "memorability": __version__,
        "model": model_argument or ("the demo model" if demo else "$" + MODEL_ENV),
        "demo_model": demo,
        **({"demo_notice": DEMO_NOTICE.strip()} if demo else {}),
        "model_fingerprint": model_fingerprint(predictor),
        "precision": predictor.form.label,
        "flip": predictor.flip,
        "images": summary.scored + summary.failed,
        "scored": summary.scored,
        "failed": summary.failed,
        "processes": summary.processes,
    }
