"""The webhook notifier's HTTP: one POST within one deadline, no redirects, no telemetry of its own.

* **One deadline for the whole request.** A socket timeout bounds each read, not the request: a
  server that sends one byte a second holds it forever. Here connecting (each address of the
  host within what is left), the TLS handshake, a proxy's CONNECT, sending and reading the answer
  all share one monotonic deadline: every socket of the request is registered with a watchdog
  that shuts it down when the time is up, so a blocked read returns at once. Name resolution is
  the one step it cannot cut (``getaddrinfo`` has no timeout; the system resolver's own applies).
* **No redirects.** A 3xx is handed back as the status it is: following a 302 turns the POST
  into a GET to another URL, which then "succeeds" without the alert being delivered.
* **No spans from our own traffic.** The request runs with OpenTelemetry instrumentation
  suppressed (the standard context keys), so an active ``urllib`` (or any HTTP client)
  instrumentation in the application makes no spans, and no export traffic, from it.

Proxies from the environment (``https_proxy``, ``no_proxy``...) apply as for ``urllib``.
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import threading
import time
import urllib.request
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation

#: What a failed request raises (``TimeoutError`` for the deadline; ``URLError`` is an ``OSError``).
ERRORS = (OSError, http.client.HTTPException, ValueError)


class Deadline:
    """Shuts down every socket registered with it when ``seconds`` have passed (or on ``expire()``)."""

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(max(0.0, seconds), self.expire)
        self._timer.daemon = True
        self._timer.name = "agentmon-webhook-deadline"
        self._timer.start()

    @property
    def expired(self) -> bool:
        return self._expired

    def remaining(self) -> float:
        """Seconds left; raises ``TimeoutError`` when none are."""
        left = self._at - time.monotonic()
        if left <= 0 or self._expired:
            raise TimeoutError("webhook request deadline passed")
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self._expired
        if expired:
            _cut(sock)

    def expire(self) -> None:
        """Cut the request now (the deadline, or the notifier closing)."""
        with self._lock:
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _cut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _cut(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown, also for a TLS socket (whose own would unwrap it under the
        # reading thread): a blocked read returns at once.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already closed


class _Request(urllib.request.Request):
    def __init__(self, url: str, body: bytes, headers: dict[str, str], deadline: Deadline) -> None:
        super().__init__(url, data=body, headers=headers, method="POST")
        self.deadline = deadline


class _Connect:
    """``HTTPConnection._create_connection`` under a deadline: each address tried in what is left."""

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline

    def __call__(self, address: tuple[str, int], timeout: object = None,
                 source_address: tuple[str, int] | None = None) -> socket.socket:
        host, port = address
        error: OSError | None = None
        for family, kind, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                self._deadline.watch(sock)
                sock.settimeout(self._deadline.remaining())
                if source_address is not None:
                    sock.bind(source_address)
                sock.connect(addr)
                return sock
            except OSError as exc:  # TimeoutError included
                error = exc
                sock.close()
        raise error if error is not None else OSError(f"no address for {host}")


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._create_connection = _Connect(deadline)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._deadline = deadline
        self._create_connection = _Connect(deadline)

    def connect(self) -> None:
        super().connect()  # the plain socket was watched through the handshake
        self._deadline.watch(self.sock)  # the TLS socket owns the descriptor now


def _deadline_of(req: urllib.request.Request) -> Deadline:
    if not isinstance(req, _Request):  # only our own requests go through this opener
        raise ValueError("not a webhook request")
    return req.deadline


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPConnection, deadline=_deadline_of(req)), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(context=self._tls)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPSConnection, deadline=_deadline_of(req)), req,
                            context=self._tls)


def opener() -> urllib.request.OpenerDirector:
    """Proxies from the environment, HTTP and HTTPS; no redirect handler and no error processor,
    so every status comes back as a response."""
    director = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _HTTPHandler(),
                    _HTTPSHandler()):
        director.add_handler(handler)
    return director


def post(director: urllib.request.OpenerDirector, url: str, body: bytes, headers: dict[str, str],
         deadline: Deadline) -> int:
    """The status of one POST that ends by ``deadline``; raises one of ``ERRORS`` otherwise."""
    try:
        with suppress_instrumentation():
            request = _Request(url, body, headers, deadline)
            with director.open(request, timeout=deadline.remaining()) as response:
                status = int(response.status)
    except ERRORS as exc:
        if deadline.expired:  # whatever the cut socket made the parser say: it was the deadline
            raise TimeoutError("webhook request deadline passed") from exc
        raise
    finally:
        deadline.cancel()
    if deadline.expired:  # a cut read can end like a complete one (headers end at EOF): not an answer
        raise TimeoutError("webhook request deadline passed")
    return status
