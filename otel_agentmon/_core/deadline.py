"""Run work that does not honour our deadlines where the caller need not wait for it.

``MeterProvider.force_flush`` collects on the calling thread: every observable callback (the
application's too) runs there, under a lock the periodic reader's own collection also takes,
and its timeout is checked only between callbacks. Derivation of a span backlog is CPU work of
unbounded length. A caller with a deadline starts such work here and waits for it only until
then; the work finishes (or fails) on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .guard import after_fork_in_child, report_internal_error


class BoundedCall:
    """Runs one call at a time on a daemon thread; callers wait for its result only until their deadline."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._reset()
        after_fork_in_child(self._reset)

    def _reset(self) -> None:
        # A forked child has no thread of its parent's, and no lock its parent held at fork.
        self._lock = threading.Lock()
        self._call: _Call | None = None

    def start(self, fn: Callable[[], bool]) -> Callable[[float], bool]:
        """Start ``fn`` now; the returned ``wait(timeout_s)`` is ``True`` only if it returned a true
        value within ``timeout_s``. While an earlier call is still running (say, stuck behind the
        SDK's lock), none is started: ``wait`` then waits for that one. Threads never pile up.
        """
        with self._lock:
            if self._call is None or self._call.finished():
                call = _Call(fn, self._name)
                try:
                    call.thread.start()
                except RuntimeError:  # no thread to be had (resource limit, interpreter finalizing)
                    return _not_done
                self._call = call
            return self._call.wait


class _Call:
    def __init__(self, fn: Callable[[], bool], name: str) -> None:
        self._fn = fn
        self._name = name
        self._done = threading.Event()
        self._ok = False
        self.thread = threading.Thread(target=self._run, name=f"agentmon-{name}", daemon=True)

    def _run(self) -> None:
        try:
            self._ok = bool(self._fn())
        except Exception:  # noqa: BLE001 - a helper thread must not die with a traceback
            report_internal_error(self._name)
        finally:
            self._done.set()

    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(max(0.0, timeout_s)) and self._ok


def _not_done(timeout_s: float) -> bool:
    return False
