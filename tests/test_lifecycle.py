"""Lifecycle and concurrency (style-and-reliability.md §B.7 C1, C3, C4, C7, C8 and the API-misuse
cases): threads, executors, fork, shutdown racing emitters, and process exit without shutdown().

Fork and exit cases run the scripts in tests/scripts in a child interpreter with a hard timeout;
they export to the in-process receiver, so the test sees what each process really delivered.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import otel_agentmon
from otel_agentmon._export.stats import Stats
from otel_agentmon._setup import monitor as _monitor
from otel_agentmon._setup.monitor import Monitor
from tests.conftest import MONITOR_BASE, MonitorFor
from tests.support.deadlines import SCHEDULING_MARGIN_S, TEARDOWN_MARGIN_S, within
from tests.support.http_server import Handler
from tests.support.receiver import OTLPReceiver, blackhole, closed_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
INSTANCE = "service.instance.id"






def settled(monitor: Monitor) -> Stats:
    stats = monitor.stats()
    assert stats.balanced, stats
    assert (stats.spans_queued, stats.spans_in_flight, stats.spans_open) == (0, 0, 0), stats
    return stats


def non_daemon_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.daemon}


def run_script(name: str, *args: str, timeout: float = 30.0) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run tests/scripts/NAME in a fresh interpreter; kill its whole process group on timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / name), *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{name} did not finish within {timeout} s")
    elapsed = time.monotonic() - start
    assert "Traceback" not in err and "Fatal Python error" not in err, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), elapsed


def json_lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


# ---- C1: many threads, tiny switch interval ---------------------------------------------------------
@pytest.mark.timeout(60)
def test_threads_keep_parent_links_and_exact_counts(rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    threads_n, per_thread = 40, 80
    monitor = monitor_for(rx, span_max_queue_size=100_000)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                with otel_agentmon.agent("threaded", attributes={"t": t, "i": i}):
                    for k in range(2):
                        with otel_agentmon.tool("step", attributes={"t": t, "i": i, "k": k}):
                            pass
        except BaseException as exc:
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    total = threads_n * per_thread * 3
    assert rx.wait_for_spans(total, 20.0)
    monitor.shutdown(2.0)
    stats = settled(monitor)
    assert stats.spans_started == stats.spans_exported == total == len(rx.unique_span_ids()) == len(rx.spans())
    agents = {(s.attributes["t"], s.attributes["i"]): s for s in rx.spans() if s.name == "invoke_agent threaded"}
    tools = [s for s in rx.spans() if s.name == "execute_tool step"]
    assert len(agents) == threads_n * per_thread and len(tools) == 2 * len(agents)
    for tool in tools:
        parent = agents[(tool.attributes["t"], tool.attributes["i"])]
        assert (tool.trace_id, tool.parent_span_id) == (parent.trace_id, parent.span_id)
        assert tool.attributes["gen_ai.agent.name"] == "threaded"
    assert all(s.parent_span_id == "" for s in agents.values())


# ---- C3: executors ---------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_context_thread_pool_carries_the_agent_into_tool_threads(rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    monitor = monitor_for(rx)

    def tool_call(i: int) -> int:
        with otel_agentmon.tool("pooled", attributes={"i": i}):
            return i * 2

    with otel_agentmon.agent("pool-agent"), otel_agentmon.ContextThreadPoolExecutor(4) as pool:
        assert list(pool.map(tool_call, range(40))) == [i * 2 for i in range(40)]
    monitor.shutdown(2.0)
    stats = settled(monitor)
    assert stats.spans_exported == 41 == len(rx.unique_span_ids())
    (agent,) = [s for s in rx.spans() if s.name == "invoke_agent pool-agent"]
    tools = [s for s in rx.spans() if s.name == "execute_tool pooled"]
    assert {(s.trace_id, s.parent_span_id) for s in tools} == {(agent.trace_id, agent.span_id)}
    assert {s.attributes["gen_ai.agent.name"] for s in tools} == {"pool-agent"}


@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_fork_process_pool_workers_export_their_own_spans_with_their_own_identity(rx: OTLPReceiver) -> None:
    proc, _ = run_script("process_pool_fork.py", rx.endpoint, timeout=45)
    (report,) = json_lines(proc)
    assert report["balanced"] and all(r["flushed"] for r in report["results"])
    assert sorted(r["i"] for r in report["results"]) == list(range(12))
    (agent,) = [s for s in rx.spans() if s.name == "invoke_agent pool-agent"]
    tools = [s for s in rx.spans() if s.name == "execute_tool pool-tool"]
    assert sorted(s.attributes["i"] for s in tools) == list(range(12))  # each exactly once
    by_pid: dict[int, set[str]] = collections.defaultdict(set)
    for span in tools:
        by_pid[span.attributes["pid"]].add(span.resource[INSTANCE])
    assert report["pid"] not in by_pid
    assert all(len(ids) == 1 for ids in by_pid.values()), by_pid
    worker_ids = set().union(*by_pid.values())
    assert len(worker_ids) == len(by_pid) and agent.resource[INSTANCE] not in worker_ids


# ---- C4: fork with spans queued ----------------------------------------------------------------------
def run_fork_script(rx: OTLPReceiver) -> tuple[dict[str, Any], dict[str, Any]]:
    lines = {r["who"]: r for r in json_lines(run_script("fork_after_queue.py", rx.endpoint)[0])}
    return lines["parent"], lines["child"]


@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_fork_after_spans_queued_exports_each_span_once_from_its_own_process(rx: OTLPReceiver) -> None:
    parent, child = run_fork_script(rx)
    assert parent["child_status"] == 0 and child["same_monitor"]  # configure() in the child reuses it
    assert parent["balanced"] and child["balanced"]
    names = collections.Counter(s.name for s in rx.spans())
    assert names == {"execute_tool warm-up": 10, "execute_tool queued": 300, "execute_tool child": 200,
                     "execute_tool parent-after": 100}  # nothing twice, nothing lost
    assert child["stats"]["spans_started"] == child["stats"]["spans_exported"] == 200
    assert parent["stats"]["spans_exported"] == 410 and parent["stats"]["spans_dropped"] == {}
    ids = {name: {s.resource[INSTANCE] for s in rx.spans() if s.name == name} for name in names}
    assert len(ids["execute_tool child"]) == 1 and ids["execute_tool child"] != ids["execute_tool queued"]
    assert ids["execute_tool queued"] == ids["execute_tool parent-after"] == ids["execute_tool warm-up"]


def connections_by_port(rx: OTLPReceiver) -> dict[int, set[str]]:
    """Record, per client TCP port, the service.instance.id of everything sent over it."""
    server = rx._server
    assert server is not None
    inner, lock = server.handle, threading.Lock()
    seen: dict[int, set[str]] = collections.defaultdict(set)

    def handle(h: Handler) -> None:
        with lock:  # serialises requests so the records appended belong to this one
            n_spans, n_metrics = len(rx.spans()), len(rx.metrics())
            inner(h)
            new = [s.resource for s in rx.spans()[n_spans:]] + [m.resource for m in rx.metrics()[n_metrics:]]
            seen[int(h.client_address[1])].update(str(r.get(INSTANCE)) for r in new)

    server.handle = handle
    return seen


@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_forked_child_does_not_share_the_parents_exporter_connection(rx: OTLPReceiver) -> None:
    """Two processes on one keep-alive socket interleave requests and read each other's replies."""
    seen = connections_by_port(rx)
    run_fork_script(rx)
    shared = {port: ids for port, ids in seen.items() if len(ids) > 1}
    assert shared == {}, f"connections used by two processes: {shared}"


@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_forked_child_metrics_do_not_repeat_the_parents_measurements(rx: OTLPReceiver) -> None:
    run_fork_script(rx)
    child_id = next(s.resource[INSTANCE] for s in rx.spans() if s.name == "execute_tool child")
    child_tools = {str(p.attributes.get("gen_ai.tool.name")): p.count for m in rx.metrics()
                   if m.name == "gen_ai.execute_tool.duration" and m.resource[INSTANCE] == child_id
                   for p in m.points}
    assert child_tools == {"child": 200}, "the child re-reports the parent's cumulative series as its own"


# ---- C7: shutdown racing emitters ---------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_shutdown_racing_emitters_counts_late_spans_as_already_shutdown(
        rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    threads_before = non_daemon_threads()
    monitor = monitor_for(rx)
    stop = threading.Event()
    errors: list[BaseException] = []

    def emitter(t: int) -> None:
        try:
            while not stop.is_set():
                with otel_agentmon.agent("racer", attributes={"t": t}), otel_agentmon.tool("step"):
                    pass
                with monitor.tracer.start_as_current_span("raw"):  # an instrumentation on our provider
                    pass
        except BaseException as exc:
            errors.append(exc)

    took: list[float] = []

    def close() -> None:
        start = time.monotonic()
        monitor.shutdown(2.0)
        took.append(time.monotonic() - start)

    threads = [threading.Thread(target=emitter, args=(t,)) for t in range(8)]
    closer = threading.Thread(target=close, daemon=True)
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        closer.start()
        closer.join(2.0 + SCHEDULING_MARGIN_S)  # shutdown(2.0) returns by its deadline while emitters go on
        returned_in_time = not closer.is_alive()
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5.0)
    closer.join(5.0)
    assert returned_in_time and within(took[0], 2.0), f"shutdown(2.0) with emitters active took {took}"
    assert errors == []
    assert monitor.shutdown(2.0)  # a second call is a no-op
    stats = settled(monitor)
    assert stats.spans_dropped.get("already_shutdown", 0) > 0
    # A batch still in flight at the deadline is counted shutdown_timeout yet may land afterwards.
    received = len(rx.unique_span_ids())
    assert 0 < stats.spans_exported <= received <= stats.spans_exported + stats.spans_dropped.get("shutdown_timeout", 0)
    assert set(stats.spans_dropped) <= {"already_shutdown", "shutdown_timeout", "queue_full"}
    assert non_daemon_threads() <= threads_before


# ---- configure() / shutdown() misuse --------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_configure_is_idempotent_and_the_api_survives_shutdown(rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    _monitor._current = None
    got: list[Monitor] = []
    opts: dict[str, Any] = {**MONITOR_BASE, "endpoint": rx.endpoint}
    threads = [threading.Thread(target=lambda: got.append(otel_agentmon.configure(**opts))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monitor = got[0]
    assert all(m is monitor for m in got) and otel_agentmon.configure() is monitor
    assert otel_agentmon.get_monitor() is monitor

    @otel_agentmon.agent("after")
    def work() -> str:
        with otel_agentmon.tool("t"):
            return "done"

    assert work() == "done"
    assert monitor.shutdown(2.0) in (True, False)
    assert monitor.shutdown(2.0) is True
    assert work() == "done"  # decorators keep working after shutdown
    monitor.tracer.start_span("late").end()
    assert monitor.force_flush(0.5) in (True, False)
    assert isinstance(monitor.snapshot(), dict)
    stats = settled(monitor)
    assert stats.spans_dropped.get("already_shutdown") == 1
    fresh = otel_agentmon.configure(**opts)
    assert fresh is not monitor
    fresh.shutdown(1.0)


# ---- C8: exit without shutdown() ---------------------------------------------------------------------
@pytest.mark.subprocess
@pytest.mark.timeout(120)
@pytest.mark.parametrize("collector", ["blackhole", "closed-port"])
def test_exit_without_shutdown_is_bounded_and_accounted(collector: str, rx: OTLPReceiver) -> None:
    """Exit is timed from the moment main returns: interpreter start-up, imports and the 10,000
    spans before it scale with the machine's load and are not ours (they took 5-9 s at load 10)."""
    rx.mode = blackhole()
    endpoint = rx.endpoint if collector == "blackhole" else f"http://127.0.0.1:{closed_port()}"
    proc, _ = run_script("exit_without_shutdown.py", endpoint, "10000", timeout=90)
    exited = time.monotonic()  # CLOCK_MONOTONIC is system-wide: comparable with the child's readings
    (report,) = json_lines(proc)
    shutdown_timeout = 3.0  # what the script configures
    hook = report["hook_done"] - report["main_returned"]
    assert within(hook, shutdown_timeout), f"our atexit shutdown took {hook:.2f} s"
    total = exited - report["main_returned"]
    assert within(total, shutdown_timeout + TEARDOWN_MARGIN_S), f"exit took {total:.2f} s after main returned"
    stats = report["stats"]
    assert report["balanced"] and stats["spans_started"] == 10_000
    assert stats["spans_queued"] == stats["spans_in_flight"] == 0
    # Dropped with a reason, or kept in the disk spool for the next run (on by default).
    assert stats["spans_exported"] == 0 and sum(stats["spans_dropped"].values()) + stats["spans_spooled"] == 10_000
