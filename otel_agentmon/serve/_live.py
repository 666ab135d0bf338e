"""Health and alert evaluation for received spans, and the dashboard's view of the swarm.

The package's own machinery runs here unchanged: received span ends feed a ``Deriver`` (windows,
per-agent summaries), a ``HealthLoop`` turns them into states on a clock and evaluates the alert
rules; its log records land in the store like any process's. Whether an agent is busy, idle,
stopped or down is serve's own judgement (``_lifecycle``: alive while a process that runs it keeps
reporting). Where a process reports an agent's health itself, that (fresher, authoritative) state
is what the view shows, as long as the process keeps reporting. An alert evaluated in the process
and in serve is one row (``_alert_episodes``).
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from opentelemetry import _logs
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan

from .._alerts.engine import AlertRule
from .._alerts.episodes import episodes, where
from .._alerts.notify import Dispatcher, Notifier
from .._core.guard import log_once
from .._health.lifecycle import Verdict
from .._health.loop import AgentHealth, HealthPolicy
from .._health.swarm import swarm_state
from .._health.wiring import health_and_alerts
from .._metrics.derive import Deriver
from .._names import semconv as sc
from .._records.records import SpanRecord
from ._ingest import SERVE_SOURCE, apply_event
from ._lifecycle import ServeLiveness
from ._otlp import LogEvent, Point
from ._store import Alert, Reported, Store, instance_key

_RANK: Final = {"stopped": -1, "healthy": 0, "degraded": 1, "unhealthy": 2}
_RESOLVED_SHOWN: Final = 50
_UTIL_WINDOW_S: Final = 30.0
_SERIES_SENT: Final = 180  # resource/throughput points per series in one state message


class _EventLogger(_logs.Logger):
    """The health loop's event logger: its records go straight into the store."""

    def __init__(self, sink: Callable[[LogEvent], None]) -> None:
        super().__init__("otel_agentmon.serve")
        self._sink = sink

    def emit(self, record: _logs.LogRecord | None = None, *, timestamp: int | None = None,
             observed_timestamp: int | None = None, context: Context | None = None,
             severity_number: _logs.SeverityNumber | None = None, severity_text: str | None = None,
             body: Any = None, attributes: Any = None, event_name: str | None = None,
             exception: BaseException | None = None) -> None:
        if event_name:
            self._sink(LogEvent(event_name, dict(attributes or {}), "" if body is None else str(body),
                                severity_text or "", time.time_ns(), "", "", {}))

    def enabled(self, *, context: Context | None = None, severity_number: _logs.SeverityNumber | None = None,
                event_name: str | None = None) -> bool:
        return True


class Evaluator:
    def __init__(self, store: Store, policy: HealthPolicy, rules: list[AlertRule], interval: float,
                 notifiers: Sequence[Notifier] = ()) -> None:
        self.store = store
        self.policy = policy
        self.deriver = Deriver()
        self._dispatcher = Dispatcher(list(notifiers))
        self._logger = _EventLogger(lambda event: store.add_event(event, SERVE_SOURCE, apply_event))
        self.liveness = ServeLiveness(store)
        # serve's own CPU and memory say nothing of the agents it watches: no pressure, no cpu/memory rules.
        self.loop = health_and_alerts(self.deriver, policy, rules, self._dispatcher, lambda: self._logger, interval,
                                      resources=lambda: (None, None), liveness=self.liveness)

    def feed(self, spans: Iterable[tuple[SpanRecord, ReadableSpan]]) -> None:
        for _, readable in spans:
            self.deriver.offer(False, readable)

    def heartbeat(self, agent: str) -> None:
        self.deriver.heartbeat(agent)

    def metrics_arrived(self, points: Sequence[Point]) -> None:
        """A metric export arrived: its process is reporting, and the agents it reports are known."""
        keys: set[tuple[str, str]] = set()
        agents: set[str] = set()
        for point in points:
            keys.add(instance_key(point.resource))
            agent = point.attrs.get(sc.GEN_AI_AGENT_NAME) if point.metric == sc.M_AGENT_UP else None
            if isinstance(agent, str):
                agents.add(agent)
        for key in keys:
            self.liveness.metrics_arrived(key)
        for agent in agents:
            self.deriver.heartbeat(agent)

    def stop(self) -> None:
        self.loop.stop()
        self.deriver.stop(time.monotonic() + 0.5)
        self._dispatcher.stop()


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _n(value: float) -> int:
    """A count for the page: 0 for what is not a finite number (a sum that overflowed)."""
    return int(value) if math.isfinite(value) else 0


def _span_json(r: SpanRecord) -> dict[str, Any]:
    return {"trace_id": r.trace_id, "span_id": r.span_id, "parent_id": r.parent_id, "name": r.name,
            "kind": r.kind, "agent": r.agent, "tool": r.tool, "model": r.model, "task_type": r.task_type,
            "service": r.service, "start": r.start_ns / 1e9, "duration": round(r.duration_s, 6),
            "error": r.error, "tokens": r.input_tokens + r.output_tokens}


def _merged_alerts(firing: list[Alert], resolved: list[Alert]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One row per alert episode of (rule, agent), wherever it was evaluated (the processes, serve)."""
    by: dict[tuple[str, str | None], list[Alert]] = collections.defaultdict(list)
    for alert in [*firing, *resolved]:
        by[(alert.rule, alert.agent)].append(alert)
    rows: list[dict[str, Any]] = []
    for items in by.values():
        transitions = [(a.since, a.source, True) for a in items]
        transitions += [(a.at, a.source, False) for a in items if a.state == "resolved"]
        for ep in episodes(transitions):
            end = math.inf if ep.end is None else ep.end
            members = [a for a in items if a.source in ep.sources and ep.start <= a.since <= end] or items
            latest = max([a for a in members if a.state == "firing"] or members, key=lambda a: a.at)
            rows.append({"rule": latest.rule, "agent": latest.agent, "severity": latest.severity,
                         "state": "firing" if ep.end is None else "resolved", "value": latest.value,
                         "threshold": latest.threshold,
                         "summary": next((a.summary for a in members if a.summary), ""),
                         "source": ", ".join(ep.sources), "sources": list(ep.sources), "where": where(ep.sources),
                         "since": ep.start, "at": max(a.at for a in members) if ep.end is None else ep.end})
    open_rows = sorted((r for r in rows if r["state"] == "firing"), key=lambda r: r["since"])
    closed = sorted((r for r in rows if r["state"] == "resolved"), key=lambda r: r["at"], reverse=True)
    return open_rows, closed[:_RESOLVED_SHOWN]


class View:
    """Builds the JSON state the dashboard renders (and ``/api/state`` returns)."""

    def __init__(self, store: Store, evaluator: Evaluator) -> None:
        self.store = store
        self.evaluator = evaluator
        self._busy: dict[str, collections.deque[tuple[float, float]]] = {}
        self._totals: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=_SERIES_SENT)
        self._started = time.time()

    def _stale_after(self) -> float:
        return max(3.0, self.evaluator.policy.heartbeat_timeout)

    def _utilisation(self, name: str, busy: float, now: float, instances: int) -> float | None:
        samples = self._busy.get(name)
        if samples is None:
            samples = self._busy[name] = collections.deque()
        samples.append((now, busy))
        while len(samples) > 2 and now - samples[0][0] > _UTIL_WINDOW_S:
            samples.popleft()
        t0, b0 = samples[0]
        if now - t0 < 0.5:
            return None
        return max(0.0, (busy - b0) / (now - t0) / max(1, instances))

    def _agent(self, name: str, derived: AgentHealth | None, verdict: Verdict | None, reports: list[Reported],
               busy: float | None, instances: list[str], now: float, mono: float) -> dict[str, Any]:
        fresh = [r for r in reports if mono - r.at <= self._stale_after()]
        stated = [r for r in fresh if r.state is not None and r.state != "stopped"]
        said_stopped = any(r.state == "stopped" for r in reports)
        # serve's judgement now (the health loop's last tick may be older than the last report)
        if verdict is None and derived is not None:
            verdict = derived.lifecycle, next((r for r in derived.reasons if r.startswith("down")), "")
        lifecycle, why = verdict if verdict is not None else ("idle", "")
        state: str
        if lifecycle == "stopped":
            state, source, reasons = "stopped", "reported" if said_stopped else "derived", [why] if why else []
        elif lifecycle == "down":
            others = [r for r in (derived.reasons if derived else ()) if not r.startswith("down")]
            state, reasons = "unhealthy", [r for r in (why, *others) if r]
            source = "reported" if any(r.up is False for r in fresh) else "derived"
        elif stated:
            worst = max(stated, key=lambda r: _RANK.get(r.state or "", 0))
            state, source, reasons = worst.state or "healthy", "reported", list(worst.reasons)
        elif derived is not None and derived.lifecycle != "down":
            state, source, reasons = derived.state, "derived", list(derived.reasons)
        elif derived is not None:  # judged down at the last tick, alive since: its other reasons only
            reasons = [r for r in derived.reasons if not r.startswith("down")]
            state, source = "degraded" if reasons else "healthy", "derived"
        else:
            state, source, reasons = "healthy", "derived", []
        up = lifecycle in ("busy", "idle")
        if fresh and any(r.at for r in fresh):
            in_flight = sum(r.in_flight for r in fresh)
            oldest = max(r.oldest_age for r in fresh)
            stuck = sum(r.stuck for r in fresh)
        else:
            in_flight = float(derived.in_flight) if derived is not None else 0.0
            oldest = derived.oldest_task_age if derived is not None else 0.0
            stuck = float(derived.stuck_tasks) if derived is not None else 0.0
        stats = derived.window if derived is not None else None
        count = stats.count if stats is not None else 0
        util = None if busy is None else self._utilisation(name, busy, mono, max(1, len(instances)))
        return {
            "name": name, "state": state, "lifecycle": lifecycle, "source": source, "up": up, "reasons": reasons,
            "in_flight": _n(in_flight), "oldest_age": _r(oldest, 2) or 0.0, "stuck": _n(stuck),
            "throughput": _r(stats.throughput if stats else None), "p50": _r(stats.p50 if stats else None),
            "p95": _r(stats.p95 if stats else None), "error_rate": _r(stats.error_rate if stats else None),
            "tasks": count, "tokens_per_task": round(stats.tokens / count, 1) if stats and count else None,
            "utilisation": _r(util, 3), "instances": instances[:8], "window": stats.window if stats else None,
        }

    def state(self) -> dict[str, Any]:
        store, now, mono = self.store, time.time(), time.monotonic()
        health = self.evaluator.loop.current
        summaries = self.evaluator.deriver.agents()
        with store.lock:
            names = set(store.agent_instances)  # bounded (and aged) by the store
            reports: dict[str, list[Reported]] = collections.defaultdict(list)
            for (agent, _), rep in store.reported.items():
                reports[agent].append(rep)
            instances = {a: [f"{k[0]}/{k[1][:8]}" if k[1] else k[0] for k in sorted(seen, key=seen.__getitem__)]
                         for a, seen in store.agent_instances.items()}
            alerts, resolved = _merged_alerts(list(store.alerts.values()), list(store.resolved))
            timeout = self.evaluator.policy.heartbeat_timeout
            verdicts = {name: self.evaluator.liveness.current(name, timeout) for name in names}
            events = list(store.events)[:60]
            resources = self._resources()
            stats = store.stats()
        agents = []
        for name in sorted(names):
            summary = summaries.get(name)
            try:  # one agent's odd numbers must not take the page down
                agents.append(self._agent(name, health.agents.get(name), verdicts.get(name), reports.get(name, []),
                                          summary.busy_seconds if summary is not None else None,
                                          instances.get(name, []), now, mono))
            except Exception:  # noqa: BLE001
                log_once(logging.WARNING, "serve:agent-row", "dashboard row of agent %r failed; left out", name,
                         exc_info=True)
        self.prune(names)
        return {"now": now, "uptime": round(now - self._started, 1), "swarm": self._swarm(agents, stats, now),
                "agents": agents, "alerts": {"firing": alerts, "resolved": resolved}, "events": events,
                "resources": resources, "store": stats, "limits": {
                    "retention_s": store.limits.retention_s, "max_spans": store.limits.max_spans,
                    "max_memory_bytes": store.limits.max_memory_bytes}}

    def prune(self, names: set[str] | None = None) -> None:
        """Let go of agents stopped for longer than the grace period, and of those the store let go
        of (evicted past ``max_agents``, or aged out)."""
        expired = self.evaluator.liveness.expired(self.evaluator.policy.stopped_grace)
        with self.store.lock:
            for name in expired:
                self.store.forget_agent(name)
            if names is None:
                names = set(self.store.agent_instances)
        names = names - set(expired)
        for gone in set(self._busy) - names:
            self._busy.pop(gone, None)
        for gone in set(self.evaluator.loop.current.agents) - names:
            self.evaluator.deriver.forget(gone)
            self.evaluator.loop.forget(gone)

    def _swarm(self, agents: list[dict[str, Any]], stats: dict[str, int], now: float) -> dict[str, Any]:
        counts = collections.Counter(a["state"] for a in agents)
        state = swarm_state(a["state"] for a in agents)
        tasks = sum(a["tasks"] for a in agents)
        failed = sum(round((a["error_rate"] or 0) * a["tasks"]) for a in agents)
        throughput = sum(a["throughput"] or 0 for a in agents)
        spans = stats.get("spans_received", 0)
        self._totals.append((now, spans, 0))
        t0, s0, _ = self._totals[0]
        span_rate = (spans - s0) / (now - t0) if now - t0 > 0.5 else 0.0
        return {"state": state, "agents": len(agents), "counts": dict(counts), "throughput": round(throughput, 3),
                "error_rate": round(failed / tasks, 4) if tasks else None, "span_rate": round(span_rate, 1),
                "down": sum(a["lifecycle"] == "down" for a in agents), "stopped": counts["stopped"],
                "in_flight": sum(a["in_flight"] for a in agents)}

    def _resources(self) -> list[dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for (series, service, instance), points in self.store.series.items():
            entry = out.setdefault((service, instance), {"service": service, "instance": instance[:8]})
            entry[series] = [[round(t, 2), round(v, 4)] for t, v in list(points)[-_SERIES_SENT:]
                             if math.isfinite(v)]
        return sorted(out.values(), key=lambda e: (e["service"], e["instance"]))

    def traces(self, recent: int, slowest: int) -> dict[str, Any]:
        rec, slow = self.store.units(recent, slowest)
        return {"recent": [_span_json(r) for r in rec], "slowest": [_span_json(r) for r in slow]}
