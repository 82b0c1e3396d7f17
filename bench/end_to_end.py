"""End to end: JPEG files on disk → `memorability predict` → CSV, decoding and preprocessing included.

The JPEGs are LaMem-sized (500×375 or 375×500, quality 90, about 40–60 kB), cut from the real photographs that ship
with scikit-image so that decoding costs what a photo costs. The model is ResNet50 at 224 px (random weights: speed
does not depend on them), run with the CLI's defaults but for --num-workers, which this benchmark varies to choose
that default. Each run is a fresh `memorability predict` process; "scoring img/s" is what the command reports (model
loaded, images listed), "command img/s" divides by the whole command's wall time (Python start included).

    python bench/end_to_end.py [--images 1024] [--workers 0 1 2] [--processes 1 2] [--repeats 1] [--quiet-wait 120]
"""

import re
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance
from skimage import data as photographs

from machine import WorkerFailed, predict_parser, save_result, timed_predict

from memorability.presets import save_untrained_model

GOAL_IMAGES_PER_S = 60.0
SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
LAMEM_SIZE = (500, 375)
REPORTED_RATE = re.compile(r"\((?P<rate>[\d.]+) img/s")


def write_photos(folder: Path, count: int, seed: int = 0) -> int:
    """`count` distinct JPEGs: random 4:3 crops of the sample photographs, scaled, brightened, some portrait.

    Returns the total size in bytes."""
    rng = np.random.default_rng(seed)
    sources = [Image.fromarray(getattr(photographs, name)()).convert("RGB") for name in SOURCES]
    folder.mkdir(parents=True)
    for index in range(count):
        source = sources[index % len(sources)]
        size = LAMEM_SIZE if rng.random() < 0.75 else LAMEM_SIZE[::-1]
        scale = rng.uniform(0.6, 1.0) * min(source.width / size[0], source.height / size[1])
        width, height = int(size[0] * scale), int(size[1] * scale)
        left, top = rng.integers(0, source.width - width + 1), rng.integers(0, source.height - height + 1)
        picture = source.crop((left, top, left + width, top + height)).resize(size, Image.BICUBIC)
        picture = ImageEnhance.Brightness(picture).enhance(float(rng.uniform(0.8, 1.2)))
        picture.save(folder / f"{index:06d}.jpg", quality=90)
    return sum(path.stat().st_size for path in folder.iterdir())


def time_predict(photos: Path, model: Path, out: Path, processes: int, workers: int, quiet_wait: float) -> dict:
    """One `memorability predict` run: wall seconds and the throughput it reports."""
    seconds, output, others_share = timed_predict(photos, model, out, processes, workers, quiet_wait)
    rate = float(REPORTED_RATE.search(output)["rate"])
    return {"wall_s": seconds, "scoring_images_per_s": rate, "others_cpu_share": others_share}


def main(argv: list[str] | None = None) -> int:
    parser = predict_parser(__doc__, 1024, [1, 2], "process counts (2: accelerate launch, 1 thread each)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="--num-workers values to try")
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting; the fastest is reported")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        total_bytes = write_photos(work / "photos", args.images)
        save_untrained_model(work / "model")
        for processes in args.processes:
            for workers in args.workers:
                setting = {"processes": processes, "num_workers": workers}
                try:
                    paths = (work / "photos", work / "model", work / "scores.csv")
                    runs = [time_predict(*paths, processes, workers, args.quiet_wait) for _ in range(args.repeats)]
                except WorkerFailed as error:
                    rows.append(setting | {"error": str(error)})
                    continue
                fastest = max(runs, key=lambda run: run["scoring_images_per_s"])
                rows.append(setting | fastest | {"command_images_per_s": args.images / fastest["wall_s"]})
    measured = [row for row in rows if "error" not in row]
    best = max(measured, key=lambda row: row["scoring_images_per_s"]) if measured else None
    print(
        f"memorability predict, {args.images} JPEGs of {LAMEM_SIZE[0]}×{LAMEM_SIZE[1]} "
        f"({total_bytes / args.images / 1000:.0f} kB on average), ResNet50 224 px, CLI defaults"
    )
    print(f"{'processes':>9} {'workers':>7} {'scoring img/s':>14} {'command img/s':>14} {'wall s':>7} {'others':>7}")
    for row in rows:
        head = f"{row['processes']:9d} {row['num_workers']:7d}"
        if "error" in row:
            print(f"{head} failed: {row['error'].splitlines()[-1]}")
        else:
            print(
                f"{head} {row['scoring_images_per_s']:14.1f} "
                f"{row['command_images_per_s']:14.1f} {row['wall_s']:7.1f} {row['others_cpu_share']:7.0%}"
            )
    print("(others: the CPU share other processes used during the run)")
    summary = {"goal_images_per_s": GOAL_IMAGES_PER_S}
    if best:
        summary |= {
            "fastest": {"processes": best["processes"], "num_workers": best["num_workers"]},
            "goal_met": best["scoring_images_per_s"] >= GOAL_IMAGES_PER_S,
        }
        print(
            f"\nfastest: {best['processes']} process(es), --num-workers {best['num_workers']} "
            f"(goal ≥ {GOAL_IMAGES_PER_S:.0f} img/s: {'met' if summary['goal_met'] else 'NOT met'})"
        )
    result = {"settings": vars(args), "average_jpeg_bytes": total_bytes / args.images, "rows": rows, "summary": summary}
    print(f"wrote {save_result('end_to_end', result)}")
    return 1 if len(measured) < len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
