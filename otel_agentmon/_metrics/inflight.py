"""The deriver's table of tasks in flight and its account of what derivation lost under overload.

Under overload the derivation queue drops span starts and ends (never blocking the agent). A
dropped end whose start was kept would leave its task "in flight" for ever: a phantom stuck task
and a table that only grows. The table therefore never trusts the queue alone: an entry whose
span has ended is not in flight, whatever happened to its end (swept after any drop), and the
table is capped, evicting the oldest entry (counted) when a start would exceed the cap.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterable
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan

from .._core.counting import count_value
from .._core.guard import log_once

#: Tasks tracked in flight at most (the same order as the agent-summary cap).
MAX_IN_FLIGHT: Final = 10_000

# Reasons derivation lost something (the error.type of agentmon.derivation.dropped).
QUEUE_FULL: Final = "queue_full"  # a span start or end offered while the derivation queue was full
STOPPED: Final = "stopped"  # offered after the deriver stopped (shutdown)
SHUTDOWN_DEADLINE: Final = "shutdown_deadline"  # still queued when shutdown's deadline came
IN_FLIGHT_EVICTED: Final = "in_flight_evicted"  # a running task forgotten at the in-flight cap


@dataclasses.dataclass(frozen=True)
class InFlight:
    key: tuple[str, str]  # (agent, task type)
    start_ns: int  # wall clock, as spans carry it
    span: ReadableSpan  # the live span, for stuck-task events


class InFlightTable:
    """Tasks in flight by span id, with per-(agent, task type) counts kept in step.

    ``on_forget`` is called for every entry removed other than by its own end (evicted at the cap,
    or swept because its span ended while its end was dropped), so summaries can follow.
    Used under the deriver's lock.
    """

    def __init__(self, on_forget: Callable[[InFlight], None], cap: int | None = None) -> None:
        self._on_forget = on_forget
        self._cap = max(1, MAX_IN_FLIGHT if cap is None else cap)
        self._entries: dict[int, InFlight] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self.evicted = 0

    def add(self, span_id: int, entry: InFlight) -> None:
        old = self._entries.pop(span_id, None)
        if old is not None:  # the same span started twice (a duplicated start): count it once
            self._uncount(old.key)
        while len(self._entries) >= self._cap:
            oldest = next(iter(self._entries))
            self._forget(self._entries.pop(oldest))
            self.evicted += 1
        self._entries[span_id] = entry
        self._counts[entry.key] = self._counts.get(entry.key, 0) + 1

    def note(self, key: tuple[str, str]) -> None:
        """A task of ``key`` ran (it ended before its start was derived): its gauge series reads 0."""
        self._counts.setdefault(key, 0)

    def pop(self, span_id: int) -> InFlight | None:
        """Remove the entry of a task whose end arrived (None if never tracked or already gone)."""
        entry = self._entries.pop(span_id, None)
        if entry is not None:
            self._uncount(entry.key)
        return entry

    def sweep_ended(self) -> int:
        """Forget every entry whose span has ended (its end was dropped, or is still queued and
        will find nothing to remove); how many."""
        ended = [sid for sid, entry in self._entries.items() if entry.span.end_time is not None]
        for sid in ended:
            self._forget(self._entries.pop(sid))
        return len(ended)

    def values(self) -> Iterable[InFlight]:
        return self._entries.values()

    def counts(self) -> list[tuple[tuple[str, str], int]]:
        return list(self._counts.items())

    def __len__(self) -> int:
        return len(self._entries)

    def _forget(self, entry: InFlight) -> None:
        self._uncount(entry.key)
        self._on_forget(entry)

    def _uncount(self, key: tuple[str, str]) -> None:
        # The key stays at 0: the in-flight gauge reports 0 rather than leaving its last value stale.
        self._counts[key] = max(0, self._counts.get(key, 0) - 1)


class DerivationDrops:
    """What derivation lost, by reason. ``queue_full`` is counted on the agent's thread (one
    C-level call); the rest on the deriver's or shutdown's."""

    def __init__(self) -> None:
        self.queue_full = itertools.count()
        self.stopped = itertools.count()
        self.deadline = 0
        self._reported = 0
        self._swept_at = 0

    def by_reason(self, evicted: int) -> dict[str, int]:
        counts = {QUEUE_FULL: count_value(self.queue_full), STOPPED: count_value(self.stopped),
                  SHUTDOWN_DEADLINE: self.deadline, IN_FLIGHT_EVICTED: evicted}
        return {reason: n for reason, n in counts.items() if n}

    def queue_drops(self) -> int:
        return count_value(self.queue_full) + count_value(self.stopped) + self.deadline

    def sweep_due(self) -> bool:
        """Spans were dropped since the last sweep of the in-flight table."""
        drops = self.queue_drops()
        if drops == self._swept_at:
            return False
        self._swept_at = drops
        return True

    def report(self, evicted: int) -> None:
        """One rate-limited warning when something was lost since the last report."""
        reasons = self.by_reason(evicted)
        total = sum(reasons.values())
        if total == self._reported:
            return
        self._reported = total
        log_once(logging.WARNING, "derive:dropped",
                 "metric derivation is overloaded: %d span start(s)/end(s) or task(s) lost so far (%s); agent "
                 "metrics and summaries undercount (counted in stats() and agentmon.derivation.dropped)",
                 total, ", ".join(f"{reason}={n}" for reason, n in sorted(reasons.items())))
