"""HTTP front of ``agentmon serve``: OTLP/HTTP ingestion, the dashboard's files, JSON and SSE.

HTTP/1.1 keep-alive, one thread per connection, under the deadlines and the connection cap of
``_conn``. OTLP answers follow the OTLP/HTTP spec: 200 with the signal's export response
(``partial_success`` when some items were rejected), 400 for an undecodable or truncated body,
413 over the size cap (or when decoding it would need more than the whole request budget), 415
for a content type other than protobuf or JSON, 503 with ``Retry-After`` when the request budget
stays full (see ``_budget``).

Bound to a loopback address, every request must name a loopback host (``Host: 127.0.0.1``,
``localhost`` or ``[::1]``, any port), or it is answered 403: a web page the browser fetched
from a rebound DNS name cannot read the store. SDKs and Collectors send the host of the
endpoint they were given, which is one of those. Bound to another address, OTLP ingestion is
open to every client, but the dashboard and ``/api/*`` answer clients on other machines only
with the access token (``Authorization: Bearer <token>``, or a cookie set by opening the page
once as ``/?token=<token>``); with no token configured, only loopback clients (403 for others).
"""

from __future__ import annotations

import http.cookies
import json
import logging
import math
import urllib.parse
from typing import TYPE_CHECKING, Any, Final

from .._core.guard import log_once
from .._core.hostcheck import host_allowed, is_loopback, token_matches
from ._body import read_body
from ._budget import Busy
from ._conn import CappedHTTPServer, ConnectionHandler
from ._explore import Query, search, trace_json
from ._otlp import SIGNALS, BadRequest, TooLarge

if TYPE_CHECKING:
    from ._server import Server

__all__ = ["HTTPServer", "Handler", "dumps", "host_allowed"]

_LOG: Final = logging.getLogger("otel_agentmon.serve")
_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
_STATIC_TYPES: Final = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                        ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_SSE_KEEPALIVE_S: Final = 15.0
_PAGES: Final = frozenset({"", "/", "/index.html", "/traces"})  # the dashboard page (its static files are open)
_COOKIE: Final = "agentmon_token"


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


class HTTPServer(CappedHTTPServer):
    def __init__(self, address: tuple[str, int], app: Server) -> None:
        self.app = app
        config = app.config
        super().__init__(address, Handler, max_connections=config.max_connections,
                         request_timeout=config.request_timeout, idle_timeout=config.idle_timeout)


class Handler(ConnectionHandler):
    server: HTTPServer
    server_version = "agentmon-serve"

    # --- helpers ------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")  # the client must not send another request on it
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, code: int = 200) -> None:
        self._send(code, dumps(data), _JSON)

    def _host_ok(self) -> bool:
        """Refuse (403) a request addressed to a name other than loopback's: DNS rebinding."""
        if host_allowed(self.headers.get("Host"), self.server.app.config.host):
            return True
        self.unread_body()  # a POST's body was not read
        self._send(403, b"forbidden: the Host header must name this machine (127.0.0.1, localhost, [::1])\n",
                   "text/plain")
        return False

    def _reader_ok(self, path: str, query: dict[str, list[str]]) -> tuple[bool, dict[str, str]]:
        """Whether this client may read the dashboard or ``/api/*`` (403 sent otherwise), and the
        header that keeps the token for the page's own requests (opened as ``/?token=...``)."""
        if is_loopback(str(self.client_address[0])):
            return True, {}
        token = self.server.app.config.token
        presented = [query.get("token", [None])[0], self._cookie()]
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            presented.append(auth[7:].strip())
        if any(token_matches(p, token) for p in presented):
            if token_matches(presented[0], token) and _is_page(path):
                value = urllib.parse.quote(str(token), safe="")
                return True, {"Set-Cookie": f"{_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"}
            return True, {}
        self.close_connection = True
        why = "a valid access token" if token else "an access token configured (--token)"
        self._send(403, f"forbidden: the dashboard and /api/* answer other machines only with {why}\n".encode(),
                   "text/plain")
        return False, {}

    def _cookie(self) -> str | None:
        try:
            morsel = http.cookies.SimpleCookie(self.headers.get("Cookie", "")).get(_COOKIE)
        except http.cookies.CookieError:
            return None
        return None if morsel is None else urllib.parse.unquote(morsel.value)

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
        # google.rpc.Status: INVALID_ARGUMENT (3), RESOURCE_EXHAUSTED (8), UNAVAILABLE (14) or UNKNOWN (2).
        status = 3 if code == 400 else 8 if code == 413 else 14 if code == 503 else 2
        headers = {"Retry-After": "1"} if code == 503 else None
        if is_json:
            self._send(code, json.dumps({"code": status, "message": message}).encode(), _JSON, headers)
        else:
            self._send(code, _rpc_status(status, message), _PROTOBUF, headers)

    # --- OTLP ingestion -----------------------------------------------------------------------
    def do_POST(self) -> None:
        if not self._host_ok():
            return
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        signal = path.removeprefix("/v1/")
        if not path.startswith("/v1/") or signal not in SIGNALS:
            self.unread_body()
            self._send(404, b"not found\n", "text/plain")
            return
        app = self.server.app
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        is_json = content_type == _JSON
        if content_type not in (_PROTOBUF, _JSON):
            self.unread_body()
            self._error(415, f"unsupported Content-Type {content_type!r}; use {_PROTOBUF} or {_JSON}", False)
            return
        config = app.config
        with app.budget.reservation() as reservation:
            try:
                body = read_body(self.rfile, self.headers.get("Content-Length"),  # type: ignore[arg-type]  # rfile is a BufferedReader (rbufsize > 0); read_body reads it as a BinaryIO
                                 self.headers.get("Transfer-Encoding", ""), self.headers.get("Content-Encoding", ""),
                                 config.max_body_bytes, reservation, config.budget_wait)
            except (TooLarge, BadRequest, Busy) as exc:
                self.unread_body()
                code = 413 if isinstance(exc, TooLarge) else 400 if isinstance(exc, BadRequest) else 503
                app.store.counts[f"{signal}_requests_{_REFUSED[code]}"] += 1
                self._error(code, str(exc), is_json)
                return
            self.received()
            code, payload = app.ingest(signal, body, is_json, reservation)
            del body  # before the reservation is given back
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
        headers: dict[str, str] = {}
        if path.startswith("/api/") or _is_page(path):
            allowed, headers = self._reader_ok(path, query)
            if not allowed:
                return
        try:
            if path == "/api/stream":
                self._stream()
            elif path == "/api/state":
                self._send(200, app.state_bytes(), _JSON)
            elif path == "/api/traces":
                self._json(app.view.traces(_int(query, "recent", 30), _int(query, "slowest", 10)))
            elif path.startswith("/api/trace/"):
                span = query.get("span", [""])[0].lower() or None
                only = query.get("detail", [""])[0].lower() or None
                self._json(trace_json(app.store, path.removeprefix("/api/trace/").lower(), span,
                                      app.config.trace_link_template, query.get("view") == ["tree"], only))
            elif path == "/api/search":
                self._json(search(app.store, Query.from_params(query), app.config.trace_link_template))
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
                    suffix = ".html" if _is_page(path) or "." not in path else path[path.rfind("."):]
                    self._send(200, static, _STATIC_TYPES.get(suffix, "application/octet-stream"), headers)
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
        sent = 0  # the publisher's number of its first state: nothing is sent before there is one
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


_REFUSED: Final = {400: "bad", 413: "too_large", 503: "refused"}


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


def _is_page(path: str) -> bool:
    """The dashboard's page: the overview, the explorer (``/traces``) and a trace (``/traces/<id>``)."""
    return path in _PAGES or path.startswith("/traces/")


def _int(query: dict[str, list[str]], key: str, default: int) -> int:
    try:
        return max(0, min(500, int(query.get(key, [str(default)])[0])))
    except ValueError:
        return default
