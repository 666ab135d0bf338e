"""The bounded embedded store of ``agentmon serve``.

Spans are kept as ``SpanRecord`` in arrival order with a per-trace index (for waterfalls) and a
list of *units* (task spans, or the root of a trace that has none) for the recent/slowest lists.
Retention is by age and by size (span count and an estimate of their memory), oldest first; every
other collection (agents, process instances, metric series, alerts, events) has a fixed cap.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from .._names import semconv as sc
from .._records.records import SERVICE_INSTANCE_ID, SpanRecord
from ._otlp import SCALAR, LogEvent, Point

_SERIES_POINTS: Final = 600  # per series: 10 min at one sample a second
_RESOLVED_KEPT: Final = 50
_EVENTS_KEPT: Final = 300
_UNITS_KEPT: Final = 5000
_SPAN_OVERHEAD: Final = 900  # bytes: the record, its dict, deque and index slots (measured, rounded up)


@dataclasses.dataclass(frozen=True)
class Limits:
    retention_s: float = 3600.0
    max_spans: int = 200_000
    max_memory_bytes: int = 256 * 1024 * 1024
    max_agents: int = 2000
    max_instances: int = 1000
    max_series: int = 4000


@dataclasses.dataclass
class Instance:
    """One reporting process (a ``service.instance.id``, or the service when it has none)."""

    service: str
    instance: str
    attrs: dict[str, SCALAR]
    first_seen: float
    last_seen: float
    spans: int = 0
    metric_batches: int = 0


@dataclasses.dataclass
class Reported:
    """What a process says about one of its agents (our SDK's agentmon.* gauges and health events)."""

    state: str | None = None
    state_ns: int = 0  # when the process decided it (the record's or the data point's own time)
    up: bool | None = None
    in_flight: float = 0.0
    oldest_age: float = 0.0
    stuck: float = 0.0
    reasons: tuple[str, ...] = ()
    at: float = 0.0  # monotonic time of the last report of any kind


@dataclasses.dataclass
class Alert:
    rule: str
    agent: str | None
    severity: str
    state: str
    value: float | None
    threshold: float | None
    summary: str
    source: str
    since: float  # wall time it started firing
    at: float  # wall time of the last transition


class _Trace:
    __slots__ = ("has_task", "spans")

    def __init__(self) -> None:
        self.spans: collections.deque[SpanRecord] = collections.deque()
        self.has_task = False


def instance_key(resource: dict[str, SCALAR] | Any) -> tuple[str, str]:
    service = str(resource.get(sc.SERVICE_NAME) or "unknown_service")
    return service, str(resource.get(SERVICE_INSTANCE_ID) or "")


def _size(record: SpanRecord) -> int:
    size = _SPAN_OVERHEAD + len(record.name)
    for key, value in record.attributes.items():
        size += 120 + len(key) + (len(value) if isinstance(value, str) else 0)
    return size


class Store:
    """Thread-safe; writers are the HTTP handler threads and the health loop."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.lock = threading.RLock()
        self.version = 0  # bumped on every change; the push loop waits for it
        self.changed = threading.Condition(self.lock)
        self._spans: collections.deque[tuple[float, SpanRecord, int]] = collections.deque()
        self._traces: dict[str, _Trace] = {}
        self._units: collections.deque[SpanRecord] = collections.deque(maxlen=_UNITS_KEPT)
        self.bytes = 0
        self.counts: collections.Counter[str] = collections.Counter()
        # Least recently seen first (``move_to_end`` on every sighting): evicting the oldest past a
        # cap is O(1), so the cost per span does not grow with the number of agents or processes.
        self.instances: collections.OrderedDict[tuple[str, str], Instance] = collections.OrderedDict()
        self.agent_instances: collections.OrderedDict[str, dict[tuple[str, str], float]] = collections.OrderedDict()
        self.reported: collections.OrderedDict[tuple[str, tuple[str, str]], Reported] = collections.OrderedDict()
        self._reported_keys: dict[str, set[tuple[str, str]]] = {}  # agent -> its keys in ``reported``
        self.series: dict[tuple[str, str, str], collections.deque[tuple[float, float]]] = {}
        self._counters: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._series_names: set[str] = set()  # the few names in ``series`` and ``_counters`` keys
        self.alerts: dict[tuple[str, str, str | None], Alert] = {}
        #: alert instances whose transitions arrive as log records: their gauge is not needed
        self.alerts_by_event: set[tuple[str, str, str | None]] = set()
        self.resolved: collections.deque[Alert] = collections.deque(maxlen=_RESOLVED_KEPT)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=_EVENTS_KEPT)
        #: optional listeners (a recording): called under the lock with each kept item, so they
        #: must only hand it on (serve's recorder queues it for its own thread)
        self.on_span: Callable[[SpanRecord], None] | None = None
        self.on_alert: Callable[[Alert], None] | None = None
        self.on_point: Callable[[str, tuple[str, str], float, float], None] | None = None

    def _touch(self) -> None:
        self.version += 1
        self.changed.notify_all()

    # --- processes and agents -----------------------------------------------------------------
    def instance(self, resource: dict[str, SCALAR], now: float) -> Instance:
        key = instance_key(resource)
        inst = self.instances.get(key)
        if inst is None:
            if len(self.instances) >= self.limits.max_instances:
                self._drop_instance(next(iter(self.instances)))  # the one seen longest ago
                self.counts["instances_evicted"] += 1
            inst = self.instances[key] = Instance(key[0], key[1], dict(resource), now, now)
        elif inst.last_seen != now:
            self.instances.move_to_end(key)
        inst.last_seen = now
        return inst

    def _drop_instance(self, key: tuple[str, str]) -> None:
        """A process and everything kept about it: its resource series and counter samples."""
        self.instances.pop(key, None)
        for name in self._series_names:
            self.series.pop((name, *key), None)
            self._counters.pop((name, *key), None)

    def _agent_seen(self, agent: str, key: tuple[str, str], now: float) -> None:
        seen = self.agent_instances.get(agent)
        if seen is None:
            if len(self.agent_instances) >= self.limits.max_agents:
                self.forget_agent(next(iter(self.agent_instances)))  # the one seen longest ago
                self.counts["agents_evicted"] += 1
            seen = self.agent_instances[agent] = {}
        else:
            self.agent_instances.move_to_end(agent)
            if key in seen:
                seen[key] = now
                return
        if key not in seen and len(seen) >= 64:
            del seen[min(seen, key=seen.__getitem__)]
        seen[key] = now

    def forget_agent(self, agent: str) -> None:
        self.agent_instances.pop(agent, None)
        for key in self._reported_keys.pop(agent, ()):
            self.reported.pop((agent, key), None)

    def reports_of(self, agent: str) -> list[Reported]:
        """What the processes running ``agent`` said about it (one entry per process)."""
        found = (self.reported.get((agent, key)) for key in self._reported_keys.get(agent, ()))
        return [rep for rep in found if rep is not None]

    # --- spans --------------------------------------------------------------------------------
    def add_spans(self, records: list[SpanRecord], resources: list[dict[str, SCALAR]]) -> None:
        """Keep ``records`` (``resources[i]`` is the resource of ``records[i]``)."""
        wall, mono = time.time(), time.monotonic()
        with self.lock:
            for record, resource in zip(records, resources, strict=True):
                size = _size(record)
                self._spans.append((wall, record, size))
                self.bytes += size
                entry = self._traces.get(record.trace_id)
                if entry is None:
                    entry = self._traces[record.trace_id] = _Trace()
                entry.spans.append(record)
                if record.kind == "task":
                    entry.has_task = True
                    self._units.append(record)
                elif record.parent_id is None and not entry.has_task:
                    self._units.append(record)
                inst = self.instance(resource, wall)
                inst.spans += 1
                if record.agent is not None:
                    self._agent_seen(record.agent, (inst.service, inst.instance), mono)
                if self.on_span is not None:
                    self.on_span(record)
            self.counts["spans_received"] += len(records)
            self._evict(wall)
            self._touch()

    def _evict(self, now: float) -> None:
        limits, spans = self.limits, self._spans
        cutoff = now - limits.retention_s
        while spans and (len(spans) > limits.max_spans or self.bytes > limits.max_memory_bytes
                         or spans[0][0] < cutoff):
            arrived, record, size = spans.popleft()
            self.bytes -= size
            reason = "age" if arrived < cutoff else "size"
            self.counts[f"spans_evicted_{reason}"] += 1
            entry = self._traces.get(record.trace_id)
            if entry is not None:
                if entry.spans and entry.spans[0] is record:
                    entry.spans.popleft()
                else:
                    try:
                        entry.spans.remove(record)
                    except ValueError:
                        pass
                if not entry.spans:
                    del self._traces[record.trace_id]

    def expire(self) -> None:
        """Apply age retention even when nothing arrives (called by the push loop): to spans, and to
        agents and processes not heard from within the retention."""
        with self.lock:
            changed = False
            if self._spans and self._spans[0][0] < time.time() - self.limits.retention_s:
                self._evict(time.time())
                changed = True
            mono_cutoff = time.monotonic() - self.limits.retention_s
            for agent in [a for a, seen in self.agent_instances.items() if max(seen.values(), default=0) < mono_cutoff]:
                self.forget_agent(agent)
                changed = True
            wall_cutoff = time.time() - self.limits.retention_s
            for key in [k for k, inst in self.instances.items() if inst.last_seen < wall_cutoff]:
                self._drop_instance(key)
                changed = True
            if changed:
                self._touch()

    @property
    def span_count(self) -> int:
        return len(self._spans)

    @property
    def trace_count(self) -> int:
        return len(self._traces)

    def spans(self) -> Iterator[SpanRecord]:
        with self.lock:
            records = [r for _, r, _ in self._spans]
        return iter(records)

    def recent_spans(self, limit: int) -> list[SpanRecord]:
        """The ``limit`` most recently received spans, oldest first."""
        with self.lock:
            newest = [entry[1] for entry in itertools.islice(reversed(self._spans), limit)]
        newest.reverse()
        return newest

    def trace(self, trace_id: str) -> list[SpanRecord]:
        with self.lock:
            entry = self._traces.get(trace_id)
            return list(entry.spans) if entry is not None else []

    def units(self, recent: int, slowest: int) -> tuple[list[SpanRecord], list[SpanRecord]]:
        with self.lock:
            live = [u for u in self._units if u.trace_id in self._traces]
        newest = live[-recent:][::-1] if recent > 0 else []  # live[-0:] would be all of them
        return newest, heapq.nlargest(slowest, live, key=lambda r: r.end_ns - r.start_ns)

    # --- metrics ------------------------------------------------------------------------------
    def add_series(self, name: str, key: tuple[str, str], t: float, value: float) -> None:
        skey = (name, *key)
        series = self.series.get(skey)
        if series is None:
            if len(self.series) >= self.limits.max_series:
                self.counts["series_dropped"] += 1
                return
            series = self.series[skey] = collections.deque(maxlen=_SERIES_POINTS)
            self._series_names.add(name)
        series.append((t, value))
        if self.on_point is not None:
            self.on_point(name, key, t, value)

    def add_counter_rate(self, name: str, key: tuple[str, str], t: float, total: float) -> None:
        """A cumulative counter sample, kept as a per-second rate between consecutive samples.

        The last sample of each counter is kept in update order: past ``max_series`` counters, the
        one not updated for longest goes (a process that stopped reporting)."""
        ckey = (name, *key)
        previous = self._counters.pop(ckey, None)
        if previous is None and len(self._counters) >= self.limits.max_series:
            del self._counters[next(iter(self._counters))]
            self.counts["counters_evicted"] += 1
        self._counters[ckey] = (t, total)
        self._series_names.add(name)
        if previous is not None and t > previous[0] and total >= previous[1]:
            self.add_series(name, key, t, (total - previous[1]) / (t - previous[0]))

    def reported_for(self, agent: str, key: tuple[str, str], now: float) -> Reported:
        rep = self.reported.get((agent, key))
        if rep is None:
            if len(self.reported) >= self.limits.max_agents * 4:
                (old_agent, old_key), _ = self.reported.popitem(last=False)  # reported longest ago
                keys = self._reported_keys.get(old_agent)
                if keys is not None:
                    keys.discard(old_key)
                    if not keys:
                        del self._reported_keys[old_agent]
            rep = self.reported[(agent, key)] = Reported()
            self._reported_keys.setdefault(agent, set()).add(key)
        elif rep.at != now:
            self.reported.move_to_end((agent, key))
        self._agent_seen(agent, key, now)  # a reported agent is seen: an idle one is not aged out
        rep.at = now
        return rep

    def add_points(self, points: list[Point], apply: Callable[[Store, list[Point], float], None]) -> None:
        with self.lock:
            apply(self, points, time.time())
            self.counts["points_received"] += len(points)
            self._touch()

    # --- events and alerts --------------------------------------------------------------------
    def add_event(self, event: LogEvent, source: str, apply: Callable[[Store, LogEvent, str], bool]) -> None:
        with self.lock:
            self.counts["events_received"] += 1
            if apply(self, event, source):
                self._touch()

    def set_alert(self, alert: Alert) -> None:
        key = (alert.source, alert.rule, alert.agent)
        if alert.state == "firing":
            if key not in self.alerts and len(self.alerts) >= 1000:
                self.counts["alerts_dropped"] += 1
                return
            old = self.alerts.get(key)
            if old is not None:  # the earliest word on it (a gauge can arrive before the log record)
                alert.since = min(old.since, alert.since)
            self.alerts[key] = alert
        else:
            old = self.alerts.pop(key, None)
            if old is None and alert.state != "resolved":
                return
            if old is not None:
                alert.since = old.since
            if alert.state == "resolved":
                self.resolved.appendleft(alert)
        if self.on_alert is not None:
            self.on_alert(alert)

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"spans": len(self._spans), "traces": len(self._traces), "bytes": self.bytes,
                    "agents": len(self.agent_instances), "instances": len(self.instances),
                    "series": len(self.series), **self.counts}
