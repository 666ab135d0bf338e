"""``agentmon serve`` as an OTLP/HTTP destination: what stock exporters and raw clients get back,
what it keeps, and how it bounds what it keeps."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_agentmon._names import semconv as sc
from otel_agentmon._records.recording import parse_lines
from otel_agentmon.serve import Limits, ServeConfig, Server
from tests.support.polling import wait_for

PB = "application/x-protobuf"


@pytest.fixture
def server() -> Iterator[Server]:
    with Server(ServeConfig(port=0, max_body_bytes=256 * 1024)) as srv:
        yield srv


def agent_spans(n: int, *, agent: str = "researcher", service: str = "svc", fail: bool = False,
                instance: str = "i-1") -> list[ReadableSpan]:
    """Finished spans of an agent doing ``n`` tasks with one tool call each, made by the plain OTel SDK."""
    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.instance.id": instance}))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("plain.sdk")
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes={
            sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: agent}):
        for i in range(n):
            task_attrs = {sc.AGENTMON_TASK_TYPE: "research", sc.GEN_AI_AGENT_NAME: agent, sc.AGENTMON_TASK_ID: f"t{i}"}
            with tracer.start_as_current_span("task research", attributes=task_attrs) as task:
                with tracer.start_as_current_span("execute_tool web_search", attributes={
                        sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "web_search"}):
                    pass
                if fail:
                    task.set_attribute(sc.ERROR_TYPE, "TimeoutError")
                    task.set_status(_error_status())
    provider.shutdown()
    return list(mem.get_finished_spans())


def _error_status() -> Any:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR)


def post(srv: Server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(srv.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def get_json(srv: Server, path: str) -> Any:
    with urllib.request.urlopen(srv.url + path, timeout=10) as resp:
        return json.loads(resp.read())


def body_of(spans: list[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


def test_stock_exporters_deliver_all_three_signals(server: Server) -> None:
    spans = agent_spans(3)
    exporter = OTLPSpanExporter(endpoint=server.url + "/v1/traces", timeout=5)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=server.url + "/v1/metrics", timeout=5),
                                           export_interval_millis=60_000)
    meters = MeterProvider(resource=Resource.create({"service.name": "svc"}), metric_readers=[reader])
    meters.get_meter("m").create_gauge(sc.M_AGENT_UP).set(1, {sc.GEN_AI_AGENT_NAME: "researcher"})
    meters.get_meter("m").create_up_down_counter("process.memory.usage").add(123_456_789)
    meters.shutdown()

    logs = LoggerProvider(resource=Resource.create({"service.name": "svc"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=server.url + "/v1/logs")))
    logs.get_logger("agentmon").emit(event_name="agentmon.health.changed", body="agent researcher is degraded",
                                     attributes={sc.GEN_AI_AGENT_NAME: "researcher",
                                                 sc.AGENTMON_HEALTH_STATE: "degraded",
                                                 "agentmon.health.reasons": ["error rate 20% over 60s"]})
    logs.shutdown()

    state = get_json(server, "/api/state")
    assert state["store"]["spans"] == len(spans)
    [agent] = state["agents"]
    assert agent["name"] == "researcher"
    assert agent["state"] == "degraded" and agent["source"] == "reported"  # the process's own word
    assert agent["reasons"] == ["error rate 20% over 60s"]
    assert state["resources"][0]["memory"][-1][1] == 123_456_789
    traces = get_json(server, "/api/traces?recent=10&slowest=2")
    assert [t["name"] for t in traces["recent"]].count("task research") == 3
    assert len(traces["slowest"]) == 2


def test_gzip_bodies_are_inflated(server: Server) -> None:
    exporter = OTLPSpanExporter(endpoint=server.url + "/v1/traces", timeout=5, compression=Compression.Gzip)
    assert exporter.export(agent_spans(2)) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
    status, raw, _ = post(server, "/v1/traces", gzip.compress(body_of(agent_spans(1))),
                          {"Content-Type": PB, "Content-Encoding": "gzip"})
    assert status == 200
    ExportTraceServiceResponse.FromString(raw)
    assert server.store.span_count == 5 + 3


def test_response_is_the_export_response_message(server: Server) -> None:
    status, raw, headers = post(server, "/v1/traces", body_of(agent_spans(1)), {"Content-Type": PB})
    assert status == 200 and headers["Content-Type"] == PB
    assert not ExportTraceServiceResponse.FromString(raw).HasField("partial_success")


def test_bad_body_is_400(server: Server) -> None:
    status, _, _ = post(server, "/v1/traces", b"\xff\xff\xff\xff not protobuf", {"Content-Type": PB})
    assert status == 400
    status, _, _ = post(server, "/v1/traces", b"{not json", {"Content-Type": "application/json"})
    assert status == 400
    status, _, _ = post(server, "/v1/traces", b"\x1f\x8b broken gzip", {"Content-Type": PB, "Content-Encoding": "gzip"})
    assert status == 400
    assert server.store.span_count == 0


def test_wrong_content_type_is_415(server: Server) -> None:
    status, _, _ = post(server, "/v1/traces", body_of(agent_spans(1)), {"Content-Type": "text/plain"})
    assert status == 415
    assert server.store.span_count == 0


def test_bodies_over_the_cap_are_413(server: Server) -> None:
    too_big = b"\x00" * (server.config.max_body_bytes + 1)
    status, _, _ = post(server, "/v1/traces", too_big, {"Content-Type": PB})
    assert status == 413
    bomb = gzip.compress(b"\x00" * (server.config.max_body_bytes * 4))  # small on the wire, large inflated
    status, _, _ = post(server, "/v1/traces", bomb, {"Content-Type": PB, "Content-Encoding": "gzip"})
    assert status == 413


def test_invalid_spans_are_reported_as_partial_success(server: Server) -> None:
    request = ExportTraceServiceRequest.FromString(body_of(agent_spans(1)))
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01" * 8  # 8 bytes: invalid
    status, raw, _ = post(server, "/v1/traces", request.SerializeToString(), {"Content-Type": PB})
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(raw).partial_success
    assert partial.rejected_spans == 1 and partial.error_message
    assert server.store.span_count == 2  # the other two of the three are kept


def test_otlp_json_with_hex_ids(server: Server) -> None:
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]},
                               "scopeSpans": [{"scope": {"name": "manual"}, "spans": [{
                                   "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                                   "name": "execute_tool fetch", "startTimeUnixNano": "1700000000000000000",
                                   "endTimeUnixNano": "1700000000250000000",
                                   "attributes": [
                                       {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                                       {"key": "gen_ai.tool.name", "value": {"stringValue": "fetch"}}]}]}]}]}
    status, raw, headers = post(server, "/v1/traces", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(raw) == {}
    [record] = server.store.trace("5b8efff798038103d269b633813fc60c")
    assert (record.span_id, record.kind, record.tool, record.service) == ("eee19b7ec3c1b174", "tool", "fetch", "js")
    assert record.duration_s == pytest.approx(0.25)


def test_waterfall_of_one_task(server: Server) -> None:
    spans = agent_spans(2)
    post(server, "/v1/traces", body_of(spans), {"Content-Type": PB})
    task = next(s for s in spans if s.name == "task research")
    trace_id, span_id = f"{task.context.trace_id:032x}", f"{task.context.span_id:016x}"
    wf = get_json(server, f"/api/trace/{trace_id}?span={span_id}")
    names = [s["name"] for s in wf["spans"]]
    # the task's ancestors (the agent), the task, then its children
    assert names == ["invoke_agent researcher", "task research", "execute_tool web_search"]
    assert len(get_json(server, f"/api/trace/{trace_id}")["spans"]) == len(spans)


def test_export_is_a_recording(server: Server) -> None:
    post(server, "/v1/traces", body_of(agent_spans(2)), {"Content-Type": PB})
    with urllib.request.urlopen(server.url + "/api/export", timeout=10) as resp:
        recording = parse_lines(resp.read().decode().splitlines())
    assert recording.skipped == 0
    assert sorted(s.name for s in recording.spans) == ["execute_tool web_search"] * 2 + ["invoke_agent researcher"] \
        + ["task research"] * 2


def test_store_stays_within_its_bounds() -> None:
    limits = Limits(max_spans=500, max_memory_bytes=10**9, max_agents=20, max_instances=5)
    with Server(ServeConfig(port=0, limits=limits)) as srv:
        for i in range(60):  # 60 agents in 12 processes, 1,140 spans
            body = body_of(agent_spans(9, agent=f"agent-{i}", instance=f"i-{i % 12}"))
            assert post(srv, "/v1/traces", body, {"Content-Type": PB})[0] == 200
        stats = srv.store.stats()
        assert stats["spans_received"] == 60 * 19
        assert stats["spans"] == 500 and stats["spans_evicted_size"] == 60 * 19 - 500
        assert stats["traces"] <= 500
        assert stats["agents"] <= 20 and stats["instances"] <= 5
        kept = list(srv.store.spans())
        assert kept[-1].agent == "agent-59"  # the newest are kept, the oldest evicted
        shown = get_json(srv, "/api/state")["agents"]
        assert [a["name"] for a in shown] == sorted(f"agent-{i}" for i in range(40, 60))  # the 20 newest
        # the health evaluation lets go of what the store let go of
        assert wait_for(lambda: set(srv.evaluator.loop.current.agents) <= {a["name"] for a in shown}, timeout=5)
    with Server(ServeConfig(port=0, limits=Limits(max_spans=10**6, max_memory_bytes=200_000))) as srv:
        for i in range(20):
            post(srv, "/v1/traces", body_of(agent_spans(9, agent=f"a{i}")), {"Content-Type": PB})
        stats = srv.store.stats()
        assert 0 < stats["bytes"] <= 200_000 and stats["spans"] < 20 * 19


def test_retention_by_age() -> None:
    with Server(ServeConfig(port=0, limits=Limits(retention_s=0.3))) as srv:
        post(srv, "/v1/traces", body_of(agent_spans(2)), {"Content-Type": PB})
        assert srv.store.span_count == 5
        wait_for(lambda: get_json(srv, "/api/state")["store"]["spans"] == 0, timeout=5)
        assert srv.store.trace_count == 0
        assert get_json(srv, "/api/state")["agents"] == []  # agents not heard from within the retention go too
        assert srv.store.stats()["spans_evicted_age"] == 5


def test_insights_from_the_analytics_engine(server: Server) -> None:
    post(server, "/v1/traces", body_of(agent_spans(8, agent="flaky", fail=True)), {"Content-Type": PB})
    post(server, "/v1/traces", body_of(agent_spans(8, agent="steady")), {"Content-Type": PB})
    insights = get_json(server, "/api/insights")
    assert insights["spans"] == 2 * 17
    assert insights["busiest_tool"]["name"] == "web_search" and insights["busiest_tool"]["n"] == 16
    errors = [o for o in insights["opportunities"] if o["kind"] == "errors"]
    assert errors and "'flaky'" in errors[0]["title"]
    assert errors[0]["trace_ids"] and errors[0]["evidence"].startswith("window ")
    trace_id = errors[0]["trace_ids"][0]
    assert get_json(server, f"/api/trace/{trace_id}")["spans"]  # the evidence opens as a waterfall


@pytest.mark.subprocess
def test_configure_dashboard_serves_this_process_live_and_stops_with_it() -> None:
    script = Path(__file__).parent / "scripts" / "dashboard_option.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60,
                          check=False, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"


def test_dashboard_joins_an_agentmon_serve_already_on_the_port_and_else_starts_its_own() -> None:
    from otel_agentmon._setup.dashboard import dashboard_target
    from otel_agentmon._setup.settings import resolve
    from otel_agentmon.serve import ServeConfig, Server

    settings = resolve({"dashboard": True})
    running = Server(ServeConfig(port=0)).start()
    try:
        own, url = dashboard_target(settings, port=running.port)
        assert own is None and url == running.url  # the swarm's first process serves; this one joins
    finally:
        running.stop()
    own, url = dashboard_target(settings, port=running.port)  # nobody there now: start one
    try:
        assert own is not None and url == own.url
    finally:
        if own is not None:
            own.stop()
