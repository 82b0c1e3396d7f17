"""LaMem's evaluation protocol: test_i scored with split i's human scores, i = 1..5, reported as mean ± sd.

On other data (a CSV of scored photos) the protocol is its one test split. Every result names the data it came
from, and whether that data is LaMem at all: generated sample data in LaMem's format is never reported as LaMem.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from datasets import Dataset
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .batch_scoring import consecutive_batches, score_images
from .data import SPLIT_INDICES, describe_data, load_lamem
from .distributed import make_accelerator
from .inference import MemorabilityPredictor, load_predictor
from .metrics import few_images_note, regression_metrics, summarize
from .run_output import check_writable
from .scoring_inputs import DatasetImages

RESULTS_FILE = "eval_results.json"


@dataclass(frozen=True)
class SplitScores:
    """A split's predictions and human scores, image by image in the split's order, without the unreadable images
    (their errors, one sentence each, are kept)."""

    predicted: np.ndarray
    human: np.ndarray
    unreadable: list[str]

    def metrics(self) -> dict[str, float]:
        return regression_metrics(self.predicted, self.human) | {"unreadable": len(self.unreadable)}


def score_split(
    predictor: MemorabilityPredictor,
    dataset: Dataset,
    accelerator: Accelerator,
    desc: str = "evaluating",
    num_workers: int = 0,
    head: int | None = None,
) -> SplitScores:
    """Score a split (`image`, `score`, `image_id`) over every process with the one batch engine: each process takes
    a contiguous share, and accelerate's `gather_object` brings the rows together in the split's order, each image
    exactly once whatever the number of processes. `head` scores with that head of the model alone."""
    rank, processes = accelerator.process_index, accelerator.num_processes
    share = range(rank * len(dataset) // processes, (rank + 1) * len(dataset) // processes)
    ids = dataset["image_id"]
    with tqdm(total=len(share), desc=desc, leave=False, disable=not accelerator.is_local_main_process) as bar:
        rows = score_images(
            predictor, DatasetImages(dataset), ids, consecutive_batches(share.start, share.stop, predictor.batch_size),
            num_workers, bar, embeddings=head is not None,
        )  # fmt: skip
        mine = [(index, row.score if head is None else one_head(predictor, row, head), row.error)
                for index, row in zip(share, rows)]  # fmt: skip
    gathered = sorted(gather_object(mine))
    human = np.asarray(dataset["score"], dtype=np.float64)
    kept = [(index, score) for index, score, error in gathered if error is None]
    return SplitScores(
        predicted=np.array([score for _, score in kept], dtype=np.float64),
        human=human[[index for index, _ in kept]],
        unreadable=[error for _, _, error in gathered if error is not None],
    )


def one_head(predictor: MemorabilityPredictor, row, head: int) -> float | None:
    """One head's score of a scored row, from its embedding through the model's own head."""
    if row.error is not None:
        return None
    with torch.no_grad():
        embedding = torch.from_numpy(row.embedding)[None].to(predictor.model.device)
        return float(predictor.model.forward_heads(embedding)[0, head])


def evaluate_model(
    model_source: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    precision: str = "auto",
    num_workers: int = 2,
) -> dict:
    """Score the test split(s) of `data` as `memorability predict` and the Space score them (the same network: by
    default the fastest form on this device, `load_predictor`), and record which; write eval_results.json and a
    scatter plot to `out_dir` if given."""
    if out_dir is not None:
        check_writable(out_dir)
    accelerator = make_accelerator()
    predictor = load_predictor(model_source, accelerator.device, precision, batch_size)
    described = describe_data(data)
    indices = SPLIT_INDICES if described["kind"] != "csv" else (1,)
    per_split, pairs = {}, {}
    fitted_on = predictor.model.config.head_splits
    for index in indices:
        test = load_lamem(data, split=index)["test"]
        # Heads fitted one per split index: test_i is scored by head i alone, the others were fitted on its images.
        head = fitted_on.index(index) if fitted_on and len(indices) > 1 and index in fitted_on else None
        scores = score_split(predictor, test, accelerator, f"test split {index}", num_workers, head)
        per_split[str(index)] = scores.metrics()
        pairs[str(index)] = (scores.predicted, scores.human)
    results = {
        "model": str(model_source),
        "data": described,
        "protocol": ("LaMem five test splits" + (", head i on test_i" if fitted_on else ""))
        if len(indices) == 5
        else "test split",
        "precision": predictor.form.label,
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
    """Predicted against human score, one colour per split, ρ in the legend (a figure of its own: no pyplot state)."""
    figure = Figure(figsize=(5.5, 5), dpi=120)
    axes = figure.subplots()
    for index, (predicted, human) in pairs.items():
        rho = regression_metrics(predicted, human)["spearman"]
        axes.scatter(human, predicted, s=6, alpha=0.5, label=f"split {index}: ρ = {rho:.3f}")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    axes.set(xlabel="human memorability score", ylabel="predicted score", xlim=(0, 1), ylim=(0, 1))
    axes.set_title(f"Predicted vs human — {data_name}", fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def format_table(results: dict) -> str:
    """The printed table: one row per split and the mean ± sd."""
    lines = [f"Data: {results['data']['name']} — {results['protocol']}", "split  Spearman  Pearson   MSE       n"]
    for index, metrics in results["splits"].items():
        lines.append(
            f"{index:>5}  {metrics['spearman']:8.4f}  {metrics['pearson']:7.4f}  {metrics['mse']:.5f}  {metrics['n']}"
        )
    mean = results["mean"]
    if len(results["splits"]) > 1:
        lines.append(
            f" mean  {mean['spearman']['mean']:.4f}±{mean['spearman']['sd']:.3f}  "
            f"{mean['pearson']['mean']:.4f}±{mean['pearson']['sd']:.3f}  {mean['mse']['mean']:.5f}"
        )
    lines += [f"warning: split {index}: {note}." for index, metrics in results["splits"].items()
              if (note := few_images_note(metrics["n"]))]  # fmt: skip
    return "\n".join(lines)
