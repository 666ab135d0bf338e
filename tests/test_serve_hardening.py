"""``agentmon serve`` against load and attack: concurrent large requests held to a byte budget,
slow and idle connections, truncated bodies, a bind beyond loopback, thousands of agents.
(Issue 11, item 7; the health endpoint's part is in test_health_http.py.)"""

from __future__ import annotations

import gc
import gzip
import http.client
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_agentmon._core.hostcheck import is_loopback
from otel_agentmon._names import semconv as sc
from otel_agentmon._records.records import SERVICE_INSTANCE_ID, build
from otel_agentmon.serve import Limits, ServeConfig, Server
from otel_agentmon.serve._store import Store
from otel_agentmon.serve._wire import RUN_COST
from tests.support.polling import wait_for
from tests.test_serve import PB, agent_spans, body_of, post

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


def raw_request(port: int, data: bytes, *, host: str = "127.0.0.1", shut: bool = True) -> bytes:
    """Send ``data`` on a fresh connection (then half-close it) and read until the server closes."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def get(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def two_part_request() -> tuple[bytes, bytes, int, int]:
    """A trace export request in two parts, each complete protobuf: (first, second, spans in first, in all)."""
    first = body_of(agent_spans(2, agent="first"))
    second = body_of(agent_spans(3, agent="second"))
    count = len(ExportTraceServiceRequest.FromString(first).resource_spans[0].scope_spans[0].spans)
    return first, second, count, count + len(
        ExportTraceServiceRequest.FromString(second).resource_spans[0].scope_spans[0].spans)


# --- 1. the request budget --------------------------------------------------------------------
def test_concurrent_requests_hold_no_more_than_the_request_budget() -> None:
    capacity = 2 * MiB
    config = ServeConfig(port=0, max_request_memory_bytes=capacity, budget_wait=120.0)
    bodies = [body_of(agent_spans(300, agent=f"agent-{i}")) for i in range(6)]
    assert all(2 * (len(b) + RUN_COST) > capacity for b in bodies)  # decoding two at once would not fit
    with Server(config) as srv:
        hold = srv.budget.reservation()
        hold.grow_to(capacity, 0)  # the budget is full until every request is waiting
        results: list[int] = []
        threads = [threading.Thread(target=lambda b=b: results.append(post(srv, "/v1/traces", b, {
            "Content-Type": PB})[0])) for b in bodies]
        for t in threads:
            t.start()
        try:
            assert wait_for(lambda: srv.budget.waiting == len(bodies), timeout=60)
        finally:
            hold.release()
        for t in threads:
            t.join(120)
        assert results == [200] * len(bodies)
        stats = srv.stats()
        assert stats["spans_received"] == 6 * 601
        assert 0 < stats["request_bytes_peak"] <= capacity
        assert stats["request_bytes_in_use"] == 0


def test_a_request_that_finds_the_budget_full_waits_then_gets_503_with_retry_after() -> None:
    with Server(ServeConfig(port=0, max_request_memory_bytes=16 * MiB, budget_wait=0.2)) as srv:
        hold = srv.budget.reservation()
        hold.grow_to(srv.budget.capacity, 0)
        try:
            status, _, headers = post(srv, "/v1/traces", body_of(agent_spans(2)), {"Content-Type": PB})
            assert (status, headers.get("Retry-After")) == (503, "1")  # retryable, as the OTLP spec says
            gz = gzip.compress(body_of(agent_spans(2)))
            status, _, headers = post(srv, "/v1/traces", gz, {"Content-Type": PB, "Content-Encoding": "gzip"})
            assert (status, headers.get("Retry-After")) == (503, "1")
            # refused before its body is read: the client still gets to send it all and read the answer
            status, _, headers = post(srv, "/v1/traces", b"\0" * (15 * MiB), {"Content-Type": PB})
            assert (status, headers.get("Retry-After")) == (503, "1")
            assert srv.store.span_count == 0
        finally:
            hold.release()
        assert post(srv, "/v1/traces", body_of(agent_spans(2)), {"Content-Type": PB})[0] == 200
        assert srv.stats()["requests_busy"] == 3


def test_a_request_that_needs_more_than_the_whole_budget_is_413() -> None:
    with Server(ServeConfig(port=0, max_request_memory_bytes=int(1.5 * MiB))) as srv:
        body = body_of(agent_spans(1500))
        assert MiB // 2 < len(body) < srv.config.max_body_bytes
        status, _, headers = post(srv, "/v1/traces", body, {"Content-Type": PB})
        assert status == 413 and "Retry-After" not in headers  # not retryable: it would never fit
        assert srv.store.span_count == 0
    with Server(ServeConfig(port=0, max_request_memory_bytes=6 * MiB)) as srv:
        request = ExportTraceServiceRequest.FromString(body_of(agent_spans(1)))
        span = request.resource_spans[0].scope_spans[0].spans[0]
        for _ in range(20_000):  # one span of 20,000 attributes: small on the wire, costly to decode
            span.attributes.add(key="k").value.int_value = 1
        status, _, _ = post(srv, "/v1/traces", request.SerializeToString(), {"Content-Type": PB})
        assert status == 413


# --- 2. truncated bodies ----------------------------------------------------------------------
def test_a_truncated_compressed_body_is_400_and_keeps_nothing() -> None:
    first, second, _, total = two_part_request()
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    head = deflate.compress(first) + deflate.flush(zlib.Z_FULL_FLUSH)  # inflates to a whole request
    full = head + deflate.compress(second) + deflate.flush()
    with Server(ServeConfig(port=0)) as srv:
        for cut in (head, full[:-8], full[: len(full) // 2]):  # the stream never ends
            status, answer, _ = post(srv, "/v1/traces", cut, {"Content-Type": PB, "Content-Encoding": "gzip"})
            assert status == 400, answer
            assert srv.store.span_count == 0
        assert post(srv, "/v1/traces", full, {"Content-Type": PB, "Content-Encoding": "gzip"})[0] == 200
        assert srv.store.span_count == total


def test_a_body_shorter_than_its_content_length_is_400_and_keeps_nothing() -> None:
    first, second, _, _ = two_part_request()
    with Server(ServeConfig(port=0)) as srv:
        head = (f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {PB}\r\n"
                f"Content-Length: {len(first) + len(second)}\r\n\r\n").encode()
        answer = raw_request(srv.port, head + first)  # a whole request's worth, then the client hangs up
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert srv.store.span_count == 0


# --- 3. slow and idle connections -------------------------------------------------------------
def test_connections_that_do_not_deliver_their_request_in_time_are_closed() -> None:
    with Server(ServeConfig(port=0, request_timeout=0.5)) as srv:
        body = body_of(agent_spans(1))
        starts = [b"", b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                  f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {PB}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10]]
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(len(starts) + 1)]
        try:
            for sock, start in zip(socks, starts, strict=False):
                sock.sendall(start)
            dribbler = socks[-1]  # a byte every 50 ms: each read is quick, the request never done

            def dribble() -> None:
                try:
                    for byte in b"GET /api/state HTTP/1.1\r\nX-Slow: " + b"a" * 10_000:
                        dribbler.send(bytes([byte]))
                        time.sleep(0.05)
                except OSError:
                    pass  # closed by the server

            thread = threading.Thread(target=dribble, daemon=True)
            thread.start()
            for sock in socks:
                try:
                    assert sock.recv(1024) == b""  # the server closed it (well before our 30 s)
                except ConnectionResetError:
                    pass
            thread.join(30)
        finally:
            for sock in socks:
                sock.close()
        assert srv.stats()["connections_timed_out"] == 4
        assert post(srv, "/v1/traces", body, {"Content-Type": PB})[0] == 200


def _handler_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_idle_connections_past_the_cap_do_not_lock_exporters_out() -> None:
    config = ServeConfig(port=0, max_connections=64, request_timeout=60.0, idle_timeout=60.0)
    with Server(config) as srv:
        stream = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        stream.request("GET", "/api/stream")
        events = stream.getresponse()
        assert events.status == 200 and events.fp.readline() == b"retry: 1000\n"
        idle: list[socket.socket] = []
        try:
            for _ in range(200):  # 200 connections that never send anything
                idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=30))
            exporter = OTLPSpanExporter(endpoint=srv.url + "/v1/traces", timeout=30)
            try:
                assert exporter.export(agent_spans(2)) is SpanExportResult.SUCCESS
            finally:
                exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves the OTLP exporter's shutdown() unannotated
            assert wait_for(lambda: _handler_threads() <= 64, timeout=30)  # a thread per open connection
            stats = srv.stats()
            assert stats["connections_open"] <= 64 and stats["connections_evicted"] >= 200 + 2 - 64
            # the dashboard stream (busy, so never the one closed) still gets the new state
            while True:
                line = events.fp.readline()
                assert line, "the dashboard stream was closed"
                if line.startswith(b"data: ") and json.loads(line[6:]).get("store", {}).get("spans") == 5:
                    break
        finally:
            for sock in idle:
                sock.close()
            stream.close()


@pytest.mark.subprocess
def test_out_of_file_descriptors_serve_pauses_instead_of_spinning_on_accept() -> None:
    script = textwrap.dedent("""
        import json, os, resource, sys, time
        from otel_agentmon.serve import ServeConfig, Server
        srv = Server(ServeConfig(port=0, max_connections=1000)).start()
        resource.setrlimit(resource.RLIMIT_NOFILE,  # a few more connections, then accept fails (EMFILE)
                           (len(os.listdir("/proc/self/fd")) + 3, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        print(srv.port, flush=True)
        sys.stdin.readline()  # the clients are connected
        deadline = time.monotonic() + 30
        while not srv.stats().get("accept_errors") and time.monotonic() < deadline:
            time.sleep(0.01)
        before = srv.stats().get("accept_errors")
        time.sleep(1.0)
        after = srv.stats().get("accept_errors")
        print(json.dumps({"before": before, "after": after}), flush=True)
        os._exit(0)
    """)
    clients: list[socket.socket] = []
    with subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          cwd=ROOT) as child:
        try:
            assert child.stdout is not None and child.stdin is not None
            port = int(child.stdout.readline())
            clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(20)]
            child.stdin.write("go\n")
            child.stdin.flush()
            counts = json.loads(child.stdout.readline())
            assert child.wait(60) == 0
        finally:
            for sock in clients:
                sock.close()
            if child.poll() is None:
                child.kill()
    assert counts["before"] is not None and counts["before"] >= 1  # accept did fail: out of descriptors
    # a pause of 0.1 s after each failure: about 10 a second, not a loop at full speed
    assert counts["after"] - counts["before"] <= 15


# --- 4. bound beyond loopback -----------------------------------------------------------------
def _outside_address() -> str | None:
    """An address of this machine other than loopback (``None`` when it has none)."""
    candidates: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route's source address
            candidates.append(probe.getsockname()[0])
        except OSError:
            pass
    try:
        candidates.append(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    return next((c for c in candidates if not is_loopback(c) and c != "0.0.0.0"), None)


STATE_PATHS = ("/", "/index.html", "/api/state", "/api/traces", "/api/trace/" + "0" * 32, "/api/insights",
               "/api/export", "/api/stream", "/api/search", "/traces", "/traces/" + "0" * 32)


def test_bound_beyond_loopback_serve_warns_and_shows_its_store_only_to_loopback_or_the_token(
        caplog: pytest.LogCaptureFixture) -> None:
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no address other than loopback to be a remote client from")
    with caplog.at_level(logging.WARNING, logger="otel_agentmon.serve"):
        srv = Server(ServeConfig(host="0.0.0.0", port=0, token="s3cret token;="))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0] and "other machines" in warnings[0]
    with srv:
        port = srv.port
        # OTLP ingestion stays open to every client
        status, _, _ = post_to(outside, port, body_of(agent_spans(1)))
        assert status == 200 and srv.store.span_count == 3
        for path in STATE_PATHS:
            assert get(outside, port, path).status == 403, path
            assert get(outside, port, path, {"Authorization": "Bearer wrong"}).status == 403, path
            if path != "/api/stream":
                assert get(outside, port, path, {"Authorization": "Bearer s3cret token;="}).status == 200, path
                assert get("127.0.0.1", port, path).status == 200, path  # this machine needs no token
        for path in ("/static/app.js", "/healthz"):
            assert get(outside, port, path).status == 200, path
        page = get(outside, port, "/?token=s3cret%20token%3B%3D")  # the page opened with the token keeps it
        assert page.status == 200
        deep = get(outside, port, f"/traces/{'0' * 32}?span={'0' * 16}&token=s3cret%20token%3B%3D")  # a deep link too
        assert deep.status == 200 and (deep.getheader("Set-Cookie") or "").startswith("agentmon_token=")
        cookie = page.getheader("Set-Cookie") or ""
        assert cookie.startswith("agentmon_token=s3cret%20token%3B%3D;") and "HttpOnly" in cookie
        assert get(outside, port, "/api/state", {"Cookie": cookie.split(";")[0]}).status == 200
    with Server(ServeConfig(host="0.0.0.0", port=0)) as srv:  # no token: loopback clients only
        assert get(outside, srv.port, "/api/export").status == 403
        assert get(outside, srv.port, "/api/export", {"Authorization": "Bearer "}).status == 403
        assert get("127.0.0.1", srv.port, "/api/export").status == 200
        assert post_to(outside, srv.port, body_of(agent_spans(1)))[0] == 200


def post_to(host: str, port: int, body: bytes) -> tuple[int, bytes, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": PB})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


@pytest.mark.subprocess
def test_the_cli_warns_once_when_binding_beyond_loopback() -> None:
    done = subprocess.run([sys.executable, "-m", "otel_agentmon.cli", "serve", "--host", "0.0.0.0", "--port", "0",
                           "--duration", "0.2"], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "reachable from other machines" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and "--token" in lines[0]
    quiet = subprocess.run([sys.executable, "-m", "otel_agentmon.cli", "serve", "--port", "0", "--duration", "0.2"],
                           capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert quiet.returncode == 0 and "other machines" not in quiet.stderr


# --- 5. many agents ---------------------------------------------------------------------------
def _calls(action: Callable[[], object]) -> int:
    """Python and C function calls made by ``action``: a count, independent of the machine's speed."""
    calls = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    # A collection during the action would count other objects' finalizers and gc callbacks (seen in
    # the full suite: +4 calls), so the count is taken with the collector paused.
    gc.collect()
    gc.disable()
    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
        gc.enable()
    return calls


def _span_of(agent: str) -> tuple[object, dict[str, str]]:
    record = build(trace_id=1, span_id=len(agent) + 1, parent_id=None, name="task", start_ns=0, end_ns=1,
                   attrs={sc.GEN_AI_AGENT_NAME: agent, sc.AGENTMON_TASK_TYPE: "t"}, scope=None, is_root=True,
                   error_status=False, resource={})
    return record, {sc.SERVICE_NAME: "svc", SERVICE_INSTANCE_ID: f"inst-{agent}"}


def test_a_new_agent_and_process_cost_the_same_with_ten_or_thousands_known() -> None:
    def cost_of_one_more(known: int) -> int:
        store = Store(Limits(max_agents=known, max_instances=known, max_spans=10**6, max_memory_bytes=10**12))
        for i in range(known):  # at the caps: the newcomer evicts the agent, process and report seen longest ago
            record, resource = _span_of(f"agent-{i}")
            store.add_spans([record], [resource])  # type: ignore[list-item]
            for k in range(4):
                store.reported_for(f"agent-{i}", ("svc", f"inst-{i}-{k}"), time.monotonic())
        record, resource = _span_of("newcomer")

        def one_more() -> None:
            store.add_spans([record], [resource])  # type: ignore[list-item]
            store.reported_for("newcomer", ("svc", "inst-newcomer"), time.monotonic())

        calls = _calls(one_more)
        assert "agent-0" not in store.agent_instances and len(store.agent_instances) == known
        return calls

    assert cost_of_one_more(2000) <= cost_of_one_more(10) + 2
