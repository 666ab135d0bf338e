"""``configure()``: its typed signature (what type checkers and IDEs see) and its body (what runs).

The signature lists every option of ``_settings.OPTIONS`` as a keyword-only parameter with its type,
so mypy or an IDE flags a misspelled or mistyped option. The body accepts anything: untyped callers
(the zero-code configurator, options read into a dict) still get one warning for an unknown name,
a bad value or a positional argument, never a ``TypeError``. ``tests/typing/test_configure_types.py``
keeps the signature in step with the options table.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Collection, Mapping
from typing import Literal, ParamSpec, TypeVar

from .._alerts.engine import AlertRule
from .._alerts.notify import Notifier
from .._core import state as _state
from .._core.guard import log_once
from .._health.loop import HealthPolicy
from .._names.semconv import ContentMode
from .._spans import context as _context
from . import monitor as _monitor
from .dashboard import dashboard_target
from .first_run import hint_if_nothing_listens
from .monitor import Monitor, _install
from .option_values import LLMClient
from .settings import ExporterName, Protocol, SystemMetricsSet, resolve

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _typed_as(signature: Callable[_P, object]) -> Callable[[Callable[..., _R]], Callable[_P, _R]]:
    """Give the decorated function ``signature``'s parameters for type checkers, and for
    ``inspect.signature``/``help()``; at run time it still takes whatever it is given."""

    def apply(impl: Callable[..., _R]) -> Callable[_P, _R]:
        functools.update_wrapper(impl, signature, assigned=(), updated=())  # sets __wrapped__ only
        return impl

    return apply


def _options(
    *,
    service_name: str | None = None,
    service_namespace: str | None = None,
    service_version: str | None = None,
    swarm: str | None = None,
    agent_role: str | None = None,
    endpoint: str | None = None,
    protocol: Protocol | None = None,
    headers: Mapping[str, str] | str | None = None,
    export_timeout: float | None = None,
    traces_exporter: ExporterName | None = None,
    metrics_exporter: ExporterName | None = None,
    logs_exporter: ExporterName | None = None,
    realtime: bool | None = None,
    span_schedule_delay_ms: int | None = None,
    span_max_queue_size: int | None = None,
    span_max_export_batch_size: int | None = None,
    metric_export_interval_ms: int | None = None,
    metric_export_timeout_ms: int | None = None,
    shutdown_timeout: float | None = None,
    system_metrics: SystemMetricsSet | None = None,
    capture_content: ContentMode | None = None,
    llm_clients: Literal["auto", "none"] | Collection[LLMClient] | None = None,
    attribute_value_length_limit: int | None = None,
    metric_cardinality_limit: int | None = None,
    health: bool | None = None,
    health_interval: float | None = None,
    heartbeat_timeout: float | None = None,
    stuck_after: float | None = None,
    health_policy: HealthPolicy | None = None,
    alert_rules: str | os.PathLike[str] | Collection[AlertRule] | None = None,
    alert_webhook: str | None = None,
    notifiers: Collection[Notifier] | Notifier | None = None,
    health_port: int | None = None,
    health_host: str | None = None,
    dashboard: bool | None = None,
    disabled: bool | None = None,
    set_global: bool | None = None,
    resource_attributes: Mapping[str, str | bool | int | float] | None = None,
    spool: bool | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    spool_max_mb: int | None = None,
    spool_max_age: float | None = None,
    spool_any_endpoint: bool | None = None,
) -> Monitor:
    """The signature of :func:`configure` (never called). ``None`` means "not given": the
    environment variable, then the default applies."""
    raise NotImplementedError("only the signature of configure() is used")


@_typed_as(_options)
def configure(*args: object, **options: object) -> Monitor:
    """Set up traces, metrics and logs for agents in one call; returns the :class:`Monitor`.

    Every option is keyword-only and has an environment variable (see the README's table);
    precedence is argument > environment > default. Idempotent and thread-safe: a second call
    returns the running monitor (new arguments are ignored with a warning); after ``shutdown()``
    it builds a new one. If the application already installed SDK providers, they are reused and
    our processor is added to them. Never raises: an unknown option, a bad argument, environment
    value or rule file is one warning naming it, and the rest of the configuration applies.
    """
    if args:
        log_once(logging.WARNING, "configure:positional",
                 "configure() takes keyword arguments only; %d positional argument(s) ignored", len(args))
    with _monitor._lock:  # noqa: SLF001 - the running monitor's state lives in _monitor
        current = _monitor._current  # noqa: SLF001
        if current is not None and not current._shutdown_done:  # noqa: SLF001
            if options:
                log_once(logging.WARNING, "configure:again",
                         "configure() already ran; ignoring the new arguments (call shutdown() first)")
            return current
        settings = resolve(options)
        dashboard, dashboard_url = dashboard_target(settings)
        if dashboard_url is not None and settings.endpoint is None:
            settings = dataclasses.replace(settings, endpoint=dashboard_url, protocol="http/protobuf",
                                           explicit=settings.explicit | {"endpoint", "protocol"})
        hint_if_nothing_listens(settings)
        try:
            monitor = Monitor(settings)
        except Exception:  # noqa: BLE001 - a bug of ours must not stop the application
            log_once(logging.ERROR, "configure:failed", "configure() failed; telemetry is off", exc_info=True)
            monitor = Monitor(dataclasses.replace(settings, disabled=True, set_global=False, alert_rules=None))
        monitor._dashboard, monitor._dashboard_url = dashboard, dashboard_url  # noqa: SLF001
        _install(monitor)
        _context.bind_process(monitor)  # join TRACEPARENT's trace; flush at multiprocessing exits
        if monitor.settings.disabled:
            _state.enabled = False
        _monitor._current = monitor  # noqa: SLF001
        atexit.register(_shutdown_at_exit, monitor)
        return monitor


def _shutdown_at_exit(monitor: Monitor) -> None:
    monitor.shutdown()
