"""Local webhook receivers for the notifier tests: one that answers (or hangs, or redirects), and
one that answers a byte at a time."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

from otel_agentmon import AlertEvent, AlertRule

RULE = AlertRule("ErrorRateHigh", "error_rate", ">", 0.5, severity="critical", labels={"team": "agents"},
                 annotations={"summary": "{agent} fails {value}"})


def event(state: str = "firing", agent: str | None = "a", rule: AlertRule = RULE, value: float | None = 0.75,
          at: float = 1_700_000_100.25, since: float | None = 1_700_000_000.5) -> AlertEvent:
    previous = "pending" if state == "firing" else "firing"
    return AlertEvent(rule, agent, state, previous, value, at, since)  # type: ignore[arg-type]


class Hook:
    """A local webhook receiver on 127.0.0.1 answering ``statuses`` in turn (then 200), or hanging."""

    def __init__(self, statuses: list[int] | None = None, hang: bool = False, location: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.statuses = list(statuses or [])
        self.hang = hang
        self.location = location  # sent with a 3xx
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.gets: list[str] = []
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.bodies.append(json.loads(body))
                hook.headers.append(dict(self.headers))
                if hook.hang:
                    hook.release.wait(10)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                if hook.location is not None and 300 <= status < 400:
                    self.send_header("Location", hook.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # what a followed redirect turns the POST into
                hook.gets.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def server_bind(self) -> None:  # no reverse DNS lookup
                TCPServer.server_bind(self)

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Dribbler:
    """A webhook that answers one byte at a time: a status line, then a header that never ends.

    A timeout per read never fires on it; only a deadline for the whole request does."""

    def __init__(self, interval: float = 0.05, cap_s: float = 60.0, tls: ssl.SSLContext | None = None) -> None:
        self.interval, self.cap_s, self.tls = interval, cap_s, tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.listener.getsockname()[1]}/alerts"
        self.stopped = threading.Event()
        self.requests = 0
        self.bytes_sent = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._dribble, args=(conn,), daemon=True).start()

    def _dribble(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            conn = raw if self.tls is None else self.tls.wrap_socket(raw, server_side=True)
        except OSError:
            raw.close()
            return
        with conn:
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.requests += 1
                until = time.monotonic() + self.cap_s
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
                    if self.stopped.wait(self.interval) or time.monotonic() > until:
                        return
                    conn.sendall(bytes([byte]))
                    self.bytes_sent += 1
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


def hooks() -> Iterator[Callable[..., Hook]]:
    """A fixture body: builds hooks on demand, closes them all afterwards."""
    built: list[Hook] = []

    def build(**kwargs: Any) -> Hook:
        built.append(Hook(**kwargs))
        return built[-1]

    yield build
    for h in built:
        h.close()
