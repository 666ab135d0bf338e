"""``configure(dashboard=True)``: the live view for this process, started here or joined.

Several processes of one swarm can all say ``dashboard=True``: the first starts an in-process
``agentmon serve`` on the standard port, the others find it there and export to it, so the
swarm shares one view. (If the standard port is held by something else, such as a Collector,
the dashboard starts on a free port and only this process and its forked children see it.)
"""

from __future__ import annotations

import http.client
import logging
from typing import TYPE_CHECKING

from .._core.guard import log_once
from .settings import Settings

if TYPE_CHECKING:
    from ..serve import Server


def dashboard_target(settings: Settings, port: int | None = None) -> tuple[Server | None, str | None]:
    """What ``dashboard=True`` exports to: an ``agentmon serve`` already on the standard port
    (another process of the swarm started it: join its view), else one started here."""
    if not settings.dashboard or settings.disabled:
        return None, None
    try:
        from ..serve import DEFAULT_PORT, start_in_process

        port = DEFAULT_PORT if port is None else port
        joined = _serve_at(port)
        if joined is not None:
            return None, joined
        server = start_in_process(port)
        return server, server.url
    except Exception:  # noqa: BLE001 - no dashboard is better than no telemetry
        log_once(logging.WARNING, "dashboard", "could not start the live dashboard", exc_info=True)
        return None, None


def _serve_at(port: int) -> str | None:
    """The URL of an ``agentmon serve`` listening on 127.0.0.1:``port``, if one is."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        server = response.getheader("Server") or ""
        return f"http://127.0.0.1:{port}" if server.startswith("agentmon-serve") else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
