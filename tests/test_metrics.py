"""The metrics equal scipy's and numpy's, and summarise splits as LaMem reports them."""

import math

import numpy as np
import pytest
from scipy import stats

from memorability.metrics import regression_metrics, summarize


def test_metrics_match_scipy_and_numpy():
    rng = np.random.default_rng(0)
    human = rng.uniform(0.3, 1.0, 50)
    predicted = human + rng.normal(0, 0.1, 50)
    metrics = regression_metrics(predicted, human)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(predicted, human)[0])
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(predicted, human)[0])
    assert metrics["mse"] == pytest.approx(np.mean((predicted - human) ** 2))
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(predicted - human)))
    assert metrics["n"] == 50


def test_constant_predictions_have_undefined_correlation():
    metrics = regression_metrics([0.7, 0.7, 0.7], [0.2, 0.5, 0.9])
    assert math.isnan(metrics["spearman"]) and math.isnan(metrics["pearson"])
    assert metrics["mse"] == pytest.approx(np.mean((0.7 - np.array([0.2, 0.5, 0.9])) ** 2))


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 predictions for 3 targets"):
        regression_metrics([0.1, 0.2], [0.1, 0.2, 0.3])


def test_summary_is_mean_and_sample_sd():
    per_split = [{"spearman": value, "pearson": 0.5, "mse": 0.01, "mae": 0.1} for value in (0.6, 0.7, 0.8)]
    summary = summarize(per_split)
    assert summary["spearman"]["mean"] == pytest.approx(0.7)
    assert summary["spearman"]["sd"] == pytest.approx(0.1)
    assert summary["pearson"]["sd"] == 0.0
