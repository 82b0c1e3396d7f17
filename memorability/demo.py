"""The demo model: a tiny model trained for a minute on generated sample data, so the app runs on any machine.

No trained memorability model is published yet and these machines cannot download one. The demo model's scores
mean nothing about real photos; every place that serves it says so (`memorability.cache_paths.is_demo_model`).
"""

import os
import shutil
import tempfile
from pathlib import Path

from datasets import concatenate_datasets

from .cache_paths import DEMO_MARKER, DEMO_NOTICE, demo_index_dir, demo_model_dir, sample_data_dir
from .data import load_lamem
from .inference import load_predictor
from .neighbours import build_neighbour_index
from .quantization import QuantizationError, quantize_model
from .run_output import check_writable
from .sample_data import make_sample_data
from .training import BEST_DIR, train
from .training_args import TrainingArguments


def sample_training_arguments(
    data: str | os.PathLike, output_dir: str | os.PathLike, epochs: int, seed: int = 0
) -> TrainingArguments:
    """The recipe that learns the sample data's rule from scratch in about a minute on a CPU: a tiny ResNet at 64 px.
    The demo model, the tests' trained model and bench/learnability.py all use it."""
    return TrainingArguments(
        data=str(data),
        output_dir=str(output_dir),
        overwrite=True,
        backbone="tiny",
        backbone_weights="none",
        image_size=64,
        epochs=epochs,
        batch_size=32,
        learning_rate=3e-3,
        backbone_learning_rate=3e-3,
        head_dropout=0.1,
        mixed_precision="no",
        num_workers=0,
        report_to="none",
        save_steps=100_000,
        seed=seed,
    )


def build_demo_model(out_dir: str | os.PathLike | None = None, force: bool = False, epochs: int = 6) -> Path:
    """Train the demo model on cached sample data (built if absent) and save it to `out_dir` (default: the cache)."""
    target = Path(out_dir) if out_dir is not None else demo_model_dir()
    if (target / "config.json").is_file() and not force:
        return target
    check_writable(target, replaced=True)
    data = sample_data_dir()
    if not (data / "splits" / "test_1.txt").is_file():
        make_sample_data(data, n=1000, seed=0)
    with tempfile.TemporaryDirectory() as run_dir:
        arguments = sample_training_arguments(data, run_dir, epochs)
        train(arguments)
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(Path(run_dir) / BEST_DIR, staging)
        try:  # its int8 file (about 2 s), for the Batch tab and `memorability predict`, where it keeps the ranking
            quantize_model(staging)
        except QuantizationError as error:
            print(f"The demo model scores in bf16/fp32 only: {error}")
        (staging / DEMO_MARKER).write_text(DEMO_NOTICE)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # atomic: a half-built demo model is never picked up
    return target


def build_demo_index(
    model_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None, force: bool = False
) -> Path:
    """A neighbour index of every sample image under the demo model (built if absent), for the app's galleries."""
    target = Path(out_dir) if out_dir is not None else demo_index_dir()
    if (target / "index_info.json").is_file() and not force:
        return target
    model = Path(model_dir) if model_dir is not None else build_demo_model()
    splits = load_lamem(sample_data_dir(), split=1)
    images = concatenate_datasets([splits[name] for name in ("train", "validation", "test")])
    index = build_neighbour_index(
        load_predictor(model), images, data_name="generated sample data", model_name="demo model"
    )
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    index.save(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
