"""Local OTLP/HTTP receiver for the end-to-end benchmark (127.0.0.1 only, bounded lifetime).

Adapted from perf-scripts/sink.py (HTTP mode only): POST /v1/traces is parsed as an
ExportTraceServiceRequest, every span is counted and stamped with its arrival time minus its
``end_time_unix_nano`` (same machine clock), and answered 200 with an empty
ExportTraceServiceResponse. POST /v1/metrics and /v1/logs are answered 200 and counted, so our
whole pipeline (not only traces) runs against it. Control plane on the same port: GET /stats
(``?lat=1`` adds latencies by span name), POST /reset, GET /ready, GET /quit.

Run: ``python benchmarks/sink.py --port 14318 [--max-seconds 900]``; it prints ``sink ready``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

HOST = "127.0.0.1"
MAX_LATENCIES = 2_000_000

_EMPTY_REPLY = {
    "/v1/traces": ExportTraceServiceResponse().SerializeToString(),
    "/v1/metrics": ExportMetricsServiceResponse().SerializeToString(),
    "/v1/logs": ExportLogsServiceResponse().SerializeToString(),
}


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans = 0
        self.trace_requests = 0
        self.other_requests: dict[str, int] = {}
        self.lat_ns: dict[str, list[int]] = {}  # span name -> arrival minus span end, per span
        self.n_lat = 0

    def reset(self) -> None:
        with self.lock:
            self.spans = 0
            self.trace_requests = 0
            self.other_requests = {}
            self.lat_ns = {}
            self.n_lat = 0

    def add_traces(self, payload: bytes) -> None:
        now = time.time_ns()
        req = ExportTraceServiceRequest()
        req.ParseFromString(payload)
        lats: list[tuple[str, int]] = [
            (sp.name, now - sp.end_time_unix_nano)
            for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans
        ]
        with self.lock:
            self.spans += len(lats)
            self.trace_requests += 1
            if self.n_lat < MAX_LATENCIES:
                self.n_lat += len(lats)
                for name, lat in lats:
                    self.lat_ns.setdefault(name, []).append(lat)

    def add_other(self, path: str) -> None:
        with self.lock:
            self.other_requests[path] = self.other_requests.get(path, 0) + 1

    def snapshot(self, with_lat: bool) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {"spans": self.spans, "trace_requests": self.trace_requests,
                                   "other_requests": dict(self.other_requests)}
            if with_lat:
                out["lat_ns"] = {k: list(v) for k, v in self.lat_ns.items()}
            return out


STATS = Stats()
STOP = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real collector

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _reply(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        if self.path == "/v1/traces":
            STATS.add_traces(body)
        elif self.path in _EMPTY_REPLY:
            STATS.add_other(self.path)
        elif self.path == "/reset":
            STATS.reset()
            self._reply(200, b"{}", "application/json")
            return
        else:
            self._reply(404, b"", "text/plain")
            return
        self._reply(200, _EMPTY_REPLY[self.path], "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path.startswith("/stats"):
            body = json.dumps(STATS.snapshot("lat=1" in self.path)).encode()
            self._reply(200, body, "application/json")
        elif self.path in ("/ready", "/quit"):
            self._reply(200, b"{}", "application/json")
            if self.path == "/quit":
                STOP.set()
        else:
            self._reply(404, b"", "text/plain")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=14318)
    ap.add_argument("--max-seconds", type=float, default=900.0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer((HOST, args.port), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"sink ready pid={os.getpid()}", flush=True)
    STOP.wait(args.max_seconds)
    srv.shutdown()


if __name__ == "__main__":
    main()
