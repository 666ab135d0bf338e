"""Per-agent and swarm health on a clock: down agents, stuck tasks, error rate, latency, checks,
transitions as log records, health metrics and the /healthz /readyz endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry._logs import LogRecord

import otel_agentmon as agentmon
from otel_agentmon import HealthPolicy
from otel_agentmon.testing import Capture
from tests.support.polling import wait_for

Make = Callable[..., Capture]


class Boom(Exception):
    pass






def run_task(agent: str, *, fail: bool = False, seconds: float = 0.0) -> None:
    with contextlib.suppress(Boom), agentmon.task("work", agent=agent):
        time.sleep(seconds)
        if fail:
            raise Boom("failed")


def records(cap: Capture, event_name: str) -> list[LogRecord]:
    return [r.log_record for r in cap.logs() if r.log_record.event_name == event_name]


def changes(cap: Capture, agent: str) -> list[tuple[object, object]]:
    return [(a["agentmon.health.previous_state"], a["agentmon.health.state"])
            for rec in records(cap, "agentmon.health.changed")
            if (a := rec.attributes or {}).get("gen_ai.agent.name") == agent]


def is_down(cap: Capture, agent: str) -> bool:
    health = cap.monitor.health().agents.get(agent)
    return health is not None and not health.up


def by_agent(cap: Capture, metric: str) -> dict[object, Any]:
    return {(p.attributes or {}).get("gen_ai.agent.name"): p.value for p in cap.points(metric)}


def health_metric(cap: Capture) -> dict[object, list[object]]:
    """agentmon.agent.health as {agent: [states whose value is 1]}, checking every point is 0 or 1."""
    out: dict[object, list[object]] = {}
    for p in cap.points("agentmon.agent.health"):
        attrs = p.attributes or {}
        assert p.value in (0, 1) and attrs["agentmon.health.state"] in ("healthy", "degraded", "unhealthy", "stopped")
        out.setdefault(attrs["gen_ai.agent.name"], []).extend([attrs["agentmon.health.state"]] * p.value)
    return out


def keep_alive(cap: Capture, agents: list[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for a in agents:
            cap.monitor.heartbeat(a)
        time.sleep(0.05)


# --- heartbeats and down agents -------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_an_agent_that_promised_heartbeats_goes_down_by_the_clock_and_transition_is_logged_once(
        health_capture: Make) -> None:
    cap = health_capture()
    run_task("a")
    cap.monitor.heartbeat("a")  # from now on it is expected to keep calling
    health = cap.monitor.evaluate_health().agents["a"]
    assert (health.up, health.state, health.reasons, health.lifecycle) == (True, "healthy", (), "idle")
    assert changes(cap, "a") == []
    # No further span or call: the health loop's clock alone must notice.
    assert wait_for(lambda: is_down(cap, "a"))
    health = cap.monitor.health().agents["a"]
    assert (health.state, health.lifecycle) == ("unhealthy", "down")
    assert any(r.startswith("down: no heartbeat") for r in health.reasons), health.reasons
    assert by_agent(cap, "agentmon.agent.up") == {"a": 0} and health_metric(cap) == {"a": ["unhealthy"]}
    assert len(cap.points("agentmon.agent.health")) == 4  # the status-metric pattern: every state, one is 1
    for _ in range(5):  # unchanged state: no new record
        cap.monitor.evaluate_health()
    assert changes(cap, "a") == [("healthy", "unhealthy")]
    (rec,) = records(cap, "agentmon.health.changed")
    assert rec.severity_text == "ERROR"
    assert any("down" in str(r) for r in rec.attributes["agentmon.health.reasons"])  # type: ignore[index,union-attr]
    cap.monitor.heartbeat("a")
    assert cap.monitor.evaluate_health().agents["a"].state == "healthy"
    assert changes(cap, "a") == [("healthy", "unhealthy"), ("unhealthy", "healthy")]
    assert list(records(cap, "agentmon.health.changed")[-1].attributes["agentmon.health.reasons"]) == [  # type: ignore[index,arg-type]
        "recovered"]


@pytest.mark.timeout(20)
def test_heartbeats_or_a_running_task_keep_an_agent_up(health_capture: Make) -> None:
    cap = health_capture(health_policy=HealthPolicy(heartbeat_timeout=0.3, stuck_after=30, cpu_limit=None))
    with agentmon.task("long", agent="busy"):
        for _ in range(8):  # more than twice the heartbeat timeout
            cap.monitor.heartbeat("idler")
            time.sleep(0.1)
            health = cap.monitor.evaluate_health()
            assert [(health.agents[a].up, health.agents[a].state) for a in ("idler", "busy")] == [
                (True, "healthy")] * 2, health
        assert health.agents["busy"].in_flight == 1 and health.agents["busy"].oldest_task_age >= 0.7
    assert changes(cap, "idler") == changes(cap, "busy") == []


# --- stuck tasks ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_stuck_task_is_signalled_while_it_still_runs(health_capture: Make) -> None:
    cap = health_capture(health_policy=HealthPolicy(heartbeat_timeout=0.5, stuck_after=0.3, cpu_limit=None,
                                          stuck_after_by_type={"slow": 30.0}))
    release = threading.Event()
    slow = threading.Thread(target=lambda: agentmon.task("slow", agent="a")(release.wait)(10))
    slow.start()  # older than the other task, but its own limit is 30 s: never stuck
    with agentmon.task("work", agent="a", task_id="job-7") as handle:
        assert wait_for(lambda: (h := cap.monitor.health().agents.get("a")) is not None and h.stuck_tasks == 1)
        assert cap.spans("task work") == []  # the task has not ended: this is a live signal
        health = cap.monitor.health().agents["a"]
        assert health.state == "degraded" and health.in_flight == 2
        assert any("stuck" in r for r in health.reasons), health.reasons
        assert by_agent(cap, "agentmon.tasks.stuck") == {"a": 1} and health_metric(cap) == {"a": ["degraded"]}
        assert by_agent(cap, "agentmon.task.oldest_in_flight_age")["a"] > 0.3
        assert by_agent(cap, "agentmon.agent.up") == {"a": 1}
        assert sorted(p.value for p in cap.points("agentmon.tasks.in_flight")) == [1, 1]  # one per task type
        (rec,) = records(cap, "agentmon.task.stuck")
        attrs = rec.attributes or {}
        assert attrs["gen_ai.agent.name"] == "a" and attrs["agentmon.task.type"] == "work"
        assert attrs["agentmon.task.id"] == "job-7" and float(attrs["agentmon.task.age"]) >= 0.3  # type: ignore[arg-type]
        ctx = handle.span.get_span_context()
        assert (rec.trace_id, rec.span_id) == (ctx.trace_id, ctx.span_id)
        for _ in range(5):
            cap.monitor.evaluate_health()
        assert len(records(cap, "agentmon.task.stuck")) == 1  # signalled once per task
        assert changes(cap, "a") == [("healthy", "degraded")]
    release.set()
    slow.join(5)
    span = cap.span("task work")
    names = [e.name for e in span.events]
    assert "agentmon.task.stuck" in names and "agentmon.health.changed" in names
    assert span.attributes["agentmon.task.stuck"] is True  # type: ignore[index]
    assert "agentmon.task.stuck" not in (cap.span("task slow").attributes or {})
    health = cap.monitor.evaluate_health().agents["a"]
    assert (health.stuck_tasks, health.in_flight, health.state) == (0, 0, "healthy")


# --- error rate and latency ----------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_error_rate_thresholds_need_min_tasks_and_have_hysteresis(health_capture: Make) -> None:
    cap = health_capture()
    for _ in range(4):  # below min_tasks: no verdict yet
        run_task("a", fail=True)
    assert cap.monitor.evaluate_health().agents["a"].state == "healthy"
    for fail in (True, True, False, False, False, False):  # 6 of 10 failed >= 50 %
        run_task("a", fail=fail)
    for fail in [True] * 2 + [False] * 8:  # 2 of 10 failed >= 10 %
        run_task("b", fail=fail)
    for _ in range(10):
        run_task("c")
    health = cap.monitor.evaluate_health()
    a, b, c = health.agents["a"], health.agents["b"], health.agents["c"]
    assert a.state == "unhealthy" and any("error rate 60%" in r for r in a.reasons), a.reasons
    assert b.state == "degraded" and any("error rate 20%" in r for r in b.reasons), b.reasons
    assert c.state == "healthy" and c.window is not None and c.window.count == 10
    # Hysteresis: a state is left only once the rate is 20 % below the threshold that entered it.
    for _ in range(3):  # a: 6/13 = 46 %, under 50 % but not 20 % under it
        run_task("a")
    for _ in range(12):  # b: 2/22 = 9 %, under 10 % but not 20 % under it
        run_task("b")
    assert [cap.monitor.evaluate_health().agents[x].state for x in "ab"] == ["unhealthy", "degraded"]
    for _ in range(3):  # a: 6/16 = 37.5 % < 40 %
        run_task("a")
    for _ in range(4):  # b: 2/26 = 7.7 % < 8 %
        run_task("b")
    assert [cap.monitor.evaluate_health().agents[x].state for x in "ab"] == ["degraded", "healthy"]
    assert changes(cap, "a") == [("healthy", "unhealthy"), ("unhealthy", "degraded")]
    assert changes(cap, "b") == [("healthy", "degraded"), ("degraded", "healthy")]
    assert changes(cap, "c") == []


@pytest.mark.timeout(20)
def test_p95_latency_limit_and_memory_pressure_degrade(health_capture: Make) -> None:
    cap = health_capture(health_policy=HealthPolicy(heartbeat_timeout=5, latency_p95_limit=0.02, cpu_limit=None))
    for _ in range(5):
        run_task("slow", seconds=0.03)
        run_task("fast")
    health = cap.monitor.evaluate_health()
    assert health.agents["slow"].state == "degraded" and health.agents["fast"].state == "healthy"
    assert any("p95 latency" in r for r in health.agents["slow"].reasons)
    cap = health_capture(health_policy=HealthPolicy(heartbeat_timeout=5, cpu_limit=None, memory_limit_bytes=1))
    cap.monitor.heartbeat("a")
    health = cap.monitor.evaluate_health()
    assert health.memory_bytes and health.agents["a"].state == "degraded", health.agents["a"].reasons
    assert any("memory" in r for r in health.agents["a"].reasons)


# --- swarm state and metrics -----------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_swarm_is_unhealthy_when_half_its_agents_are(health_capture: Make) -> None:
    cap = health_capture()
    for a in "abcd":
        cap.monitor.heartbeat(a)
    assert cap.monitor.evaluate_health().state == "healthy"
    keep_alive(cap, ["a", "b"], 0.8)  # c and d go down
    health = cap.monitor.evaluate_health()
    assert [health.agents[a].state for a in "abcd"] == ["healthy", "healthy", "unhealthy", "unhealthy"]
    assert health.state == "unhealthy"
    cap.monitor.heartbeat("c")
    assert cap.monitor.evaluate_health().state == "degraded"  # 1 of 4 unhealthy
    cap.monitor.heartbeat("d")
    assert cap.monitor.evaluate_health().state == "healthy"


# --- health checks -------------------------------------------------------------------------------


def _raise() -> None:
    raise RuntimeError("db down")


@pytest.mark.timeout(20)
def test_sync_checks_ok_raising_falsy_and_critical(health_capture: Make) -> None:
    cap = health_capture()
    m = cap.monitor
    m.add_health_check("fine", lambda: True, interval=0.05, agent="a")
    m.add_health_check("boom", _raise, interval=0.05, agent="b")
    m.add_health_check("falsy", lambda: False, interval=0.05, agent="c")
    m.add_health_check("vital", _raise, interval=0.05, agent="d", critical=True)
    for a in "abcd":
        m.heartbeat(a)
    assert wait_for(lambda: all(m.evaluate_health().agents[a].checks for a in "abcd"))
    agents = m.evaluate_health().agents
    assert [(c.name, c.ok, c.detail, c.critical) for a in "abcd" for c in agents[a].checks] == [
        ("fine", True, "ok", False), ("boom", False, "RuntimeError: db down", False),
        ("falsy", False, "returned False", False), ("vital", False, "RuntimeError: db down", True)]
    assert [agents[a].state for a in "abc"] == ["healthy", "degraded", "degraded"]
    assert "check boom: RuntimeError: db down" in agents["b"].reasons
    assert agents["d"].state == "unhealthy" and "check vital: RuntimeError: db down" in agents["d"].reasons


@pytest.mark.timeout(20)
def test_hanging_check_fails_costs_one_thread_and_never_stops_the_loop(health_capture: Make) -> None:
    cap = health_capture()
    release = threading.Event()
    cap.monitor.add_health_check("hang", lambda: release.wait(10), interval=0.05, timeout=0.1, agent="a")
    cap.monitor.heartbeat("b")
    try:
        keep_alive(cap, ["a"], 0.8)  # >= 16 ticks: b must go down meanwhile, by the loop alone
        health = cap.monitor.health()
        assert health.agents["b"].state == "unhealthy" and not health.agents["b"].up
        (check,) = health.agents["a"].checks
        assert not check.ok and "timed out" in check.detail
        assert health.agents["a"].state == "degraded"
        hung = [t for t in threading.enumerate() if t.name == "agentmon-check-hang"]
        assert len(hung) == 1, [t.name for t in hung]
    finally:
        release.set()
    cap.monitor.heartbeat("a")  # once the call returns the check runs again and passes
    assert wait_for(lambda: cap.monitor.evaluate_health().agents["a"].checks[0].ok)


def _shut_down_with_async_checks(cap: Capture, *names: str) -> bool:
    """Shut down; returns whether the product closed the async-check loop. Works around two product
    bugs: retires the checks first (a run started at shutdown leaves a never-awaited coroutine) and
    closes the loop left open (its ResourceWarning would fail whichever later test runs gc)."""
    checks = cap.monitor._health.checks  # type: ignore[union-attr]
    loop = checks._loop
    assert loop is not None
    for name in names:
        checks.remove(name)
    for _ in range(2):
        assert wait_for(lambda: not asyncio.all_tasks(loop), 2.0)
        time.sleep(0.1)
    cap.monitor.shutdown(2.0)
    closed = wait_for(loop.is_closed, 1.0)
    if not closed:
        assert wait_for(lambda: not loop.is_running(), 2.0)
        loop.close()
    return closed


@pytest.mark.timeout(20)
def test_async_checks_ok_timing_out_and_raising(health_capture: Make) -> None:
    async def fine() -> bool:
        await asyncio.sleep(0)
        return True

    async def slow() -> None:
        await asyncio.sleep(10)

    async def broken() -> None:
        raise ValueError("nope")

    cap = health_capture()
    m = cap.monitor
    m.add_health_check("afine", fine, interval=0.05, agent="a")
    m.add_health_check("aslow", slow, interval=0.05, timeout=0.1, agent="b")
    m.add_health_check("abroken", broken, interval=0.05, agent="c", critical=True)
    for a in "abc":
        m.heartbeat(a)
    assert wait_for(lambda: all(m.evaluate_health().agents[a].checks for a in "abc"))
    assert wait_for(lambda: "timed out" in m.evaluate_health().agents["b"].checks[0].detail)
    agents = m.evaluate_health().agents  # the loop kept ticking through the timeouts
    assert agents["a"].checks[0].ok and agents["a"].state == "healthy"
    assert not agents["b"].checks[0].ok and agents["b"].state == "degraded"
    assert agents["c"].checks[0].detail == "ValueError: nope" and agents["c"].state == "unhealthy"
    _shut_down_with_async_checks(cap, "afine", "aslow", "abroken")


@pytest.mark.timeout(20)
def test_async_check_loop_is_closed_on_shutdown(health_capture: Make) -> None:
    async def fine() -> bool:
        return True

    cap = health_capture()
    cap.monitor.add_health_check("afine", fine, interval=0.05)
    cap.monitor.heartbeat("a")
    assert wait_for(lambda: cap.monitor.evaluate_health().agents["a"].checks)
    closed = _shut_down_with_async_checks(cap, "afine")
    assert closed, "shutdown stops the async-check loop but never closes it (ResourceWarning when collected)"


# --- HTTP endpoint -------------------------------------------------------------------------------


def get(url: str) -> tuple[int, str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            ctype, body = err.headers["Content-Type"] or "", err.read()
            return err.code, ctype, json.loads(body) if ctype == "application/json" else body


@pytest.mark.timeout(20)
def test_health_endpoint(health_capture: Make) -> None:
    cap = health_capture(health_port=0)
    url = cap.monitor.health_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    assert cap.monitor._health_server._server.server_address[0] == "127.0.0.1"  # type: ignore[union-attr]
    cap.monitor.heartbeat("a")
    cap.monitor.evaluate_health()
    status, ctype, body = get(url + "/readyz")
    assert (status, ctype) == (200, "application/json")
    assert body["status"] == "healthy" and body["alerts"] == [] and set(body["process"]) == {"cpu", "memory_bytes"}
    assert body["agents"]["a"] == {"state": "healthy", "lifecycle": "idle", "up": True, "reasons": [], "in_flight": 0,
                                   "oldest_task_age_s": 0.0, "stuck_tasks": 0}
    assert get(url + "/healthz")[0] == 200
    assert wait_for(lambda: is_down(cap, "a"))
    status, _, body = get(url + "/readyz?verbose=1")
    assert status == 503 and body["status"] == "unhealthy"
    assert body["agents"]["a"]["state"] == "unhealthy" and body["agents"]["a"]["up"] is False
    assert get(url + "/healthz")[0] == 200  # alive, just not ready
    assert get(url + "/metrics")[0] == 404
    assert get(url + "/")[0] == 404
