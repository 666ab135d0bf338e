"""The analytics engine: performance insights, bottlenecks, regressions and trends from spans.

::

    from otel_agentmon.analytics import analyze
    from otel_agentmon._records.recording import read_recording

    rec = read_recording("run.jsonl")
    insights = analyze(rec.spans, rec.alerts, rec.metrics)
    for opp in insights.opportunities:
        print(opp.title, "--", opp.evidence.describe())

Everything works over ``SpanRecord``s (from a recording, ``agentmon serve``'s store, or
``_records.from_readable``), so the dashboard, ``agentmon report`` and user code compute the same
numbers. Every insight carries an ``Evidence``: the query in words and as an expression, the
window(s), a few trace ids, n, and the test statistic and p-value where a test was run.

The statistical tests and thresholds are stated in ``_analytics_change`` (regressions: one-sided
Mann-Whitney U / two-proportion z-test at alpha 0.01 plus a minimum effect; trends: OLS slope
whose 95% t-interval excludes zero).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from ._alerts.episodes import episodes
from ._analytics.base import (
    DEFAULT_PRICES,
    DEFAULT_PRICES_AS_OF,
    Dimension,
    Evidence,
    Prices,
    Window,
    load_prices,
    span_window,
)
from ._analytics.bottleneck import Bottleneck, bottlenecks
from ._analytics.change import Comparison, RegressionPolicy, Trend, compare, split, trends
from ._analytics.critical import Segment, SpanTree
from ._analytics.perf import AgentEfficiency, KeyStats, WindowStats, efficiency, key_stats, sliding
from ._analytics.stats import mann_whitney_greater, ols, percentile, t_quantile, two_proportion_greater
from ._records.recording import AlertRecord, MetricSample
from ._records.records import SpanRecord

__all__ = [
    "DEFAULT_PRICES", "DEFAULT_PRICES_AS_OF", "AgentEfficiency", "AlertSummary", "Bottleneck", "Comparison",
    "Dimension", "Evidence", "Insights", "KeyStats", "MetricSummary", "Opportunity", "RegressionPolicy",
    "Segment", "SpanTree", "Trend", "Window", "WindowStats", "analyze", "bottlenecks", "compare", "efficiency",
    "key_stats", "load_prices", "mann_whitney_greater", "ols", "percentile", "sliding", "t_quantile", "trends",
    "two_proportion_greater",
]

#: Thresholds for the opportunities that are not statistical tests.
MIN_BOTTLENECK_SHARE: Final = 0.3  # a tool/model taking >= 30% of an agent's task critical paths
MIN_ERROR_RATIO: Final = 0.05
MIN_TASKS: Final = 5
LOW_UTILISATION: Final = 0.3
#: Suppression rules (stated in docs/analytics.md and in every report's footer):
#: a trend is a slope per minute: fitted to less than this much data it is not reported;
MIN_TREND_PERIOD_S: Final = 600.0
#: a tool/model is a bottleneck of an agent's tasks only if their critical paths hold at least this
#: many different tools/models (a single-tool task's tool is trivially all of its path).
MIN_BOTTLENECK_CHOICES: Final = 2
SUPPRESSION_RULES: Final = (
    f"per-agent findings (error ratio, utilisation, bottleneck, slowest task) need >= {MIN_TASKS} tasks",
    f"trends need a period of >= {MIN_TREND_PERIOD_S / 60:.0f} min (a per-minute slope from less is underpowered)",
    f"a tool/model is named a bottleneck only when the agent's task critical paths hold >= "
    f"{MIN_BOTTLENECK_CHOICES} different tools/models, and it takes >= {MIN_BOTTLENECK_SHARE:.0%} of them",
    "regressions need the samples and effect sizes of the regression policy",
)


@dataclasses.dataclass(frozen=True)
class Opportunity:
    """Something worth optimising, ranked by ``score`` (0..1, see ``_opportunities``)."""

    kind: str  # bottleneck | regression | errors | utilisation | cost | trend
    title: str
    score: float
    evidence: Evidence


@dataclasses.dataclass(frozen=True)
class AlertSummary:
    """One alert instance (rule, agent) in the window: how often it fired and whether it resolved."""

    rule: str
    agent: str | None
    severity: str
    fired: int  # episodes: evaluated in the process and in serve, one firing counts once
    first_fired_ns: int
    last_state: str
    summary: str
    #: where it was evaluated ("" = the process that recorded it; "serve"; a process of serve's)
    sources: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class MetricSummary:
    """min/mean/max/last of one metric series (name + attributes) in the window."""

    name: str
    unit: str
    attributes: Mapping[str, str | int | float | bool]
    n: int
    minimum: float
    mean: float
    maximum: float
    last: float
    series: tuple[tuple[int, float], ...]  # (time_ns, value), at most 200 points


@dataclasses.dataclass(frozen=True)
class Insights:
    """All of the engine's answers for one period."""

    window: Window
    baseline: Window
    recent: Window
    stats: Mapping[Dimension, Mapping[str, KeyStats]]
    efficiency: Mapping[str, AgentEfficiency]
    bottlenecks: Sequence[Bottleneck]
    comparisons: Sequence[Comparison]
    trends: Sequence[Trend]
    alerts: Sequence[AlertSummary]
    metrics: Sequence[MetricSummary]
    opportunities: Sequence[Opportunity]
    policy: RegressionPolicy
    prices_note: str
    spans: int
    #: (end_ns, duration_s) of each agent's tasks in the window, for charts.
    task_points: Mapping[str, Sequence[tuple[int, float]]] = dataclasses.field(
        default_factory=dict[str, Sequence[tuple[int, float]]])

    @property
    def regressions(self) -> list[Comparison]:
        return sorted((c for c in self.comparisons if c.regressed),
                      key=lambda c: (c.evidence.p_value or 1.0, -c.change))

    @property
    def significant_trends(self) -> list[Trend]:
        return [t for t in self.trends if t.significant]

    @property
    def reportable_trends(self) -> list[Trend]:
        """Significant trends over a period long enough to fit them (``MIN_TREND_PERIOD_S``)."""
        return self.significant_trends if self.window.seconds >= MIN_TREND_PERIOD_S else []

    def slowest_agent(self) -> KeyStats | None:
        """The agent with the highest median task duration (at least ``MIN_TASKS`` tasks if any has)."""
        return _top(self.stats.get("agent", {}), lambda s: s.p50_s or 0.0)

    def busiest_tool(self) -> KeyStats | None:
        """The tool with the most calls (ties: the most total time)."""
        return _top(self.stats.get("tool", {}), lambda s: (s.n, s.total_s))


def _top(stats: Mapping[str, KeyStats], key: Callable[[KeyStats], float | tuple[float, float]]) -> KeyStats | None:
    pool = [s for s in stats.values() if s.n >= MIN_TASKS] or list(stats.values())
    return max(pool, key=key) if pool else None


def analyze(records: Iterable[SpanRecord], alerts: Iterable[AlertRecord] = (),
            metrics: Iterable[MetricSample] = (), *, start_ns: int | None = None, end_ns: int | None = None,
            baseline: Window | None = None, recent: Window | None = None, recent_fraction: float = 1 / 3,
            prices: Prices | None = None, policy: RegressionPolicy | None = None,
            trend_buckets: int = 12) -> Insights:
    """Compute every insight over the spans ending in [start_ns, end_ns) (default: all).

    The regression test compares ``recent`` with ``baseline``; by default the last
    ``recent_fraction`` of the window against everything before it."""
    spans = list(records)
    alert_records = list(alerts)
    metric_records = list(metrics)
    full = data_window(spans, [a.time_ns for a in alert_records] + [m.time_ns for m in metric_records])
    # The period never reaches past the data: --since 1h of a 3 s run is those 3 s.
    window = Window(full.start_ns if start_ns is None else max(start_ns, full.start_ns),
                    full.end_ns if end_ns is None else min(end_ns, full.end_ns))
    if window.end_ns < window.start_ns:  # a period entirely outside the data
        window = Window(start_ns if start_ns is not None else window.start_ns,
                        end_ns if end_ns is not None else window.end_ns)
    inside = [s for s in spans if window.contains(s.end_ns)]
    default_base, default_recent = split(window, recent_fraction)
    baseline = baseline or default_base
    recent = recent or default_recent
    policy = policy or RegressionPolicy()
    price_table = DEFAULT_PRICES if prices is None else prices
    tree = SpanTree(spans)  # all spans: parents outside the window still give context
    stats: dict[Dimension, Mapping[str, KeyStats]] = {
        dim: key_stats(inside, dim, window) for dim in ("agent", "task_type", "tool", "model")}
    eff = efficiency(spans, window, price_table, tree)
    necks = bottlenecks(spans, window, tree)
    comparisons = compare(spans, baseline, recent, policy, tree)
    trend_list = trends(inside, window, trend_buckets)
    alert_list = summarize_alerts(alert_records, _alert_window(window, [a.time_ns for a in alert_records], end_ns))
    metric_list = summarize_metrics(metric_records, window)
    note = f"the default example price table ({DEFAULT_PRICES_AS_OF})" if prices is None else \
        "the price table given"
    opportunities = _opportunities(stats, eff, necks, comparisons,
                                   trend_list if window.seconds >= MIN_TREND_PERIOD_S else [])
    points: dict[str, list[tuple[int, float]]] = {}
    for s in inside:
        if s.kind == "task" and s.agent is not None:
            points.setdefault(s.agent, []).append((s.end_ns, s.duration_s))
    return Insights(window, baseline, recent, stats, eff, necks, comparisons, trend_list, alert_list, metric_list,
                    opportunities, policy, note, len(inside), points)


def data_window(spans: Sequence[SpanRecord], other_times: Sequence[int]) -> Window:
    """From the first to the last data point: the spans' (start to end), else alerts' and metrics'."""
    if spans or not other_times:
        return span_window(spans)
    return Window(min(other_times), max(other_times) + 1)


def _alert_window(window: Window, times: list[int], end_ns: int | None) -> Window:
    """An open end of the period reaches every later alert: AgentDown fires after the last span."""
    if end_ns is not None or not times:
        return window
    return Window(window.start_ns if window.end_ns > window.start_ns else min(times),
                  max(window.end_ns, max(times) + 1))


def summarize_alerts(alerts: Iterable[AlertRecord], window: Window) -> list[AlertSummary]:
    """One summary per alert instance (rule, agent). The same rule evaluated in several places (the
    process, agentmon serve: the ``source`` label of serve's recordings) counts once per episode."""
    by: dict[tuple[str, str | None], list[AlertRecord]] = {}
    for a in sorted(alerts, key=lambda a: a.time_ns):
        if window.contains(a.time_ns):
            by.setdefault((a.rule, a.agent), []).append(a)
    out = []
    for (rule, agent), events in by.items():
        transitions = [(e.time_ns / 1e9, e.labels.get("source", ""), e.state == "firing") for e in events]
        # An evaluator whose first word in the period is "resolved" was firing when the period began
        # (its firing fell before it): that episode counts, at the period's start, wherever the data
        # came from (a recording holds the firing line, serve's export rebuilds it from the alert).
        said: set[str] = set()
        for _, source, is_firing in list(transitions):
            if source not in said:
                said.add(source)
                if not is_firing:
                    transitions.append((window.start_ns / 1e9, source, True))
        found = episodes(transitions)
        fired = [e for e in events if e.state == "firing"]
        first_ns = next((e.time_ns for e in fired if found and e.time_ns / 1e9 == found[0].start),
                        int(found[0].start * 1e9) if found else events[0].time_ns)
        last = ("firing" if found[-1].end is None else "resolved") if found else events[-1].state
        out.append(AlertSummary(rule, agent, (fired or events)[0].severity, len(found), first_ns, last,
                                next((e.summary for e in reversed(events) if e.summary), ""),
                                tuple(dict.fromkeys(s for ep in found for s in ep.sources))))
    return sorted(out, key=lambda s: (-s.fired, s.first_fired_ns))


def summarize_metrics(samples: Iterable[MetricSample], window: Window) -> list[MetricSummary]:
    by: dict[tuple[str, tuple[tuple[str, str], ...]], list[MetricSample]] = {}
    for m in samples:
        if window.contains(m.time_ns):
            key = (m.name, tuple(sorted((k, str(v)) for k, v in m.attributes.items())))
            by.setdefault(key, []).append(m)
    out = []
    for (name, _), points in sorted(by.items()):
        points.sort(key=lambda p: p.time_ns)
        values = [p.value for p in points]
        stride = max(1, len(points) // 200)
        out.append(MetricSummary(name, points[0].unit, dict(points[0].attributes), len(values), min(values),
                                 sum(values) / len(values), max(values), values[-1],
                                 tuple((p.time_ns, p.value) for p in points[::stride])))
    return out


def _opportunities(stats: Mapping[Dimension, Mapping[str, KeyStats]], eff: Mapping[str, AgentEfficiency],
                   necks: Sequence[Bottleneck], comparisons: Sequence[Comparison],
                   trend_list: Sequence[Trend]) -> list[Opportunity]:
    """Rank what to look at first. Scores (0..1) are a stated heuristic, not a statistic:
    a confirmed regression 0.8 + growth/10; a tool/model bottleneck its share times (0.25 + the
    agent's part of all task time), at most 0.8, for the top one of each agent; an error ratio
    0.3 + 2x the ratio; low utilisation (1-u)/3; the costliest agent per task (at least 1.5x the
    cheapest) its share of cost / 2; a significant rising latency or error trend 0.4."""
    out: list[Opportunity] = []
    for c in comparisons:
        if c.regressed:
            growth = (c.change - 1.0) if c.metric != "error_ratio" else c.change * 4
            out.append(Opportunity("regression", f"regression: {c.headline()} vs baseline "
                                   f"(p={c.evidence.p_value:.2g})", min(1.0, 0.8 + 0.1 * growth), c.evidence))
    busy_total = sum(e.busy_s for e in eff.values()) or 1.0
    seen_scopes: set[str] = set()
    choices: dict[str, int] = {}
    for b in necks:
        if b.scope.startswith("agent:") and not b.key.startswith("self:"):
            choices[b.scope] = choices.get(b.scope, 0) + 1
    for b in necks:  # ranked within each scope: the top tool/model of each agent's tasks
        if b.scope.startswith("agent:") and not b.key.startswith("self:") and b.share >= MIN_BOTTLENECK_SHARE \
                and b.scope not in seen_scopes and choices.get(b.scope, 0) >= MIN_BOTTLENECK_CHOICES \
                and b.occurrences >= MIN_TASKS:
            seen_scopes.add(b.scope)
            agent = b.scope.split(":", 1)[1]
            weight = eff[agent].busy_s / busy_total if agent in eff else 0.5
            kind, name = b.key.split(":", 1)
            what = "tool" if kind == "tool" else "LLM model"
            out.append(Opportunity("bottleneck", f"{what} {name!r} is {b.share:.0%} of the critical-path time "
                                   f"of the tasks of agent {agent!r}", min(0.8, b.share * (0.25 + weight)), b.evidence))
    for e in eff.values():
        if e.tasks >= MIN_TASKS and 1 - e.success_ratio >= MIN_ERROR_RATIO:
            ratio = 1 - e.success_ratio
            ev = dataclasses.replace(e.evidence, query=f"failed tasks / tasks of agent {e.agent!r}",
                                     expression=f'count{{kind="task",agent="{e.agent}",error!=""}} / '
                                                f'count{{kind="task",agent="{e.agent}"}}',
                                     statistic=ratio)
            out.append(Opportunity("errors", f"agent {e.agent!r} error ratio {ratio:.0%} ({e.failed} of {e.tasks} "
                                   f"tasks failed)", min(1.0, 0.3 + 2 * ratio), ev))
        if e.tasks >= MIN_TASKS and e.utilisation < LOW_UTILISATION:
            out.append(Opportunity("utilisation", f"agent {e.agent!r} is busy only {e.utilisation:.0%} of its time "
                                   f"(over-provisioned or starved of work)", (1 - e.utilisation) / 3, e.evidence))
    costs = {a: e.cost_per_task_usd for a, e in eff.items() if e.cost_per_task_usd}
    if len(costs) > 1 and max(costs.values()) >= 1.5 * min(costs.values()):
        agent = max(costs, key=lambda a: costs[a])
        share = (eff[agent].cost_usd or 0.0) / (sum(e.cost_usd or 0.0 for e in eff.values()) or 1.0)
        out.append(Opportunity("cost", f"agent {agent!r} costs the most per task (${costs[agent]:.4f}/task, "
                               f"{share:.0%} of spend)", share / 2, eff[agent].evidence))
    for t in trend_list:
        if t.significant and t.slope_per_s > 0 and t.metric != "throughput_per_s":
            out.append(Opportunity("trend", f"trend: {t.headline()}", 0.4, t.evidence))
    out.sort(key=lambda o: o.score, reverse=True)
    return out

