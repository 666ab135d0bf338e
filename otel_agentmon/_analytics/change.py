"""Change over time: regressions (a recent window against a baseline) and trends (slopes).

Regressions are decided by a stated test and threshold, never by a bare ratio:

* latency (per agent, task type, tool, model): one-sided Mann-Whitney U on the span durations
  (normal approximation, tie and continuity corrections), ``p < alpha`` (0.01) AND a median ratio
  recent/baseline of at least ``min_ratio`` (1.2), with at least ``min_samples`` (8) spans in each window;
* error ratio (per agent, task type, tool): one-sided pooled two-proportion z-test, ``p < alpha``
  AND an increase of at least ``min_error_increase`` (5 points), ``min_error_samples`` (20) each;
* tokens per task (per agent): Mann-Whitney U on each task's token total, same thresholds as latency.

A trend is the OLS slope of a per-bucket series (p50 latency, throughput, error ratio) over time,
reported only when its 95% confidence interval (Student's t, n-2 df) excludes zero.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Final, Literal

from .._records.records import SpanRecord
from .base import (
    DIMENSIONS,
    Dimension,
    Evidence,
    Window,
    failed_traces,
    group,
    selector,
    slowest_traces,
)
from .critical import SpanTree
from .stats import mann_whitney_greater, ols, percentile, two_proportion_greater

MW_TEST: Final = ("Mann-Whitney U, one-sided (recent > baseline), normal approximation with tie and "
                  "continuity corrections")
Z_TEST: Final = "two-proportion z-test, one-sided (recent > baseline), pooled variance"
Metric = Literal["latency", "error_ratio", "tokens_per_task"]


@dataclasses.dataclass(frozen=True)
class RegressionPolicy:
    alpha: float = 0.01
    min_ratio: float = 1.2
    min_samples: int = 8
    min_error_increase: float = 0.05
    min_error_samples: int = 20


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One recent-vs-baseline test. ``regressed`` is the verdict under the policy."""

    metric: Metric
    dimension: Dimension
    key: str
    baseline_value: float  # median (latency s, tokens) or ratio (errors)
    recent_value: float
    change: float  # recent/baseline for medians, recent-baseline for ratios
    test: str
    regressed: bool
    evidence: Evidence

    def headline(self) -> str:
        if self.metric == "error_ratio":
            return (f"{self.dimension} {self.key!r} error ratio {self.baseline_value:.1%} -> {self.recent_value:.1%} "
                    f"(+{self.change * 100:.1f} points)")
        if self.metric == "latency":  # durations in ms, like every table of the report
            return (f"{self.dimension} {self.key!r} median latency {self.baseline_value * 1000:.4g} ms -> "
                    f"{self.recent_value * 1000:.4g} ms (x{self.change:.2f})")
        return (f"{self.dimension} {self.key!r} median tokens/task {self.baseline_value:.4g} -> "
                f"{self.recent_value:.4g} (x{self.change:.2f})")


def split(window: Window, recent_fraction: float) -> tuple[Window, Window]:
    """(baseline, recent): the last ``recent_fraction`` of ``window`` is recent."""
    cut = window.end_ns - int((window.end_ns - window.start_ns) * recent_fraction)
    return Window(window.start_ns, cut), Window(cut, window.end_ns)


def task_tokens(records: Sequence[SpanRecord], tree: SpanTree) -> dict[tuple[str, str], int]:
    """Tokens of the LLM calls under each task span, keyed by (trace id, task span id)."""
    out: dict[tuple[str, str], int] = {(r.trace_id, r.span_id): 0 for r in records if r.kind == "task"}
    for rec in tree.by_id.values():  # a span received twice counts once
        if rec.kind != "llm":
            continue
        node: SpanRecord | None = rec
        hops = 0
        while node is not None and node.kind != "task" and hops < 256:
            node = tree.parent(node)
            hops += 1
        if node is not None and node.kind == "task":
            key = (node.trace_id, node.span_id)
            out[key] = out.get(key, 0) + rec.input_tokens + rec.output_tokens
    return out


def compare(records: Sequence[SpanRecord], baseline: Window, recent: Window, policy: RegressionPolicy,
            tree: SpanTree) -> list[Comparison]:
    """Every test that had enough data, regressed or not."""
    out: list[Comparison] = []
    tokens = task_tokens(records, tree)
    for dim in DIMENSIONS:
        base, now = group(records, dim, baseline), group(records, dim, recent)
        for key in sorted(set(base) & set(now)):
            lat = _median_test("latency", dim, key, [s.duration_s for s in base[key]],
                               [s.duration_s for s in now[key]], now[key], baseline, recent, policy)
            if lat is not None:
                out.append(lat)
            if dim != "model":
                err = _error_test(dim, key, base[key], now[key], baseline, recent, policy)
                if err is not None:
                    out.append(err)
            if dim == "agent":
                b_tok = [float(tokens.get((s.trace_id, s.span_id), 0)) for s in base[key]]
                n_tok = [float(tokens.get((s.trace_id, s.span_id), 0)) for s in now[key]]
                if any(b_tok) or any(n_tok):
                    tok = _median_test("tokens_per_task", dim, key, b_tok, n_tok, now[key], baseline, recent,
                                       policy)
                    if tok is not None:
                        out.append(tok)
    return out


def _median_test(metric: Metric, dim: Dimension, key: str, base: list[float], now: list[float],
                 spans: list[SpanRecord], baseline: Window, recent: Window,
                 policy: RegressionPolicy) -> Comparison | None:
    if len(base) < policy.min_samples or len(now) < policy.min_samples:
        return None
    result = mann_whitney_greater(now, base)
    b_med, n_med = percentile(base, 0.5) or 0.0, percentile(now, 0.5) or 0.0
    ratio = n_med / b_med if b_med > 0 else (math.inf if n_med > 0 else 1.0)
    if result is None:
        return None
    field = "duration_s" if metric == "latency" else "task_tokens"
    sel = selector(dim, key)
    evidence = Evidence(
        query=f"is the {field} of {dim} {key!r} larger in the recent window than in the baseline? ({MW_TEST}; "
              f"regression if p < {policy.alpha} and median ratio >= {policy.min_ratio})",
        expression=f"mann_whitney_u({field}{sel}[recent] > {field}{sel}[baseline])",
        window=recent, baseline=baseline, trace_ids=slowest_traces(spans), n=len(now),
        statistic=result.statistic, p_value=result.p_value,
        numbers={"n_baseline": len(base), "n_recent": len(now), "z": result.z, "median_ratio": ratio,
                 # latency in ms, like every duration the report shows
                 **({"median_baseline_ms": b_med * 1000, "median_recent_ms": n_med * 1000} if metric == "latency"
                    else {"median_baseline": b_med, "median_recent": n_med})})
    regressed = result.p_value < policy.alpha and ratio >= policy.min_ratio
    return Comparison(metric, dim, key, b_med, n_med, ratio, MW_TEST, regressed, evidence)


def _error_test(dim: Dimension, key: str, base: list[SpanRecord], now: list[SpanRecord], baseline: Window,
                recent: Window, policy: RegressionPolicy) -> Comparison | None:
    if len(base) < policy.min_error_samples or len(now) < policy.min_error_samples:
        return None
    k_base = sum(1 for s in base if s.error is not None)
    k_now = sum(1 for s in now if s.error is not None)
    result = two_proportion_greater(k_now, len(now), k_base, len(base))
    if result is None:
        return None
    r_base, r_now = k_base / len(base), k_now / len(now)
    sel = selector(dim, key)
    evidence = Evidence(
        query=f"is the error ratio of {dim} {key!r} higher in the recent window? ({Z_TEST}; regression if "
              f"p < {policy.alpha} and the ratio rose >= {policy.min_error_increase:.0%} points)",
        expression=f'z_test(count{sel[:-1]},error!=""}}/count{sel} [recent] > [baseline])',
        window=recent, baseline=baseline, trace_ids=failed_traces(now), n=len(now),
        statistic=result.z, p_value=result.p_value,
        numbers={"n_baseline": len(base), "n_recent": len(now), "errors_baseline": k_base, "errors_recent": k_now})
    regressed = result.p_value < policy.alpha and r_now - r_base >= policy.min_error_increase
    return Comparison("error_ratio", dim, key, r_base, r_now, r_now - r_base, Z_TEST, regressed, evidence)


# --- trends -------------------------------------------------------------------------------------

TrendMetric = Literal["p50_latency_s", "throughput_per_s", "error_ratio"]


@dataclasses.dataclass(frozen=True)
class Trend:
    """An OLS slope per second of a per-bucket series, with its 95% CI (``significant``: excludes 0)."""

    metric: TrendMetric
    dimension: Dimension | None  # None: all tasks
    key: str
    slope_per_s: float
    ci_low: float
    ci_high: float
    buckets: int
    significant: bool
    series: tuple[tuple[float, float], ...]  # (seconds from window start, value)
    evidence: Evidence

    def headline(self) -> str:
        who = "all tasks" if self.dimension is None else f"{self.dimension} {self.key!r}"
        # per minute; latency in ms like every table of the report
        scale, what = {"p50_latency_s": (60_000.0, "median latency (ms)"),
                       "throughput_per_s": (60.0, "throughput (tasks/s)"),
                       "error_ratio": (60.0, "error ratio")}[self.metric]
        direction = "rising" if self.slope_per_s > 0 else "falling"
        return (f"{who} {what} {direction}: {self.slope_per_s * scale:+.4g} per minute "
                f"(95% CI {self.ci_low * scale:+.4g} .. {self.ci_high * scale:+.4g})")


def trends(records: Sequence[SpanRecord], window: Window, buckets: int = 12) -> list[Trend]:
    """Trends of task p50 latency, throughput and error ratio, overall and per agent."""
    if buckets < 3 or window.end_ns <= window.start_ns:
        return []
    tasks = [r for r in records if r.kind == "task" and window.contains(r.end_ns)]
    groups: list[tuple[Dimension | None, str, list[SpanRecord]]] = [(None, "*", tasks)]
    groups += [("agent", k, v) for k, v in sorted(group(tasks, "agent").items())]
    width = (window.end_ns - window.start_ns) / buckets
    out: list[Trend] = []
    for dim, key, spans in groups:
        if len(spans) < 2 * buckets:
            continue
        per: list[list[SpanRecord]] = [[] for _ in range(buckets)]
        for s in spans:
            per[min(buckets - 1, int((s.end_ns - window.start_ns) / width))].append(s)
        mids = [(i + 0.5) * width / 1e9 for i in range(buckets)]
        pairs = list(zip(mids, per, strict=True))
        series: dict[TrendMetric, list[tuple[float, float]]] = {
            "p50_latency_s": [(m, percentile([s.duration_s for s in b], 0.5) or 0.0) for m, b in pairs if b],
            "throughput_per_s": [(m, len(b) / (width / 1e9)) for m, b in pairs],
            "error_ratio": [(m, sum(1 for s in b if s.error is not None) / len(b)) for m, b in pairs if b],
        }
        for metric, points in series.items():
            fit = ols([p[0] for p in points], [p[1] for p in points])
            if fit is None or len(points) < 4:
                continue
            sel = "{kind=\"task\"}" if dim is None else selector(dim, key)
            evidence = Evidence(
                query=f"OLS slope of per-bucket {metric} of {'all tasks' if dim is None else f'{dim} {key!r}'} "
                      f"over {buckets} buckets of {width / 1e9:.3g}s; a trend if the 95% CI excludes 0",
                expression=f"ols_slope({metric}({sel}) by bucket[{width / 1e9:.3g}s])",
                window=window, trace_ids=slowest_traces(spans), n=len(points), statistic=fit.t_stat,
                p_value=fit.p_value, numbers={"slope_per_s": fit.slope, "ci_low": fit.ci_low,
                                              "ci_high": fit.ci_high, "spans": len(spans)})
            out.append(Trend(metric, dim, key, fit.slope, fit.ci_low, fit.ci_high, len(points), fit.significant,
                             tuple(points), evidence))
    return out
