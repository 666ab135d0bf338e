"""Connections of ``agentmon serve``: a cap on how many are open, and deadlines for each request.

A stdlib ``ThreadingHTTPServer`` (one thread per connection) with three additions:

* **Deadlines.** A connection must deliver each request (request line, headers and body) within
  ``request_timeout`` seconds of being accepted (or, kept alive, of its first byte, which may take
  ``idle_timeout``), and take each write of its answer within ``request_timeout``; otherwise it is
  closed. Every read off the socket waits only for what is left of the deadline, so a client
  sending a byte now and then (slowloris) cannot stretch it.
* **A cap.** At most ``max_connections`` are open. A new one past the cap closes the connection
  that has waited longest for its request (an idle or slow one), so a flood of idle connections
  cannot lock exporters out; when every open connection is busy (a request being decoded, a
  dashboard stream), the new one is answered 503 and closed at once.
* **Out of descriptors.** When ``accept`` fails (EMFILE and the like), the loop pauses instead of
  spinning on a listening socket that stays readable.

Client disconnects and timeouts are logged at debug level, never printed.
"""

from __future__ import annotations

import collections
import errno
import io
import logging
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from .._core.guard import log_once

_LOG: Final = logging.getLogger("otel_agentmon.serve")
_ACCEPT_PAUSE_S: Final = 0.1
_LINGER_S: Final = 5.0  # how long the rest of a refused request's body is read (and discarded), at most
_LINGER_BYTES: Final = 64 * 1024 * 1024
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_REFUSAL: Final = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: 22\r\nConnection: close\r\n\r\ntoo many connections\r\n")


class _DeadlineReader(io.RawIOBase):
    """Reads off the socket, each ``recv`` waiting only for what is left until ``deadline``."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = math.inf  # monotonic
        self.timed_out = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.timed_out = True
            raise TimeoutError("request not received in time")
        self._sock.settimeout(None if left == math.inf else left)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self.timed_out = True
            raise


class _TimedWriter(io.BufferedIOBase):
    """Writes to the socket, each write within ``timeout`` seconds (a client that stops reading)."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self._timeout = timeout

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.settimeout(self._timeout)
        self._sock.sendall(data)
        return memoryview(data).nbytes


class ConnectionHandler(BaseHTTPRequestHandler):
    """A request handler under the server's deadlines; subclasses call ``received()`` once the
    whole request (its body too) has been read."""

    server: CappedHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.connection = self.request
        self._reader = _DeadlineReader(self.connection)
        self._reader.deadline = time.monotonic() + self.server.request_timeout
        self._served = 0
        self._linger = False
        self.rfile = io.BufferedReader(self._reader, 64 * 1024)
        self.wfile = _TimedWriter(self.connection, self.server.request_timeout)

    def finish(self) -> None:
        if self._reader.timed_out:
            self.server.count("connections_timed_out")
        try:
            super().finish()
        except OSError:
            pass
        if self._linger and not self._reader.timed_out:
            self._discard()

    def unread_body(self) -> None:
        """Answered before the body was read (a refusal): the connection closes after the answer,
        once the client has sent the rest (discarded), so that it reads the answer rather than
        failing to write (a 503's ``Retry-After`` is only useful when it arrives)."""
        self.close_connection = True
        self._linger = True

    def _discard(self) -> None:
        sock, taken = self.connection, 0
        deadline = time.monotonic() + min(_LINGER_S, self.server.request_timeout)
        buffer = bytearray(64 * 1024)
        try:
            sock.shutdown(socket.SHUT_WR)  # the answer is complete
            while taken < _LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                got = sock.recv_into(buffer)
                if not got:
                    return
                taken += got
        except OSError:
            pass

    def handle_one_request(self) -> None:
        if self._served:  # kept alive: wait for the next request, then give it the request deadline
            self.server.waiting(self.request)
            self._reader.deadline = time.monotonic() + self.server.idle_timeout
            try:
                if not self.rfile.peek(1):  # type: ignore[attr-defined]  # rfile is a BufferedReader (rbufsize > 0); typeshed says BinaryIO
                    self.close_connection = True
                    return
            except OSError:  # (TimeoutError too) idle for too long, or the client went away
                self.close_connection = True
                return
            self._reader.deadline = time.monotonic() + self.server.request_timeout
        self._served += 1
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok and self.command != "POST":
            self.received()
        return ok

    def received(self) -> None:
        """The whole request is in: no read deadline while it is answered, and the connection is
        no longer one the cap may close."""
        self._reader.deadline = math.inf
        self.server.busy(self.request)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # no per-request lines on stderr


class CappedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: type[ConnectionHandler], *, max_connections: int,
                 request_timeout: float, idle_timeout: float) -> None:
        self.max_connections = max(1, max_connections)
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        #: open connections waiting for (the rest of) a request, the one waiting longest first
        self._waiting: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self.counts: collections.Counter[str] = collections.Counter()
        super().__init__(address, handler)

    # --- the cap ----------------------------------------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        victim = None
        with self._lock:
            if len(self._open) >= self.max_connections:
                if not self._waiting:
                    self.counts["connections_refused"] += 1
                    refuse = True
                else:
                    victim, _ = self._waiting.popitem(last=False)
                    self._open.discard(victim)
                    self.counts["connections_evicted"] += 1
                    refuse = False
            else:
                refuse = False
            if not refuse:
                self._open.add(request)
                self._waiting[request] = None
        if victim is not None:
            try:
                victim.shutdown(socket.SHUT_RDWR)  # its thread's read returns, and it closes
            except OSError:
                pass
        if refuse:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._forget(request)
            raise

    @staticmethod
    def _refuse(request: Any) -> None:
        try:
            request.setblocking(False)
            request.send(_REFUSAL)
        except OSError:
            pass
        finally:
            request.close()

    def busy(self, request: Any) -> None:
        with self._lock:
            self._waiting.pop(request, None)

    def waiting(self, request: Any) -> None:
        with self._lock:
            if request in self._open:
                self._waiting[request] = None
                self._waiting.move_to_end(request)

    def _forget(self, request: Any) -> None:
        with self._lock:
            self._open.discard(request)
            self._waiting.pop(request, None)

    def shutdown_request(self, request: Any) -> None:
        self._forget(request)
        super().shutdown_request(request)

    def count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"connections_open": len(self._open), "connections_evicted": self.counts["connections_evicted"],
                    "connections_refused": self.counts["connections_refused"],
                    "connections_timed_out": self.counts["connections_timed_out"],
                    "accept_errors": self.counts["accept_errors"]}

    # --- accept and errors ------------------------------------------------------------------------
    def get_request(self) -> tuple[Any, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                self.count("accept_errors")
                log_once(logging.WARNING, "serve:accept", "serve: cannot accept connections: %s", exc)
                time.sleep(_ACCEPT_PAUSE_S)  # the listening socket stays readable: do not spin on it
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOG.debug("request from %s failed", client_address, exc_info=True)
