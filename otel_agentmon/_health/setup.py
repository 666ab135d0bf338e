"""Assemble the health loop, alert rules, notifiers and endpoint from the settings."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from opentelemetry import _logs
from opentelemetry.metrics import Meter

from .._alerts.engine import AlertRule
from .._alerts.notify import Dispatcher, LoggingNotifier, Notifier, WebhookNotifier
from .._alerts.rule_file import rules_for_option
from .._core.guard import log_once
from .._metrics.derive import Deriver
from .._setup.settings import Settings
from .endpoint import HealthServer
from .loop import HealthLoop, HealthPolicy
from .wiring import health_and_alerts


def rules_from_settings(settings: Settings) -> list[AlertRule]:
    """The configured rules; never raises: a rule file with problems, a non-rule entry or a
    duplicate name is one warning, and every valid rule still runs."""
    option = "alert_rules" if "alert_rules" in settings.explicit else "AGENTMON_ALERT_RULES"
    return rules_for_option(settings.alert_rules, option)


def _policy(settings: Settings) -> HealthPolicy:
    if settings.health_policy is not None:
        if not isinstance(settings.health_policy, HealthPolicy):
            raise TypeError("health_policy must be a HealthPolicy")
        return settings.health_policy
    return dataclasses.replace(HealthPolicy(), heartbeat_timeout=settings.heartbeat_timeout,
                               stuck_after=settings.stuck_after)


def _notifiers(settings: Settings, rules: list[AlertRule]) -> list[Notifier]:
    notifiers: list[Notifier] = []
    if settings.alert_webhook:
        notifiers.append(WebhookNotifier(settings.alert_webhook))
    extra = settings.notifiers
    if extra is not None:
        for n in list(extra):  # type: ignore[call-overload]  # Settings types it as object; a non-iterable raises TypeError here, like any bad option
            if not callable(getattr(n, "notify", None)):
                raise TypeError(f"notifier {n!r} has no notify(event) method")
            notifiers.append(n)
    if rules and not notifiers:
        notifiers.append(LoggingNotifier())  # with nobody listening, alerts at least reach the log
    return notifiers


def build_health(settings: Settings, rules: list[AlertRule], deriver: Deriver, meter: Meter,
                 logger: Callable[[], _logs.Logger]) -> tuple[Dispatcher, HealthLoop | None, HealthServer | None]:
    dispatcher = Dispatcher(_notifiers(settings, rules))
    if not settings.health or settings.disabled:
        return dispatcher, None, None
    loop = health_and_alerts(deriver, _policy(settings), rules, dispatcher, logger, settings.health_interval,
                             meter=meter)
    server = None
    if settings.health_port is not None:
        try:
            server = HealthServer(lambda: loop.current, lambda: loop.last_tick, settings.health_host,
                                  settings.health_port, stale_after=max(5.0, settings.health_interval * 10))
        except OSError as exc:
            log_once(logging.WARNING, "health:bind", "health endpoint not started: cannot bind %s:%s (%s)",
                     settings.health_host, settings.health_port, exc)
    return dispatcher, loop, server
