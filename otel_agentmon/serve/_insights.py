"""The analytics engine over serve's store, for the dashboard's insights panel (``/api/insights``).

``analyze`` works on a batch of records, so it runs on demand (never on the push path), over the
most recent spans only (a time window and a span cap keep its cost bounded), and its answer is
cached for a few seconds whatever the number of viewers.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

from ..analytics import Insights, analyze
from ._store import Store

_TTL_S: Final = 10.0
_WINDOW_S: Final = 600.0
_MAX_SPANS: Final = 20_000


class InsightsCache:
    def __init__(self, store: Store, ttl: float = _TTL_S, window_s: float = _WINDOW_S,
                 max_spans: int = _MAX_SPANS) -> None:
        self._store = store
        self._ttl = ttl
        self._window_s = window_s
        self._max_spans = max_spans
        self._lock = threading.Lock()
        self._at = 0.0
        self._cached: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        with self._lock:  # one computation at a time; concurrent viewers share it
            if time.monotonic() - self._at < self._ttl and self._cached:
                return self._cached
            start = time.perf_counter()
            cutoff = time.time_ns() - int(self._window_s * 1e9)
            records = [r for r in self._store.recent_spans(self._max_spans) if r.end_ns >= cutoff]
            self._cached = _json(analyze(records), time.perf_counter() - start) if records else {
                "spans": 0, "opportunities": [], "bottlenecks": []}
            self._at = time.monotonic()
            return self._cached


def _json(insights: Insights, took: float) -> dict[str, Any]:
    slowest = insights.slowest_agent()
    busiest = insights.busiest_tool()
    return {
        "spans": insights.spans, "window": [insights.window.start_ns / 1e9, insights.window.end_ns / 1e9],
        "took_s": round(took, 3),
        "slowest_agent": None if slowest is None else {"name": slowest.key, "p50": slowest.p50_s, "n": slowest.n},
        "busiest_tool": None if busiest is None else {"name": busiest.key, "n": busiest.n,
                                                      "total_s": round(busiest.total_s, 3)},
        "opportunities": [{"kind": o.kind, "title": o.title, "score": round(o.score, 3),
                           "evidence": o.evidence.describe(), "query": o.evidence.query,
                           "trace_ids": list(o.evidence.trace_ids[:3])} for o in insights.opportunities[:8]],
        "bottlenecks": [{"headline": b.headline(), "share": round(b.share, 3),
                         "trace_ids": list(b.evidence.trace_ids[:3])} for b in insights.bottlenecks[:5]],
    }
