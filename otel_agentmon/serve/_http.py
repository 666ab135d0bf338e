"""HTTP front of ``agentmon serve``: OTLP/HTTP ingestion, the dashboard's files, JSON and SSE.

A stdlib ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one thread per connection). OTLP answers
follow the OTLP/HTTP spec: 200 with the signal's export response (``partial_success`` when some
items were rejected), 400 for an undecodable body, 413 over the size cap, 415 for a content type
other than protobuf or JSON, 503 (retryable) when too many requests are being decoded at once.

Bound to a loopback address, every request must name a loopback host (``Host: 127.0.0.1``,
``localhost`` or ``[::1]``, any port), or it is answered 403: a web page the browser fetched
from a rebound DNS name cannot read the store. SDKs and Collectors send the host of the
endpoint they were given, which is one of those.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

from .._guard import log_once
from ._otlp import SIGNALS, BadRequest, TooLarge

if TYPE_CHECKING:
    from ._server import Server

_LOG: Final = logging.getLogger("otel_agentmon.serve")
_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
_STATIC_TYPES: Final = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                        ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_SSE_KEEPALIVE_S: Final = 15.0
_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})


def dumps(data: Any) -> bytes:
    """JSON the browser's ``JSON.parse`` reads: a NaN or infinity that got this far becomes null
    (``allow_nan=False`` catches it; the slow path only runs then)."""
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        log_once(logging.WARNING, "serve:nan", "serve: a non-finite number reached a JSON answer; sent as null")
        return json.dumps(_finite(data), separators=(",", ":"), allow_nan=False).encode()


def _finite(node: Any) -> Any:
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_finite(v) for v in node]
    return node


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(header: str | None, bound: str) -> bool:
    """Whether a request with this ``Host`` header may be answered by a server bound to ``bound``
    (a loopback bind only answers requests addressed to a loopback name)."""
    if not is_loopback(bound):
        return True
    if header is None:
        return True  # HTTP/1.0 clients; browsers always send a Host
    host = header.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name, port = name + "]", rest.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    if port and not port.isdigit():
        return False
    shown = f"[{bound.lower()}]" if ":" in bound else bound.lower()
    return name in _LOOPBACK_NAMES or name == shown


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: Server) -> None:
        self.app = app
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOG.debug("request from %s failed", client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HTTPServer
    server_version = "agentmon-serve"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # no per-request lines on stderr

    # --- helpers ------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, code: int = 200) -> None:
        self._send(code, dumps(data), _JSON)

    def _host_ok(self) -> bool:
        """Refuse (403) a request addressed to a name other than loopback's: DNS rebinding."""
        if host_allowed(self.headers.get("Host"), self.server.app.config.host):
            return True
        self.close_connection = True  # a POST's body was not read
        self._send(403, b"forbidden: the Host header must name this machine (127.0.0.1, localhost, [::1])\n",
                   "text/plain")
        return False

    def _send_chunked(self, chunks: Any, content_type: str, headers: dict[str, str]) -> None:
        """A body of unknown length, sent as it is produced (chunked transfer encoding)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            raise  # the connection failed: do_GET lets it go
        except Exception:  # noqa: BLE001 - no last chunk: the client sees a cut body, not a short one
            log_once(logging.WARNING, "serve:chunked", "serve: streaming %s failed", self.path[:200], exc_info=True)
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")

    def _error(self, code: int, message: str, is_json: bool) -> None:
        # google.rpc.Status: INVALID_ARGUMENT (3), RESOURCE_EXHAUSTED (8) or UNKNOWN (2).
        status = 3 if code == 400 else 8 if code in (413, 503) else 2
        if is_json:
            self._send(code, json.dumps({"code": status, "message": message}).encode(), _JSON)
        else:
            self._send(code, _rpc_status(status, message), _PROTOBUF)

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(64)
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise TooLarge(f"body over {limit} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(64)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise BadRequest("negative Content-Length")
        if length > limit:
            raise TooLarge(f"body of {length} bytes is over the {limit}-byte limit")
        return self.rfile.read(length)

    # --- OTLP ingestion -----------------------------------------------------------------------
    def do_POST(self) -> None:
        if not self._host_ok():
            return
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        signal = path.removeprefix("/v1/")
        if not path.startswith("/v1/") or signal not in SIGNALS:
            self.close_connection = True
            self._send(404, b"not found\n", "text/plain")
            return
        app = self.server.app
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        is_json = content_type == _JSON
        if content_type not in (_PROTOBUF, _JSON):
            self.close_connection = True  # the body was not read
            self._error(415, f"unsupported Content-Type {content_type!r}; use {_PROTOBUF} or {_JSON}", False)
            return
        try:
            body = self._read_body(app.config.max_body_bytes)
        except TooLarge as exc:
            self.close_connection = True
            self._error(413, str(exc), is_json)
            return
        except (BadRequest, ValueError) as exc:
            self.close_connection = True
            self._error(400, str(exc), is_json)
            return
        code, payload = app.receive(signal, body, self.headers.get("Content-Encoding", ""), is_json)
        if code == 200:
            self._send(200, payload, _JSON if is_json else _PROTOBUF)
        else:
            self._error(code, payload.decode(errors="replace"), is_json)

    # --- dashboard ----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        app = self.server.app
        try:
            if path == "/api/stream":
                self._stream()
            elif path == "/api/state":
                self._send(200, app.state_bytes(), _JSON)
            elif path == "/api/traces":
                self._json(app.view.traces(_int(query, "recent", 30), _int(query, "slowest", 10)))
            elif path.startswith("/api/trace/"):
                span = query.get("span", [""])[0] or None
                self._json(app.view.trace(path.removeprefix("/api/trace/").lower(), span))
            elif path == "/api/insights":
                self._json(app.insights.get())
            elif path == "/api/export":
                self._send_chunked(app.export_chunks(), "application/x-ndjson",
                                   {"Content-Disposition": 'attachment; filename="agentmon-export.jsonl"'})
            elif path in ("/healthz", "/readyz"):
                self._json({"status": "ok", **app.stats()})
            else:
                static = app.static_file(path)
                if static is None:
                    self._send(404, b"not found\n", "text/plain")
                else:
                    suffix = path[path.rfind("."):] if "." in path else ".html"
                    self._send(200, static, _STATIC_TYPES.get(suffix, "application/octet-stream"))
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - answer 500 rather than drop the connection
            log_once(logging.WARNING, f"serve:GET:{path[:40]}", "serve: GET %s failed", path[:200], exc_info=True)
            self.close_connection = True
            try:
                self._send(500, b"internal error\n", "text/plain")
            except OSError:
                pass

    def _stream(self) -> None:
        """Server-Sent Events: the full state at most ``push_interval`` apart, when it changed."""
        app = self.server.app
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent = -1
        self.wfile.write(b"retry: 1000\n\n")
        app.publisher.subscribe(1)
        try:
            while not app.stopping.is_set():
                seq, payload = app.publisher.wait(sent, _SSE_KEEPALIVE_S)
                if app.stopping.is_set():
                    break
                if seq == sent:
                    self.wfile.write(b": keepalive\n\n")
                else:
                    self.wfile.write(b"data: " + payload + b"\n\n")
                    sent = seq
                self.wfile.flush()
        finally:
            app.publisher.subscribe(-1)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _rpc_status(code: int, message: str) -> bytes:
    """A serialized ``google.rpc.Status`` (field 1: code, field 2: message)."""
    text = message.encode()[:1000]
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _int(query: dict[str, list[str]], key: str, default: int) -> int:
    try:
        return max(0, min(500, int(query.get(key, [str(default)])[0])))
    except ValueError:
        return default


class Publisher:
    """Builds the state at most every ``interval`` s when something changed (at least once a
    second: health moves on a clock), and hands the same bytes to every stream."""

    def __init__(self, build: Any, changed: threading.Condition, version: Any, interval: float,
                 stop: threading.Event, maintain: Any) -> None:
        self._build = build
        self._maintain = maintain
        self._changed = changed
        self._version = version
        self._interval = interval
        self._stop = stop
        self._cond = threading.Condition()
        self.seq = 0
        self.subscribers = 0
        self.payload = b"{}"
        self.thread = threading.Thread(target=self._run, name="agentmon-serve-push", daemon=True)

    def subscribe(self, delta: int) -> None:
        with self._cond:
            self.subscribers += delta
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every stream so it sees the stop."""
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        seen = -1
        while not self._stop.is_set():
            with self._cond:
                idle = not self.subscribers
                if idle:  # nobody watching: build nothing (``/api/state`` builds its own)
                    self._cond.wait(1.0)
            if idle:
                try:
                    self._maintain()  # retention applies whether or not anyone watches
                except Exception:  # noqa: BLE001
                    _LOG.exception("store maintenance failed")
                continue
            with self._changed:
                if self._version() == seen:
                    self._changed.wait(1.0)
                seen = self._version()
            try:
                payload = self._build()
            except Exception:  # noqa: BLE001 - the push loop must survive anything
                _LOG.exception("building the dashboard state failed")
                payload = None
            if payload is not None:
                with self._cond:
                    self.seq += 1
                    self.payload = payload
                    self._cond.notify_all()
            self._stop.wait(self._interval)  # coalesce: at most one push per interval

    def wait(self, after: int, timeout: float) -> tuple[int, bytes]:
        with self._cond:
            if self.seq == after:
                self._cond.wait(timeout)
            return self.seq, self.payload
