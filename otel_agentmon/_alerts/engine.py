"""Alert rules and their evaluation: inactive -> pending -> firing -> resolved, like Prometheus.

A rule compares one health signal of each agent (or of the process) with a threshold. It fires
after the condition has held for ``for_`` seconds and, with hysteresis, resolves only once the
value is back past ``resolve`` (default: the threshold itself). Evaluation runs on the health
loop's tick, reading precomputed signals, so its cost does not depend on the span rate.
"""

from __future__ import annotations

import dataclasses
import operator
import time
from collections.abc import Callable, Mapping
from typing import Final, Literal, TypeAlias

Signal: TypeAlias = Literal[
    "up", "error_rate", "latency_p50", "latency_p95", "latency_p99", "throughput", "stuck_tasks",
    "in_flight", "oldest_task_age", "tokens", "unhealthy", "cpu", "memory",
]
SIGNALS: Final[frozenset[str]] = frozenset(Signal.__args__)  # type: ignore[attr-defined]  # a Literal alias has __args__ at runtime
#: Signals measured for the whole process rather than per agent.
PROCESS_SIGNALS: Final = frozenset({"cpu", "memory"})
#: Signals computed over a sliding window (the rule's ``window``).
WINDOWED_SIGNALS: Final = frozenset({"error_rate", "latency_p50", "latency_p95", "latency_p99", "throughput",
                                     "tokens"})
Op: TypeAlias = Literal[">", ">=", "<", "<="]
_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
State: TypeAlias = Literal["inactive", "pending", "firing", "resolved"]


@dataclasses.dataclass(frozen=True)
class AlertRule:
    """One threshold rule. ``agent="*"`` makes one alert instance per agent."""

    name: str
    signal: Signal
    op: Op
    threshold: float
    for_: float = 0.0
    resolve: float | None = None
    window: float = 60.0
    agent: str = "*"
    severity: str = "warning"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict[str, str])
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict[str, str])

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"alert rule name {self.name!r}: use letters, digits, '_' or '-'")
        if self.signal not in SIGNALS:
            raise ValueError(f"rule {self.name}: unknown signal {self.signal!r}; one of {sorted(SIGNALS)}")
        if self.op not in _OPS:
            raise ValueError(f"rule {self.name}: op must be one of {sorted(_OPS)}")
        if self.for_ < 0 or self.window <= 0:
            raise ValueError(f"rule {self.name}: 'for' must be >= 0 and 'window' > 0")
        if self.resolve is not None and _OPS[self.op](self.resolve, self.threshold):
            raise ValueError(f"rule {self.name}: resolve threshold must be on the other side of (or at) "
                             f"the firing threshold")

    def firing_condition(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def still_firing(self, value: float) -> bool:
        """Hysteresis: a firing alert stays firing until the value passes ``resolve``."""
        if self.resolve is None:
            return self.firing_condition(value)
        return not _past_resolve(self.op, value, self.resolve)


def _past_resolve(op: str, value: float, limit: float) -> bool:
    return value <= limit if op in (">", ">=") else value >= limit


@dataclasses.dataclass(frozen=True)
class AlertEvent:
    """A state transition of one alert instance (what notifiers receive)."""

    rule: AlertRule
    agent: str | None
    state: State  # the new state; "inactive" only when a pending alert's condition cleared
    previous: State
    value: float | None
    at: float  # time.time() of the transition
    active_since: float | None  # time.time() the condition started holding

    @property
    def labels(self) -> dict[str, str]:
        labels = {"alertname": self.rule.name, "severity": self.rule.severity, **self.rule.labels}
        if self.agent is not None:
            labels["agent"] = self.agent
        return labels

    @property
    def fingerprint(self) -> str:
        return "|".join(f"{k}={v}" for k, v in sorted(self.labels.items()))

    def render(self, text: str) -> str:
        """Fill ``{agent}``, ``{value}``, ``{threshold}`` placeholders of an annotation."""
        try:
            return text.format(agent=self.agent or "", value=_fmt(self.value), threshold=_fmt(self.rule.threshold),
                               rule=self.rule.name)
        except (KeyError, IndexError, ValueError):
            return text


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


@dataclasses.dataclass
class _Instance:
    state: State = "inactive"
    since: float | None = None  # monotonic time the condition started holding
    since_wall: float | None = None
    value: float | None = None


SignalReader = Callable[[AlertRule, str | None], float | None]


class AlertEngine:
    """Holds every alert instance's state; ``evaluate`` returns the transitions of one tick."""

    def __init__(self, rules: list[AlertRule]) -> None:
        names = [r.name for r in rules]
        if len(names) != len(set(names)):
            raise ValueError("alert rule names must be unique")
        self.rules = list(rules)
        self._instances: dict[tuple[str, str | None], _Instance] = {}

    def windows(self) -> set[float]:
        return {r.window for r in self.rules if r.signal in WINDOWED_SIGNALS}

    def evaluate(self, agents: list[str], read: SignalReader, now: float | None = None) -> list[AlertEvent]:
        mono = time.monotonic() if now is None else now
        wall = time.time()
        events: list[AlertEvent] = []
        for rule in self.rules:
            if rule.signal in PROCESS_SIGNALS:
                targets: list[str | None] = [None]
            elif rule.agent == "*":
                targets = list(agents)
            else:
                targets = [rule.agent]
            for agent in targets:
                inst = self._instances.setdefault((rule.name, agent), _Instance())
                value = read(rule, agent)
                event = self._step(rule, agent, inst, value, mono, wall)
                if event is not None:
                    events.append(event)
            if rule.agent == "*" and rule.signal not in PROCESS_SIGNALS:
                events.extend(self._retire(rule, set(targets), wall))
        return events

    def _retire(self, rule: AlertRule, present: set[str | None], wall: float) -> list[AlertEvent]:
        """Agents no longer tracked (forgotten): resolve what fired for them and drop the state."""
        events = []
        for key in [k for k in self._instances if k[0] == rule.name and k[1] not in present]:
            inst = self._instances.pop(key)
            if inst.state == "firing":
                events.append(AlertEvent(rule, key[1], "resolved", "firing", None, wall, inst.since_wall))
        return events

    def _step(self, rule: AlertRule, agent: str | None, inst: _Instance, value: float | None, mono: float,
              wall: float) -> AlertEvent | None:
        inst.value = value
        previous = inst.state
        holds = value is not None and rule.firing_condition(value)
        if inst.state in ("inactive", "resolved"):
            if not holds:
                inst.state = "inactive"
                return None
            inst.since, inst.since_wall = mono, wall
            inst.state = "firing" if rule.for_ <= 0 else "pending"
        elif inst.state == "pending":
            if not holds:
                inst.state, inst.since, inst.since_wall = "inactive", None, None
                return AlertEvent(rule, agent, "inactive", previous, value, wall, None)
            if mono - (inst.since or mono) >= rule.for_:
                inst.state = "firing"
        elif inst.state == "firing":
            if value is None or not rule.still_firing(value):
                inst.state = "resolved"
                event = AlertEvent(rule, agent, "resolved", previous, value, wall, inst.since_wall)
                inst.since, inst.since_wall = None, None
                return event
            return None
        if inst.state != previous:
            return AlertEvent(rule, agent, inst.state, previous, value, wall, inst.since_wall)
        return None

    def firing(self) -> list[tuple[AlertRule, str | None, float | None]]:
        """Every alert instance currently firing, with its last value."""
        by_name = {r.name: r for r in self.rules}
        return [(by_name[name], agent, inst.value) for (name, agent), inst in self._instances.items()
                if inst.state == "firing" and name in by_name]

    def states(self) -> dict[tuple[str, str | None], State]:
        return {key: inst.state for key, inst in self._instances.items()}
