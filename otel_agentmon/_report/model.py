"""What a report shows, independent of its source (spans or Prometheus) and of its format."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .._analytics.base import Evidence, Window
from .._analytics.bottleneck import Bottleneck
from .._analytics.change import MW_TEST, Z_TEST, Comparison, RegressionPolicy, Trend
from .._analytics.stats import percentile
from ..analytics import AlertSummary, Insights, MetricSummary, Opportunity

Series = dict[str, list[tuple[float, float]]]  # name -> [(seconds from window start, value)]


@dataclasses.dataclass(frozen=True)
class AgentRow:
    agent: str
    tasks: int
    failed: int
    throughput_per_s: float
    p50_s: float | None
    p95_s: float | None
    utilisation: float | None
    tokens_per_task: float | None
    cost_per_task_usd: float | None
    evidence: Evidence
    p99_s: float | None = None
    max_s: float | None = None  # the slowest task: a hung one shows here, not in the percentiles

    @property
    def error_ratio(self) -> float:
        return self.failed / self.tasks if self.tasks else 0.0


@dataclasses.dataclass(frozen=True)
class GroupRow:
    """A tool's or a model's calls."""

    dimension: str
    key: str
    calls: int
    errors: int
    p50_s: float | None
    p95_s: float | None
    total_s: float | None
    evidence: Evidence
    p99_s: float | None = None
    max_s: float | None = None


@dataclasses.dataclass(frozen=True)
class Highlight:
    """A named finding (the slowest agent, the busiest tool) with the number behind it."""

    what: str
    key: str
    detail: str
    evidence: Evidence


@dataclasses.dataclass
class ReportModel:
    title: str
    source: str
    window: Window
    agents: list[AgentRow]
    tools: list[GroupRow]
    models: list[GroupRow]
    highlights: list[Highlight]
    regressions: list[Comparison]
    tests_run: int
    policy: RegressionPolicy
    trends: list[Trend]
    bottlenecks: list[Bottleneck]
    alerts: list[AlertSummary]
    metrics: list[MetricSummary]
    opportunities: list[Opportunity]
    latency_chart: Series = dataclasses.field(default_factory=dict[str, list[tuple[float, float]]])
    throughput_chart: Series = dataclasses.field(default_factory=dict[str, list[tuple[float, float]]])
    notes: list[str] = dataclasses.field(default_factory=list[str])
    prices_note: str = ""
    #: base URL of the agentmon serve the report came from: trace ids link to ``<base>/traces/<id>``
    trace_base: str = ""
    unpriced_models: tuple[str, ...] = ()


def policy_text(m: ReportModel) -> str:
    """The regression tests and thresholds in words (plain text: the renderers escape it)."""
    p = m.policy
    return (f"Recent window vs baseline. Latency and tokens/task: {MW_TEST}; regression when p < {p.alpha} and the "
            f"median ratio is >= {p.min_ratio}, with >= {p.min_samples} samples in each window. Error ratio: "
            f"{Z_TEST}; regression when p < {p.alpha} and the ratio rose by >= {p.min_error_increase:.0%} points, "
            f">= {p.min_error_samples} samples each. {m.tests_run} tests run.")


def highlights(agents: Sequence[AgentRow], tools: Sequence[GroupRow]) -> list[Highlight]:
    """The slowest agent (highest median task time) and the busiest tool (most calls)."""
    out: list[Highlight] = []
    timed = [a for a in agents if a.p50_s is not None]
    if timed:
        pool = [a for a in timed if a.tasks >= 5] or timed
        slow = max(pool, key=lambda a: a.p50_s or 0.0)
        out.append(Highlight("slowest agent", slow.agent, f"median task {_ms(slow.p50_s)}, p95 {_ms(slow.p95_s)}, "
                             f"p99 {_ms(slow.p99_s)}, max {_ms(slow.max_s)} over {slow.tasks} tasks", slow.evidence))
    if tools:
        busy = max(tools, key=lambda t: (t.calls, t.total_s or 0.0))
        total = "" if busy.total_s is None else f", {busy.total_s * 1000:.4g} ms in total"
        out.append(Highlight("busiest tool", busy.key, f"{busy.calls} calls{total}, median {_ms(busy.p50_s)}",
                             busy.evidence))
    return out


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def from_insights(insights: Insights, source: str, buckets: int = 20) -> ReportModel:
    """The report of an ``analyze`` result."""
    agent_stats = insights.stats.get("agent", {})
    agents = []
    for name, st in sorted(agent_stats.items()):
        eff = insights.efficiency.get(name)
        agents.append(AgentRow(
            agent=name, tasks=st.n, failed=st.errors, throughput_per_s=st.rate_per_s, p50_s=st.p50_s,
            p95_s=st.p95_s, utilisation=None if eff is None else eff.utilisation,
            tokens_per_task=None if eff is None else eff.tokens_per_task,
            cost_per_task_usd=None if eff is None else eff.cost_per_task_usd, evidence=st.evidence,
            p99_s=st.p99_s, max_s=st.max_s))
    groups = {dim: [GroupRow(dim, k, s.n, s.errors, s.p50_s, s.p95_s, s.total_s, s.evidence, s.p99_s, s.max_s)
                    for k, s in sorted(insights.stats.get(dim, {}).items())] for dim in ("tool", "model")}
    latency, throughput = _charts(insights, buckets)
    return ReportModel(
        title="agentmon report", source=source, window=insights.window, agents=agents, tools=groups["tool"],
        models=groups["model"], highlights=highlights(agents, groups["tool"]), regressions=insights.regressions,
        tests_run=len(insights.comparisons), policy=insights.policy, trends=insights.reportable_trends,
        bottlenecks=list(insights.bottlenecks), alerts=list(insights.alerts), metrics=list(insights.metrics),
        opportunities=list(insights.opportunities), latency_chart=latency, throughput_chart=throughput,
        notes=[f"{insights.spans} spans analysed"], prices_note=insights.prices_note,
        unpriced_models=tuple(sorted({m for e in insights.efficiency.values() for m in e.unpriced_models})))


def _charts(insights: Insights, buckets: int) -> tuple[Series, Series]:
    """Per-agent task p50 and throughput per time bucket (from the tasks' KeyStats evidence spans)."""
    w = insights.window
    width = (w.end_ns - w.start_ns) / buckets if w.end_ns > w.start_ns else 0.0
    latency: Series = {}
    throughput: Series = {}
    if width <= 0:
        return latency, throughput
    for agent, durations in _task_durations_by_bucket(insights, buckets, width).items():
        latency[agent] = [((i + 0.5) * width / 1e9, (percentile(d, 0.5) or 0.0) * 1000) for i, d in enumerate(durations)
                          if d]
        throughput[agent] = [((i + 0.5) * width / 1e9, len(d) / (width / 1e9)) for i, d in enumerate(durations)]
    return latency, throughput


def _task_durations_by_bucket(insights: Insights, buckets: int, width: float) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for agent, points in insights.task_points.items():
        per: list[list[float]] = [[] for _ in range(buckets)]
        for end_ns, duration in points:
            idx = int((end_ns - insights.window.start_ns) / width)
            if 0 <= idx < buckets:
                per[idx].append(duration)
        out[agent] = per
    return out
