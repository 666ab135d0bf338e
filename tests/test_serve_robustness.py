"""``agentmon serve`` under what goes wrong: stopping a server that never started or that a fork
inherited, numbers that are not numbers, big exports, many short-lived processes, requests from a
rebound DNS name, a stalled recording disk."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_agentmon._names import semconv as sc
from otel_agentmon._records.recording import RecordingWriter, parse_lines, read_recording
from otel_agentmon._records.records import SERVICE_INSTANCE_ID
from otel_agentmon.serve import Limits, ServeConfig, Server
from otel_agentmon.serve._http import dumps, host_allowed
from otel_agentmon.serve._ingest import apply_points
from otel_agentmon.serve._otlp import Point
from otel_agentmon.serve._recorder import QueuedRecorder
from otel_agentmon.serve._store import Store
from tests.support.polling import wait_for
from tests.test_serve import PB, agent_spans, body_of, post

ROOT = Path(__file__).resolve().parents[1]


def strict_json(body: bytes) -> Any:
    """Parse like a browser's JSON.parse: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(body, parse_constant=refuse)


def get(srv: Server, path: str, host: str | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        headers = {} if host is None else {"Host": host}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


def metrics_body(points: list[tuple[str, float, dict[str, str]]], *, kind: str = "gauge",
                 instance: str = "i-1") -> bytes:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    for key, value in ((sc.SERVICE_NAME, "svc"), (SERVICE_INSTANCE_ID, instance)):
        kv = rm.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    scope = rm.scope_metrics.add()
    for name, number, attrs in points:
        metric = scope.metrics.add()
        metric.name = name
        data = metric.sum if kind == "sum" else metric.gauge
        if kind == "sum":
            metric.sum.is_monotonic, metric.sum.aggregation_temporality = True, 2  # cumulative
        point = data.data_points.add()
        point.as_double, point.time_unix_nano = number, time.time_ns()
        for key, value in attrs.items():
            kv = point.attributes.add()
            kv.key, kv.value.string_value = key, value
    return bytes(request.SerializeToString())


# --- 1. stop ----------------------------------------------------------------------------------
def test_stop_without_start_returns_and_frees_the_port() -> None:
    srv = Server(ServeConfig(port=0))
    port = srv.port
    stopper = threading.Thread(target=srv.stop, daemon=True)
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive(), "Server.stop() before start() hangs"
    srv.stop()  # again: nothing left to do
    with Server(ServeConfig(port=port)):  # the port is free again
        pass


def test_a_forked_child_lets_go_of_the_inherited_server_and_its_stop_returns() -> None:
    script = textwrap.dedent("""
        import os, signal, urllib.request
        from otel_agentmon.serve import ServeConfig, Server
        srv = Server(ServeConfig(port=0)).start()
        pid = os.fork()
        if pid == 0:  # what a multiprocessing child's Monitor.shutdown does with dashboard=True
            signal.alarm(30)  # a hung child must not outlive the test
            closed = srv.httpd.socket.fileno() == -1
            srv.stop()
            os._exit(0 if closed else 3)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        with urllib.request.urlopen(srv.url + "/healthz", timeout=10) as resp:  # the parent still serves
            print(resp.status)
        srv.stop()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "200"]


# --- 2. NaN and infinities --------------------------------------------------------------------
def test_non_finite_metric_values_are_rejected_and_the_page_stays_readable() -> None:
    with Server(ServeConfig(port=0)) as srv:
        body = metrics_body([(sc.PROCESS_CPU_UTILIZATION, float("nan"), {}),
                             (sc.M_TASKS_IN_FLIGHT, float("inf"), {sc.GEN_AI_AGENT_NAME: "bot"}),
                             (sc.M_AGENT_UP, 1.0, {sc.GEN_AI_AGENT_NAME: "bot"}),
                             (sc.PROCESS_MEMORY_USAGE, 2e6, {})])
        code, payload, _ = post(srv, "/v1/metrics", body, {"Content-Type": PB})
        assert code == 200
        answer = ExportMetricsServiceResponse.FromString(payload)
        assert answer.partial_success.rejected_data_points == 2
        assert "non-finite" in answer.partial_success.error_message
        status, state_body, _ = get(srv, "/api/state")
        assert status == 200
        state = strict_json(state_body)
        [bot] = state["agents"]
        assert (bot["name"], bot["up"], bot["in_flight"]) == ("bot", True, 0)
        [resources] = state["resources"]
        assert [v for _, v in resources["memory"]] == [2e6] and "cpu" not in resources


def test_a_non_finite_number_in_the_store_does_not_break_the_state() -> None:
    with Server(ServeConfig(port=0)) as srv:
        resource = {sc.SERVICE_NAME: "svc"}
        srv.store.add_points([Point(sc.M_TASKS_IN_FLIGHT, {sc.GEN_AI_AGENT_NAME: "bot"}, float("nan"), time.time_ns(),
                                    resource),
                              Point(sc.PROCESS_CPU_UTILIZATION, {}, float("inf"), time.time_ns(), resource)],
                             apply_points)
        status, body, _ = get(srv, "/api/state")
        assert status == 200
        state = strict_json(body)
        assert [(a["name"], a["in_flight"]) for a in state["agents"]] == [("bot", 0)]
        assert state["resources"][0]["cpu"] == []


def test_json_answers_spell_a_stray_non_finite_number_as_null() -> None:
    assert strict_json(dumps({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}})) == {
        "a": None, "b": [None, 1.5], "c": {"d": None}}


# --- 3. streamed export -----------------------------------------------------------------------
def test_export_streams_in_chunks_and_holds_everything() -> None:
    with Server(ServeConfig(port=0)) as srv:
        spans = agent_spans(1200)  # 2,401 spans: three chunks
        assert post(srv, "/v1/traces", body_of(spans), {"Content-Type": PB})[0] == 200
        status, body, resp = get(srv, "/api/export")
        assert status == 200
        assert resp.getheader("Transfer-Encoding") == "chunked" and resp.getheader("Content-Length") is None
        recording = parse_lines(body.decode().splitlines())
        assert recording.skipped == 0 and len(recording.spans) == len(spans)
        assert {s.span_id for s in recording.spans} == {f"{s.context.span_id:016x}" for s in spans}
        assert body == srv.export_bytes()


def test_network_rates_are_exported_under_the_agentmon_name() -> None:
    with Server(ServeConfig(port=0)) as srv:
        for total in (1000.0, 5000.0):
            body = metrics_body([(sc.SYSTEM_NETWORK_IO, total, {sc.NETWORK_IO_DIRECTION: "receive"})], kind="sum")
            assert post(srv, "/v1/metrics", body, {"Content-Type": PB})[0] == 200
        recording = parse_lines(get(srv, "/api/export")[1].decode().splitlines())
        [sample] = recording.metrics
        assert sample.name == sc.M_PROCESS_NETWORK_IO_RATE and sample.unit == "By/s" and sample.value > 0
        assert sample.attributes[sc.NETWORK_IO_DIRECTION] == "receive"
        assert sample.attributes[SERVICE_INSTANCE_ID] == "i-1"


# --- 4. many short-lived processes ------------------------------------------------------------
def network_points(instance: str, total: float) -> list[Point]:
    resource = {sc.SERVICE_NAME: "svc", SERVICE_INSTANCE_ID: instance}
    return [Point(sc.SYSTEM_NETWORK_IO, {sc.NETWORK_IO_DIRECTION: d}, total, 0, resource)
            for d in ("receive", "transmit")]


def test_processes_that_come_and_go_keep_getting_network_series() -> None:
    store = Store(Limits(max_instances=2, max_series=4))
    for n in range(10):  # ten processes one after the other, two at a time fit
        with store.lock:
            apply_points(store, network_points(f"p{n}", 100.0), 1000.0 + n)
            apply_points(store, network_points(f"p{n}", 300.0), 1001.0 + n)
        assert ("net_rx", "svc", f"p{n}") in store.series, f"process p{n} got no network series"
        assert list(store.series[("net_tx", "svc", f"p{n}")]) == [(1001.0 + n, 200.0)]
    # processes that stop reporting age out, and with them what was kept to compute their rates
    store = Store(Limits(max_series=4))
    for n in range(2):
        with store.lock:
            apply_points(store, network_points(f"q{n}", 100.0), time.time())
    for inst in store.instances.values():
        inst.last_seen = 0.0  # last heard of long ago
    store.expire()
    assert not store.instances and not store.series
    for n in range(2, 4):
        with store.lock:
            apply_points(store, network_points(f"q{n}", 100.0), 2000.0)
            apply_points(store, network_points(f"q{n}", 400.0), 2001.0)
        assert list(store.series[("net_rx", "svc", f"q{n}")]) == [(2001.0, 300.0)]


# --- 5. DNS rebinding -------------------------------------------------------------------------
def test_a_loopback_server_answers_only_requests_addressed_to_loopback() -> None:
    with Server(ServeConfig(port=0)) as srv:
        port = srv.port
        assert post(srv, "/v1/traces", body_of(agent_spans(1)), {"Content-Type": PB})[0] == 200
        for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example", f"evil:{port}x"):
            status, _, _ = get(srv, "/api/export", host=host)
            assert status == 403, host
            assert get(srv, "/api/state", host=host)[0] == 403
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", f"LOCALHOST:{port}"):
            assert get(srv, "/api/export", host=host)[0] == 200, host
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", "/v1/traces", body=body_of(agent_spans(1)),
                         headers={"Host": f"attacker.example:{port}", "Content-Type": PB})
            assert conn.getresponse().status == 403
        finally:
            conn.close()
        # stock SDK exporters name the endpoint's host, loopback
        for endpoint in (srv.url, f"http://localhost:{port}"):
            exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces", timeout=5)
            assert exporter.export(agent_spans(1)) is SpanExportResult.SUCCESS
            exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
        assert srv.store.span_count == 9
    # a server bound to the network is reached by name: no check there
    assert host_allowed("agentmon.internal:4318", "0.0.0.0")
    assert host_allowed("[::1]:4318", "::1") and not host_allowed("attacker.example", "::1")


# --- 6. recent=0 ------------------------------------------------------------------------------
def test_traces_recent_zero_lists_none() -> None:
    with Server(ServeConfig(port=0)) as srv:
        post(srv, "/v1/traces", body_of(agent_spans(3)), {"Content-Type": PB})
        assert strict_json(get(srv, "/api/traces?recent=0")[1])["recent"] == []
        assert len(strict_json(get(srv, "/api/traces?recent=2")[1])["recent"]) == 2
        assert len(strict_json(get(srv, "/api/traces?recent=0&slowest=1")[1])["slowest"]) == 1


# --- 7. recording off the ingestion path ------------------------------------------------------
def test_a_stalled_recording_does_not_stall_ingestion(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    with Server(ServeConfig(port=0, record=path)) as srv:
        assert srv.recorder is not None
        writer: Any = getattr(srv.recorder, "writer", srv.recorder)  # (before the queue, the store wrote)
        stalled = writer._lock  # a write that does not return: a stalled disk
        with stalled:
            assert post(srv, "/v1/traces", body_of(agent_spans(2)), {"Content-Type": PB})[0] == 200
            assert get(srv, "/api/state")[0] == 200
            assert srv.store.span_count == 5
        assert wait_for(lambda: len(read_recording(path).spans) == 5, timeout=10)  # flushed without a stop
        with urllib.request.urlopen(srv.url + "/healthz", timeout=10) as resp:
            assert json.loads(resp.read())["recording_dropped"] == 0


def test_the_recorder_queue_is_bounded_and_counts_what_it_drops(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "rec.jsonl")
    recorder = QueuedRecorder(writer, max_queue=3)
    spans = parse_lines(_span_lines(10)).spans
    with writer._lock:  # the disk stalls
        for record in spans:
            recorder.put(record)
        assert recorder.dropped >= 10 - 3 - 1  # the queue, and the one being written
    recorder.close()
    assert recorder.dropped + writer.written == 10
    assert len(read_recording(tmp_path / "rec.jsonl").spans) == writer.written
    recorder.put(spans[0])  # after close: dropped, not written
    assert recorder.dropped + writer.written == 11


def _span_lines(n: int) -> list[str]:
    with Server(ServeConfig(port=0)) as srv:
        post(srv, "/v1/traces", body_of(agent_spans(n)), {"Content-Type": PB})
        return srv.export_bytes().decode().splitlines()[:n]
