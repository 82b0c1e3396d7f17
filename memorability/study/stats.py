"""The statistics of an ablation study: how a prediction changes when one feature is taken out of the picture.

Per ablation, over the images of a group, on the paired change d = ablated − original:
- location: mean and median of d, a seeded percentile-bootstrap 95% CI of the mean;
- test: the paired two-sided Wilcoxon signed-rank test (scipy, zero differences dropped as Wilcoxon did), its
  p-values Holm–Bonferroni-adjusted over the ablations of the group (a family of six comparisons);
- effect size: the matched-pairs rank-biserial correlation (Kerby 2014; −1: every image drops, +1: every image
  rises) and Cohen's d_z (mean / sd of d);
- ranking: Spearman ρ between original and ablated predictions, and of each against human scores where they exist.
"""

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from ..metrics import regression_metrics

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_BATCH = 500  # resamples drawn at once: bounds memory at 500 × n floats for LaMem's 10,000 test images
CONFIDENCE_LEVEL = 0.95
ALPHA = 0.05
# Below this many paired images a group gets no statistics. The smallest exact two-sided signed-rank p is 2 / 2^n,
# so with six comparisons under Holm fewer than 8 images can never reach p < 0.05; 10 leaves room for the ties and
# zero changes that raise it, and a bootstrap CI of fewer values says little.
MIN_GROUP_SIZE = 10
# A mean change whose 95% CI lies inside ±0.02 (on the 0–1 score scale) is called practically none: a sixth of the
# standard deviation of LaMem's human scores (0.124), well under what separates two images in a ranking.
EQUIVALENCE_MARGIN = 0.02
CORRECTION = "holm"

METHODS = {
    "test": "paired two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero_method='wilcox': zero "
    "differences dropped; exact null distribution for n <= 50 without ties or zeros, else normal approximation)",
    "correction": "Holm–Bonferroni step-down adjustment over the ablations of each group",
    "effect_sizes": "matched-pairs rank-biserial correlation (signed-rank sums, zeros dropped) and Cohen's d_z "
    "(mean change / its sample standard deviation)",
    "confidence_interval": "percentile bootstrap of the mean change, seeded",
    "ranking": "Spearman rho",
}


def wilcoxon_test(differences: np.ndarray) -> tuple[float, float]:
    """(statistic, two-sided p) of the signed-rank test; (0, 1) when every difference is zero (no evidence at all)."""
    if not np.any(differences != 0):
        return 0.0, 1.0
    result = stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def rank_biserial(differences: np.ndarray) -> float:
    """(T+ − T−) / (T+ + T−) over the signed ranks of the nonzero differences; 0 when all are zero."""
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(nonzero))
    return float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())


def cohens_dz(differences: np.ndarray) -> float:
    """Mean change in standard deviations of the change; NaN when the change is constant (d_z is unbounded)."""
    sd = float(np.std(differences, ddof=1)) if differences.size > 1 else 0.0
    return float(np.mean(differences)) / sd if sd > 0 else math.nan


def bootstrap_mean_ci(
    differences: np.ndarray,
    seed: int = 0,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = CONFIDENCE_LEVEL,
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean: the same seed gives the same interval."""
    result = stats.bootstrap(
        (np.asarray(differences, dtype=np.float64),),
        np.mean,
        n_resamples=n_resamples,
        batch=BOOTSTRAP_BATCH,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values: sorted ascending, the k-th (from 0) times m − k, made monotone, capped
    at 1.

    Rejecting where the adjusted p < alpha is Holm's procedure at family-wise error rate alpha.
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def spearman(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman ρ, NaN where undefined (fewer than two values, or a constant input)."""
    return regression_metrics(first, second)["spearman"]


def paired_statistics(
    original: np.ndarray,
    ablated: np.ndarray,
    human: np.ndarray | None = None,
    seed: int = 0,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, float | int]:
    """Every per-ablation number of one group (before the Holm adjustment, which needs the whole family)."""
    original, ablated = np.asarray(original, np.float64), np.asarray(ablated, np.float64)
    differences = ablated - original
    statistic, p_value = wilcoxon_test(differences)
    ci_low, ci_high = bootstrap_mean_ci(differences, seed, n_resamples)
    result: dict[str, float | int] = {
        "n": int(differences.size),
        "n_changed": int(np.count_nonzero(differences)),
        "mean_change": float(differences.mean()),
        "median_change": float(np.median(differences)),
        "sd_change": float(differences.std(ddof=1)),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "wilcoxon_statistic": statistic,
        "p_value": p_value,
        "rank_biserial": rank_biserial(differences),
        "cohens_dz": cohens_dz(differences),
        "spearman_original_ablated": spearman(original, ablated),
    }
    if human is not None:
        result["spearman_human_original"] = spearman(original, human)
        result["spearman_human_ablated"] = spearman(ablated, human)
    return result


def group_statistics(
    original: np.ndarray,
    ablated: Mapping[str, np.ndarray],
    human: np.ndarray | None = None,
    seed: int = 0,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, object]:
    """Statistics of every ablation for one group of images, Holm-adjusted together; or why there are none."""
    n = int(len(original))
    if n < MIN_GROUP_SIZE:
        return {"n": n, "ablations": {}, "note": f"too few images (n = {n} < {MIN_GROUP_SIZE}) for statistics"}
    with warnings.catch_warnings():
        # scipy warns about ties/zeros in the exact test and about degenerate bootstrap samples; both are handled
        # above (the normal approximation is then used; a constant change has a zero-width interval).
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        per_ablation = {
            name: paired_statistics(original, values, human, seed, n_resamples) for name, values in ablated.items()
        }
    adjusted = holm_adjust([result["p_value"] for result in per_ablation.values()])
    for result, p_adjusted in zip(per_ablation.values(), adjusted):
        result["p_holm"] = p_adjusted
        result["significant"] = bool(p_adjusted < ALPHA)
        result["within_margin"] = bool(-EQUIVALENCE_MARGIN < result["ci_low"] <= result["ci_high"] < EQUIVALENCE_MARGIN)
    return {"n": n, "ablations": per_ablation}


__all__ = [
    "ALPHA",
    "BOOTSTRAP_RESAMPLES",
    "CONFIDENCE_LEVEL",
    "CORRECTION",
    "EQUIVALENCE_MARGIN",
    "METHODS",
    "MIN_GROUP_SIZE",
    "bootstrap_mean_ci",
    "cohens_dz",
    "group_statistics",
    "holm_adjust",
    "paired_statistics",
    "rank_biserial",
    "spearman",
    "wilcoxon_test",
]
