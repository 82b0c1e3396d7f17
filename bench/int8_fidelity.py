"""int8 against fp32, for the demo model and for a ResNet50 trained on sample data by this bench's recipe: does int8
keep the ranking?

The demo model is `memorability demo-model`'s (built into the cache if absent; a copy is quantized, the cache is left
as it is). The ResNet50 recipe: the demo model's (memorability.demo.sample_training_arguments) with the resnet50
preset from scratch (no ImageNet weights on these machines) at 96 px, bf16, on 1,200 generated sample images for 4
epochs: a minute or two on a 2-core CPU. Then `memorability quantize` with its default calibration (the photographs shipped with scikit-image,
matplotlib and scikit-learn, whole and in crops; a third of the photos held out; the stem goes to fp32 where the
whole network in int8 misses the thresholds), and int8 against fp32 through the
predictors themselves (`load_predictor(precision="int8")` against precision "fp32"), on:
  photos     the held-out photographs and their crops (never calibrated on);
  generated  the sample data's test pictures (generated, never calibrated on).
Goals, each model and set: Spearman ρ ≥ 0.99 and p99 |Δscore| ≤ 0.01; embeddings' cosine and the neighbour top-10
overlap are reported. The exit status is 1 when a goal is missed.

    python bench/int8_fidelity.py [--n 1200] [--epochs 4] [--model DIR]   # --model: DIR instead of the ResNet50
"""

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import save_result

from memorability.calibration import photo_set
from memorability.data import load_lamem
from memorability.demo import build_demo_model, sample_training_arguments
from memorability.inference import load_predictor
from memorability.quantization import in_batches, measure_fidelity, quantize_model
from memorability.runtime import tune_allocator
from memorability.sample_data import make_sample_data
from memorability.training import BEST_DIR, train

IMAGE_SIZE = 96


def train_resnet50(data: Path, run: Path, epochs: int) -> float:
    """The bench recipe; returns the minutes it took."""
    arguments = dataclasses.replace(
        sample_training_arguments(data, run, epochs),
        backbone="resnet50",
        image_size=IMAGE_SIZE,
        mixed_precision="bf16",
        learning_rate=1e-3,
        backbone_learning_rate=1e-3,
    )
    started = time.perf_counter()
    train(arguments)
    return (time.perf_counter() - started) / 60


def fidelity_on(fp32, int8, pictures: list, name: str) -> dict:
    """int8 against fp32 on `pictures`, through the two predictors."""
    pixels = fp32.preprocess(pictures)
    reference, candidate = (in_batches(predictor.forward, pixels, predictor.batch_size) for predictor in (fp32, int8))
    fidelity = measure_fidelity(reference, candidate)
    print(f"{name:10} {fidelity.summary()}: {'met' if fidelity.meets_thresholds else 'NOT met'}")
    return dataclasses.asdict(fidelity) | {"meets_thresholds": fidelity.meets_thresholds}


def judge(model: Path, photos, generated: list) -> dict:
    """Quantize `model` (lossy files kept: judged here) and compare int8 with fp32 on both sets."""
    started = time.perf_counter()
    record = quantize_model(model, allow_lossy=True)
    seconds = time.perf_counter() - started
    _, held_out = photos.split()
    fp32, int8 = load_predictor(model, "cpu", "fp32"), load_predictor(model, precision="int8")
    return {
        "quantize_seconds": seconds,
        "build_record": {key: record[key] for key in ("settings", "fidelity", "meets_thresholds")},
        "sets": {
            "photos": fidelity_on(fp32, int8, [photos.pictures[index] for index in held_out], "photos"),
            "generated": fidelity_on(fp32, int8, generated, "generated"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1200, help="sample images to train on (default 1200)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--model", type=Path, help="a trained model folder instead of training the ResNet50 (a copy is quantized)"
    )
    parser.add_argument(
        "--work", type=Path, help="keep the sample data and the trained model here (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    tune_allocator()
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        data = make_sample_data(work / "sample", n=args.n, seed=0, size=IMAGE_SIZE, progress=False)
        generated = list(load_lamem(data, split=1)["test"]["image"])
        minutes = None
        if args.model is None:
            minutes = train_resnet50(data, work / "run", args.epochs)
            trained = work / "run" / BEST_DIR
        else:
            trained = shutil.copytree(args.model, work / "model", dirs_exist_ok=True)
        demo = shutil.copytree(build_demo_model(), work / "demo", dirs_exist_ok=True)
        photos = photo_set()
        models = {}
        for name, folder in (("demo", demo), ("resnet50", trained)):
            print(f"--- {name}: {folder}", flush=True)
            models[name] = judge(Path(folder), photos, generated)
    models["resnet50"]["model"] = (f"ResNet50 from scratch, {IMAGE_SIZE} px, {args.epochs} epochs on {args.n} sample "
                                   "images" if args.model is None else str(args.model))  # fmt: skip
    models["resnet50"]["train_minutes"] = minutes
    models["demo"]["model"] = "the demo model (memorability demo-model: a tiny ResNet, 64 px, generated data)"
    print(f"wrote {save_result('int8_fidelity', models)}")
    met = [row["meets_thresholds"] for model in models.values() for row in model["sets"].values()]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
