"""Fault-injecting in-process OTLP/HTTP receiver for tests.

Typical use::

    with OTLPReceiver() as rx:
        exporter = OTLPSpanExporter(endpoint=rx.endpoint + "/v1/traces")
        rx.script([status(503, retry_after="0"), ok()])
        ...
        assert rx.wait_for_spans(3, timeout=5)

CLI (used by tests that run example scripts as subprocesses)::

    python -m tests.support.receiver --port P --duration S --out summary.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import FrameType, TracebackType
from typing import Any

from tests.support.faults import (
    LOGS,
    METRICS,
    TRACES,
    Mode,
    ReceivedRequest,
    blackhole,
    close_mid_body,
    closed_port,
    free_port,
    ok,
    partial_success,
    reset,
    response_body,
    rpc_status,
    slow,
    status,
)
from tests.support.http_server import Handler, Server, shutdown_quietly
from tests.support.otlp_decode import (
    Decoded,
    ReceivedLog,
    ReceivedMetric,
    ReceivedPoint,
    ReceivedSpan,
    decode_request,
    decompress,
    summary_dict,
)

__all__ = [
    "Mode",
    "OTLPReceiver",
    "ReceivedLog",
    "ReceivedMetric",
    "ReceivedPoint",
    "ReceivedRequest",
    "ReceivedSpan",
    "blackhole",
    "close_mid_body",
    "closed_port",
    "free_port",
    "ok",
    "partial_success",
    "reset",
    "slow",
    "status",
]
_OK = ok()


class OTLPReceiver:
    """In-process OTLP/HTTP (protobuf) receiver on 127.0.0.1 with scriptable faults."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._cond = threading.Condition()
        self._life = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._script: list[Mode] = [_OK]
        self._requests: list[ReceivedRequest] = []
        self._spans: list[ReceivedSpan] = []
        self._metrics: list[ReceivedMetric] = []
        self._logs: list[ReceivedLog] = []
        self._holding: dict[str, int] = {}  # requests held unanswered now (blackhole/slow), by path

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> OTLPReceiver:
        with self._life:
            if self._server is not None:
                return self
            deadline = time.monotonic() + 2.0
            while True:
                try:
                    server = Server(self._port, self._handle)
                    break
                except OSError:  # EADDRINUSE right after a close: retry briefly
                    if self._port == 0 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self._port = int(server.server_address[1])
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"otlp-receiver-{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection (returns in well under 1 s)."""
        with self._life:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None:
                return
            with server.lock:
                server.stopping.set()  # releases blackholed and slow handlers
                conns = list(server.connections)
            server.shutdown()
            server.server_close()
            for conn in conns:
                shutdown_quietly(conn)
            if thread is not None:
                thread.join(1.0)
            deadline = time.monotonic() + 0.5
            while server.connections and time.monotonic() < deadline:
                time.sleep(0.005)

    def down(self) -> None:
        """Close the port (connections are refused) but keep state; `up()` rebinds it."""
        self.stop()

    def up(self) -> None:
        self.start()

    def restart(self, delay: float = 0.0) -> None:
        self.stop()
        if delay > 0:
            time.sleep(delay)
        self.start()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- fault modes -----------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        with self._cond:
            return self._script[0]

    @mode.setter
    def mode(self, mode: Mode) -> None:
        with self._cond:
            self._script = [mode]

    def script(self, modes: Sequence[Mode]) -> None:
        """One mode per (matching) request, then stay on the last one."""
        if not modes:
            raise ValueError("script needs at least one mode")
        with self._cond:
            self._script = list(modes)

    def _take_mode(self, path: str) -> Mode:
        with self._cond:
            head = self._script[0]
            if not head.applies_to(path):
                return _OK
            if len(self._script) > 1:
                self._script.pop(0)
            return head

    # ---- request handling (runs on handler threads) -----------------------------------
    def _record(self, req: ReceivedRequest, decoded: Decoded | None = None) -> None:
        with self._cond:
            self._requests.append(req)
            if decoded is not None:
                self._spans.extend(decoded[1])
                self._metrics.extend(decoded[2])
                self._logs.extend(decoded[3])
            self._cond.notify_all()

    def _handle(self, h: Handler) -> None:
        arrival = time.monotonic()
        path = h.path.split("?", 1)[0].rstrip("/") or "/"
        encoding = (h.headers.get("Content-Encoding") or "").strip().lower()
        headers = {k.lower(): v for k, v in h.headers.items()}
        body = h.read_body()
        if body is None:
            h.close_connection = True
            self._record(ReceivedRequest(path, None, arrival, 0, "dropped", encoding, 0, headers))
            return
        req = ReceivedRequest(path, None, arrival, 0, "", encoding, len(body), headers)
        if path not in (TRACES, METRICS, LOGS):
            self._record(_with(req, status=404, fault="not_found"))
            h.respond(404, rpc_status(5, f"unknown path {path}"))
            return
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-protobuf":  # OTLP/JSON is not supported by this receiver
            self._record(_with(req, status=415, fault="unsupported_media_type"))
            h.respond(415, rpc_status(3, f"unsupported Content-Type {ctype!r}"))
            return
        decoded: Decoded | None = None
        error = ""
        try:
            decoded = decode_request(path, decompress(body, encoding), arrival)
        except Exception as exc:  # malformed payloads are answered with 400 below
            error = f"{type(exc).__name__}: {exc}"
        mode = self._take_mode(path)
        req = _with(req, items=decoded[0] if decoded else 0, fault=mode.kind)
        stopping = h.server.stopping
        if mode.kind == "slow" and self._hold(path, lambda: stopping.wait(mode.delay)):
            h.close_connection = True
            self._record(_with(req, fault="dropped"))
            return
        if mode.kind in ("ok", "slow", "partial_success"):
            if decoded is None:
                self._record(_with(req, status=400, fault="bad_request"))
                h.respond(400, rpc_status(3, error))
                return
            self._record(_with(req, status=200), decoded)
            h.respond(200, response_body(path, mode))
        elif mode.kind == "status":
            ok_status = 200 <= mode.status < 300 and decoded is not None
            self._record(_with(req, status=mode.status), decoded if ok_status else None)
            extra = {"Retry-After": mode.retry_after} if mode.retry_after is not None else {}
            h.respond(mode.status, rpc_status(14, f"injected HTTP {mode.status}"), extra)
        elif mode.kind == "blackhole":
            self._record(req)
            self._hold(path, stopping.wait)  # hold the connection until stop()/down()
            h.close_connection = True
        elif mode.kind == "reset":
            self._record(req)
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()  # fd really closes (RST) once rfile is closed in finish()
            h.close_connection = True
        else:  # close_mid_body
            self._record(_with(req, status=200))
            h.close_connection = True
            try:
                h.send_response(200)
                h.send_header("Content-Type", "application/x-protobuf")
                h.send_header("Content-Length", "64")
                h.end_headers()
                h.wfile.write(b"\x00" * 32)
            except OSError:
                pass

    def _hold(self, path: str, wait: Callable[[], bool]) -> bool:
        with self._cond:
            self._holding[path] = self._holding.get(path, 0) + 1
            self._cond.notify_all()
        try:
            return wait()
        finally:
            with self._cond:
                self._holding[path] -= 1
                self._cond.notify_all()

    # ---- accessors ---------------------------------------------------------------------
    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self._spans)

    def unique_span_ids(self) -> set[tuple[str, str]]:
        with self._cond:
            return {(s.trace_id, s.span_id) for s in self._spans}

    def metrics(self) -> list[ReceivedMetric]:
        with self._cond:
            return list(self._metrics)

    def metric_names(self) -> set[str]:
        with self._cond:
            return {m.name for m in self._metrics}

    def latest_metric(self, name: str) -> ReceivedMetric | None:
        with self._cond:
            return next((m for m in reversed(self._metrics) if m.name == name), None)

    def logs(self) -> list[ReceivedLog]:
        with self._cond:
            return list(self._logs)

    def requests(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._cond:
            return [r for r in self._requests if path is None or r.path == path]

    def holding(self, path: str | None = None) -> int:
        """Requests the receiver is holding unanswered right now (blackhole, slow): an exporter
        that sent one is provably stuck in that export until the receiver lets go."""
        with self._cond:
            return sum(n for p, n in self._holding.items() if path is None or p == path)

    def clear(self) -> None:
        """Forget everything received (the mode/script is kept)."""
        with self._cond:
            self._requests, self._spans, self._metrics, self._logs = [], [], [], []

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._cond:
                self._cond.wait(min(remaining, 0.05))
        return True

    def wait_for_spans(self, n: int, timeout: float) -> bool:
        return self.wait_for(lambda: len(self._spans) >= n, timeout)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable view of everything received (what the CLI writes)."""
        with self._cond:
            out = summary_dict(list(self._spans), list(self._metrics), list(self._logs), len(self._requests))
            out["request_log"] = [
                {"path": r.path, "status": r.status, "items": r.items, "fault": r.fault} for r in self._requests
            ]
        return out


def _with(req: ReceivedRequest, **changes: Any) -> ReceivedRequest:
    return replace(req, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.receiver", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to run; 0 = until SIGTERM/SIGINT")
    parser.add_argument("--out", required=True, help="JSON summary written at exit")
    parser.add_argument("--ready-file", default=None, help="endpoint URL is written here once listening")
    args = parser.parse_args(argv)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    receiver = OTLPReceiver(args.port).start()
    try:
        if args.ready_file:
            _write_atomic(args.ready_file, receiver.endpoint)
        done.wait(args.duration if args.duration > 0 else None)
    finally:
        receiver.stop()
        _write_atomic(args.out, json.dumps(receiver.summary(), indent=2, sort_keys=True, default=repr))
    return 0


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
