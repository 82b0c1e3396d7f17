"""Neighbour query latency: our fp16 search with exact fp32 re-ranking vs faiss' flat inner-product index.

Random unit vectors (--dim, 2048 as ResNet50's embeddings) at each of --rows sizes; queries are other random unit
vectors, so the time is the search alone: computing the query's embedding (a model forward pass) is EXCLUDED.
Memory is kept in check: the fp32 rows live in a memory-mapped file (our re-ranking reads only its candidates'
rows), our fp16 copy (N × D × 2 bytes: 4 GB at 1M × 2048) is freed before faiss builds its own fp32 copy (8 GB).

    python bench/neighbours.py                       # 60k and 1M rows; table on stdout, JSON in bench/results/
    python bench/neighbours.py --rows 60000          # the quick one
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from memorability.neighbours import CosineSearch, unit_rows
from machine import save_result

CHUNK_ROWS = 65_536


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[60_000, 1_000_000], help="index sizes to time")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=30, help="timed queries per contender (after 3 warm-ups)")
    parser.add_argument("--tmp-dir", help="where the memory-mapped fp32 rows go (N × D × 4 bytes; default: $TMPDIR)")
    return parser.parse_args()


def random_unit_rows(path: Path, rows: int, dim: int, seed: int = 0) -> np.memmap:
    """N random unit vectors written chunk by chunk into a float32 memmap: never N × D in RAM at once."""
    stored = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    rng = np.random.default_rng(seed)
    for start in range(0, rows, CHUNK_ROWS):
        count = min(CHUNK_ROWS, rows - start)
        stored[start : start + count] = unit_rows(rng.standard_normal((count, dim), dtype=np.float32))
    stored.flush()
    return stored


def latencies_ms(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[np.ndarray, list]:
    """Milliseconds per query (one query at a time, as a web app asks), and the ids each query returned."""
    for query in queries[:3]:
        search(query)
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(search(query))
        times.append(1000 * (time.perf_counter() - started))
    return np.array(times), results


def summary(times: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "min_ms": float(times.min()),
    }


def time_ours(rows: np.memmap, queries: np.ndarray, k: int) -> tuple[dict, list]:
    started = time.perf_counter()
    search = CosineSearch(rows)
    build_s = time.perf_counter() - started
    times, results = latencies_ms(lambda query: search.search(query, k)[0], queries)
    return summary(times) | {"build_s": build_s}, results


def time_faiss(rows: np.memmap, queries: np.ndarray, k: int) -> tuple[dict, list] | None:
    try:
        import faiss
    except ImportError:
        return None
    started = time.perf_counter()
    index = faiss.IndexFlatIP(rows.shape[1])
    for start in range(0, len(rows), CHUNK_ROWS):
        index.add(np.ascontiguousarray(rows[start : start + CHUNK_ROWS]))
    build_s = time.perf_counter() - started
    times, results = latencies_ms(lambda query: index.search(query[None], k)[1][0], queries)
    return summary(times) | {"build_s": build_s, "threads": faiss.omp_get_max_threads()}, results


def exact_ids(rows: np.memmap, query: np.ndarray, k: int) -> np.ndarray:
    """The fp32 brute-force answer, chunk by chunk."""
    chunks = range(0, len(rows), CHUNK_ROWS)
    similarities = np.concatenate([rows[start : start + CHUNK_ROWS] @ query for start in chunks])
    return np.argsort(-similarities, kind="stable")[:k]


def run_size(count: int, args: argparse.Namespace, folder: Path) -> dict:
    rows = random_unit_rows(folder / f"rows_{count}.npy", count, args.dim)
    queries = unit_rows(np.random.default_rng(1).standard_normal((args.queries, args.dim), dtype=np.float32))
    ours, our_ids = time_ours(rows, queries, args.k)
    checked = min(5, len(queries))
    row = {
        "rows": count,
        "ours": ours,
        "ours_equal_fp32_brute_force": sum(
            np.array_equal(our_ids[i], exact_ids(rows, queries[i], args.k)) for i in range(checked)
        ),
        "checked_queries": checked,
    }
    faiss_result = time_faiss(rows, queries, args.k)
    if faiss_result is not None:
        row["faiss_flat_ip"], faiss_ids = faiss_result
        row["same_ids_as_faiss"] = sum(np.array_equal(a, b) for a, b in zip(our_ids, faiss_ids))
    del rows
    (folder / f"rows_{count}.npy").unlink()
    return row


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as folder:
        results = [run_size(count, args, Path(folder)) for count in args.rows]
    print(
        f"Top-{args.k} cosine query latency, {args.dim}-d random unit vectors, one query at a time, "
        f"{torch.get_num_threads()} torch threads.\nThe query's own embedding (a model forward pass) is EXCLUDED.\n"
    )
    print(f"{'rows':>10} {'ours median':>12} {'ours p90':>9} {'faiss median':>13} {'faiss p90':>10} {'= fp32':>7}")
    for row in results:
        faiss_row = row.get("faiss_flat_ip")
        faiss_cells = f"{'-':>13} {'-':>10}"
        if faiss_row:
            faiss_cells = f"{faiss_row['median_ms']:>13.1f} {faiss_row['p90_ms']:>10.1f}"
        print(
            f"{row['rows']:>10,} {row['ours']['median_ms']:>12.1f} {row['ours']['p90_ms']:>9.1f} {faiss_cells} "
            f"{row['ours_equal_fp32_brute_force']:>3}/{row['checked_queries']}"
        )
    print("(ms; '= fp32': queries whose top-k equals an fp32 numpy brute force, ids and order)")
    path = save_result("neighbours", {"settings": vars(args), "rows": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
