"""Health per agent and per swarm, computed on a clock; each tick also hands the alert pipeline
(``_alerts.evaluator``) its view of the tick.

State rules (``HealthPolicy`` holds every threshold; the lifecycle — busy, idle, stopped, down —
is decided by ``_lifecycle``):

* **stopped** — the agent's process shut down cleanly or the agent was retired; not unhealthy, not
  counted in the swarm's state, no alert rule evaluated for it.
* **unhealthy** — the agent is *down* (its process stopped reporting without saying so, or it
  missed heartbeats it promised), or its error rate over ``window`` is at least
  ``unhealthy_error_rate`` (with at least ``min_tasks`` tasks), or a *critical* health check of
  it fails.
* **degraded** — a task has run longer than ``stuck_after`` (it is *stuck*, signalled while it
  still runs), or the error rate is at least ``degraded_error_rate``, or p95 task latency is above
  ``latency_p95_limit``, or a non-critical check fails, or the process is under resource pressure
  (CPU above ``cpu_limit`` or memory above ``memory_limit_bytes``).
* **healthy** — otherwise.

The swarm is unhealthy when at least half of its (not stopped) agents are, degraded when any is
neither healthy nor stopped, healthy otherwise (``swarm.swarm_state``). Error-rate states have hysteresis: an agent
leaves a state only once its rate is 20 % below the threshold that put it there. Every change is
emitted as a log record (``event_name`` ``agentmon.health.changed``) and as a span event on the
agent's running task spans.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeAlias

from opentelemetry import _logs, trace
from opentelemetry._logs import SeverityNumber

from .._alerts.engine import AlertEngine, AlertRule
from .._alerts.evaluator import AlertPipeline
from .._alerts.signals import TickView
from .._core.events import emit_event
from .._core.guard import report_internal_error
from .._metrics.derive import AgentView, Deriver
from .._metrics.windows import WindowStats
from .._names import semconv as sc
from .checks import CheckResult, HealthChecks
from .lifecycle import Lifecycle, Liveness
from .swarm import swarm_state

State: TypeAlias = Literal["healthy", "degraded", "unhealthy", "stopped"]
STATES: Final[tuple[State, ...]] = ("healthy", "degraded", "unhealthy", "stopped")
_SEVERITY: Final = {"healthy": SeverityNumber.INFO, "degraded": SeverityNumber.WARN,
                    "unhealthy": SeverityNumber.ERROR, "stopped": SeverityNumber.INFO}


@dataclasses.dataclass(frozen=True)
class HealthPolicy:
    """Thresholds of the health rules (see the module docstring)."""

    heartbeat_timeout: float = 10.0
    stuck_after: float = 60.0
    stuck_after_by_type: Mapping[str, float] = dataclasses.field(default_factory=dict[str, float])
    window: float = 60.0
    min_tasks: int = 5
    degraded_error_rate: float = 0.1
    unhealthy_error_rate: float = 0.5
    latency_p95_limit: float | None = None
    cpu_limit: float | None = 0.95
    memory_limit_bytes: int | None = None
    #: how long a stopped agent is still shown (as stopped) before it is let go
    stopped_grace: float = 300.0

    def stuck_limit(self, task_type: str) -> float:
        return self.stuck_after_by_type.get(task_type, self.stuck_after)


@dataclasses.dataclass(frozen=True)
class AgentHealth:
    """The health of one agent at the last evaluation."""

    agent: str
    state: State
    up: bool
    reasons: tuple[str, ...]
    in_flight: int
    oldest_task_age: float
    stuck_tasks: int
    window: WindowStats | None
    checks: tuple[CheckResult, ...] = ()
    lifecycle: Lifecycle = "idle"


@dataclasses.dataclass(frozen=True)
class SwarmHealth:
    state: State
    agents: Mapping[str, AgentHealth]
    cpu: float | None
    memory_bytes: int | None
    firing: tuple[tuple[AlertRule, str | None, float | None], ...]


class HealthLoop:
    """Ticks every ``interval`` s: health, stuck tasks, checks; then hands the tick to the alert pipeline."""

    def __init__(self, deriver: Deriver, policy: HealthPolicy, alerts: AlertPipeline,
                 event_logger: Callable[[], _logs.Logger], interval: float,
                 resources: Callable[[], tuple[float | None, int | None]] | None = None,
                 liveness: Liveness | None = None) -> None:
        self._deriver = deriver
        #: decides busy / idle / stopped / down (agentmon serve passes its own rules)
        self.liveness = liveness or Liveness()
        #: (CPU ratio, memory bytes) of the monitored process; ``agentmon serve`` monitors others
        self._read_resources = resources or self._own_resources
        self.policy = policy
        #: evaluates the alert rules on each tick, emits and dispatches their transitions
        self.alerts = alerts
        self.checks = HealthChecks()
        self._logger = event_logger
        self._interval = interval
        self._windows = {policy.window} | alerts.windows()
        deriver.window_lengths = set(self._windows)
        self._states: dict[str, State] = {}
        self._stuck_seen: set[int] = set()
        self.current = SwarmHealth("healthy", {}, None, None, ())
        self.last_tick = time.monotonic()
        self._proc: Any = None
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="agentmon-health", daemon=True)
        self._thread.start()

    @property
    def engine(self) -> AlertEngine:
        """The alert rules and their state (the pipeline's engine)."""
        return self.alerts.engine

    # --- loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive anything
                report_internal_error("health loop")

    def stop(self, wait: float = 0.5) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(wait)  # a tick in progress finishes before the providers shut down
        self.checks.stop()

    def forget(self, agent: str) -> None:
        """Drop what the loop remembers of an agent that is gone (its last state)."""
        self._states.pop(agent, None)

    def retire(self, agent: str) -> None:
        """The agent stopped on purpose: it is shown stopped (not down) for the grace period."""
        self.liveness.retire(agent)

    def finish(self) -> SwarmHealth:
        """A clean shutdown: every agent is stopped; evaluate once more so that the stopped states
        (``agentmon.health.changed`` records, gauges) and resolved alerts go out with the last export."""
        self.liveness.shut_down()
        return self.tick()

    def restart_after_fork(self) -> None:
        """Threads do not survive fork: start this process's own loop (and forget the parent's)."""
        self._states.clear()
        self._stuck_seen.clear()
        self.liveness.after_fork()
        self.alerts.after_fork()
        self.checks = HealthChecks.copy_of(self.checks)
        self._proc = None
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="agentmon-health", daemon=True)
        self._thread.start()

    def alert_states(self) -> list[tuple[str, str, str | None, bool]]:
        """(rule, severity, agent, firing) for every alert instance seen so far."""
        return self.alerts.states()

    def tick(self) -> SwarmHealth:
        # One evaluation at a time: the loop thread and evaluate_health() must not interleave,
        # or notifiers could see "resolved" before "firing".
        with self._tick_lock:
            return self._tick()

    def _tick(self) -> SwarmHealth:
        now = time.monotonic()
        self.last_tick = now
        if not self._stop.is_set():  # a stopped loop starts no check (its runners are gone)
            self.checks.run_due(now)
        all_views = self._deriver.health_view(self._windows)
        p = self.policy
        verdicts = self.liveness.judge(all_views, p.heartbeat_timeout, p.stopped_grace)
        for gone in {v.name for v in all_views} - verdicts.keys():
            self._deriver.forget(gone)  # stopped longer than the grace period: let go
            self._states.pop(gone, None)
        views = [v for v in all_views if v.name in verdicts]
        by_name = {v.name: v for v in views}
        cpu, memory = self._read_resources()
        checks = self.checks.results()
        agents = {name: self._agent_health(name, by_name.get(name), life, why, cpu, memory, checks)
                  for name, (life, why) in verdicts.items()}
        for name, health in agents.items():
            self._transition(health, by_name.get(name))
        self._flag_stuck([v for v in views if agents[v.name].state != "stopped"])
        self.alerts.evaluate(TickView(agents, {v.name: v.windows for v in views}, cpu, memory), now)
        swarm = swarm_state(h.state for h in agents.values())
        self.current = SwarmHealth(swarm, agents, cpu, memory, self.alerts.firing())
        return self.current

    def _own_resources(self) -> tuple[float | None, int | None]:
        try:
            import psutil

            if self._proc is None or self._proc.pid != os.getpid():
                self._proc = psutil.Process()
                self._proc.cpu_percent(None)  # the first call primes the counter
            cpu = self._proc.cpu_percent(None) / 100.0 / (psutil.cpu_count() or 1)
            return cpu, int(self._proc.memory_info().rss)
        except Exception:  # noqa: BLE001 - resource pressure is optional evidence
            return None, None

    def _agent_health(self, name: str, view: AgentView | None, lifecycle: Lifecycle, why: str,
                      cpu: float | None, memory: int | None, checks: list[CheckResult]) -> AgentHealth:
        p = self.policy
        if view is None or lifecycle == "stopped":
            # Not judged any more: no error rate, checks or pressure; what it was doing is kept.
            running = view.running if view is not None else []
            return AgentHealth(name, "stopped", False, (why,) if why else (), len(running),
                               max((age for _, age, _ in running), default=0.0), 0,
                               view.windows.get(p.window) if view is not None else None, (), "stopped")
        reasons_bad: list[str] = []
        reasons_degraded: list[str] = []
        # A task still running counts as activity: a hung agent shows up as stuck, not down.
        up = lifecycle != "down"
        if not up:
            reasons_bad.append(why or "down")
        stats = view.windows.get(p.window)
        if stats is not None and stats.error_rate is not None and stats.count >= p.min_tasks:
            # Hysteresis: leaving a state takes the rate 20 % below the threshold that entered it,
            # so an agent hovering at a threshold does not flap.
            previous = self._states.get(view.name, "healthy")
            bad = p.unhealthy_error_rate * (0.8 if previous == "unhealthy" else 1.0)
            degraded = p.degraded_error_rate * (0.8 if previous != "healthy" else 1.0)
            if stats.error_rate >= bad:
                reasons_bad.append(f"error rate {stats.error_rate:.0%} over {p.window:g}s")
            elif stats.error_rate >= degraded:
                reasons_degraded.append(f"error rate {stats.error_rate:.0%} over {p.window:g}s")
        if p.latency_p95_limit is not None and stats is not None and stats.p95 is not None \
                and stats.p95 > p.latency_p95_limit:
            reasons_degraded.append(f"p95 latency {stats.p95:.2f}s")
        stuck = [age for task_type, age, _ in view.running if age > p.stuck_limit(task_type)]
        if stuck:
            reasons_degraded.append(f"{len(stuck)} stuck task(s), oldest {max(stuck):.1f}s")
        mine = tuple(c for c in checks if c.agent in (None, view.name))
        for c in mine:
            if not c.ok:
                (reasons_bad if c.critical else reasons_degraded).append(f"check {c.name}: {c.detail}")
        if p.cpu_limit is not None and cpu is not None and cpu > p.cpu_limit:
            reasons_degraded.append(f"process CPU {cpu:.0%}")
        if p.memory_limit_bytes is not None and memory is not None and memory > p.memory_limit_bytes:
            reasons_degraded.append(f"process memory {memory / 1e6:.0f} MB")
        state: State = "unhealthy" if reasons_bad else "degraded" if reasons_degraded else "healthy"
        return AgentHealth(view.name, state, up, tuple(reasons_bad + reasons_degraded), len(view.running),
                           max((age for _, age, _ in view.running), default=0.0), len(stuck), stats, mine,
                           lifecycle)

    # --- outputs ------------------------------------------------------------------------------
    def _transition(self, health: AgentHealth, view: AgentView | None) -> None:
        previous = self._states.get(health.agent, "healthy")
        self._states[health.agent] = health.state
        if previous == health.state:
            return
        attrs: dict[str, Any] = {sc.GEN_AI_AGENT_NAME: health.agent, sc.AGENTMON_HEALTH_STATE: health.state,
                                 sc.AGENTMON_HEALTH_PREVIOUS_STATE: previous,
                                 sc.AGENTMON_HEALTH_REASONS: list(health.reasons) or ["recovered"],
                                 sc.AGENTMON_AGENT_LIFECYCLE: health.lifecycle}
        self._emit(sc.EVENT_HEALTH_CHANGED, attrs, _SEVERITY[health.state],
                   f"agent {health.agent} is {health.state}")
        for _, _, span in view.running if view is not None else ():
            if isinstance(span, trace.Span) and span.is_recording():
                span.add_event(sc.EVENT_HEALTH_CHANGED, attrs)

    def _flag_stuck(self, views: list[AgentView]) -> None:
        live: set[int] = set()
        for view in views:
            for task_type, age, span in view.running:
                span_id = span.context.span_id
                live.add(span_id)
                if age <= self.policy.stuck_limit(task_type) or span_id in self._stuck_seen:
                    continue
                self._stuck_seen.add(span_id)
                attrs: dict[str, Any] = {sc.GEN_AI_AGENT_NAME: view.name, sc.AGENTMON_TASK_TYPE: task_type,
                                         sc.AGENTMON_TASK_AGE: round(age, 3)}
                task_id = (span.attributes or {}).get(sc.AGENTMON_TASK_ID)
                if task_id is not None:
                    attrs[sc.AGENTMON_TASK_ID] = task_id
                if isinstance(span, trace.Span) and span.is_recording():
                    span.add_event(sc.EVENT_TASK_STUCK, attrs)
                    span.set_attribute(sc.EVENT_TASK_STUCK, True)
                self._emit(sc.EVENT_TASK_STUCK, attrs, SeverityNumber.WARN,
                           f"task {task_type} of {view.name} running for {age:.1f}s",
                           context=trace.set_span_in_context(trace.NonRecordingSpan(span.context)))
        self._stuck_seen &= live  # bounded: forget tasks that ended

    def _emit(self, name: str, attrs: dict[str, Any], severity: SeverityNumber, body: str,
              context: Any = None) -> None:
        emit_event(self._logger, name, attrs, severity, body, context)
