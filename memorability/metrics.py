"""The field's metrics for memorability regression, written once: Spearman ρ (the headline), Pearson r, MSE, MAE."""

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

METRIC_NAMES = ("spearman", "pearson", "mse", "mae")


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
    """Mean and sample standard deviation of each metric over splits (LaMem reports the mean of five)."""
    summary = {}
    for name in METRIC_NAMES:
        values = np.array([metrics[name] for metrics in per_split], dtype=np.float64)
        summary[name] = {
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        }
    return summary
