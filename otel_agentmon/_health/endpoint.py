"""An optional HTTP health endpoint for orchestrators, bound to 127.0.0.1 by default.

* ``GET /healthz`` — liveness: 200 while the health loop is evaluating (the process is alive).
* ``GET /readyz`` — readiness: 200 unless some agent is unhealthy, else 503.
* Both return the JSON detail: swarm state, each agent's state and reasons, firing alerts.

Bound to a loopback address, it answers only requests addressed to a loopback name (403
otherwise: a web page from a rebound DNS name cannot read it). A client that hangs up early, or
does not send its request within ``_TIMEOUT_S``, is dropped quietly (a debug log line): nothing is
printed into the application's stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from .._core.guard import log_once
from .._core.hostcheck import host_allowed
from .loop import SwarmHealth

_LOG: Final = logging.getLogger("otel_agentmon.health")
_TIMEOUT_S: Final = 10.0  # per read and write: a slow or silent client holds a thread no longer
_GONE: Final = (ConnectionError, TimeoutError)  # BrokenPipe, ConnectionReset, ConnectionAborted, timeouts


def health_json(health: SwarmHealth) -> dict[str, Any]:
    return {
        "status": health.state,
        "agents": {name: {"state": h.state, "lifecycle": h.lifecycle, "up": h.up, "reasons": list(h.reasons),
                          "in_flight": h.in_flight, "oldest_task_age_s": round(h.oldest_task_age, 3),
                          "stuck_tasks": h.stuck_tasks}
                   for name, h in sorted(health.agents.items())},
        "alerts": [{"rule": rule.name, "agent": agent, "severity": rule.severity, "value": value}
                   for rule, agent, value in health.firing],
        "process": {"cpu": health.cpu, "memory_bytes": health.memory_bytes},
    }


class HealthServer:
    def __init__(self, current: Callable[[], SwarmHealth], last_tick: Callable[[], float], host: str,
                 port: int, stale_after: float) -> None:
        class Handler(BaseHTTPRequestHandler):
            timeout = _TIMEOUT_S

            def do_GET(self) -> None:
                try:
                    self._answer()
                except _GONE as exc:
                    self.close_connection = True
                    _LOG.debug("health endpoint: client %s disconnected early (%s)", self.client_address, exc)

            def _answer(self) -> None:
                if not host_allowed(self.headers.get("Host"), host):
                    self.send_error(403, "the Host header must name this machine (127.0.0.1, localhost, [::1])")
                    return
                path = self.path.split("?")[0]
                if path not in ("/healthz", "/readyz"):
                    self.send_error(404)
                    return
                health = current()
                alive = time.monotonic() - last_tick() <= stale_after
                ready = alive and all(h.state != "unhealthy" for h in health.agents.values())
                ok = alive if path == "/healthz" else ready
                body = json.dumps(health_json(health)).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass  # no access log from a library

        self._server = _QuietServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self.host = host
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="agentmon-health-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    """Errors of a request are logged (a client gone away at debug level), never printed."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, _GONE):
            _LOG.debug("health endpoint: client %s disconnected early (%s)", client_address, exc)
        else:
            log_once(logging.WARNING, "health-http:error", "health endpoint: a request from %s failed",
                     client_address, exc_info=True)
