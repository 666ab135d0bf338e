"""The analytics statistics against hand-computed and textbook values."""

from __future__ import annotations

import math

import pytest

from otel_agentmon._analytics.stats import (
    histogram_quantile,
    mann_whitney_greater,
    mann_whitney_grouped,
    ols,
    percentile,
    t_quantile,
    two_proportion_greater,
)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([4, 1, 3, 2], 0.5) == 2.5
    assert percentile([1, 2, 3, 4], 0.95) == pytest.approx(3.85)
    assert percentile([7], 0.99) == 7
    assert percentile([], 0.5) is None


def test_mann_whitney_without_ties_matches_the_hand_computation() -> None:
    # Every recent value beats every baseline value: U = 4 * 5 = 20; mean 10; var = 4*5*10/12;
    # z = (20 - 10 - 0.5) / sqrt(16.667) = 2.32702; one-sided p = 1 - Phi(2.32702) = 0.00998.
    result = mann_whitney_greater([7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert result is not None
    assert result.statistic == 20
    assert result.z == pytest.approx(2.327015, abs=1e-6)
    assert result.p_value == pytest.approx(0.009982, abs=1e-6)


def test_mann_whitney_with_ties_uses_midranks_and_the_tie_correction() -> None:
    # Pooled: 1x 2x 2x 2y 3x 3y 3y 4y; midranks 1, 3, 3, 3, 6, 6, 6, 8; R_x = 13, U_x = 13 - 10 = 3.
    # Tie term sum(t^3 - t) = 24 + 24; var = 16/12 * (9 - 48/56) = 10.857; z = (3 - 8 - 0.5)/3.295.
    result = mann_whitney_greater([1, 2, 2, 3], [2, 3, 3, 4])
    assert result is not None
    assert result.statistic == 3
    assert result.z == pytest.approx(-5.5 / math.sqrt(16 / 12 * (9 - 48 / 56)))
    assert result.p_value == pytest.approx(0.95246, abs=1e-5)


def test_mann_whitney_on_identical_samples_is_not_significant() -> None:
    result = mann_whitney_greater([1.0] * 10, [1.0] * 10)
    assert result is not None and result.p_value == 1.0


def test_two_proportion_z_test() -> None:
    # 30/100 vs 15/100: pooled p = 0.225, se = sqrt(.225 * .775 * .02) = 0.05906, z = 2.5400.
    result = two_proportion_greater(30, 100, 15, 100)
    assert result is not None
    assert result.z == pytest.approx(2.5400, abs=1e-4)
    assert result.p_value == pytest.approx(0.005543, abs=1e-6)


@pytest.mark.parametrize(("p", "df", "expected"), [
    (0.975, 1, 12.7062), (0.975, 3, 3.1824), (0.975, 10, 2.2281), (0.995, 30, 2.7500), (0.95, 100, 1.6602),
])
def test_t_quantile_matches_the_table(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-4)


def test_ols_slope_and_confidence_interval_textbook_example() -> None:
    # x = 1..5, y = 2 4 5 4 5: slope 0.6, intercept 2.2, SSE 2.4, s^2 = 0.8, Sxx = 10,
    # se = sqrt(0.08) = 0.28284, t(0.975, 3) = 3.18245: CI 0.6 +- 0.90013 -> includes 0: no trend.
    fit = ols([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
    assert fit is not None
    assert fit.slope == pytest.approx(0.6)
    assert fit.intercept == pytest.approx(2.2)
    assert fit.stderr == pytest.approx(math.sqrt(0.08))
    assert fit.ci_low == pytest.approx(-0.30013, abs=1e-5)
    assert fit.ci_high == pytest.approx(1.50013, abs=1e-5)
    assert not fit.significant


def test_ols_calls_a_clear_slope_significant_and_refuses_degenerate_input() -> None:
    fit = ols([0, 1, 2, 3, 4, 5], [1.0, 2.1, 2.9, 4.2, 5.0, 5.9])
    assert fit is not None and fit.significant and fit.ci_low > 0.9
    assert ols([1, 2], [1, 2]) is None
    assert ols([3, 3, 3], [1, 2, 3]) is None


def test_grouped_mann_whitney_equals_the_test_on_the_expanded_samples() -> None:
    # Categories 0..3 (histogram buckets): x = 1, 2, 2, 3 and y = 0, 1, 1, 2 as counts per category.
    grouped = mann_whitney_grouped([0, 1, 2, 1], [1, 2, 1, 0])
    expanded = mann_whitney_greater([1, 2, 2, 3], [0, 1, 1, 2])
    assert grouped is not None and expanded is not None
    assert (grouped.statistic, grouped.z, grouped.p_value) == (expanded.statistic, expanded.z, expanded.p_value)


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    # 10 in (0, 1], 10 in (1, 2]: the median is at the top of the first bucket, p75 half-way in the second.
    assert histogram_quantile(0.5, [1, 2, math.inf], [10, 10, 0]) == 1.0
    assert histogram_quantile(0.75, [1, 2, math.inf], [10, 10, 0]) == 1.5
    assert histogram_quantile(0.99, [1, 2, math.inf], [0, 0, 5]) == 2.0  # in +Inf: the last finite bound
    assert histogram_quantile(0.5, [1, 2], [0, 0]) is None
