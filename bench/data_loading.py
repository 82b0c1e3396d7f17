"""How fast LaMem gets from disk to the model: `load_lamem` at full scale, and images per second through a DataLoader.

Full scale uses the real split files (`../shared/data/lamem_splits`, 58,741 images × 5 split indices) and stand-in
images (hard links to one JPEG: loading only checks that the files exist). Throughput decodes and preprocesses
generated JPEGs of a realistic size (`memorability.sample_data`) through `prepare_for_model` + `collate_batch` in a
torch DataLoader, with and without training augmentation, at several worker counts.

    python bench/data_loading.py            # table on stdout, JSON in bench/results/data_loading.json

At num_workers=0 the images are preprocessed in the main process with torch's intra-op threads; on a machine busy
with other work those threads spin-wait against each other (OpenMP's active wait) and img/s can drop several-fold,
while DataLoader workers run one thread each. The JSON records the load average next to the numbers.
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from memorability.data import SPLIT_INDICES, lamem_to_table, load_lamem
from memorability.tables import save_table
from memorability.image_processing import make_image_processor
from memorability.sample_data import make_sample_data
from memorability.transforms import collate_batch, prepare_for_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--splits-dir",
        type=Path,
        default=PROJECT_ROOT.parent / "shared/data/lamem_splits",
        help="folder with the 15 official split files (default: ../shared/data/lamem_splits)",
    )
    parser.add_argument("--images", type=int, default=1024, help="generated images for the throughput runs")
    parser.add_argument("--image-size", type=int, default=256, help="side of the generated JPEGs, in pixels")
    parser.add_argument("--model-size", type=int, default=224, help="the processor's output size S (S×S)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader num_workers to try")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each measurement; the best is reported")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "bench/results/data_loading.json")
    return parser.parse_args()


def best_of(repeats: int, work) -> float:
    """The fastest of `repeats` runs, in seconds: the least disturbed by whatever else the machine does."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def stand_in_lamem(splits_dir: Path, root: Path) -> Path:
    """LaMem's layout with the real split files and every listed image a hard link to one tiny JPEG."""
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    for path in splits_dir.glob("*_[1-5].txt"):
        shutil.copy(path, root / "splits" / path.name)
    Image.new("RGB", (4, 4)).save(root / "stand_in.jpg")
    for image in listed_image_names(root / "splits"):
        os.link(root / "stand_in.jpg", root / "images" / image)
    return root


def listed_image_names(splits: Path) -> set[str]:
    """Every image file name that split index 1 lists (each index lists them all)."""
    return {line.split(" ")[0] for path in splits.glob("*_1.txt") for line in path.read_text().splitlines()}


def time_full_scale(splits_dir: Path, work: Path, repeats: int) -> dict[str, float]:
    root = stand_in_lamem(splits_dir, work / "lamem_full")
    started = time.perf_counter()
    save_table(lamem_to_table(root), work / "table")
    return {
        "load_lamem_one_index_s": best_of(repeats, lambda: load_lamem(root, split=1)),
        "load_lamem_all_five_s": best_of(repeats, lambda: [load_lamem(root, split=i) for i in SPLIT_INDICES]),
        "lamem_to_table_and_save_s": time.perf_counter() - started,
        "load_table_one_index_s": best_of(repeats, lambda: load_lamem(work / "table", split=1, cache_dir=work)),
    }


def images_per_second(dataset, batch_size: int, num_workers: int, repeats: int) -> float:
    """Best of `repeats` epochs, worker start-up included (a training epoch pays it too)."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_batch)
    return len(dataset) / best_of(repeats, lambda: [batch["pixel_values"] for batch in loader])


def time_throughput(args: argparse.Namespace, work: Path) -> list[dict]:
    root = make_sample_data(work / "sample", n=args.images, size=args.image_size, progress=False)
    split = load_lamem(root)["train"]
    processor = make_image_processor(args.model_size)
    prepare_for_model(split, processor, train=True)[0]  # warm-up: first calls into torchvision and the processor
    rows = []
    for train in (True, False):
        prepared = prepare_for_model(split, processor, train=train)
        for workers in args.workers:
            rate = images_per_second(prepared, args.batch_size, workers, args.repeats)
            rows.append({"mode": "train" if train else "eval", "num_workers": workers, "images_per_s": rate})
    return rows


def main() -> None:
    args = parse_args()
    if not (args.splits_dir / "train_1.txt").is_file():
        raise SystemExit(f"{args.splits_dir}: no LaMem split files there; pass --splits-dir.")
    with tempfile.TemporaryDirectory() as folder:
        full_scale = time_full_scale(args.splits_dir, Path(folder), args.repeats)
        throughput = time_throughput(args, Path(folder))
    print("58,741 images (stand-ins)")
    for name, seconds in full_scale.items():
        print(f"  {name:<28} {seconds:6.2f}")
    print(
        f"\n{'mode':<6} {'workers':>7} {'img/s':>8}   ({args.image_size}² JPEGs → {args.model_size}², "
        f"batch {args.batch_size}, {os.cpu_count()} CPUs)"
    )
    for row in throughput:
        print(f"{row['mode']:<6} {row['num_workers']:>7} {row['images_per_s']:>8.1f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    machine = {
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # other processes' load: it sways img/s, see the docstring
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    result = {"settings": settings, "machine": machine, "full_scale": full_scale, "throughput": throughput}
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
