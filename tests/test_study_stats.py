"""The study's statistics against scipy and against hand computations, on small hand-made arrays."""

import math

import numpy as np
import pytest
from scipy import stats

from memorability.study.stats import (
    ALPHA,
    MIN_GROUP_SIZE,
    bootstrap_mean_ci,
    cohens_dz,
    group_statistics,
    holm_adjust,
    paired_statistics,
    rank_biserial,
    wilcoxon_test,
)

ORIGINAL = np.array([0.61, 0.72, 0.55, 0.80, 0.67, 0.59, 0.74, 0.70, 0.63, 0.66, 0.58, 0.77])
# Mostly lower, one rise, distinct absolute changes: the exact test applies.
ABLATED = ORIGINAL + np.array([-0.05, -0.11, -0.02, -0.09, 0.03, -0.07, -0.12, -0.04, -0.06, -0.01, -0.08, -0.10])
HUMAN = np.array([0.58, 0.80, 0.52, 0.83, 0.61, 0.65, 0.71, 0.69, 0.60, 0.70, 0.55, 0.79])


def test_wilcoxon_p_equals_scipy_on_the_paired_change():
    statistic, p = wilcoxon_test(ABLATED - ORIGINAL)
    reference = stats.wilcoxon(ABLATED, ORIGINAL)
    assert statistic == reference.statistic
    assert p == pytest.approx(reference.pvalue, rel=1e-12)
    # By hand: the one positive change (+0.03) has rank 3 of 12, so T = 3.
    assert statistic == 3.0


def test_wilcoxon_with_no_change_at_all_is_p_one():
    assert wilcoxon_test(np.zeros(12)) == (0.0, 1.0)


def test_spearman_equals_scipy():
    result = paired_statistics(ORIGINAL, ABLATED, HUMAN, n_resamples=200)
    assert result["spearman_original_ablated"] == pytest.approx(stats.spearmanr(ORIGINAL, ABLATED).statistic)
    assert result["spearman_human_original"] == pytest.approx(stats.spearmanr(ORIGINAL, HUMAN).statistic)
    assert result["spearman_human_ablated"] == pytest.approx(stats.spearmanr(ABLATED, HUMAN).statistic)


def test_holm_matches_a_hand_computation():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06 (monotone).
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.4, 0.9]) == pytest.approx([1.0, 1.0, 1.0])  # capped at 1
    assert holm_adjust([0.02, 0.02]) == pytest.approx([0.04, 0.04])  # ties keep one value


def test_rank_biserial_and_cohens_dz_by_hand():
    # |d| ranks 1, 2, 3; T+ = 1 + 3, T− = 2 → (4 − 2) / 6; the zero is dropped.
    assert rank_biserial(np.array([0.1, -0.2, 0.3, 0.0])) == pytest.approx(1 / 3)
    assert rank_biserial(np.array([-0.1, -0.3])) == -1.0
    assert rank_biserial(np.zeros(4)) == 0.0
    assert cohens_dz(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)  # mean 2, sd 1
    assert math.isnan(cohens_dz(np.full(5, 0.1)))


def test_bootstrap_ci_is_seeded_and_contains_the_mean():
    changes = ABLATED - ORIGINAL
    low, high = bootstrap_mean_ci(changes, seed=7, n_resamples=2000)
    assert (low, high) == bootstrap_mean_ci(changes, seed=7, n_resamples=2000)
    assert low < changes.mean() < high
    assert (low, high) != bootstrap_mean_ci(changes, seed=8, n_resamples=2000)
    assert bootstrap_mean_ci(np.zeros(12), n_resamples=200) == (0.0, 0.0)


def test_group_statistics_adjusts_over_the_family_and_refuses_small_groups():
    ablated = {"lower": ABLATED, "same": ORIGINAL.copy(), "noise": ORIGINAL + np.linspace(-0.01, 0.01, 12)}
    group = group_statistics(ORIGINAL, ablated, HUMAN, n_resamples=500)
    raw = [group["ablations"][name]["p_value"] for name in ablated]
    assert [group["ablations"][name]["p_holm"] for name in ablated] == pytest.approx(holm_adjust(raw))
    lower, same = group["ablations"]["lower"], group["ablations"]["same"]
    assert lower["significant"] and lower["p_holm"] < ALPHA and lower["mean_change"] < 0
    assert not same["significant"] and same["n_changed"] == 0 and same["within_margin"]
    small = group_statistics(ORIGINAL[: MIN_GROUP_SIZE - 1], {"lower": ABLATED[: MIN_GROUP_SIZE - 1]})
    assert small["ablations"] == {} and "too few" in small["note"]
