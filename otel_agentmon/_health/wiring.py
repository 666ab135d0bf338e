"""The one place health and alerts are wired together: for a monitored process (with its gauges),
after a fork, and for ``agentmon serve`` alike."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import _logs
from opentelemetry.metrics import Meter

from .._alerts.engine import AlertRule
from .._alerts.evaluator import AlertPipeline
from .._alerts.notify import Dispatcher
from .._metrics.derive import Deriver
from .gauges import register_health_instruments
from .lifecycle import Liveness
from .loop import HealthLoop, HealthPolicy


def health_and_alerts(deriver: Deriver, policy: HealthPolicy, rules: list[AlertRule], dispatcher: Dispatcher,
                      event_logger: Callable[[], _logs.Logger], interval: float, *, meter: Meter | None = None,
                      resources: Callable[[], tuple[float | None, int | None]] | None = None,
                      liveness: Liveness | None = None) -> HealthLoop:
    """A running health loop whose ticks feed an alert pipeline over ``rules`` (records through
    ``event_logger``, notifications through ``dispatcher``); its gauges on ``meter`` when given."""
    loop = HealthLoop(deriver, policy, AlertPipeline(rules, dispatcher, event_logger), event_logger, interval,
                      resources=resources, liveness=liveness)
    if meter is not None:
        register_health_instruments(meter, loop)
    return loop


def health_and_alerts_after_fork(loop: HealthLoop | None, dispatcher: Dispatcher, meter: Meter | None) -> None:
    """In a forked child: the loop's and the notifiers' own threads, the parent's states forgotten, and
    the gauges on the child's fresh ``meter`` when it has one."""
    if loop is not None:
        if meter is not None:
            register_health_instruments(meter, loop)
        loop.restart_after_fork()
    dispatcher.restart_after_fork()
