"""The field's metrics for memorability regression, written once: Spearman ρ (the headline), Pearson r, MSE, MAE."""

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

METRIC_NAMES = ("spearman", "pearson", "mse", "mae")
# Below this many images a figure is reported with a warning: ρ on 20 images has a 95% interval about ±0.4 wide.
FEW_IMAGES = 30
# Below this many, a figure is not published at all (cards, model-index): on 3 images ρ takes only a handful of values.
TOO_FEW_TO_PUBLISH = 10


def few_images_note(n: int) -> str:
    """"" for enough images, else a warning that says what a figure on n images is worth."""
    if n >= FEW_IMAGES:
        return ""
    worth = "means nothing" if n < TOO_FEW_TO_PUBLISH else "means little"
    return f"only {n} image{'s' if n != 1 else ''}: a figure on so few {worth}"


def publishable(metrics: dict) -> bool:
    """Whether a split's figures may go on a card or into a model-index (enough images to mean something)."""
    return metrics.get("n", 0) >= TOO_FEW_TO_PUBLISH


def regression_metrics(predictions: Sequence[float], targets: Sequence[float]) -> dict[str, float]:
    """Spearman ρ, Pearson r, MSE and MAE of predictions against human scores, plus the count n.

    Correlations are NaN where they are undefined (fewer than two items, or a constant input).
    """
    predicted = np.asarray(predictions, dtype=np.float64)
    human = np.asarray(targets, dtype=np.float64)
    if predicted.shape != human.shape:
        raise ValueError(f"{predicted.shape[0]} predictions for {human.shape[0]} targets.")
    n = int(predicted.size)
    defined = n >= 2 and np.ptp(predicted) > 0 and np.ptp(human) > 0
    errors = predicted - human
    return {
        "spearman": float(stats.spearmanr(predicted, human).statistic) if defined else math.nan,
        "pearson": float(stats.pearsonr(predicted, human).statistic) if defined else math.nan,
        "mse": float(np.mean(errors**2)) if n else math.nan,
        "mae": float(np.mean(np.abs(errors))) if n else math.nan,
        "n": n,
    }


def summarize(per_split: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each metric over splits (LaMem reports the mean of five), and the
    images they were measured on (`n`: the fewest of any split, and the total)."""
    summary = {}
    for name in METRIC_NAMES:
        values = np.array([metrics[name] for metrics in per_split], dtype=np.float64)
        summary[name] = {
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        }
    sizes = [int(metrics.get("n", 0)) for metrics in per_split]
    summary["n"] = {"fewest": min(sizes, default=0), "total": sum(sizes)}
    return summary
