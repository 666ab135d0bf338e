"""Next to tracing someone else set up, and across threads and processes.

* An existing TracerProvider (the application's, the stock ``opentelemetry-instrument``'s, or
  Logfire's): ``configure()`` never replaces a global provider, every span reaches an independent
  receiver exactly once, our metrics still come out, and the program sees at most one warning.
* Context propagation that test_context.py does not cover: ``with_context`` on the stock pool and
  the default executor, pickled into other processes, ``inject_env`` for ``subprocess``, and child
  processes started by fork, spawn, a spawn process pool and ``subprocess.run`` (each with its own
  ``service.instance.id``, parented under the parent's span, flushed when it exits).

Process cases run tests/scripts/coexist.py and child_processes.py in a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import pickle
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import otel_agentmon as agentmon
from otel_agentmon.testing import Capture
from tests.support.otlp_decode import ReceivedSpan
from tests.support.receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "scripts"
INSTANCE = "service.instance.id"
WORK = {"invoke_agent coexisting": 1, "app step": 1, "execute_tool lookup": 1, "execute_tool summarise": 1,
        "chat m1": 1}


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_", "LOGFIRE_"))}
    clean.pop("TRACEPARENT", None)
    proc = subprocess.run(args, env={**clean, **(env or {})}, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def report(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def by_name(rx: OTLPReceiver) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in rx.spans()}


def assert_work_delivered_once(rx: OTLPReceiver) -> dict[str, ReceivedSpan]:
    """The script's five spans, each exactly once, in one trace with intact parent links."""
    assert rx.wait_for(lambda: len(rx.spans()) >= len(WORK), 10.0)
    assert collections.Counter(s.name for s in rx.spans()) == WORK
    assert len(rx.unique_span_ids()) == len(WORK)
    spans = by_name(rx)
    agent, app = spans["invoke_agent coexisting"], spans["app step"]
    assert agent.parent_span_id == "" and app.parent_span_id == agent.span_id
    for name in ("execute_tool lookup", "execute_tool summarise", "chat m1"):
        assert spans[name].parent_span_id == app.span_id
    assert {s.trace_id for s in rx.spans()} == {agent.trace_id}
    return spans


def our_metrics_arrived(rx: OTLPReceiver, service: str) -> dict[str, Any]:
    """Our span-derived metrics, as delivered (by whichever MeterProvider) for ``service``."""
    assert rx.wait_for(lambda: "gen_ai.invoke_agent.duration" in rx.metric_names(), 10.0), rx.metric_names()
    out: dict[str, Any] = {}
    for metric in rx.metrics():
        if metric.resource.get("service.name") == service:
            for point in metric.points:
                key = point.attributes.get("gen_ai.agent.name") or point.attributes.get("gen_ai.token.type")
                out[f"{metric.name}:{key}"] = point.sum if point.count is not None else point.value
    return out


# --- an existing TracerProvider ---------------------------------------------------------------------

@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_application_provider_is_reused_and_every_span_arrives_once(rx: OTLPReceiver) -> None:
    proc = run([sys.executable, str(SCRIPTS / "coexist.py"), "app", rx.endpoint])
    result = report(proc)
    assert result["global_tracer_provider_kept"] and result["global_meter_provider_kept"]
    assert result["ours_is_global"], "we add our processor to the application's provider"
    spans = assert_work_delivered_once(rx)
    assert {s.resource["service.name"] for s in spans.values()} == {"the-app"}  # its pipeline, not a second
    metrics = our_metrics_arrived(rx, "the-app")
    assert metrics["gen_ai.client.token.usage:input"] == 5 and metrics["gen_ai.client.token.usage:output"] == 2
    assert stderr_lines(proc) == []


def opentelemetry_instrument() -> str:
    script = Path(sys.executable).parent / "opentelemetry-instrument"
    assert script.is_file(), "opentelemetry-distro (dev extra) provides opentelemetry-instrument"
    return str(script)


@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_stock_opentelemetry_instrument_then_configure_in_the_program(rx: OTLPReceiver) -> None:
    """The user runs the STOCK distro and configurator, and calls configure() in the program."""
    env = {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator",
           "OTEL_SERVICE_NAME": "instrumented", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_LOGS_EXPORTER": "none",
           "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"}
    proc = run([opentelemetry_instrument(), sys.executable, str(SCRIPTS / "coexist.py"), "instrument", rx.endpoint],
               env)
    result = report(proc)
    assert result["global_tracer_provider_kept"] and result["global_meter_provider_kept"] and result["ours_is_global"]
    spans = assert_work_delivered_once(rx)
    assert {s.resource["service.name"] for s in spans.values()} == {"instrumented"}
    assert our_metrics_arrived(rx, "instrumented")["gen_ai.invoke_agent.duration:coexisting"] > 0
    # With otel_agentmon's own configurator installed too, the stock loader says once that it skipped it.
    assert len(stderr_lines(proc)) <= 1, proc.stderr


@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_logfire_then_configure_both_pipelines_export_their_own_spans_once(rx: OTLPReceiver) -> None:
    """Logfire's providers are its own proxies, not SDK ones: we leave them global, run ours beside
    them, and the shared context keeps one trace across both pipelines."""
    proc = run([sys.executable, str(SCRIPTS / "coexist.py"), "logfire", rx.endpoint])
    result = report(proc)
    assert result["global_tracer_provider_kept"] and result["global_meter_provider_kept"]
    assert not result["ours_is_global"]
    spans = assert_work_delivered_once(rx)
    logfire_span = spans.pop("app step")
    assert logfire_span.scope_name == "logfire" and logfire_span.resource["service.name"] == "the-logfire-app"
    assert {s.resource["service.name"] for s in spans.values()} == {"ours"}
    assert {s.resource["telemetry.distro.name"] for s in spans.values()} == {"otel_agentmon"}
    assert our_metrics_arrived(rx, "ours")["gen_ai.client.token.usage:input"] == 5
    assert stderr_lines(proc) == []


# --- threads and executors beyond test_context.py -----------------------------------------------------

def tool_call(label: str = "worker") -> str:
    with agentmon.tool(label):
        return threading.current_thread().name


def assert_tools_under(cap: Capture, agent_name: str, count: int) -> None:
    agent = cap.span(f"invoke_agent {agent_name}")
    tools = cap.spans("execute_tool worker")
    assert len(tools) == count
    for tool in tools:
        assert tool.parent is not None and tool.parent.span_id == agent.context.span_id
        assert tool.attributes is not None and tool.attributes["gen_ai.agent.name"] == agent_name


def test_one_with_context_callable_on_a_stock_pool_runs_in_many_threads_at_once(agentmon_capture: Capture) -> None:
    barrier = threading.Barrier(4, timeout=5)

    def together(_: int) -> str:
        barrier.wait()  # four threads inside the same bound callable at the same time
        return tool_call()

    with ThreadPoolExecutor(max_workers=4) as pool, agentmon.agent("a"):
        bound = agentmon.with_context(together)
        names = list(pool.map(bound, range(4)))
    assert len(set(names)) == 4
    assert_tools_under(agentmon_capture, "a", 4)


@pytest.mark.asyncio
async def test_with_context_into_the_loops_default_executor(agentmon_capture: Capture) -> None:
    loop = asyncio.get_running_loop()
    async with agentmon.agent("a"):
        name = await loop.run_in_executor(None, agentmon.with_context(tool_call))
    assert name != threading.current_thread().name
    assert_tools_under(agentmon_capture, "a", 1)


def test_with_context_pickled_carries_the_trace_context_and_the_agent(agentmon_capture: Capture) -> None:
    """What a spawn child or a process pool receives: run here after a pickle round trip."""
    with agentmon.agent("a"):
        payload = pickle.dumps(agentmon.with_context(tool_call))
    restored = pickle.loads(payload)
    assert not trace.get_current_span().get_span_context().is_valid
    restored()
    assert not trace.get_current_span().get_span_context().is_valid, "the remote context is detached again"
    assert_tools_under(agentmon_capture, "a", 1)
    tool = agentmon_capture.span("execute_tool worker")
    assert tool.parent is not None and tool.parent.is_remote


# --- inject_env ------------------------------------------------------------------------------------

def test_inject_env_writes_traceparent_for_the_current_span(agentmon_capture: Capture) -> None:
    given = {"PATH": "/bin", "TRACESTATE": "stale=1"}
    with agentmon.agent("a"):
        env = agentmon.inject_env(given)
    agent = agentmon_capture.span("invoke_agent a").context
    assert env["TRACEPARENT"] == f"00-{agent.trace_id:032x}-{agent.span_id:016x}-01"
    assert "TRACESTATE" not in env  # the span has no trace state: a stale one must not survive
    assert env["PATH"] == "/bin" and given == {"PATH": "/bin", "TRACESTATE": "stale=1"}
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", env["TRACEPARENT"])


def test_inject_env_without_a_span_is_a_plain_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMON_TEST_MARK", "1")
    env = agentmon.inject_env()
    assert env == dict(os.environ) and env is not os.environ
    assert agentmon.inject_env({"TRACEPARENT": "kept"}) == {"TRACEPARENT": "kept"}


# --- child processes ---------------------------------------------------------------------------------

@pytest.mark.subprocess
@pytest.mark.timeout(90)
def test_child_processes_join_the_parents_trace_with_their_own_identity_and_flush_at_exit(
        rx: OTLPReceiver) -> None:
    result = report(run([sys.executable, str(SCRIPTS / "child_processes.py"), rx.endpoint], timeout=80))
    assert result["ok"] and set(result["exits"].values()) == {0}, result
    names = collections.Counter(s.name for s in rx.spans())
    # Nobody flushed by hand, and the batch delay is 60 s: everything here left at process exit.
    assert names == {"invoke_agent parent-agent": 1, "execute_tool fork-plain": 1, "execute_tool spawn-plain": 1,
                     "execute_tool spawn-bound": 1, "execute_tool pool-spawn": 4, "task subprocess-task": 1,
                     "execute_tool subprocess-tool": 1}
    assert len(rx.unique_span_ids()) == len(rx.spans())
    spans = by_name(rx)
    parent = spans["invoke_agent parent-agent"]
    under_parent = [s for s in rx.spans() if s.name in (
        "execute_tool fork-plain", "execute_tool spawn-bound", "execute_tool pool-spawn", "task subprocess-task")]
    for span in under_parent:
        assert (span.trace_id, span.parent_span_id) == (parent.trace_id, parent.span_id), span.name
    for span in under_parent:
        if span.name != "task subprocess-task":  # that one names its own agent
            assert span.attributes["gen_ai.agent.name"] == "parent-agent", span.name  # the agent travels too
    sub_task, sub_tool = spans["task subprocess-task"], spans["execute_tool subprocess-tool"]
    assert (sub_tool.trace_id, sub_tool.parent_span_id) == (parent.trace_id, sub_task.span_id)
    # A plain target in a spawned child has nothing to inherit: a new trace (use with_context).
    plain = spans["execute_tool spawn-plain"]
    assert plain.parent_span_id == "" and plain.trace_id != parent.trace_id
    # One service.instance.id per process (tools carry their pid), never the parent's.
    by_pid: dict[int, set[str]] = collections.defaultdict(set)
    for span in rx.spans():
        if "pid" in span.attributes:
            by_pid[span.attributes["pid"]].add(span.resource[INSTANCE])
    assert all(len(ids) == 1 for ids in by_pid.values()), by_pid
    assert len(by_pid) == 4 + len(set(result["pool_pids"])) and result["pid"] not in by_pid
    child_ids = set().union(*by_pid.values())
    assert len(child_ids) == len(by_pid) and parent.resource[INSTANCE] not in child_ids
    assert sub_task.resource[INSTANCE] == sub_tool.resource[INSTANCE]


@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_a_malformed_traceparent_is_ignored(rx: OTLPReceiver) -> None:
    run([sys.executable, str(SCRIPTS / "child_processes.py"), rx.endpoint, "sub"], {"TRACEPARENT": "00-zz-bad"})
    assert rx.wait_for_spans(2, 10.0)
    task = by_name(rx)["task subprocess-task"]
    assert task.parent_span_id == ""
