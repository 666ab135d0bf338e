"""The analytics engine over synthetic swarms with known answers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from otel_agentmon._records.recording import AlertRecord, MetricSample
from otel_agentmon._records.records import SpanRecord
from otel_agentmon.analytics import Window, analyze, load_prices, sliding

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


class Swarm:
    """Builds span records: one trace per task, agent spans covering the whole run."""

    def __init__(self) -> None:
        self.records: list[SpanRecord] = []
        self._ids = 0

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def add(self, trace: int, parent: int | None, name: str, kind: str, start: int, end: int, **kw: object) -> int:
        sid = self._id()
        self.records.append(SpanRecord(
            trace_id=f"{trace:032x}", span_id=f"{sid:016x}", parent_id=None if parent is None else f"{parent:016x}",
            name=name, kind=kind, start_ns=start, end_ns=end, **kw))  # type: ignore[arg-type]
        return sid


def build(*, tasks: int = 60, slowdown: float = 1.0, drift_ms: float = 0.0, seed: int = 1) -> Swarm:
    """Two agents working sequentially for ``tasks`` tasks each. "fast": lookup x2 + an LLM call,
    fails every 10th task. "slow": one search (300 ms) + an LLM call. In the last third, search
    takes ``slowdown`` times longer; ``drift_ms`` adds that much per task to every fast task."""
    rng = random.Random(seed)
    sw = Swarm()
    trace = 0
    ends: dict[str, int] = {}
    for agent in ("fast", "slow"):
        t = T0
        for i in range(tasks):
            trace += 1

            def jitter(base: float) -> int:
                return int(base * MS * rng.uniform(0.9, 1.1))

            task = sw.add(trace, None, f"task {agent}", "task", t, 0, agent=agent, task_type=f"{agent}-work")
            cursor = t + 2 * MS
            if agent == "fast":
                for _ in range(2):
                    d = jitter(20 + drift_ms * i)
                    sw.add(trace, task, "execute_tool lookup", "tool", cursor, cursor + d, agent=agent, tool="lookup")
                    cursor += d
            else:
                d = jitter(300 * (slowdown if i >= tasks * 2 // 3 else 1.0))
                sw.add(trace, task, "execute_tool search", "tool", cursor, cursor + d, agent=agent, tool="search")
                cursor += d
            d = jitter(60)
            sw.add(trace, task, "chat gpt-4o-mini", "llm", cursor, cursor + d, agent=agent, model="gpt-4o-mini",
                   input_tokens=1000, output_tokens=200)
            cursor += d + 3 * MS
            error = "ToolError" if agent == "fast" and i % 10 == 9 else None
            sw.records[-1 - (3 if agent == "fast" else 2)] = _with_end(sw.records[-1 - (3 if agent == "fast" else 2)],
                                                                       cursor, error)
            t = cursor + 10 * MS
        ends[agent] = t
    for agent, end in ends.items():
        sw.add(10_000, None, f"invoke_agent {agent}", "agent", T0, end, agent=agent)
    return sw


def _with_end(rec: SpanRecord, end: int, error: str | None) -> SpanRecord:
    fields = {**rec.to_json(), "end_ns": end, "error": error}
    return SpanRecord.from_json(fields)


def test_no_regression_is_reported_when_nothing_changed() -> None:
    insights = analyze(build().records)
    assert insights.regressions == []
    assert insights.comparisons  # the tests did run


def test_an_injected_tool_slowdown_is_a_regression_with_evidence() -> None:
    insights = analyze(build(slowdown=2.0).records)
    found = {(c.dimension, c.key, c.metric) for c in insights.regressions}
    assert ("tool", "search", "latency") in found
    assert ("agent", "slow", "latency") in found
    assert not any(key in ("fast", "lookup", "fast-work", "gpt-4o-mini") for _, key, _ in found)
    (search,) = [c for c in insights.regressions if c.key == "search"]
    ev = search.evidence
    assert ev.p_value is not None and ev.p_value < 0.01
    assert search.change == pytest.approx(2.0, rel=0.15)
    assert ev.baseline is not None and ev.baseline.end_ns == ev.window.start_ns
    assert len(ev.trace_ids) == 3 and ev.statistic is not None
    assert "mann_whitney_u(duration_s" in ev.expression
    assert insights.opportunities[0].kind == "regression"


def test_slowest_agent_busiest_tool_and_per_group_percentiles() -> None:
    insights = analyze(build().records)
    slowest, busiest = insights.slowest_agent(), insights.busiest_tool()
    assert slowest is not None and slowest.key == "slow"
    assert busiest is not None and (busiest.key, busiest.n) == ("lookup", 120)
    search = insights.stats["tool"]["search"]
    assert 0.27 < (search.p50_s or 0) < 0.33
    assert search.p50_s is not None and search.p95_s is not None and search.p99_s is not None
    assert search.p50_s <= search.p95_s <= search.p99_s
    assert insights.stats["agent"]["fast"].errors == 6


def test_bottleneck_names_the_tool_dominating_an_agents_critical_path() -> None:
    insights = analyze(build().records)
    slow = [b for b in insights.bottlenecks if b.scope == "agent:slow"]
    assert slow[0].key == "tool:search" and 0.7 < slow[0].share < 0.85
    assert slow[0].evidence.trace_ids
    titles = [o.title for o in insights.opportunities if o.kind == "bottleneck"]
    assert any("'search'" in t and "'slow'" in t for t in titles)
    by_tool = {b.key: b.share for b in insights.bottlenecks if b.scope == "traces" and b.dimension == "tool"}
    assert by_tool["search"] > by_tool["lookup"]


def test_efficiency_utilisation_success_tokens_and_cost() -> None:
    insights = analyze(build().records)
    fast = insights.efficiency["fast"]
    assert fast.tasks == 60 and fast.failed == 6 and fast.success_ratio == pytest.approx(0.9)
    # Busy = tasks; available = the agent span. Between tasks the agent idles 10 ms of ~115 ms.
    assert 0.85 < fast.utilisation < 0.95
    assert fast.tokens_per_task == 1200
    # gpt-4o-mini in the example table: 0.15 $/1M in, 0.60 $/1M out.
    assert fast.cost_per_task_usd == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6)
    custom = analyze(build().records, prices={"gpt-4o-mini": (1.0, 2.0)})
    assert custom.efficiency["fast"].cost_per_task_usd == pytest.approx((1000 + 400) / 1e6)
    unpriced = analyze(build().records, prices={})
    assert unpriced.efficiency["fast"].cost_usd is None
    assert unpriced.efficiency["fast"].unpriced_models == ("gpt-4o-mini",)
    errors = [o for o in insights.opportunities if o.kind == "errors"]
    assert errors and "'fast' error ratio 10%" in errors[0].title


def test_a_steady_drift_is_a_trend_and_a_flat_series_is_not() -> None:
    drifting = analyze(build(drift_ms=1.0).records)
    fast_p50 = [t for t in drifting.trends if t.dimension == "agent" and t.key == "fast"
                and t.metric == "p50_latency_s"]
    assert fast_p50 and fast_p50[0].significant and fast_p50[0].ci_low > 0
    flat = analyze(build().records)
    assert not [t for t in flat.significant_trends if t.metric == "p50_latency_s" and t.key == "fast"]


def test_alerts_and_metrics_are_summarised_within_the_window() -> None:
    records = build().records
    alerts = [AlertRecord("Slow", "firing", "warning", T0 + 5 * 10**9, agent="slow", summary="slow is slow"),
              AlertRecord("Slow", "resolved", "warning", T0 + 9 * 10**9, agent="slow"),
              AlertRecord("Old", "firing", "critical", T0 - 10**12)]
    metrics = [MetricSample("process.cpu.utilization", v, T0 + i * 10**9, unit="1") for i, v in
               enumerate([0.1, 0.5, 0.3])]
    insights = analyze(records, alerts, metrics)
    (summary,) = insights.alerts
    assert (summary.rule, summary.agent, summary.fired, summary.last_state, summary.summary) == (
        "Slow", "slow", 1, "resolved", "slow is slow")
    (cpu,) = insights.metrics
    assert (cpu.n, cpu.minimum, cpu.maximum, cpu.last) == (3, 0.1, 0.5, 0.3)


def test_sliding_windows_cover_the_period() -> None:
    records = build().records
    start = min(r.start_ns for r in records)
    series = sliding(records, "agent", window_s=5.0, step_s=5.0, span=Window(start, start + 20 * 10**9))
    assert [w.window.end_ns - w.window.start_ns for w in series] == [5 * 10**9] * 4
    assert sum(w.stats["fast"].n for w in series if "fast" in w.stats) == sum(
        1 for r in records if r.kind == "task" and r.agent == "fast" and r.end_ns < start + 20 * 10**9)


def test_price_tables_from_yaml_and_json(tmp_path: Path) -> None:
    yml = tmp_path / "prices.yaml"
    yml.write_text("my-model: {input: 1.5, output: 6}\nother: [0.1, 0.2]\n")
    assert load_prices(yml) == {"my-model": (1.5, 6.0), "other": (0.1, 0.2)}
    js = tmp_path / "prices.json"
    js.write_text('{"m": [1, 2]}')
    assert load_prices(js) == {"m": (1.0, 2.0)}
    js.write_text('{"m": [-1, 2]}')
    with pytest.raises(ValueError, match="non-negative"):
        load_prices(js)
