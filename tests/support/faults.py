"""Fault modes and wire helpers for :mod:`tests.support.receiver`."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

TRACES, METRICS, LOGS = "/v1/traces", "/v1/metrics", "/v1/logs"
_KINDS = ("ok", "status", "partial_success", "slow", "blackhole", "reset", "close_mid_body")


@dataclass(frozen=True)
class Mode:
    """How the receiver answers a request. Build with the helper functions below."""

    kind: str = "ok"
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    rejected: int = 0
    message: str = ""
    paths: frozenset[str] | None = None  # None = every signal path

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown mode kind {self.kind!r}; expected one of {_KINDS}")

    def applies_to(self, path: str) -> bool:
        return self.paths is None or path in self.paths


def _paths(paths: Iterable[str] | None) -> frozenset[str] | None:
    if paths is None:
        return None
    return frozenset(p if p.startswith("/") else f"/v1/{p}" for p in paths)  # "traces" -> "/v1/traces"


def ok(paths: Iterable[str] | None = None) -> Mode:
    return Mode("ok", paths=_paths(paths))


def status(code: int, retry_after: str | None = None, paths: Iterable[str] | None = None) -> Mode:
    return Mode("status", status=code, retry_after=retry_after, paths=_paths(paths))


def partial_success(rejected: int, message: str = "", paths: Iterable[str] | None = None) -> Mode:
    return Mode("partial_success", rejected=rejected, message=message, paths=_paths(paths))


def slow(delay: float, paths: Iterable[str] | None = None) -> Mode:
    return Mode("slow", delay=delay, paths=_paths(paths))


def blackhole(paths: Iterable[str] | None = None) -> Mode:
    return Mode("blackhole", paths=_paths(paths))


def reset(paths: Iterable[str] | None = None) -> Mode:
    return Mode("reset", paths=_paths(paths))


def close_mid_body(paths: Iterable[str] | None = None) -> Mode:
    return Mode("close_mid_body", paths=_paths(paths))


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    status: int | None  # HTTP status sent; None when no status line was sent (blackhole/reset/...)
    arrival: float  # time.monotonic()
    items: int  # spans / data points / log records in the body (0 if undecodable)
    fault: str  # Mode.kind applied, or "not_found" / "bad_request" / "unsupported_media_type" / "dropped"
    content_encoding: str = ""
    body_bytes: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # request headers, lower-cased names


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port that was bound+listening and then released: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return int(s.getsockname()[1])


def rpc_status(code: int, message: str) -> bytes:
    """Hand-encoded google.rpc.Status{code=1, message=2} (OTLP error body)."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    raw = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(raw)) + raw


def response_body(path: str, mode: Mode) -> bytes:
    partial = mode.kind == "partial_success"
    if path == TRACES:
        tr = trace_pb.ExportTraceServiceResponse()
        if partial:
            tr.partial_success.rejected_spans = mode.rejected
            tr.partial_success.error_message = mode.message
        return bytes(tr.SerializeToString())
    if path == METRICS:
        mr = metrics_pb.ExportMetricsServiceResponse()
        if partial:
            mr.partial_success.rejected_data_points = mode.rejected
            mr.partial_success.error_message = mode.message
        return bytes(mr.SerializeToString())
    lr = logs_pb.ExportLogsServiceResponse()
    if partial:
        lr.partial_success.rejected_log_records = mode.rejected
        lr.partial_success.error_message = mode.message
    return bytes(lr.SerializeToString())
