"""The OTLP/HTTP exporters' ``requests`` session: what each export attempt did, and no tracing of it.

A response hook reads the HTTP status and OTLP ``partial_success`` (which the SDK ignores); the
session counts attempts and remembers whether the transport is failing, which is the evidence
the batch worker's shutdown and the poison-batch rescue decide by. Every request runs with
instrumentation suppressed (the standard context key), so an HTTP client instrumentation in the
application (``requests``, ``urllib3``) never makes spans about our own exports.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import requests
from opentelemetry.instrumentation.utils import suppress_instrumentation


class ResponseProbe:
    """Remembers the last HTTP status and OTLP partial-success count of one exporter."""

    def __init__(self, response_type: Any, field: str) -> None:
        self._response_type = response_type
        self._field = field
        self.status: int | None = None
        self.rejected = 0
        self.attempts = 0  # HTTP requests made for the current export (0: it failed before sending)
        #: the last HTTP attempt failed (no answer, or not 2xx) and none has succeeded since
        self.transport_failing = False

    def reset(self) -> None:
        self.status = None
        self.rejected = 0
        self.attempts = 0

    def hook(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        try:
            body = response.content  # reading first: a body cut short is a transport failure
        except Exception:  # noqa: BLE001
            self.transport_failing = True
            return
        self.status = response.status_code
        self.transport_failing = not 200 <= response.status_code < 300
        try:
            if response.status_code == 200 and body:
                msg = self._response_type.FromString(body)
                if msg.HasField("partial_success"):
                    self.rejected += int(getattr(msg.partial_success, self._field))
        except Exception:  # noqa: BLE001 - an unparsable body is not our caller's problem
            pass

    def reason(self) -> str:
        if self.status is None or 200 <= self.status < 300:  # no (complete) response
            return "connection_error"
        return f"http_{self.status}"


_sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    # A forked child must not write into the keep-alive connections it inherited from its
    # parent: requests from both would interleave on one socket.
    for session in list(_sessions):
        for adapter in session.adapters.values():
            try:
                adapter.poolmanager.clear()  # type: ignore[attr-defined]  # requests types adapters as BaseAdapter; ours are HTTPAdapters
            except Exception:  # noqa: BLE001
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_connections_after_fork)


class _ExportSession(requests.Session):
    """The exporters' session: our own traffic is never traced by an HTTP client instrumentation
    (``requests``, ``urllib3``: the standard suppression key, whichever thread sends), and each
    attempt is counted and its failure remembered by the probe."""

    def __init__(self, probe: ResponseProbe | None) -> None:
        super().__init__()
        self._probe = probe

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        probe = self._probe
        if probe is not None:
            probe.attempts += 1
        try:
            with suppress_instrumentation():
                return super().request(*args, **kwargs)
        except Exception:
            if probe is not None:
                probe.transport_failing = True
            raise


def http_session(probe: ResponseProbe | None = None) -> requests.Session:
    session = _ExportSession(probe)
    if probe is not None:
        session.hooks["response"].append(probe.hook)
    _sessions.add(session)
    return session


