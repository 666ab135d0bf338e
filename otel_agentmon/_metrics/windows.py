"""Sliding-window task statistics per agent, maintained incrementally.

Each agent keeps a ring of one-second buckets (count, errors, tokens, a latency histogram) and,
for each window length the health policy and alert rules ask for, running totals. Recording a
task costs O(number of windows); advancing a second costs O(windows x histogram buckets); reading
a window is O(histogram buckets). Nothing scans the raw task history, so evaluation cost does not
grow with traffic.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from bisect import bisect_left
from collections.abc import Iterable
from typing import Final

from .._names.semconv import BUCKETS_TASK_DURATION

#: Latency histogram bounds (seconds): the exported agentmon.task.duration buckets. Percentiles
#: interpolate inside a bucket like PromQL's histogram_quantile, so the in-process and the
#: Prometheus evaluation of a latency rule read the same histogram the same way.
LATENCY_BOUNDS: Final = BUCKETS_TASK_DURATION
_NB: Final = len(LATENCY_BOUNDS) + 1  # + the overflow bucket


class _Totals:
    __slots__ = ("count", "errors", "hist", "tokens")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.tokens = 0
        self.hist = [0] * _NB

    def add(self, other: _Totals, sign: int) -> None:
        self.count += sign * other.count
        self.errors += sign * other.errors
        self.tokens += sign * other.tokens
        hist = self.hist
        for i, n in enumerate(other.hist):
            if n:
                hist[i] += sign * n


@dataclasses.dataclass(frozen=True)
class WindowStats:
    """Task statistics of one agent over the last ``window`` seconds."""

    window: float
    count: int
    errors: int
    tokens: int
    throughput: float  # tasks per second
    error_rate: float | None  # None when no task finished in the window
    p50: float | None
    p95: float | None
    p99: float | None


def _quantile(q: float, hist: list[int], count: int) -> float | None:
    if count <= 0:
        return None
    rank = q * count
    cumulative = 0
    for i, n in enumerate(hist):
        if n and cumulative + n >= rank:
            if i >= len(LATENCY_BOUNDS):
                return LATENCY_BOUNDS[-1]
            lower = LATENCY_BOUNDS[i - 1] if i > 0 else 0.0
            upper = LATENCY_BOUNDS[i]
            return lower + (upper - lower) * ((rank - cumulative) / n)
        cumulative += n
    return LATENCY_BOUNDS[-1]


class AgentWindows:
    """Running window totals for one agent (not thread-safe: the caller holds a lock)."""

    def __init__(self, windows: Iterable[float]) -> None:
        self._windows = sorted({max(1, math.ceil(w)) for w in windows} or {60})
        self._ring: collections.deque[_Totals] = collections.deque(maxlen=self._windows[-1] + 1)
        self._ring.append(_Totals())
        self._second = -1
        self._totals = {w: _Totals() for w in self._windows}

    def _advance(self, now: float) -> None:
        second = int(now)
        if self._second < 0:
            self._second = second
            return
        gap = second - self._second
        if gap <= 0:
            return
        if gap > self._windows[-1]:  # everything expired: start over
            self._ring.clear()
            self._ring.append(_Totals())
            self._totals = {w: _Totals() for w in self._windows}
            self._second = second
            return
        for _ in range(gap):
            self._second += 1
            self._ring.append(_Totals())
            for w, totals in self._totals.items():
                if len(self._ring) > w:
                    totals.add(self._ring[-(w + 1)], -1)

    def add(self, now: float, duration: float, failed: bool, tokens: int) -> None:
        self._advance(now)
        index = bisect_left(LATENCY_BOUNDS, duration)
        for target in (self._ring[-1], *self._totals.values()):
            target.count += 1
            target.errors += failed
            target.tokens += tokens
            target.hist[index] += 1

    def stats(self, now: float, window: float) -> WindowStats:
        self._advance(now)
        w = max(1, math.ceil(window))
        totals = self._totals.get(w)
        if totals is None:  # a window nobody registered: sum the ring (rare; bounded by the ring)
            totals = _Totals()
            for bucket in list(self._ring)[-w:]:
                totals.add(bucket, 1)
        count = totals.count
        return WindowStats(
            window=float(w), count=count, errors=totals.errors, tokens=totals.tokens,
            throughput=count / w, error_rate=(totals.errors / count) if count else None,
            p50=_quantile(0.5, totals.hist, count), p95=_quantile(0.95, totals.hist, count),
            p99=_quantile(0.99, totals.hist, count),
        )
