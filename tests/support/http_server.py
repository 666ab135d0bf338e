"""HTTP plumbing for :mod:`tests.support.receiver`: a ThreadingHTTPServer that tracks
its open connections so they can be torn down, and a keep-alive request handler."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

from tests.support.faults import rpc_status


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False  # never join handler threads (blackholed ones would block)

    def __init__(self, port: int, handle: Callable[[Handler], None]) -> None:
        self.handle = handle
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", port), Handler)

    def server_bind(self) -> None:  # skip HTTPServer's getfqdn() (slow reverse DNS)
        TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # broken connections are provoked on purpose; stay quiet


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)
            stopping = self.server.stopping.is_set()
        if stopping:  # accepted while stop() was running: drop it
            shutdown_quietly(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.lock:
            self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass

    def do_POST(self) -> None:
        self.server.handle(self)

    def _not_allowed(self) -> None:
        self.respond(405, rpc_status(12, "method not allowed"))

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def read_body(self) -> bytes | None:
        """The request body (chunked or Content-Length); None if the client hung up early."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks: list[bytes] = []
                while (size := int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or "0")
            data = self.rfile.read(length) if length > 0 else b""
            return data if len(data) == length else None
        except (OSError, ValueError):
            return None

    def respond(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


def shutdown_quietly(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
