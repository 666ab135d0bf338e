"""Alert notifiers: a Python callback, the logging module, and an Alertmanager-style webhook.

Each notifier runs on its own daemon thread behind a bounded queue, so a notifier that raises,
hangs or waits on a dead webhook can never delay the agents, the health loop, or the other
notifiers; when its queue is full, new events are dropped and counted.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

from ._alerts import AlertEvent
from ._guard import log_once

_NOTIFY_STATES = frozenset({"firing", "resolved"})


class Notifier(Protocol):
    """Anything with ``notify(event)``; it is called from the notifier's own thread."""

    def notify(self, event: AlertEvent) -> None: ...


class CallbackNotifier:
    """Calls ``fn(event)`` for firing and resolved transitions."""

    def __init__(self, fn: Callable[[AlertEvent], object]) -> None:
        self._fn = fn

    def notify(self, event: AlertEvent) -> None:
        self._fn(event)


class LoggingNotifier:
    """Logs firing (WARNING, or ERROR for ``critical``) and resolved (INFO) transitions."""

    def __init__(self, logger: str = "otel_agentmon.alerts") -> None:
        self._logger = logging.getLogger(logger)

    def notify(self, event: AlertEvent) -> None:
        level = logging.INFO
        if event.state == "firing":
            level = logging.ERROR if event.rule.severity == "critical" else logging.WARNING
        summary = event.render(event.rule.annotations.get("summary", ""))
        self._logger.log(level, "alert %s %s%s (value %s, threshold %s %g)%s", event.rule.name, event.state,
                         f" for {event.agent}" if event.agent else "", event.value, event.rule.op,
                         event.rule.threshold, f": {summary}" if summary else "")


def _rfc3339(ts: float | None) -> str:
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def alertmanager_payload(event: AlertEvent, receiver: str = "otel_agentmon") -> dict[str, Any]:
    """The Alertmanager webhook JSON (version 4) for one transition."""
    labels = event.labels
    annotations = {k: event.render(v) for k, v in event.rule.annotations.items()}
    status = "firing" if event.state == "firing" else "resolved"
    alert = {"status": status, "labels": labels, "annotations": annotations,
             "startsAt": _rfc3339(event.active_since or event.at),
             "endsAt": _rfc3339(event.at if status == "resolved" else None),
             "generatorURL": "", "fingerprint": event.fingerprint}
    return {"version": "4", "groupKey": f"{{}}:{{alertname=\"{event.rule.name}\"}}", "truncatedAlerts": 0,
            "status": status, "receiver": receiver, "groupLabels": {"alertname": event.rule.name},
            "commonLabels": labels, "commonAnnotations": annotations, "externalURL": "", "alerts": [alert]}


class WebhookNotifier:
    """POSTs the Alertmanager webhook JSON; timeout per attempt, retries with jittered backoff,
    and de-duplication (the same alert in the same state is sent once)."""

    def __init__(self, url: str, *, timeout: float = 2.0, retries: int = 3, backoff: float = 0.5,
                 headers: dict[str, str] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must be http:// or https://")
        self.url = url
        self._timeout = timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._last_sent: dict[str, str] = {}
        self._closed = threading.Event()
        self._random = random.Random()  # jitter without touching the application's global RNG
        self.sent = 0
        self.failed = 0

    def close(self) -> None:
        """Stop retrying (called at shutdown): a pending retry gives up at once."""
        self._closed.set()

    def notify(self, event: AlertEvent) -> None:
        status = "firing" if event.state == "firing" else "resolved"
        if self._last_sent.get(event.fingerprint) == status:
            return  # de-duplicated
        body = json.dumps(alertmanager_payload(event)).encode()
        for attempt in range(self._retries + 1):
            if self._closed.is_set():
                break
            try:
                request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
                with urllib.request.urlopen(request, timeout=self._timeout) as response:
                    if 200 <= response.status < 300:
                        self._last_sent[event.fingerprint] = status
                        self.sent += 1
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if attempt < self._retries and self._closed.wait(self._backoff * (2**attempt)
                                                             * self._random.uniform(0.8, 1.2)):
                break
        self.failed += 1
        log_once(logging.WARNING, f"webhook:{self.url}", "alert webhook %s failed after %d attempts",
                 self.url.split("?")[0], self._retries + 1)


class Dispatcher:
    """Fans transitions out to notifiers, each on its own thread with a bounded queue."""

    def __init__(self, notifiers: list[Notifier], queue_size: int = 1000) -> None:
        self._lanes = [_Lane(n, queue_size) for n in notifiers]

    def dispatch(self, event: AlertEvent) -> None:
        if event.state not in _NOTIFY_STATES:
            return
        for lane in self._lanes:
            lane.offer(event)

    @property
    def dropped(self) -> int:
        return sum(lane.dropped for lane in self._lanes)

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(lane.wait_idle(max(0.0, deadline - time.monotonic())) for lane in self._lanes)

    def stop(self) -> None:
        for lane in self._lanes:
            lane.stop()
            close = getattr(lane.notifier, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass

    def restart_after_fork(self) -> None:
        self._lanes = [_Lane(lane.notifier, lane.size) for lane in self._lanes]


class _Lane:
    def __init__(self, notifier: Notifier, size: int) -> None:
        self.notifier = notifier
        self.size = size
        self._notifier = notifier
        self._queue: collections.deque[AlertEvent] = collections.deque()
        self._size = size
        self._cond = threading.Condition()
        self._busy = False
        self._stopped = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="agentmon-notifier", daemon=True)
        self._thread.start()

    def offer(self, event: AlertEvent) -> None:
        with self._cond:
            if len(self._queue) >= self._size:
                self.dropped += 1
                return
            self._queue.append(event)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                event = self._queue.popleft()
                self._busy = True
            try:
                self._notifier.notify(event)
            except Exception:  # noqa: BLE001 - a broken notifier must not stop its lane
                log_once(logging.WARNING, f"notifier:{type(self._notifier).__name__}",
                         "alert notifier %s raised; continuing", type(self._notifier).__name__, exc_info=True)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
