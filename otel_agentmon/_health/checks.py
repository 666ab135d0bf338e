"""User-registered health checks: sync or async callables run on their own schedule.

A check passes when it returns without raising (a falsy return value also fails it). A check that
raises fails; one that runs past its timeout fails and is not started again until the stuck call
returns, so a hanging check costs one thread, never a growing pile of them, and never blocks the
health loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

CheckFn = Callable[[], Any] | Callable[[], Awaitable[Any]]


@dataclasses.dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    agent: str | None
    critical: bool
    checked_at: float  # monotonic; 0 before the first run


@dataclasses.dataclass
class _Check:
    name: str
    fn: CheckFn
    interval: float
    timeout: float
    agent: str | None
    critical: bool
    next_run: float = 0.0
    running: bool = False
    started: float = 0.0
    result: CheckResult | None = None


class HealthChecks:
    def __init__(self) -> None:
        self._checks: dict[str, _Check] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def copy_of(cls, other: HealthChecks) -> HealthChecks:
        """The same checks, with fresh state (after fork, where the old runner threads are gone)."""
        fresh = cls()
        for c in other._checks.values():
            fresh.add(c.name, c.fn, interval=c.interval, timeout=c.timeout, agent=c.agent, critical=c.critical)
        return fresh

    def add(self, name: str, fn: CheckFn, *, interval: float = 5.0, timeout: float = 1.0,
            agent: str | None = None, critical: bool = False) -> None:
        if not callable(fn):
            raise TypeError("a health check must be callable")
        with self._lock:
            self._checks[name] = _Check(name, fn, max(0.05, interval), max(0.01, timeout), agent, critical)

    def remove(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def run_due(self, now: float) -> None:
        """Start every check whose time has come (called from the health loop's tick)."""
        with self._lock:
            checks = list(self._checks.values())
        for check in checks:
            if check.running:
                if now - check.started > check.timeout and (check.result is None or check.result.ok
                                                               or check.result.checked_at < check.started):
                    check.result = CheckResult(check.name, False, f"timed out after {check.timeout:g}s",
                                               check.agent, check.critical, now)
                continue
            if now >= check.next_run:
                check.running, check.started, check.next_run = True, now, now + check.interval
                self._start(check)

    def _start(self, check: _Check) -> None:
        if inspect.iscoroutinefunction(check.fn):
            loop = self._ensure_loop()
            fn, timeout = check.fn, check.timeout

            async def run() -> object:
                # Created on the loop's own thread, so a stopped loop never leaves it un-awaited.
                return await asyncio.wait_for(fn(), timeout)

            future = asyncio.run_coroutine_threadsafe(run(), loop)

            def done(f: Any) -> None:
                if f.cancelled():
                    self._finish(check, asyncio.CancelledError(), None)
                elif f.exception() is not None:
                    self._finish(check, f.exception(), None)
                else:
                    self._finish(check, None, f.result())

            future.add_done_callback(done)
            return
        threading.Thread(target=self._run_sync, args=(check,), name=f"agentmon-check-{check.name}",
                         daemon=True).start()

    def _run_sync(self, check: _Check) -> None:
        try:
            value = check.fn()
        except Exception as exc:  # noqa: BLE001 - a failing check is a result, not an error
            self._finish(check, exc, None)
            return
        self._finish(check, None, value)

    def _finish(self, check: _Check, exc: BaseException | None, value: object) -> None:
        now = time.monotonic()
        if exc is not None:
            detail = "timed out" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else (
                f"{type(exc).__name__}: {exc}"[:200])
            ok = False
        elif now - check.started > check.timeout:
            ok, detail = False, f"took {now - check.started:.2f}s (timeout {check.timeout:g}s)"
        else:
            ok = value is None or bool(value)
            detail = "ok" if ok else f"returned {value!r}"[:200]
        check.result = CheckResult(check.name, ok, detail, check.agent, check.critical, now)
        check.running = False

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=self._serve, args=(loop,), name="agentmon-checks-loop", daemon=True).start()
            self._loop = loop
        return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()

    def results(self) -> list[CheckResult]:
        with self._lock:
            checks = list(self._checks.values())
        return [c.result for c in checks if c.result is not None]

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # closed meanwhile
                pass
