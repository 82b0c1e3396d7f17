"""Scale: 100,000 images through sharded `memorability predict` under `accelerate launch` with 2 CPU processes.

Tiny images (32×32 JPEGs: 1,024 distinct ones, the rest hard links to them, so that writing the folder takes seconds)
and the tiny preset model at 32 px: this measures the machinery around the model (listing, decoding in workers,
sharding, Parquet parts, the merge into one CSV in input order), not ResNet50 (bench/end_to_end.py does that).
One process is measured too, for reference; each run's CSV is checked (row count, order, no errors).

    python bench/scale_100k.py [--images 100000] [--processes 2 1] [--num-workers 1] [--quiet-wait 120]
"""

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from machine import WorkerFailed, predict_parser, save_result, timed_predict

from memorability.presets import save_untrained_model

DISTINCT = 1024
SIDE = 32


def write_images(folder: Path, count: int) -> list[str]:
    """`count` JPEG paths, in the order `memorability predict` lists them."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"{index:06d}.jpg" for index in range(count)]
    for index, name in enumerate(names):
        if index < DISTINCT:
            Image.fromarray(rng.integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)).save(folder / name, quality=90)
        else:
            os.link(folder / names[index % DISTINCT], folder / name)
    return [str(folder / name) for name in names]


def time_run(images: Path, model: Path, out: Path, processes: int, num_workers: int, quiet_wait: float) -> dict:
    """Wall seconds of one sharded run (launcher and Python start included), and how busy the machine was."""
    seconds, _, others_share = timed_predict(images, model, out, processes, num_workers, quiet_wait)
    return {"wall_s": seconds, "others_cpu_share": others_share}


def check_csv(out: Path, expected: list[str]) -> None:
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if [row["path"] for row in rows] != expected or any(row["error"] for row in rows):
        raise SystemExit(f"{out}: the CSV does not list every image once, in order, without errors.")


def main(argv: list[str] | None = None) -> int:
    parser = predict_parser(__doc__, 100_000, [2, 1], "process counts to run")
    parser.add_argument("--num-workers", type=int, default=1, help="decoding workers per process (the CLI default: 1)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        started = time.perf_counter()
        expected = write_images(work / "images", args.images)
        print(f"wrote {args.images:,} images in {time.perf_counter() - started:.0f} s")
        save_untrained_model(work / "model", "tiny", SIDE)
        for processes in args.processes:
            out = work / f"scores_{processes}.csv"
            try:
                timing = time_run(work / "images", work / "model", out, processes, args.num_workers, args.quiet_wait)
            except WorkerFailed as error:
                rows.append({"processes": processes, "error": str(error)})
                continue
            check_csv(out, expected)
            rows.append({"processes": processes, **timing, "images_per_s": args.images / timing["wall_s"]})
    print(f"\n{args.images:,} images of {SIDE}×{SIDE}, tiny model, {args.num_workers} decoding workers per process")
    print(f"{'processes':>9} {'wall s':>8} {'img/s':>8} {'others':>7}")
    for row in rows:
        if "error" in row:
            print(f"{row['processes']:9d} failed: {row['error'].splitlines()[-1]}")
        else:
            share = row["others_cpu_share"]
            print(f"{row['processes']:9d} {row['wall_s']:8.1f} {row['images_per_s']:8.0f} {share:7.0%}")
    print(f"wrote {save_result('scale_100k', {'settings': vars(args), 'rows': rows})}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
