"""Collector durability (issue 15, item 2): a Collector killed with SIGKILL mid-stream and restarted
loses no span that it had accepted.

The real Collector runs ``collector-config/local.yaml`` (its Jaeger exporter's sending queue on
``file_storage``) while Jaeger is down, so everything the Collector accepts sits in its queue.  A
sender thread streams OTLP/HTTP requests at it and records exactly which requests were answered
200; the Collector is SIGKILLed while that stream runs, restarted on the same queue directory
(Jaeger still down), then Jaeger is started where the restarted Collector exports.  Every span
of every accepted request must then be found in Jaeger.

The same for agent.yaml (through a gateway to Jaeger), and for gateway.yaml's spans that tail
sampling has decided on and queued for Jaeger.  The control runs the same scenario on a copy of
local.yaml whose queue is in memory (the ``storage:`` line removed, as before issue 15): the
accepted spans are lost, which shows the first test can fail.

The binaries come from ``collector-config/build`` (or AGENTMON_OTELCOL / AGENTMON_JAEGER); a
missing binary skips these tests, or fails them when AGENTMON_REQUIRE_STACK=1 (as .ci/run sets it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tests.support.stack import (
    CONFIG_DIR,
    Binaries,
    Collector,
    Jaeger,
    Service,
    Stack,
    StackError,
    clean_env,
    scrape,
    wait_until,
)

pytestmark = pytest.mark.subprocess

SPANS_PER_REQUEST = 20
ACCEPTED_BEFORE_KILL = 25     # requests answered 200 before the SIGKILL (500 spans in the queue)
MAX_REQUESTS = 2000           # the sender's hard stop, should the kill never land


@dataclass
class Sender:
    """Streams OTLP/HTTP trace requests (one trace of SPANS_PER_REQUEST spans each) at a Collector."""

    url: str
    service: str
    accepted: list[set[str]] = field(default_factory=list)   # span IDs (hex) of each request answered 200
    refused: int = 0                                         # requests not answered 200 (after the kill)
    stop: threading.Event = field(default_factory=threading.Event)
    enough: threading.Event = field(default_factory=threading.Event)

    def request(self) -> tuple[bytes, set[str]]:
        trace_id = os.urandom(16)
        spans = [PbSpan(trace_id=trace_id, span_id=os.urandom(8), name=f"step-{i}", kind=PbSpan.SPAN_KIND_INTERNAL,
                        start_time_unix_nano=time.time_ns() - 1_000_000, end_time_unix_nano=time.time_ns())
                 for i in range(SPANS_PER_REQUEST)]
        resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=self.service))])
        body = ExportTraceServiceRequest(resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]).SerializeToString()
        return body, {s.span_id.hex() for s in spans}

    def run(self) -> None:
        failures_in_a_row = 0
        for _ in range(MAX_REQUESTS):
            if self.stop.is_set() or failures_in_a_row >= 3:
                return
            body, span_ids = self.request()
            req = urllib.request.Request(f"{self.url}/v1/traces", data=body, method="POST",
                                         headers={"Content-Type": "application/x-protobuf"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:  # loopback only
                    ok = resp.status == 200
            except (OSError, urllib.error.URLError):
                ok = False  # refused, reset mid-request or timed out: not accepted, so not promised
            if ok:
                self.accepted.append(span_ids)
                failures_in_a_row = 0
                if len(self.accepted) >= ACCEPTED_BEFORE_KILL:
                    self.enough.set()
            else:
                self.refused += 1
                failures_in_a_row += 1
            self.stop.wait(0.01)


JAEGER_PORTS = ("OTLP_GRPC", "OTLP_HTTP", "QUERY_HTTP", "QUERY_GRPC", "HEALTH")


def start_jaeger_at(stack: Stack, ports: dict[str, int]) -> Jaeger:
    """Jaeger on ports chosen earlier (the Collector was told its OTLP address before it ran)."""
    env = clean_env({f"JAEGER_{n}_ENDPOINT": f"127.0.0.1:{port}" for n, port in ports.items()})
    svc = stack.spawn("jaeger", [str(stack.bins.jaeger), f"--config={CONFIG_DIR / 'jaeger.yaml'}"], env)
    stack.wait_ready(svc, f"http://127.0.0.1:{ports['QUERY_HTTP']}/api/services", timeout=60)
    return Jaeger(svc, f"http://127.0.0.1:{ports['QUERY_HTTP']}", f"127.0.0.1:{ports['OTLP_GRPC']}")


def sigkill(stack: Stack, svc: Service) -> None:
    """SIGKILL the service's process group and forget it (the stack must not count it as a crash)."""
    os.killpg(svc.popen.pid, signal.SIGKILL)
    svc.popen.wait(30)
    stack.services.remove(svc)


@dataclass(frozen=True)
class Downstream:
    """Where the killed Collector exports: its address is fixed before it runs, it starts later."""

    collector_env: dict[str, str]          # tells the Collector under test where to export
    start: Callable[[], Jaeger]            # starts everything down to Jaeger; Jaeger


def jaeger_downstream(stack: Stack) -> Downstream:
    """local.yaml -> Jaeger."""
    ports = dict(zip(JAEGER_PORTS, stack.free_ports(len(JAEGER_PORTS)), strict=True))
    return Downstream({"AGENTMON_JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{ports['OTLP_GRPC']}"},
                      lambda: start_jaeger_at(stack, ports))


def gateway_downstream(stack: Stack) -> Downstream:
    """agent.yaml -> a gateway (gateway.yaml, keeping every trace) -> Jaeger."""
    ports = dict(zip(JAEGER_PORTS, stack.free_ports(len(JAEGER_PORTS)), strict=True))
    (gateway_grpc,) = stack.free_ports(1)

    def start() -> Jaeger:
        jaeger = start_jaeger_at(stack, ports)
        stack.collector("gateway", "gateway.yaml", jaeger=jaeger, env={
            "AGENTMON_GATEWAY_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{gateway_grpc}",
            "AGENTMON_SAMPLE_PERCENT": "100", "AGENTMON_DECISION_WAIT": "1s"})
        return jaeger
    return Downstream({"AGENTMON_GATEWAYS": f"[127.0.0.1:{gateway_grpc}]"}, start)


def kill_restart_and_find(stack: Stack, config: str, queue_dir: Path, service: str,
                          downstream_of: Callable[[Stack], Downstream],
                          wait_for_all: bool) -> tuple[set[str], set[str]]:
    """The scenario; (span IDs the Collector accepted, those of them found in Jaeger afterwards).

    The Collector first exports to a downstream that never starts; the restarted one to a fresh
    one (its ports chosen just before it starts, so no other process can take them meanwhile).
    "Found" is read once a span sent after the restart has reached Jaeger; with ``wait_for_all``,
    then until every accepted span is there (at most 120 s more)."""
    col_env = {**downstream_of(stack).collector_env, "AGENTMON_COLLECTOR_QUEUE_DIR": str(queue_dir)}

    first: Collector = stack.collector("otelcol-before-kill", config, env=col_env)
    sender = Sender(first.otlp_http, service)
    thread = threading.Thread(target=sender.run, name="otlp-sender", daemon=True)
    thread.start()
    try:
        assert sender.enough.wait(120), f"the Collector accepted only {len(sender.accepted)} requests in 120 s"
        sending_at_kill = thread.is_alive()
        sigkill(stack, first.service)  # mid-stream: the sender is still sending
        thread.join(120)
    finally:
        sender.stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert sending_at_kill and sender.refused >= 1, "the stream had ended before the kill: not a mid-stream kill"
    accepted = set().union(*sender.accepted)
    assert len(accepted) == len(sender.accepted) * SPANS_PER_REQUEST >= ACCEPTED_BEFORE_KILL * SPANS_PER_REQUEST

    downstream = downstream_of(stack)
    col_env.update(downstream.collector_env)
    second = stack.collector("otelcol-after-restart", config, env=col_env)  # downstream still down
    marker_body, marker_ids = Sender(second.otlp_http, service).request()
    req = urllib.request.Request(f"{second.otlp_http}/v1/traces", data=marker_body, method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    jaeger = downstream.start()

    def span_ids_in_jaeger() -> set[str]:
        return {s["spanID"] for t in jaeger.traces(service, limit=10_000) for s in t["spans"]}

    # The exporters retry with backoff (up to 30 s between attempts), hence the generous waits.
    wait_until(lambda: marker_ids <= span_ids_in_jaeger(), 180, "the span sent after the restart in Jaeger")
    found: set[str] = set()

    def all_accepted_found() -> bool:
        found.clear()
        found.update(span_ids_in_jaeger() & accepted)
        return found == accepted
    if not wait_for_all:
        all_accepted_found()
        return accepted, found
    with contextlib.suppress(StackError):  # the caller judges what was found
        wait_until(all_accepted_found, 120, "every accepted span in Jaeger")
    return accepted, found


@pytest.mark.timeout(600)
def test_sigkilled_collector_loses_no_accepted_span(binaries: Binaries, tmp_path: Path) -> None:
    queue_dir = tmp_path / "queue"  # created by the Collector
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        accepted, found = kill_restart_and_find(stack, "local.yaml", queue_dir, "durability-disk",
                                                jaeger_downstream, wait_for_all=True)
        missing = accepted - found
        assert not missing, f"{len(missing)} of {len(accepted)} accepted spans never reached Jaeger"
        # The queue holds span content: private to the Collector's user (README, "Durable queues").
        assert stat.S_IMODE(queue_dir.stat().st_mode) == 0o700
        files = [p for p in queue_dir.iterdir() if p.is_file()]
        assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), files


@pytest.mark.timeout(600)
def test_control_in_memory_queue_loses_accepted_spans(binaries: Binaries, tmp_path: Path) -> None:
    """The same scenario without `storage:` (the configs before issue 15): the queue dies with the process."""
    text = (CONFIG_DIR / "local.yaml").read_text()
    lines = [line for line in text.splitlines(keepends=True) if "storage: file_storage/queue" not in line]
    assert len(lines) == len(text.splitlines()) - 1, "local.yaml has no `storage: file_storage/queue` line"
    config = tmp_path / "local-in-memory.yaml"
    config.write_text("".join(lines))
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        accepted, found = kill_restart_and_find(stack, str(config), tmp_path / "queue", "durability-memory",
                                                 jaeger_downstream, wait_for_all=False)
        assert accepted and not found, f"{len(found)} of {len(accepted)} accepted spans survived an in-memory queue"


@pytest.mark.timeout(600)
def test_sigkilled_agent_tier_collector_loses_no_accepted_span(binaries: Binaries, tmp_path: Path) -> None:
    """agent.yaml: the load balancer's disk queue keeps an item until a gateway has it (wait_for_result),
    so what sat in the per-gateway sub-exporters' memory when the agent died is sent again."""
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        accepted, found = kill_restart_and_find(stack, "agent.yaml", tmp_path / "queue", "durability-agent",
                                                gateway_downstream, wait_for_all=True)
        missing = accepted - found
        assert not missing, f"{len(missing)} of {len(accepted)} accepted spans never reached Jaeger"


@pytest.mark.timeout(300)
def test_second_collector_on_the_same_queue_directory_refuses_to_start(binaries: Binaries, tmp_path: Path) -> None:
    """Two instances must not share one queue (README: one directory per Collector instance)."""
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        downstream = jaeger_downstream(stack)  # never started: nothing is sent
        env = {**downstream.collector_env, "AGENTMON_COLLECTOR_QUEUE_DIR": str(tmp_path / "queue")}
        stack.collector("first", "local.yaml", env=env)
        with pytest.raises(StackError, match="exited"):
            stack.collector("second", "local.yaml", env=env)
        second = stack.services[-1]
        assert second.popen.returncode not in (None, 0)
        assert 'failed to start "otlp_grpc/jaeger" exporter: timeout' in second.log.read_text()
        stack.services.remove(second)  # it exited, as it should: not a crash for the stack to report


@pytest.mark.timeout(600)
def test_sigkilled_gateway_loses_no_sampled_span_queued_for_jaeger(binaries: Binaries, tmp_path: Path) -> None:
    """gateway.yaml: once tail sampling has decided, the spans wait for Jaeger on disk and survive a
    SIGKILL.  (Spans still awaiting their decision are in memory: README, "what it does not cover".)"""
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        env = {**jaeger_downstream(stack).collector_env, "AGENTMON_COLLECTOR_QUEUE_DIR": str(tmp_path / "queue"),
               "AGENTMON_SAMPLE_PERCENT": "100", "AGENTMON_DECISION_WAIT": "1s"}
        first = stack.collector("gateway-before-kill", "gateway.yaml", env=env)
        sender = Sender(first.otlp_http, "durability-gateway")
        for _ in range(ACCEPTED_BEFORE_KILL):
            body, span_ids = sender.request()
            req = urllib.request.Request(f"{first.otlp_http}/v1/traces", data=body, method="POST",
                                         headers={"Content-Type": "application/x-protobuf"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 200
            sender.accepted.append(span_ids)
        accepted = set().union(*sender.accepted)

        def queued_for_jaeger() -> float:
            return sum(s.value for s in scrape(first.telemetry_url)
                       if s.name == "otelcol_exporter_queue_size" and s.labels.get("exporter") == "otlp_grpc/jaeger")
        wait_until(lambda: queued_for_jaeger() >= len(accepted), 120, "every span decided and queued for Jaeger")
        sigkill(stack, first.service)

        downstream = jaeger_downstream(stack)
        stack.collector("gateway-after-restart", "gateway.yaml", env={**env, **downstream.collector_env})
        jaeger = downstream.start()
        found: set[str] = set()

        def all_found() -> bool:
            found.update({s["spanID"] for t in jaeger.traces("durability-gateway", limit=10_000) for s in t["spans"]})
            return accepted <= found
        with contextlib.suppress(StackError):
            wait_until(all_found, 180, "every queued span in Jaeger")
        missing = accepted - found
        assert not missing, f"{len(missing)} of {len(accepted)} queued spans never reached Jaeger"
