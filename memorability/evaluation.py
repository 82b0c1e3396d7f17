"""LaMem's evaluation protocol: test_i scored with split i's human scores, i = 1..5, reported as mean ± sd.

On other data (a CSV of scored photos) the protocol is its one test split. Every result names the data it came
from, and whether that data is LaMem at all: generated sample data in LaMem's format is never reported as LaMem.
"""

import json
import os
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import (
    SPLIT_INDICES,
    detect_source,
    load_lamem,
    split_file,
    table_files,
    table_provenance,
    table_split_sizes,
)
from .distributed import make_accelerator
from .inference import load_model
from .metrics import regression_metrics, summarize
from .transforms import collate_batch, prepare_for_model

LAMEM_SPLIT_SIZES = {"train": 45_000, "validation": 3_741, "test": 10_000}  # per split index, for all five
SAMPLE_DATA_MARKER = "clean_scores.csv"
RESULTS_FILE = "eval_results.json"
PRECISION_TO_MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def describe_data(source: str | os.PathLike) -> dict[str, object]:
    """What the data is, for every figure measured on it: a name, its kind, and whether it is real LaMem.

    A folder is LaMem when its fifteen split files have LaMem's sizes and it is not our generated sample data. A
    Parquet table (local or on the Hub) is LaMem only when its own files say so (`save_table` records the verdict on
    the folder `push_dataset` built it from) and its split columns still have LaMem's sizes: any other table, such as
    generated data saved as one, is named for what is known of it, a Parquet table.
    """
    kind = detect_source(source)
    path = Path(source)
    if kind == "official" and (path / SAMPLE_DATA_MARKER).is_file():
        return {"name": f"generated sample data ({path.name})", "kind": "sample", "is_lamem": False}
    if kind == "official":
        real_sizes = all(
            sum(1 for _ in split_file(path, role, index).open()) == size
            for role, size in LAMEM_SPLIT_SIZES.items()
            for index in SPLIT_INDICES
        )
        if real_sizes:
            return {"name": "LaMem", "kind": kind, "is_lamem": True}
        return {"name": f"LaMem-format folder ({path.name})", "kind": kind, "is_lamem": False}
    if kind == "csv":
        return {"name": f"scored photos ({path.name})", "kind": kind, "is_lamem": False}
    files = table_files(source, kind)
    said_lamem = (table_provenance(files) or {}).get("is_lamem") is True
    if said_lamem and table_split_sizes(files) == dict.fromkeys(SPLIT_INDICES, LAMEM_SPLIT_SIZES):
        return {"name": "LaMem", "kind": kind, "is_lamem": True}
    return {"name": f"Parquet table ({path.name if kind == 'table' else source})", "kind": kind, "is_lamem": False}


def predict_loader(model, loader, accelerator: Accelerator, desc: str = "evaluating") -> tuple[np.ndarray, np.ndarray]:
    """Predictions and human scores for a whole loader, exact across processes (`gather_for_metrics`)."""
    model.eval()
    predictions, targets = [], []
    with torch.no_grad():
        for batch in tqdm(loader, desc=desc, leave=False, disable=not accelerator.is_local_main_process):
            with accelerator.autocast():
                scores = model(pixel_values=batch["pixel_values"]).scores.float()
            scores, labels = accelerator.gather_for_metrics((scores, batch["labels"].float()))
            predictions.append(scores.cpu())
            targets.append(labels.cpu())
    return torch.cat(predictions).numpy(), torch.cat(targets).numpy()


def evaluate_model(
    model_source: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    precision: str = "fp32",
    num_workers: int = 2,
) -> dict:
    """Score the test split(s) of `data`; write eval_results.json and a scatter plot to `out_dir` if given."""
    accelerator = make_accelerator(mixed_precision=PRECISION_TO_MIXED[precision])
    model, processor = load_model(model_source)
    model = accelerator.prepare_model(model, evaluation_mode=True)
    described = describe_data(data)
    indices = SPLIT_INDICES if described["kind"] != "csv" else (1,)
    per_split, pairs = {}, {}
    for index in indices:
        test = prepare_for_model(load_lamem(data, split=index)["test"], processor, train=False)
        loader = accelerator.prepare_data_loader(
            DataLoader(test, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_batch)
        )
        predicted, human = predict_loader(model, loader, accelerator, desc=f"test split {index}")
        per_split[str(index)] = regression_metrics(predicted, human)
        pairs[str(index)] = (predicted, human)
    results = {
        "model": str(model_source),
        "data": described,
        "protocol": "LaMem five test splits" if len(indices) == 5 else "test split",
        "precision": precision,
        "splits": per_split,
        "mean": summarize(list(per_split.values())),
    }
    if out_dir is not None and accelerator.is_main_process:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULTS_FILE).write_text(json.dumps(results, indent=2))
        plot_scatter(pairs, described["name"], folder / "scatter.png")
    return results


def plot_scatter(pairs: dict[str, tuple[np.ndarray, np.ndarray]], data_name: str, path: Path) -> None:
    """Predicted against human score, one colour per split, ρ in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5), dpi=120)
    for index, (predicted, human) in pairs.items():
        rho = regression_metrics(predicted, human)["spearman"]
        axes.scatter(human, predicted, s=6, alpha=0.5, label=f"split {index}: ρ = {rho:.3f}")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    axes.set(xlabel="human memorability score", ylabel="predicted score", xlim=(0, 1), ylim=(0, 1))
    axes.set_title(f"Predicted vs human — {data_name}", fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def format_table(results: dict) -> str:
    """The printed table: one row per split and the mean ± sd."""
    lines = [f"Data: {results['data']['name']} — {results['protocol']}", "split  Spearman  Pearson   MSE       n"]
    for index, metrics in results["splits"].items():
        lines.append(
            f"{index:>5}  {metrics['spearman']:8.4f}  {metrics['pearson']:7.4f}  {metrics['mse']:.5f}  {metrics['n']}"
        )
    mean = results["mean"]
    lines.append(
        f" mean  {mean['spearman']['mean']:.4f}±{mean['spearman']['sd']:.3f}  "
        f"{mean['pearson']['mean']:.4f}±{mean['pearson']['sd']:.3f}  {mean['mse']['mean']:.5f}"
    )
    return "\n".join(lines)
