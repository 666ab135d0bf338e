"""The one guard between our code and the application: nothing we do may raise into it.

``guarded`` wraps internal callables; ``log_once`` rate-limits our own diagnostics so a failure
that repeats per span logs once per interval, with a count of what it held back.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

logger = logging.getLogger("otel_agentmon")

P = ParamSpec("P")
R = TypeVar("R")

_LOG_INTERVAL_S = 60.0


class RateLimiter:
    """Lets one event per key through per ``interval`` seconds and counts the rest."""

    def __init__(self, interval: float = _LOG_INTERVAL_S, max_keys: int = 1024) -> None:
        self._interval = interval
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """Return (allowed, how many were suppressed since the last allowed one)."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            if len(self._last) >= self._max_keys and key not in self._last:
                self._last.clear()  # bounded: forget old keys rather than grow
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)


_limiter = RateLimiter()


def log_once(level: int, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
    """Log ``msg`` at most once per minute per ``key`` on the ``otel_agentmon`` logger."""
    try:
        allowed, suppressed = _limiter.allow(key)
        if not allowed:
            return
        if suppressed:
            msg = f"{msg} ({suppressed} similar messages suppressed)"
        logger.log(level, msg, *args, exc_info=exc_info)
    except Exception:  # noqa: BLE001 - logging itself must not fail the caller
        pass


def report_internal_error(where: str) -> None:
    """Record an internal failure; called from ``except Exception`` blocks."""
    log_once(logging.WARNING, f"internal:{where}", "otel_agentmon internal error in %s", where, exc_info=True)


def guarded(default: R) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate an internal function so an ``Exception`` in it is logged and ``default`` returned.

    Only ``Exception`` is caught: ``KeyboardInterrupt``/``SystemExit`` belong to the application.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        where = getattr(fn, "__qualname__", repr(fn))

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception:  # noqa: BLE001 - the whole point of the guard
                report_internal_error(where)
                return default

        return wrapper

    return decorate


def call_user(fn: Callable[..., R], *args: object, where: str, default: R) -> R:
    """Call a user-supplied hook; an exception from it is logged (rate-limited) and swallowed."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - a buggy hook must not break the agent
        log_once(logging.WARNING, f"hook:{where}", "user hook %s raised; ignored", where, exc_info=True)
        return default


def after_fork_in_child(method: Callable[[], None]) -> None:
    """Call the bound ``method`` in a forked child, without keeping its object alive."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.WeakMethod(method)

    def _after_fork() -> None:
        bound = ref()
        if bound is not None:
            try:
                bound()
            except Exception:  # noqa: BLE001 - a fork hook must never break the child
                report_internal_error("after fork")

    os.register_at_fork(after_in_child=_after_fork)
