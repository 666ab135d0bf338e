"""Reports lead with findings: ranked one-liners, evidence folded, stated suppression rules,
durations in one unit with p99 and max, periods within the data, exact prices."""

from __future__ import annotations

import dataclasses
import re

from otel_agentmon._analytics.base import DEFAULT_PRICES, Window, price_of
from otel_agentmon._records.recording import AlertRecord
from otel_agentmon._records.records import SpanRecord
from otel_agentmon._report import html as report_html
from otel_agentmon._report import md as report_md
from otel_agentmon._report.model import from_insights
from otel_agentmon.analytics import MIN_TREND_PERIOD_S, analyze, summarize_alerts
from tests.test_analytics import MS, T0, Swarm, build


def hung_run(tasks: int = 20, tools: tuple[str, ...] = ("lookup",)) -> list[SpanRecord]:
    """Agent ``worker``: ``tasks`` tasks of ~20 ms calling ``tools`` in turn, then one task hung for 7 s."""
    sw = Swarm()
    t = T0
    for i in range(tasks + 1):
        took = 7000 * MS if i == tasks else 20 * MS + i * 10_000
        task = sw.add(i + 1, None, "task work", "task", t, t + took, agent="worker", task_type="work")
        step = took // (len(tools) + 1)
        for j, name in enumerate(tools):
            sw.add(i + 1, task, f"execute_tool {name}", "tool", t + j * step, t + (j + 1) * step, agent="worker",
                   tool=name)
        t += took + 5 * MS
    return sw.records


def markdown_of(records: list[SpanRecord], **kw: object) -> str:
    return report_md.render(from_insights(analyze(records, **kw), "test"))  # type: ignore[arg-type]


def test_findings_come_first_and_a_hung_task_is_one_with_its_max_and_p99() -> None:
    text = markdown_of(hung_run())
    assert re.findall(r"^## (.*)$", text, flags=re.M)[0] == "Findings"
    findings = text.split("## Findings", 1)[1].split("## ", 1)[0]
    assert re.search(r"1\. \*\*agent 'worker': slowest task took 7000 ms, \d+x its median", findings), findings
    assert re.search(r"   - evidence: n=21; traces `00000000`", findings), findings  # short ids, no link
    header = next(line for line in text.splitlines() if line.startswith("| agent |"))
    assert "| p50 ms | p95 ms | p99 ms | max ms |" in header
    row = next(line for line in text.splitlines() if line.startswith("| `worker` |"))
    assert "| 7000.0 |" in row  # the max, in the table's unit (ms), as in the finding
    assert "Durations are in ms throughout." in text and " s " not in findings


def test_single_tool_tasks_are_not_a_bottleneck_but_a_real_choice_is() -> None:
    single = analyze(hung_run())
    assert not [o for o in single.opportunities if o.kind == "bottleneck"]
    assert "critical-path time" not in markdown_of(hung_run()).split("## Findings", 1)[1].split("## ", 1)[0]
    two = analyze(hung_run(tools=("lookup", "search")))
    assert [o for o in two.opportunities if o.kind == "bottleneck"]


def test_trends_need_a_period_long_enough_for_a_per_minute_slope() -> None:
    short = analyze(build(drift_ms=1.0).records)  # ~7 s: the drift is fitted, but not reported
    assert any(t.significant for t in short.trends) and short.window.seconds < MIN_TREND_PERIOD_S
    assert short.reportable_trends == [] and not [o for o in short.opportunities if o.kind == "trend"]
    # The same run slowed down 200x in wall time (tasks spread over ~23 min): now it is a trend.
    stretched = [dataclasses.replace(r, start_ns=T0 + (r.start_ns - T0) * 200, end_ns=T0 + (r.end_ns - T0) * 200)
                 for r in build(drift_ms=1.0).records]
    long = analyze(stretched)
    assert long.window.seconds >= MIN_TREND_PERIOD_S and long.reportable_trends
    assert "per minute" in markdown_of(stretched).split("## Trends", 1)[1].split("## ", 1)[0]


def test_the_footer_states_the_suppression_rules() -> None:
    text = markdown_of(hung_run())
    footer = text.rsplit("---", 1)[1]
    for rule in ("trends need a period of >= 10 min", "needs >= 5 tasks", ">= 2 different tools/models",
                 ">= 1 s and >= 10x its agent's median"):
        assert rule.replace("needs", "need") in footer, rule
    page = report_html.render(from_insights(analyze(hung_run()), "test"))
    assert "<footer>" in page and "trends need a period of &gt;= 10 min" in page


def test_periods_never_reach_before_the_first_data_point() -> None:
    records = hung_run()
    first = min(r.start_ns for r in records)
    hour_before = analyze(records, start_ns=first - 3600 * 10**9, end_ns=first + 3600 * 10**9)
    assert hour_before.window == Window(first, max(r.end_ns for r in records) + 1)


def test_evidence_is_folded_and_wording_and_charts_are_fixed() -> None:
    model = from_insights(analyze(build().records), "test")
    page = report_html.render(model)
    text = report_md.render(model)
    assert "spent in spent_in" not in page + text and "by spent_in" not in text
    assert "- traces, time spent in: " in text
    assert page.count("<details><summary>evidence</summary>") >= len(model.opportunities) + len(model.agents)
    svgs = re.findall(r"<svg [^>]*>", page)
    assert svgs and all('viewBox="0 0 ' in s and 'width="100%"' in s and 'height="' not in s for s in svgs), svgs
    assert '<meta name="viewport"' in page


def test_trace_ids_link_to_the_serve_explorer_when_the_report_came_from_serve() -> None:
    model = from_insights(analyze(hung_run()), "agentmon serve at http://127.0.0.1:4318")
    model.trace_base = "http://127.0.0.1:4318"
    tid = f"{21:032x}"  # the hung task's trace
    assert f"[`{tid[:8]}`](http://127.0.0.1:4318/traces/{tid})" in report_md.render(model)
    assert f'<a href="http://127.0.0.1:4318/traces/{tid}"><code>{tid[:8]}</code></a>' in report_html.render(model)


def test_prices_match_exact_names_and_listed_dated_aliases_only() -> None:
    assert price_of(DEFAULT_PRICES, "gpt-4.1") == DEFAULT_PRICES["gpt-4.1"]
    assert price_of(DEFAULT_PRICES, "gpt-4.1-2025-04-14") == DEFAULT_PRICES["gpt-4.1"]
    assert price_of(DEFAULT_PRICES, "gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    for unknown in ("gpt-4.1-nano", "gpt-4.1-2099-01-01", "gpt-4o-mini-tts", "claude-sonnet-4-5"):
        assert price_of(DEFAULT_PRICES, unknown) is None, unknown
    assert price_of({"gpt-4.1": (1.0, 1.0)}, "gpt-4.1-nano") is None
    sw = Swarm()
    task = sw.add(1, None, "task t", "task", T0, T0 + 50 * MS, agent="a")
    sw.add(1, task, "chat gpt-4.1-nano", "llm", T0, T0 + 40 * MS, agent="a", model="gpt-4.1-nano",
           input_tokens=1000, output_tokens=100)
    eff = analyze(sw.records).efficiency["a"]
    assert eff.cost_usd is None and eff.unpriced_models == ("gpt-4.1-nano",)
    assert "Unpriced: `gpt-4.1-nano`." in markdown_of(sw.records)


def test_an_alert_that_fired_before_the_period_and_resolved_in_it_counts_once() -> None:
    window = Window(T0, T0 + 60 * 10**9)
    resolved_only = [AlertRecord("Slow", "resolved", "warning", T0 + 5 * 10**9, agent="a", labels={"source": "p"})]
    (summary,) = summarize_alerts(resolved_only, window)
    assert summary.fired == 1 and summary.first_fired_ns == T0 and summary.last_state == "resolved"
    # The same episode with its firing inside the period: still once, from its firing.
    both = [AlertRecord("Slow", "firing", "warning", T0 + 10**9, agent="a", labels={"source": "p"}), *resolved_only]
    (summary,) = summarize_alerts(both, window)
    assert summary.fired == 1 and summary.first_fired_ns == T0 + 10**9
