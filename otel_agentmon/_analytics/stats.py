"""The statistics behind the analytics engine, in pure Python (``math`` only).

* ``percentile``: linear interpolation between closest ranks (numpy's default, "type 7").
* ``mann_whitney_greater``: one-sided Mann-Whitney U (is ``x`` stochastically larger than ``y``?)
  with the normal approximation, tie correction and a 0.5 continuity correction.
* ``two_proportion_greater``: one-sided pooled two-proportion z-test.
* ``ols``: least-squares slope with a two-sided confidence interval from Student's t.
* ``t_quantile``: Student's t quantile, inverting the CDF (regularized incomplete beta).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, or ``None`` when there are none."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * min(1.0, max(0.0, q))
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclasses.dataclass(frozen=True)
class TestResult:
    """A test's statistic, its standardized value and one-sided p-value."""

    statistic: float  # U for Mann-Whitney, the difference of proportions for the z-test
    z: float
    p_value: float


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> TestResult | None:
    """H1: values of ``x`` tend to be larger than values of ``y``. ``statistic`` is U of ``x``
    (the number of pairs with x > y, ties counting one half). ``None`` with an empty sample."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return None
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    n = n1 + n2
    rank_sum_x = 0.0
    tie_term = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        avg_rank = (i + j) / 2.0 + 1.0
        t = j - i + 1
        tie_term += t ** 3 - t
        rank_sum_x += avg_rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        i = j + 1
    u = rank_sum_x - n1 * (n1 + 1) / 2.0
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return TestResult(u, 0.0, 1.0 if u <= mean else 0.0)
    z = (u - mean - 0.5) / math.sqrt(var)
    return TestResult(u, z, normal_sf(z))


def mann_whitney_grouped(x_counts: Sequence[float], y_counts: Sequence[float]) -> TestResult | None:
    """``mann_whitney_greater`` on grouped data: ``x_counts[i]``/``y_counts[i]`` observations fall in
    ordered category ``i`` (a histogram bucket); values within a category are ties."""
    if len(x_counts) != len(y_counts):
        raise ValueError("both samples need the same categories")
    n1, n2 = sum(x_counts), sum(y_counts)
    if n1 <= 0 or n2 <= 0:
        return None
    n = n1 + n2
    before = 0.0
    rank_sum_x = 0.0
    tie_term = 0.0
    for cx, cy in zip(x_counts, y_counts, strict=True):
        t = cx + cy
        if t <= 0:
            continue
        rank_sum_x += cx * (before + (t + 1) / 2.0)
        tie_term += t ** 3 - t
        before += t
    u = rank_sum_x - n1 * (n1 + 1) / 2.0
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return TestResult(u, 0.0, 1.0 if u <= mean else 0.0)
    z = (u - mean - 0.5) / math.sqrt(var)
    return TestResult(u, z, normal_sf(z))


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """Prometheus' ``histogram_quantile`` on per-bucket (not cumulative) ``counts`` with upper
    ``bounds`` (the last may be ``inf``): linear interpolation inside the bucket."""
    total = sum(counts)
    if total <= 0 or not bounds:
        return None
    rank = q * total
    seen = 0.0
    for i, (upper, count) in enumerate(zip(bounds, counts, strict=True)):
        if seen + count >= rank and count > 0:
            lower = 0.0 if i == 0 else bounds[i - 1]
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    finite = [b for b in bounds if not math.isinf(b)]
    return finite[-1] if finite else None


def two_proportion_greater(k1: int, n1: int, k2: int, n2: int) -> TestResult | None:
    """H1: the proportion ``k1/n1`` is larger than ``k2/n2`` (pooled z-test)."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return TestResult(p1 - p2, 0.0, 1.0 if p1 <= p2 else 0.0)
    z = (p1 - p2) / se
    return TestResult(p1 - p2, z, normal_sf(z))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln_front)
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on the CDF, to 1e-10)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError("t_quantile needs 0 < p < 1 and df > 0")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return (lo + hi) / 2.0


@dataclasses.dataclass(frozen=True)
class Slope:
    """An OLS fit y = intercept + slope * x with the slope's confidence interval."""

    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    t_stat: float
    p_value: float  # two-sided, H0: slope == 0

    @property
    def significant(self) -> bool:
        """The confidence interval excludes zero."""
        return self.ci_low > 0 or self.ci_high < 0


def ols(xs: Sequence[float], ys: Sequence[float], confidence: float = 0.95) -> Slope | None:
    """Least squares with a ``confidence`` CI on the slope; ``None`` below 3 points or with constant x."""
    n = len(xs)
    if n != len(ys) or n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    sse = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    df = n - 2
    se = math.sqrt(sse / df / sxx)
    tq = t_quantile(0.5 + confidence / 2.0, df)
    if se == 0:
        return Slope(slope, intercept, 0.0, slope, slope, n, math.inf if slope else 0.0, 0.0 if slope else 1.0)
    t_stat = slope / se
    p = 2.0 * (1.0 - t_cdf(abs(t_stat), df))
    return Slope(slope, intercept, se, slope - tq * se, slope + tq * se, n, t_stat, p)
