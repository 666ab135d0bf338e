"""The alert pipeline: evaluate the rules on each health tick, emit the transitions as
``agentmon.alert`` log records and hand them to the notifiers.

The health loop computes states and calls :meth:`AlertPipeline.evaluate` once per tick with the
tick's :class:`~._alerts.signals.TickView`; which value a signal reads is decided by
``signals.read_signal``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import _logs
from opentelemetry._logs import SeverityNumber

from .._core.events import emit_event
from .._names import semconv as sc
from .engine import AlertEngine, AlertEvent, AlertRule
from .notify import Dispatcher
from .signals import TickView, read_signal


class AlertPipeline:
    """Rules, their state, the alert records and the notifier dispatch of one health loop."""

    def __init__(self, rules: list[AlertRule], dispatcher: Dispatcher,
                 event_logger: Callable[[], _logs.Logger]) -> None:
        self.engine = AlertEngine(rules)
        self._dispatcher = dispatcher
        self._logger = event_logger

    @property
    def rules(self) -> list[AlertRule]:
        return self.engine.rules

    def windows(self) -> set[float]:
        """The window lengths (s) the rules read."""
        return self.engine.windows()

    def evaluate(self, tick: TickView, now: float) -> None:
        """Evaluate every rule on this tick; emit and dispatch what changed."""
        for event in self.engine.evaluate(sorted(tick.agents), lambda rule, agent: read_signal(tick, rule, agent),
                                          now):
            self._emit(event)
            self._dispatcher.dispatch(event)

    def firing(self) -> tuple[tuple[AlertRule, str | None, float | None], ...]:
        return tuple(self.engine.firing())

    def states(self) -> list[tuple[str, str, str | None, bool]]:
        """(rule, severity, agent, firing) for every alert instance seen so far."""
        by_name = {r.name: r for r in self.engine.rules}
        return [(name, by_name[name].severity, agent, state == "firing")
                for (name, agent), state in self.engine.states().items() if name in by_name]

    def after_fork(self) -> None:
        """A forked child evaluates its own alerts: forget the parent's instances."""
        self.engine = AlertEngine(self.engine.rules)

    def _emit(self, event: AlertEvent) -> None:
        rule = event.rule
        attrs: dict[str, Any] = {sc.AGENTMON_ALERT_RULE: rule.name, sc.AGENTMON_ALERT_STATE: event.state,
                                 sc.AGENTMON_ALERT_PREVIOUS_STATE: event.previous,
                                 sc.AGENTMON_ALERT_SEVERITY: rule.severity,
                                 sc.AGENTMON_ALERT_THRESHOLD: rule.threshold, sc.AGENTMON_ALERT_SIGNAL: rule.signal}
        if event.value is not None:
            attrs[sc.AGENTMON_ALERT_VALUE] = event.value
        if event.agent is not None:
            attrs[sc.GEN_AI_AGENT_NAME] = event.agent
        attrs.update({sc.AGENTMON_ALERT_LABEL_PREFIX + k: v for k, v in rule.labels.items()})
        severity = SeverityNumber.ERROR if event.state == "firing" else SeverityNumber.INFO
        summary = event.render(rule.annotations.get("summary", ""))
        emit_event(self._logger, sc.EVENT_ALERT, attrs, severity,
                   f"alert {rule.name} {event.state}" + (f": {summary}" if summary else ""))
