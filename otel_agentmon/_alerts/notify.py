"""Alert notifiers: a Python callback, the logging module, and an Alertmanager-style webhook.

Each notifier runs on its own daemon thread behind a bounded queue, so a notifier that raises,
hangs or waits on a dead webhook can never delay the agents, the health loop, or the other
notifiers. Every notification is accounted for (``Dispatcher.stats()``, in ``Monitor.stats()``):
sent, failed, de-duplicated, or dropped with a reason (``queue_full``; ``shutdown`` for what was
still queued or in flight when the notifiers stopped), and drops are logged, rate-limited.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from .._core.guard import log_once
from .._export.stats import NotifierStats
from . import notify_http as _notify_http
from .engine import AlertEvent

_NOTIFY_STATES = frozenset({"firing", "resolved"})


class Notifier(Protocol):
    """Anything with ``notify(event)``; it is called from the notifier's own thread. It counts as
    sent when it returns, as failed when it raises."""

    def notify(self, event: AlertEvent) -> object: ...


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


class _Result:
    """What a notifier of ours made of one event, for the lane's account (others return ``None``: sent)."""

    __slots__ = ("outcome", "reason")

    def __init__(self, outcome: str, reason: str = "") -> None:
        self.outcome = outcome  # sent | failed | deduplicated | dropped
        self.reason = reason


_SENT: Final = _Result("sent")
_FAILED: Final = _Result("failed")
_DEDUPLICATED: Final = _Result("deduplicated")
_DROPPED_SHUTDOWN: Final = _Result("dropped", "shutdown")


class WebhookNotifier:
    """POSTs the Alertmanager webhook JSON; retries with jittered backoff, and de-duplication (the
    same alert in the same state is sent once).

    ``timeout`` bounds each attempt as a whole (connect, send and the answer; see ``_notify_http``).
    A redirect is not followed: it fails the alert with its status. ``sent``, ``failed``,
    ``deduplicated`` and ``dropped`` (by reason: ``shutdown``, when ``close()`` cut a request or a
    retry) count what became of each alert this notifier was given.
    """

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
        self._opener = _notify_http.opener()
        self._active: _notify_http.Deadline | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.deduplicated = 0
        self.dropped: dict[str, int] = {}

    @property
    def _where(self) -> str:
        return self.url.split("?")[0]  # never log a token in the query

    def close(self) -> None:
        """Stop (called at shutdown): a request in flight is cut and a pending retry gives up, at once."""
        self._closed.set()
        with self._lock:
            active = self._active
        if active is not None:
            active.expire()

    def notify(self, event: AlertEvent) -> _Result:
        status = "firing" if event.state == "firing" else "resolved"
        if self._last_sent.get(event.fingerprint) == status:
            self.deduplicated += 1
            return _DEDUPLICATED
        body = json.dumps(alertmanager_payload(event)).encode()
        reason = ""
        for attempt in range(self._retries + 1):
            if self._closed.is_set():
                return self._dropped()
            try:
                code = self._post(body)
            except _notify_http.ERRORS as exc:
                reason = _describe(exc)
            else:
                if 200 <= code < 300:
                    self._last_sent[event.fingerprint] = status
                    self.sent += 1
                    return _SENT
                if 300 <= code < 400:  # retrying cannot help: the URL is wrong
                    log_once(logging.WARNING, f"webhook-redirect:{self.url}", "alert webhook %s answered %d; "
                             "redirects are not followed: alert counted as failed", self._where, code)
                    self.failed += 1
                    return _FAILED
                reason = f"HTTP {code}"
            if self._closed.is_set():
                return self._dropped()
            if attempt < self._retries and self._closed.wait(self._backoff * (2**attempt)
                                                             * self._random.uniform(0.8, 1.2)):
                return self._dropped()
        self.failed += 1
        log_once(logging.WARNING, f"webhook:{self.url}", "alert webhook %s failed after %d attempts (last: %s)",
                 self._where, self._retries + 1, reason)
        return _FAILED

    def _post(self, body: bytes) -> int:
        deadline = _notify_http.Deadline(self._timeout)
        with self._lock:
            self._active = deadline
        if self._closed.is_set():
            deadline.expire()  # close() came between the check and the registration
        try:
            return _notify_http.post(self._opener, self.url, body, self._headers, deadline)
        finally:
            with self._lock:
                self._active = None

    def _dropped(self) -> _Result:
        self.dropped["shutdown"] = self.dropped.get("shutdown", 0) + 1
        log_once(logging.WARNING, f"webhook-shutdown:{self.url}", "alert webhook %s: an alert was not delivered "
                 "before shutdown; counted as dropped", self._where)
        return _DROPPED_SHUTDOWN


def _describe(exc: BaseException) -> str:
    """The kind of failure, never its text (which can carry the URL and its token)."""
    reason = getattr(exc, "reason", None)
    return type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__


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
        return sum(sum(lane.dropped.values()) for lane in self._lanes)

    def stats(self) -> NotifierStats:
        """Where every notification went, over all notifiers (see :class:`NotifierStats`)."""
        sent = failed = deduplicated = queued = in_flight = 0
        dropped: dict[str, int] = {}
        for lane in self._lanes:
            with lane.cond:
                sent, failed, deduplicated = sent + lane.sent, failed + lane.failed, deduplicated + lane.deduplicated
                queued, in_flight = queued + len(lane.queue), in_flight + lane.busy
                for reason, n in lane.dropped.items():
                    dropped[reason] = dropped.get(reason, 0) + n
        return NotifierStats(sent, failed, deduplicated, dropped, queued, in_flight)

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(lane.wait_idle(max(0.0, deadline - time.monotonic())) for lane in self._lanes)

    def stop(self, timeout: float = 0.1) -> None:
        """Stop every lane: what is still queued is dropped (counted, and logged), a webhook request
        in flight is cut; waits up to ``timeout`` for the lanes to account for what they held."""
        for lane in self._lanes:
            lane.stop()
            close = getattr(lane.notifier, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            lane.join(max(0.0, deadline - time.monotonic()))

    def restart_after_fork(self) -> None:
        self._lanes = [_Lane(lane.notifier, lane.size) for lane in self._lanes]


class _Lane:
    def __init__(self, notifier: Notifier, size: int) -> None:
        self.notifier = notifier
        self.size = size
        self.queue: collections.deque[AlertEvent] = collections.deque()
        self.cond = threading.Condition()
        self.busy = False
        self._stopped = False
        self.sent = 0
        self.failed = 0
        self.deduplicated = 0
        self.dropped: dict[str, int] = {}
        self._name = type(notifier).__name__
        self._thread = threading.Thread(target=self._run, name="agentmon-notifier", daemon=True)
        self._thread.start()

    def _drop(self, reason: str, n: int = 1) -> None:  # under self.cond
        self.dropped[reason] = self.dropped.get(reason, 0) + n
        log_once(logging.WARNING, f"notifier-drop:{reason}:{self._name}",
                 "alert notifier %s: %d notification(s) dropped (%s)", self._name, n, reason)

    def offer(self, event: AlertEvent) -> None:
        with self.cond:
            if self._stopped:
                self._drop("shutdown")
            elif len(self.queue) >= self.size:
                self._drop("queue_full")
            else:
                self.queue.append(event)
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self._stopped:
                    self.cond.wait()
                if self._stopped:
                    return
                event = self.queue.popleft()
                self.busy = True
            result: object = None
            try:
                result = self.notifier.notify(event)
            except Exception:  # noqa: BLE001 - a broken notifier must not stop its lane
                result = _FAILED
                log_once(logging.WARNING, f"notifier:{self._name}",
                         "alert notifier %s raised; continuing", self._name, exc_info=True)
            with self.cond:
                self._account(result)
                self.busy = False
                self.cond.notify_all()

    def _account(self, result: object) -> None:  # under self.cond
        outcome = result.outcome if isinstance(result, _Result) else "sent"
        if outcome == "failed":
            self.failed += 1
        elif outcome == "deduplicated":
            self.deduplicated += 1
        elif outcome == "dropped":
            assert isinstance(result, _Result)
            self.dropped[result.reason] = self.dropped.get(result.reason, 0) + 1
        else:
            self.sent += 1

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.queue or self.busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    def stop(self) -> None:
        with self.cond:
            self._stopped = True
            if self.queue:
                self._drop("shutdown", len(self.queue))
                self.queue.clear()
            self.cond.notify_all()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
