"""The in-process health endpoint (``configure(health_port=...)``) against what a network
brings: requests addressed to another name (DNS rebinding), clients that hang up early."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from otel_agentmon._health.endpoint import HealthServer
from otel_agentmon._health.loop import SwarmHealth
from tests.support.polling import wait_for


def get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _health_server(current: Callable[[], SwarmHealth]) -> Iterator[HealthServer]:
    server = HealthServer(current, time.monotonic, "127.0.0.1", 0, 60.0)
    try:
        yield server
    finally:
        server.stop()


HEALTHY = SwarmHealth("healthy", {}, None, None, ())


def test_the_health_endpoint_answers_only_requests_addressed_to_this_machine() -> None:
    for server in _health_server(lambda: HEALTHY):
        for host in ("attacker.example", f"attacker.example:{server.port}", "127.0.0.1.attacker.example"):
            assert get(server.port, "/readyz", {"Host": host}) == 403, host
        for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost"):
            assert get(server.port, "/readyz", {"Host": host}) == 200, host


def test_a_health_client_that_hangs_up_early_prints_nothing(capfd: pytest.CaptureFixture[str],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    asked, gone = threading.Event(), threading.Event()

    def current() -> SwarmHealth:
        asked.set()
        gone.wait(30)  # answer only once the client has reset the connection
        return HEALTHY

    with caplog.at_level(logging.DEBUG, logger="otel_agentmon"):
        for server in _health_server(current):
            for _ in range(3):
                asked.clear()
                gone.clear()
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert asked.wait(30)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()  # a reset, not a goodbye
                gone.set()
            assert wait_for(lambda: sum("disconnected early" in r.getMessage() for r in caplog.records) == 3,
                            timeout=30)
            assert get(server.port, "/healthz") == 200  # and it still answers
    assert "Traceback" not in capfd.readouterr().err
