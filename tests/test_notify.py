"""Alert notifiers: the Alertmanager webhook (payload, retries, de-duplication), and isolation:
a notifier that hangs, fails or raises never delays the agents or the other notifiers."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import otel_agentmon as agentmon
from otel_agentmon import AlertEvent, AlertRule, CallbackNotifier, HealthPolicy, LoggingNotifier, WebhookNotifier
from otel_agentmon._alerts.notify import Dispatcher
from otel_agentmon.testing import capture
from tests.support import polling
from tests.support.webhooks import Hook, event, hooks

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    return polling.wait_for(predicate, timeout)


@pytest.fixture
def hook() -> Iterator[Callable[..., Hook]]:
    yield from hooks()


def parse_rfc3339(text: str) -> float:
    assert RFC3339.match(text), text
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(5)
def test_event_labels_fingerprint_and_render() -> None:
    rule = AlertRule("Slow", "latency_p95", ">", 2.5, severity="critical", labels={"team": "x"},
                     annotations={"summary": "{agent} p95 {value} > {threshold} ({rule})"})
    e = AlertEvent(rule, "a", "firing", "pending", 3.14159, 100.0, 90.0)
    assert e.labels == {"alertname": "Slow", "severity": "critical", "team": "x", "agent": "a"}
    assert e.fingerprint == "agent=a|alertname=Slow|severity=critical|team=x"
    assert e.render(rule.annotations["summary"]) == "a p95 3.142 > 2.5 (Slow)"
    assert e.render("{nope} {0}") == "{nope} {0}"  # bad templates come back as they are
    assert AlertEvent(rule, None, "resolved", "firing", None, 1.0, None).render("{value}") == "n/a"


# --- the webhook ---------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_webhook_speaks_alertmanager_v4(hook: Callable[..., Hook]) -> None:
    h = hook()
    notifier = WebhookNotifier(h.url, headers={"Authorization": "Bearer t"})
    firing = event("firing")
    notifier.notify(firing)
    (body,) = h.bodies
    assert h.headers[0]["Content-Type"] == "application/json" and h.headers[0]["Authorization"] == "Bearer t"
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"]
    assert body["groupLabels"] == {"alertname": "ErrorRateHigh"} and body["truncatedAlerts"] == 0
    (alert,) = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {"alertname": "ErrorRateHigh", "severity": "critical", "team": "agents", "agent": "a"}
    assert body["commonLabels"] == alert["labels"]
    assert alert["annotations"] == {"summary": "a fails 0.75"}
    assert parse_rfc3339(alert["startsAt"]) == pytest.approx(1_700_000_000.5)
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["fingerprint"] == firing.fingerprint and alert["fingerprint"]
    notifier.notify(event("resolved", value=0.1))
    resolved = h.bodies[1]
    assert resolved["status"] == "resolved" and resolved["alerts"][0]["status"] == "resolved"
    assert parse_rfc3339(resolved["alerts"][0]["startsAt"]) == pytest.approx(1_700_000_000.5)
    assert parse_rfc3339(resolved["alerts"][0]["endsAt"]) == pytest.approx(1_700_000_100.25)
    assert resolved["alerts"][0]["fingerprint"] == firing.fingerprint
    assert (notifier.sent, notifier.failed) == (2, 0)
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("ftp://example.invalid/hook")


@pytest.mark.timeout(10)
def test_webhook_retries_on_500_then_succeeds(hook: Callable[..., Hook]) -> None:
    h = hook(statuses=[500, 503])
    notifier = WebhookNotifier(h.url, retries=3, backoff=0.01)
    notifier.notify(event())
    assert len(h.bodies) == 3 and h.bodies[0] == h.bodies[2]
    assert (notifier.sent, notifier.failed) == (1, 0)


@pytest.mark.timeout(10)
def test_webhook_gives_up_after_its_retries_and_says_so(hook: Callable[..., Hook], fresh_log_limiter: None,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    h = hook(statuses=[500] * 10)
    notifier = WebhookNotifier(h.url + "?token=secret", retries=2, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        notifier.notify(event())
    assert len(h.bodies) == 3 and (notifier.sent, notifier.failed) == (0, 1)
    messages = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    assert len(messages) == 1 and "3 attempts" in messages[0] and "secret" not in messages[0]
    notifier.notify(event())  # a failed send is not remembered as sent: it is tried again
    assert len(h.bodies) == 6


@pytest.mark.timeout(10)
def test_webhook_deduplicates_the_same_alert_in_the_same_state(hook: Callable[..., Hook]) -> None:
    h = hook()
    notifier = WebhookNotifier(h.url)
    for e in (event("firing"), event("firing", value=0.9), event("firing", agent="b"), event("resolved"),
              event("resolved"), event("firing")):
        notifier.notify(e)
    assert [(b["status"], b["alerts"][0]["labels"]["agent"]) for b in h.bodies] == [
        ("firing", "a"), ("firing", "b"), ("resolved", "a"), ("firing", "a")]
    assert notifier.sent == 4


# --- a bad webhook never slows the agents or the other notifiers -----------------------------------

TASKS = 8


def run_agents(cap: Any) -> None:
    """A fixed amount of agent work; each task turns the Busy alert on, its end turns it off."""
    for _ in range(TASKS):
        with agentmon.task("work", agent="a"):
            cap.monitor.evaluate_health()  # firing
        cap.monitor.evaluate_health()  # resolved


def busy_capture(**options: Any) -> tuple[Any, Callable[[], None]]:
    # health_interval is long: every evaluation in these tests is one of run_agents' own calls.
    return capture(alert_rules=[AlertRule("Busy", "in_flight", ">", 0)], health_interval=60,
                   health_policy=HealthPolicy(cpu_limit=None), **options)


@pytest.mark.timeout(30)
def test_hanging_webhook_delays_neither_agents_nor_other_notifiers(hook: Callable[..., Hook]) -> None:
    h = hook(hang=True)
    got: list[AlertEvent] = []
    cap, close = busy_capture(alert_webhook=h.url, notifiers=[CallbackNotifier(got.append)])
    try:
        run_agents(cap)
        # All the agents' work is done and the callback got every transition, in order, while
        # the webhook is still stuck on the very first request.
        assert len(cap.spans("task work")) == TASKS
        assert wait_for(lambda: len(got) == 2 * TASKS)
        assert [e.state for e in got] == ["firing", "resolved"] * TASKS
        # The webhook's first request may still be on its way at load 10: wait for it to arrive
        # (and hang); the point is that it is the only one while the agents ran.
        assert wait_for(lambda: len(h.bodies) >= 1)
        assert len(h.bodies) == 1 and not h.release.is_set()
        h.release.set()
        # Nothing was lost: the queued transitions reach the webhook once it answers.
        assert wait_for(lambda: len(h.bodies) >= 2 * TASKS)
        assert h.bodies[-1]["status"] == "resolved"
    finally:
        close()


@pytest.mark.timeout(30)
def test_failing_webhook_delays_neither_agents_nor_other_notifiers(hook: Callable[..., Hook]) -> None:
    h = hook(statuses=[500] * 1000)
    got: list[AlertEvent] = []
    webhook = WebhookNotifier(h.url, timeout=1.0, retries=3, backoff=0.2)
    cap, close = busy_capture(notifiers=[webhook, CallbackNotifier(got.append)])
    try:
        run_agents(cap)
        assert len(cap.spans("task work")) == TASKS
        assert wait_for(lambda: len(got) == 2 * TASKS)
        assert [e.state for e in got] == ["firing", "resolved"] * TASKS
        # Each failed transition costs the webhook >= 1.4 s of backoff: it is far behind.
        assert webhook.sent == 0 and webhook.failed < 2 * TASKS
        h.statuses.clear()  # it recovers: what it had not given up on yet still goes out
        assert wait_for(lambda: webhook.sent + webhook.failed == 2 * TASKS) and webhook.sent > 0
    finally:
        close()


# --- the dispatcher ------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_raising_callback_does_not_stop_later_notifications(fresh_log_limiter: None,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str | None, str]] = []
    others: list[AlertEvent] = []

    def flaky(e: AlertEvent) -> None:
        if not seen:
            seen.append(("raised", e.state))
            raise RuntimeError("callback bug")
        seen.append((e.agent, e.state))

    dispatcher = Dispatcher([CallbackNotifier(flaky), CallbackNotifier(others.append)])
    try:
        with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
            for e in (event("firing"), event("resolved"), event("firing", agent="b")):
                dispatcher.dispatch(e)
            assert dispatcher.flush(5)
        assert seen == [("raised", "firing"), ("a", "resolved"), ("b", "firing")]
        assert [(e.agent, e.state) for e in others] == [("a", "firing"), ("a", "resolved"), ("b", "firing")]
        assert any("raised; continuing" in r.getMessage() for r in caplog.records)
    finally:
        dispatcher.stop()


@pytest.mark.timeout(10)
def test_only_firing_and_resolved_are_notified() -> None:
    got: list[str] = []
    dispatcher = Dispatcher([CallbackNotifier(lambda e: got.append(e.state))])
    try:
        for state in ("pending", "firing", "inactive", "resolved"):
            dispatcher.dispatch(event(state))
        assert dispatcher.flush(5)
        assert got == ["firing", "resolved"]
    finally:
        dispatcher.stop()


@pytest.mark.timeout(10)
def test_full_queue_drops_and_counts_without_blocking() -> None:
    started, release = threading.Event(), threading.Event()
    got: list[str | None] = []

    def slow(e: AlertEvent) -> None:
        started.set()
        release.wait(5)
        got.append(e.agent)

    dispatcher = Dispatcher([CallbackNotifier(slow)], queue_size=2)
    try:
        dispatcher.dispatch(event(agent="a0"))
        assert started.wait(5)  # a0 is being delivered; the queue is empty again
        for i in range(1, 6):
            dispatcher.dispatch(event(agent=f"a{i}"))  # a1, a2 queued; a3..a5 dropped
        assert dispatcher.dropped == 3
        assert not dispatcher.flush(0.05)  # returns on its deadline, not when the notifier is done
        release.set()
        assert dispatcher.flush(5)
        assert got == ["a0", "a1", "a2"]
        dispatcher.dispatch(event(agent="a6"))  # room again
        assert dispatcher.flush(5) and got[-1] == "a6" and dispatcher.dropped == 3
    finally:
        release.set()
        dispatcher.stop()


@pytest.mark.timeout(10)
def test_logging_notifier_levels(caplog: pytest.LogCaptureFixture) -> None:
    notifier = LoggingNotifier()
    warning_rule = AlertRule("Slow", "latency_p95", ">", 2)
    with caplog.at_level(logging.INFO, logger="otel_agentmon.alerts"):
        notifier.notify(event("firing"))
        notifier.notify(event("firing", rule=warning_rule))
        notifier.notify(event("resolved", agent=None))
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.WARNING, logging.INFO]
    first = caplog.records[0].getMessage()
    assert "ErrorRateHigh firing for a" in first and "a fails 0.75" in first
    assert caplog.records[2].getMessage().startswith("alert ErrorRateHigh resolved (value 0.75")


# --- every notification is accounted for --------------------------------------------------------


@pytest.mark.timeout(30)
def test_alerts_left_at_shutdown_are_counted_as_dropped_and_logged(hook: Callable[..., Hook], fresh_log_limiter: None,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    h = hook(hang=True)
    webhook = WebhookNotifier(h.url, timeout=60, retries=0)  # only shutdown can end its request
    dispatcher = Dispatcher([webhook])
    with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        for i in range(4):
            dispatcher.dispatch(event(agent=f"a{i}"))
        assert wait_for(lambda: len(h.bodies) == 1)  # a0 in flight, a1..a3 queued
        assert dispatcher.stats().in_flight == 1 and dispatcher.stats().queued == 3
        dispatcher.stop(timeout=10)  # cuts the request in flight: returns long before its 60 s
        dispatcher.dispatch(event(agent="late"))
    stats = dispatcher.stats()
    assert (stats.sent, stats.failed, stats.queued, stats.in_flight) == (0, 0, 0, 0)
    assert stats.dropped == {"shutdown": 5} and stats.total == 5
    assert webhook.dropped == {"shutdown": 1} and (webhook.sent, webhook.failed) == (0, 0)
    text = " | ".join(r.getMessage() for r in caplog.records)
    assert "3 notification(s) dropped (shutdown)" in text and "not delivered before shutdown" in text


@pytest.mark.timeout(30)
def test_monitor_stats_account_for_every_notification(hook: Callable[..., Hook]) -> None:
    h = hook(hang=True)
    got: list[AlertEvent] = []
    cap, close = busy_capture(alert_webhook=h.url, notifiers=[CallbackNotifier(got.append)])
    try:
        run_agents(cap)
        assert wait_for(lambda: len(got) == 2 * TASKS)
        during = cap.monitor.stats().notifications
        assert during.total == 4 * TASKS  # two notifiers, every transition each
    finally:
        close()
    assert wait_for(lambda: cap.monitor.stats().notifications.in_flight == 0)
    after = cap.monitor.stats().notifications
    assert after.sent == 2 * TASKS  # the callback's
    # The webhook's: one cut in flight (or, on a machine stalled past its four attempts, failed),
    # the rest still queued.
    assert set(after.dropped) == {"shutdown"} and after.dropped["shutdown"] >= 2 * TASKS - 1
    assert after.failed + after.dropped["shutdown"] == 2 * TASKS and after.total == 4 * TASKS
