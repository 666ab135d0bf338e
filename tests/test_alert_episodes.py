"""One alert, one count: the same rule for the same agent evaluated in several places (the process,
agentmon serve, Prometheus) is one alert per episode — in serve's rows, in reports from a recording
and in reports from Prometheus."""

from __future__ import annotations

from typing import Any

from otel_agentmon._alerts.episodes import episodes, where
from otel_agentmon._records.recording import AlertRecord
from otel_agentmon._report.prom import Prom, _alerts
from otel_agentmon.analytics import Window, summarize_alerts

PROC = "svc/1234abcd"


def spans(*transitions: tuple[float, str, bool]) -> list[tuple[float, float | None, list[str]]]:
    return [(e.start, e.end, e.sources) for e in episodes(transitions)]


def test_two_evaluators_firing_together_are_one_episode() -> None:
    assert spans((1.0, PROC, True), (1.5, "serve", True), (5.0, PROC, False), (6.0, "serve", False)) == [
        (1.0, 6.0, [PROC, "serve"])]
    # still firing where one evaluator has not resolved yet
    assert spans((1.0, PROC, True), (1.5, "serve", True), (5.0, PROC, False)) == [(1.0, None, [PROC, "serve"])]


def test_an_evaluator_that_lags_joins_the_episode_it_belongs_to() -> None:
    assert spans((1.0, PROC, True), (3.0, PROC, False), (10.0, "serve", True), (12.0, "serve", False)) == [
        (1.0, 12.0, [PROC, "serve"])]
    # ... but not one that is a new episode (past the tolerance)
    assert len(episodes([(1.0, PROC, True), (3.0, PROC, False), (100.0, "serve", True)])) == 2


def test_one_evaluator_firing_again_is_a_new_episode_and_repeats_count_once() -> None:
    assert spans((1.0, PROC, True), (2.0, PROC, False), (3.0, PROC, True), (3.1, PROC, True), (4.0, PROC, False)) \
        == [(1.0, 2.0, [PROC]), (3.0, 4.0, [PROC])]
    assert episodes([(1.0, PROC, False)]) == []  # its firing fell outside the data


def test_where() -> None:
    assert where(["serve"]) == "serve" and where([PROC]) == "process" and where([""]) == "process"
    assert where(["prometheus/x"]) == "prometheus" and where(["serve", PROC]) == "both" and where([]) == "process"


def test_a_recording_with_both_evaluators_counts_each_episode_once() -> None:
    def rec(rule: str, state: str, t: float, source: str) -> AlertRecord:
        return AlertRecord(rule, "firing" if state == "firing" else "resolved", "critical", int(t * 1e9), agent="a",
                           labels={"source": source})

    records = [rec("Down", "firing", 10, PROC), rec("Down", "firing", 10.4, "serve"),
               rec("Down", "resolved", 14, PROC), rec("Down", "resolved", 14.5, "serve"),
               rec("Down", "firing", 200, "serve"), rec("Down", "firing", 200.2, PROC)]
    (summary,) = summarize_alerts(records, Window(0, 10**12))
    assert (summary.fired, summary.last_state, summary.first_fired_ns) == (2, "firing", 10 * 10**9)
    assert set(summary.sources) == {PROC, "serve"}


class FakeProm(Prom):
    """Prometheus answering query_range from canned series (t0 = 1000 s, 15 s steps)."""

    def __init__(self, series: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__("http://unused", None)
        self.series = series

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return next((v for k, v in self.series.items() if expr.startswith(k)), [])


def test_prometheus_report_counts_an_alert_both_prometheus_and_the_process_evaluated_once() -> None:
    step = 15.0  # _step(1000, 1900)
    labels = {"gen_ai_agent_name": "a", "instance": "i1", "severity": "critical"}

    def samples(first: float, last: float) -> list[list[Any]]:
        return [[1000 + i * step, "1"] for i in range(int(first / step), int(last / step) + 1)]

    prom = FakeProm({
        "ALERTS": [{"metric": {"alertname": "Down", **labels}, "values": samples(60, 300) + samples(600, 700)}],
        "agentmon_alert_firing": [{"metric": {"agentmon_alert_rule": "Down", **labels},
                                   "values": samples(45, 290) + samples(610, 700)}],
    })
    (summary,) = _alerts(prom, 1000.0, 1900.0)
    assert (summary.rule, summary.agent, summary.fired, summary.last_state) == ("Down", "a", 2, "resolved")
    assert {where([s]) for s in summary.sources} == {"prometheus", "process"}


def test_a_report_counts_alerts_that_fire_after_the_last_span() -> None:
    # AgentDown fires after an agent's last span, by definition: an open-ended period reaches it.
    from otel_agentmon.analytics import analyze
    from tests.test_analytics import T0, build

    records = build().records
    last_end = max(r.end_ns for r in records)
    down = [AlertRecord("AgentDown", "firing", "critical", last_end + 5 * 10**9, agent="slow")]
    (summary,) = analyze(records, down).alerts
    assert (summary.rule, summary.fired) == ("AgentDown", 1)
    assert analyze(records, down, start_ns=T0, end_ns=last_end + 1).alerts == []  # a closed period does not
