"""What received metrics and log records mean to serve: resource series, and what processes report.

Resource use comes from the standard process/system metrics (any SDK's system-metrics
instrumentation); an agent's own health, in-flight tasks and alerts come from what our SDK
exports (``agentmon.*`` gauges and the ``agentmon.health.changed`` / ``agentmon.alert`` /
``agentmon.task.stuck`` log records). Called with the store's lock held.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Mapping
from typing import Final

from .._names import semconv as sc
from ._otlp import SCALAR, LogEvent, Point
from ._store import Alert, Store, instance_key

EVENT_HEALTH: Final = sc.EVENT_HEALTH_CHANGED
EVENT_ALERT: Final = sc.EVENT_ALERT
EVENT_STUCK: Final = sc.EVENT_TASK_STUCK
SERVE_SOURCE: Final = "serve"
#: resource metrics kept as series: metric name -> series name (summed over the point attributes)
_GAUGES: Final = {sc.PROCESS_CPU_UTILIZATION: "cpu", sc.PROCESS_MEMORY_USAGE: "memory"}
_DIRECTIONS: Final = {"receive": "net_rx", "transmit": "net_tx"}
_PER_AGENT: Final = frozenset({sc.M_AGENT_UP, sc.M_AGENT_HEALTH, sc.M_TASKS_IN_FLIGHT, sc.M_TASK_OLDEST_AGE,
                               sc.M_TASKS_STUCK})
#: the metrics serve reads (the points of any other metric are not decoded)
KEPT_METRICS: Final = frozenset({*_GAUGES, sc.SYSTEM_NETWORK_IO, *_PER_AGENT, sc.M_ALERT_FIRING})


def apply_points(store: Store, points: list[Point], now: float) -> None:
    mono = time.monotonic()
    sums: dict[tuple[str, tuple[str, str]], float] = collections.defaultdict(float)
    per_agent: dict[tuple[str, str, tuple[str, str]], float] = collections.defaultdict(float)
    resources: dict[tuple[str, str], Mapping[str, SCALAR]] = {}
    for point in points:
        key = instance_key(point.resource)
        resources[key] = point.resource
        name = point.metric
        if name in _GAUGES:
            sums[(_GAUGES[name], key)] += point.value
        elif name == sc.SYSTEM_NETWORK_IO:
            direction = point.attrs.get(sc.NETWORK_IO_DIRECTION, point.attrs.get(sc.NETWORK_IO_DIRECTION_LEGACY))
            series = _DIRECTIONS.get(str(direction))
            if series is not None:
                sums[(series, key)] += point.value
        elif name in _PER_AGENT:
            agent = point.attrs.get(sc.GEN_AI_AGENT_NAME)
            if not isinstance(agent, str):
                continue
            if name == sc.M_AGENT_HEALTH:
                if point.value >= 1:  # the current state (1); value: when it was observed
                    state_key = (name + "=" + str(point.attrs.get(sc.AGENTMON_HEALTH_STATE)), agent, key)
                    per_agent[state_key] = max(per_agent.get(state_key, 0), point.time_ns)
            else:
                per_agent[(name, agent, key)] += point.value
        elif name == sc.M_ALERT_FIRING:
            _alert_gauge(store, point, key, now)
    for resource in resources.values():
        store.instance(dict(resource), now).metric_batches += 1
    for (series, key), value in sums.items():
        if series.startswith("net_"):
            store.add_counter_rate(series, key, now, value)
        else:
            store.add_series(series, key, now, value)
    for (name, agent, key), value in per_agent.items():
        rep = store.reported_for(agent, key, mono)
        if name == sc.M_AGENT_UP:
            rep.up = value >= 1
        elif name.startswith(sc.M_AGENT_HEALTH + "="):
            state, observed_ns = name.split("=", 1)[1], int(value)
            if observed_ns < rep.state_ns:
                continue  # older than what a health event already said: exports cross on the wire
            if state != rep.state:
                rep.reasons = ()
            rep.state, rep.state_ns = state, observed_ns
        elif name == sc.M_TASKS_IN_FLIGHT:
            rep.in_flight = value
        elif name == sc.M_TASK_OLDEST_AGE:
            rep.oldest_age = value
        elif name == sc.M_TASKS_STUCK:
            rep.stuck = value


def _alert_gauge(store: Store, point: Point, key: tuple[str, str], now: float) -> None:
    """``agentmon.alert.firing``: catches alerts that fired before serve started listening."""
    rule = point.attrs.get(sc.AGENTMON_ALERT_RULE)
    if not isinstance(rule, str):
        return
    agent = point.attrs.get(sc.GEN_AI_AGENT_NAME)
    agent_name = agent if isinstance(agent, str) else None
    source = _source(key)
    if (source, rule, agent_name) in store.alerts_by_event:
        return  # its log records say when it fires and resolves, in order
    current = store.alerts.get((source, rule, agent_name))
    # When the process read the gauge, not when it arrived: metrics and logs are exported apart, and
    # a gauge dated on arrival can land after the log record of its own episode's resolution.
    at = point.time_ns / 1e9 if 0 < point.time_ns / 1e9 <= now else now
    if point.value >= 1 and current is None:
        store.set_alert(Alert(rule, agent_name, str(point.attrs.get(sc.AGENTMON_ALERT_SEVERITY, "warning")),
                              "firing", None, None, "", source, at, at))
    elif point.value < 1 and current is not None:
        store.set_alert(Alert(rule, agent_name, current.severity, "resolved", None, current.threshold,
                              current.summary, source, max(at, current.since), max(at, current.since)))


def _source(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1][:8]}" if key[1] else key[0]


def _float(value: object) -> float | None:
    """A finite number, or None (NaN and infinities have no JSON spelling the dashboard can read)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def apply_event(store: Store, event: LogEvent, source: str) -> bool:
    """Interpret one event; returns True when it changed what the dashboard shows."""
    attrs = event.attrs
    agent = attrs.get(sc.GEN_AI_AGENT_NAME)
    agent_name = agent if isinstance(agent, str) else None
    at = event.time_ns / 1e9 if event.time_ns else time.time()
    key = instance_key(event.resource)
    origin = source if source == SERVE_SOURCE else _source(key)
    if event.event_name == EVENT_HEALTH and agent_name is not None:
        state = str(attrs.get(sc.AGENTMON_HEALTH_STATE, ""))
        reasons = attrs.get(sc.AGENTMON_HEALTH_REASONS)
        reason_list = tuple(str(r) for r in reasons) if isinstance(reasons, list) else ()
        if source == SERVE_SOURCE:
            if any(r.state is not None for r in store.reports_of(agent_name)):
                return False  # the process reports this agent's health itself: that state is shown
        else:
            rep = store.reported_for(agent_name, key, time.monotonic())
            if event.time_ns >= rep.state_ns:
                rep.state, rep.state_ns, rep.reasons = state, event.time_ns, reason_list
        store.events.appendleft({"t": at, "kind": "health", "agent": agent_name, "state": state,
                                 "previous": str(attrs.get(sc.AGENTMON_HEALTH_PREVIOUS_STATE, "")),
                                 "text": "; ".join(reason_list), "source": origin})
        return True
    if event.event_name == EVENT_ALERT:
        rule = attrs.get(sc.AGENTMON_ALERT_RULE)
        alert_state = attrs.get(sc.AGENTMON_ALERT_STATE)
        if not isinstance(rule, str) or not isinstance(alert_state, str):
            return False
        state = alert_state
        if len(store.alerts_by_event) >= 10_000:
            store.alerts_by_event.clear()
        store.alerts_by_event.add((origin, rule, agent_name))
        summary = event.body.split(": ", 1)[1] if ": " in event.body else ""
        severity = str(attrs.get(sc.AGENTMON_ALERT_SEVERITY, "warning"))
        store.set_alert(Alert(rule, agent_name, severity, state, _float(attrs.get(sc.AGENTMON_ALERT_VALUE)),
                              _float(attrs.get(sc.AGENTMON_ALERT_THRESHOLD)), summary, origin, at, at))
        if state in ("firing", "resolved"):
            store.events.appendleft({"t": at, "kind": "alert", "agent": agent_name, "state": state,
                                     "rule": rule, "severity": severity, "text": summary, "source": origin})
        return True
    if event.event_name == EVENT_STUCK:
        store.events.appendleft({"t": at, "kind": "stuck", "agent": agent_name, "state": "stuck",
                                 "text": event.body, "source": origin})
        return True
    return False
