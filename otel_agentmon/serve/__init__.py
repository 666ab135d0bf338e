"""``agentmon serve``: a local OTLP/HTTP receiver with a bounded store, health and alert
evaluation, and a live web dashboard (see ``otel_agentmon.serve.Server``)."""

from __future__ import annotations

from ._server import DEFAULT_PORT, ServeConfig, Server, start_in_process
from ._store import Limits

__all__ = ["DEFAULT_PORT", "Limits", "ServeConfig", "Server", "start_in_process"]
