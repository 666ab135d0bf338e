"""What an alert rule's signal reads: one table from signal name to value.

The health loop hands the alert pipeline one :class:`TickView` per tick; process signals read the
process's resources, agent signals the agent's health, windowed signals the agent's window of the
rule's length. A stopped (or unknown) agent reads nothing, so what fired for it resolves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from .._metrics.windows import WindowStats
from .engine import AlertRule


class AgentSignals(Protocol):
    """What an agent signal reads of one agent's health (``_health.loop.AgentHealth`` is one)."""

    @property
    def state(self) -> str: ...
    @property
    def up(self) -> bool: ...
    @property
    def stuck_tasks(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def oldest_task_age(self) -> float: ...


@dataclasses.dataclass(frozen=True)
class TickView:
    """One health tick, as the alert rules see it."""

    agents: Mapping[str, AgentSignals]
    #: per agent, its windows by length (s)
    windows: Mapping[str, Mapping[float, WindowStats]]
    cpu: float | None
    memory: int | None


_PROCESS: Final[Mapping[str, Callable[[TickView], float | None]]] = {
    "cpu": lambda tick: tick.cpu,
    "memory": lambda tick: None if tick.memory is None else float(tick.memory),
}
_AGENT: Final[Mapping[str, Callable[[AgentSignals], float]]] = {
    "up": lambda h: 1.0 if h.up else 0.0,
    "unhealthy": lambda h: 1.0 if h.state == "unhealthy" else 0.0,
    "stuck_tasks": lambda h: float(h.stuck_tasks),
    "in_flight": lambda h: float(h.in_flight),
    "oldest_task_age": lambda h: h.oldest_task_age,
}
_WINDOWED: Final[Mapping[str, Callable[[WindowStats], float | None]]] = {
    "error_rate": lambda s: s.error_rate,
    "latency_p50": lambda s: s.p50,
    "latency_p95": lambda s: s.p95,
    "latency_p99": lambda s: s.p99,
    "throughput": lambda s: s.throughput,
    "tokens": lambda s: float(s.tokens),
}
#: counts: a window with no data yet reads 0, not "no value"
_ZERO_WITHOUT_DATA: Final = frozenset({"throughput", "tokens"})
#: the signals this table reads (a test keeps it equal to the engine's ``SIGNALS``)
READ_SIGNALS: Final = frozenset(_PROCESS) | frozenset(_AGENT) | frozenset(_WINDOWED)


def read_signal(tick: TickView, rule: AlertRule, agent: str | None) -> float | None:
    """The value of ``rule``'s signal for ``agent`` (None: the process) at this tick."""
    process = _PROCESS.get(rule.signal)
    if process is not None:
        return process(tick)
    health = tick.agents.get(agent or "")
    if health is None or health.state == "stopped":
        return None  # a stopped agent is not evaluated: what fired for it resolves
    of_agent = _AGENT.get(rule.signal)
    if of_agent is not None:
        return of_agent(health)
    windows = tick.windows.get(agent or "")
    stats = windows.get(rule.window) if windows is not None else None
    if stats is None:
        return 0.0 if rule.signal in _ZERO_WITHOUT_DATA else None
    of_window = _WINDOWED.get(rule.signal)
    return of_window(stats) if of_window is not None else None
