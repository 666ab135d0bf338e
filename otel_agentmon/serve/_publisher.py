"""The dashboard's push loop: one state build shared by every open stream (``/api/stream``)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

_LOG: Final = logging.getLogger("otel_agentmon.serve")


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
