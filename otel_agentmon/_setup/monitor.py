"""The ``Monitor`` handle ``configure()`` returns (``_configure.py``), and the running one."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from .._core import state as _state
from .._core.deadline import BoundedCall
from .._core.guard import after_fork_in_child, report_internal_error
from .._core.sdk_compat import quiet_cross_scope_view_conflicts
from .._export.durable import open_spool, spool_stats
from .._export.exporters import quiet_exporter_logs, warn_if_plaintext_remote
from .._export.processor import AgentmonSpanProcessor
from .._export.stats import Stats
from .._health.checks import CheckFn
from .._health.loop import SwarmHealth
from .._health.setup import build_health, rules_from_settings
from .._health.wiring import health_and_alerts_after_fork
from .._metrics.derive import AgentSummary, Deriver
from .._metrics.instruments import Instruments
from .._names import semconv as sc
from .._names.dialects import CORE_SCOPE
from .._spans import sanitize as _sanitize
from .._spans.sanitize import clean_name, name_arg, optional_name_arg, seconds_arg, warn_arg
from .llm_clients import LLMClientInstrumentation
from .llm_clients import start as start_llm_clients
from .providers import (
    VERSION,
    Pipelines,
    add_span_processor,
    build_resource,
    logger_provider,
    meter_provider,
    resource_after_shutdown,
    retire,
    start_system_metrics,
    tracer_provider,
)
from .settings import Settings, resolve

if TYPE_CHECKING:
    from ..serve import Server

_lock = threading.Lock()
_current: Monitor | None = None


class Monitor:
    """The running telemetry of this process: flush it, shut it down, and ask what it did.

    Returned by :func:`configure`. All methods are thread-safe and never raise.
    """

    def __init__(self, settings: Settings, *, extra_readers: list[MetricReader] | None = None,
                 id_generator: IdGenerator | None = None) -> None:
        if settings.disabled:
            # OTEL_SDK_DISABLED: decorators call straight through; build nothing that runs.
            settings = dataclasses.replace(settings, traces_exporter="none", metrics_exporter="none",
                                           logs_exporter="none", health=False, system_metrics="off")
        self.settings = settings
        # Validate what can fail before touching any global state.
        rules = rules_from_settings(settings)
        self._pipes = Pipelines()
        self._shutdown_done = False
        self._shutdown_lock = threading.Lock()
        self._metrics_flush = BoundedCall("metrics-flush")
        self._deriver = Deriver(run_thread=not settings.disabled)
        self._system: Any = None
        self._dashboard: Server | None = None  # the in-process agentmon serve behind dashboard=True
        self._dashboard_url: str | None = None  # ... or the one this process joined
        resource = resource_after_shutdown(settings, build_resource(settings))
        _sanitize.set_max_length(settings.attribute_value_length_limit)
        quiet_exporter_logs()
        quiet_cross_scope_view_conflicts(CORE_SCOPE)  # our derived metrics next to an instrumentation's own
        if "otlp" in (settings.traces_exporter, settings.metrics_exporter, settings.logs_exporter):
            warn_if_plaintext_remote(settings.endpoint)
        self._pipes.spool = open_spool(settings, str(resource.attributes.get(sc.SERVICE_NAME, settings.service_name)))
        tp = tracer_provider(settings, resource, self._pipes, id_generator)
        self._processor = add_span_processor(self._pipes, AgentmonSpanProcessor(
            self._deriver, self._pipes.span_worker, settings.shutdown_timeout))
        mp = meter_provider(settings, resource, self._pipes, extra_readers or [])
        meter = mp.get_meter("otel_agentmon", VERSION, schema_url=sc.SCHEMA_URL)
        self._deriver.instruments = Instruments(meter, self._deriver.in_flight, mp,
                                                dropped=self._deriver.dropped_by_reason)
        lp = logger_provider(settings, resource, self._pipes)
        self.tracer: trace.Tracer = (tp or trace.get_tracer_provider()).get_tracer(
            "otel_agentmon", VERSION, schema_url=sc.SCHEMA_URL)
        self.event_logger: _logs.Logger = lp.get_logger("otel_agentmon", VERSION, schema_url=sc.SCHEMA_URL)
        try:
            self._system = start_system_metrics(settings, mp)
        except Exception:  # noqa: BLE001 - missing psutil permissions must not stop the agent
            report_internal_error("system metrics")
        self._llm_clients: LLMClientInstrumentation | None = None
        if not settings.disabled:
            span_provider = tp or trace.get_tracer_provider()
            self._llm_clients = start_llm_clients(
                settings.llm_clients, settings.capture_content, tracer_provider=span_provider, meter_provider=mp,
                logger_provider=lp, native_ok=trace.get_tracer_provider() is span_provider)
        self._dispatcher, self._health, self._health_server = build_health(settings, rules, self._deriver, meter,
                                                                          lambda: self.event_logger)
        self._resource = resource
        after_fork_in_child(self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """A forked child reports its own work: fresh metric state, its own threads.

        The SDK's MeterProvider keeps the parent's cumulative series across fork, so the child
        would re-report the parent's measurements under its own service.instance.id.
        """
        if self._shutdown_done:
            return
        try:
            old_exporter, old_provider = self._pipes.metric_exporter, self._pipes.meter_provider
            meter: metrics.Meter | None = None  # a new one when the child gets its own metric state
            if self._pipes.owns_meter_provider and old_exporter is not None:
                old_exporter.spool = None  # the inherited final export holds the parent's series: not ours to keep
                old_exporter.close()
                self._pipes.metric_exporter = None
                self._resource = build_resource(self.settings)  # this process's service.instance.id
                provider = meter_provider(self.settings, self._resource, self._pipes, [], fresh=True)
                meter = provider.get_meter("otel_agentmon", VERSION, schema_url=sc.SCHEMA_URL)
                self._deriver.instruments = Instruments(
                    meter, self._deriver.in_flight, provider, dropped=self._deriver.dropped_by_reason)
                if self._system is not None:
                    self._system.uninstrument()
                    self._system = start_system_metrics(self.settings, provider)
                if old_provider is not None:
                    try:  # its exporter is closed: this only stops the inherited reader thread
                        old_provider.shutdown(timeout_millis=200)  # type: ignore[attr-defined]  # the API type of the provider; it is the SDK's here
                    except Exception:  # noqa: BLE001 - the SDK raises when a reader misses the deadline
                        pass
            health_and_alerts_after_fork(self._health, self._dispatcher, meter)
            self._health_server = None  # the parent serves the endpoint
            self._dashboard = None  # ... and the dashboard, which this child exports to
        except Exception:  # noqa: BLE001
            report_internal_error("after fork")

    # --- providers ---------------------------------------------------------------------------
    @property
    def tracer_provider(self) -> trace.TracerProvider | None:
        return self._pipes.tracer_provider

    @property
    def meter_provider(self) -> metrics.MeterProvider | None:
        return self._pipes.meter_provider

    @property
    def logger_provider(self) -> _logs.LoggerProvider | None:
        return self._pipes.logger_provider

    # --- introspection -----------------------------------------------------------------------
    def stats(self) -> Stats:
        """Where every span went so far (see :class:`Stats`)."""
        started, ended, not_exported = self._processor.counts()
        exported, queued, inflight = 0, 0, 0
        dropped: dict[str, int] = {}
        if self._pipes.span_worker is not None:
            _, exported, dropped, queued, inflight = self._pipes.span_worker.counts()
        log_counts: tuple[int, int, dict[str, int], int, int] = (0, 0, {}, 0, 0)
        if self._pipes.log_worker is not None:
            log_counts = self._pipes.log_worker.counts()
        me = self._pipes.metric_exporter
        return Stats(
            spans_started=started, spans_ended=ended, spans_exported=exported, spans_dropped=dropped,
            spans_queued=queued, spans_in_flight=inflight, spans_not_exported=not_exported,
            logs_emitted=log_counts[0], logs_exported=log_counts[1], logs_dropped=log_counts[2],
            metric_exports_ok=me.exported if me else 0, metric_exports_failed=me.failed if me else 0,
            metric_exports_skipped=me.skipped if me else 0, derivation_dropped=self._deriver.dropped,
            notifications=self._dispatcher.stats(),
            derivation_dropped_by_reason=self._deriver.dropped_by_reason(),
            spans_spooled=self._pipes.span_worker.spooled() if self._pipes.span_worker is not None else 0,
            logs_spooled=self._pipes.log_worker.spooled() if self._pipes.log_worker is not None else 0,
            spool=spool_stats(self._pipes.spool),
        )

    def _sync(self) -> None:
        """Derive metrics from every span ended so far, now (tests and flush use it)."""
        self._deriver.process_pending()

    # --- health and alerts ----------------------------------------------------------------------
    def health(self) -> SwarmHealth:
        """The last health evaluation: swarm state, each agent's state and reasons, firing alerts."""
        if self._health is None:
            return SwarmHealth("healthy", {}, None, None, ())
        return self._health.current

    def evaluate_health(self) -> SwarmHealth:
        """Evaluate health and alerts now instead of waiting for the next tick."""
        if self._health is None:
            return self.health()
        try:
            return self._health.tick()
        except Exception:  # noqa: BLE001
            report_internal_error("evaluate_health")
            return self.health()

    def heartbeat(self, agent: str) -> None:
        """Tell the health loop ``agent`` is alive. An agent that calls it once promises to keep
        calling it: it is down when ``heartbeat_timeout`` passes without one (or a span)."""
        name = clean_name(agent)
        self._deriver.heartbeat(name)
        if self._health is not None:
            self._health.liveness.promise(name)

    def forget_agent(self, agent: str) -> None:
        """An agent retired on purpose: it is reported *stopped* (never down), then let go."""
        name = clean_name(agent)
        try:
            self._deriver.process_pending()  # its last spans count before it retires, not after
        except Exception:  # noqa: BLE001
            report_internal_error("forget_agent")
        self._deriver.forget(name)
        if self._health is not None:
            self._health.retire(name)

    def add_health_check(self, name: str, check: CheckFn, *, interval: float = 5.0, timeout: float = 1.0,
                         agent: str | None = None, critical: bool = False) -> None:
        """Run ``check`` (sync or async) every ``interval`` s; it fails if it raises, returns a falsy
        value or exceeds ``timeout``. A failing check degrades ``agent`` (every agent when None),
        or makes it unhealthy when ``critical``."""
        if not callable(check):
            warn_arg("add_health_check", "check", check, "a function or coroutine function")
        elif self._health is not None:
            at = "add_health_check"
            self._health.checks.add(name_arg(name, at, "name"), check, agent=optional_name_arg(agent, at, "agent"),
                                    interval=seconds_arg(interval, at, "interval", 5.0), critical=bool(critical),
                                    timeout=seconds_arg(timeout, at, "timeout", 1.0))

    @property
    def dashboard_url(self) -> str | None:
        """The live dashboard's URL when ``dashboard`` is on (its OTLP endpoint too)."""
        return self._dashboard_url + "/" if self._dashboard_url is not None else None

    @property
    def health_url(self) -> str | None:
        """Base URL of the health endpoint when ``health_port`` is set."""
        return self._health_server.url if self._health_server is not None else None

    def snapshot(self) -> dict[str, AgentSummary]:
        """Per-agent summary of what this process saw (tasks, tools, tokens, latency)."""
        try:
            self._deriver.process_pending()
            return self._deriver.agents()
        except Exception:  # noqa: BLE001
            report_internal_error("snapshot")
            return {}

    # --- lifecycle ---------------------------------------------------------------------------
    def force_flush(self, timeout: float | None = None) -> bool:
        """Export everything pending; returns ``True`` only if it all got out within ``timeout`` s."""
        budget = seconds_arg(timeout, "force_flush", "timeout", self.settings.shutdown_timeout)
        deadline = time.monotonic() + budget
        ok = True
        try:
            # Derivation (CPU, grows with the backlog) and the SDK's collection (every observable
            # callback, on the flushing thread) run beside the span and log flushes on a helper
            # thread, which the caller waits for until the deadline only.
            metrics_flushed = self._metrics_flush.start(lambda: self._flush_metrics(deadline))
            if self._pipes.span_worker is not None:
                ok &= self._pipes.span_worker.force_flush(budget * 0.7)
            if self._pipes.log_worker is not None:
                ok &= self._pipes.log_worker.force_flush(deadline - time.monotonic())
            ok &= metrics_flushed(deadline - time.monotonic())
        except Exception:  # noqa: BLE001
            report_internal_error("force_flush")
            return False
        return ok

    def _flush_metrics(self, deadline: float) -> bool:
        self._deriver.process_pending()
        mp = self._pipes.meter_provider
        if not self._pipes.owns_meter_provider or mp is None:
            return True
        try:
            remaining_ms = max(0.0, deadline - time.monotonic()) * 1000
            flushed = bool(mp.force_flush(timeout_millis=remaining_ms))  # type: ignore[attr-defined]  # the API MeterProvider type; we own it, so it is the SDK's
        except Exception:  # noqa: BLE001 - the SDK raises when a reader misses the deadline
            return False
        me = self._pipes.metric_exporter  # the SDK answers True even when the export failed
        return flushed and (me is None or not me.failing)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop, within ``timeout`` seconds (default ``shutdown_timeout``) whatever the
        Collector does; what could not be exported is counted as dropped. Idempotent."""
        with self._shutdown_lock:
            if self._shutdown_done:
                return True
            self._shutdown_done = True
        budget = seconds_arg(timeout, "shutdown", "timeout", self.settings.shutdown_timeout)
        deadline = time.monotonic() + budget
        ok = True
        def left(share: float = 1.0) -> float:
            return max(0.0, deadline - time.monotonic()) * share

        # Every step gets a share of what is left of one deadline, whatever the load: a process
        # whose other threads keep emitting (and taking the GIL) still returns on time.
        try:
            if self._llm_clients is not None:
                self._llm_clients.shutdown()
            self._deriver.stop(time.monotonic() + left(0.15))
            if self._health is not None:
                self._health.stop(left(0.05))
                if left() > budget * 0.5:
                    self._health.tick()  # a last evaluation, so final transitions are emitted
                # Say so: every agent stopped (records now, gauges in the final export below), so
                # no listener takes a clean exit for a crash.
                self._health.finish()
            if self._health_server is not None:
                self._health_server.stop()
            self._dispatcher.flush(min(0.5, left(0.1)))
            self._dispatcher.stop()
            if self._pipes.span_worker is not None:
                ok &= self._pipes.span_worker.shutdown(left(0.5))
            if self._pipes.log_worker is not None:
                # When the spans could not get out, the Collector will not take the last records
                # (the stopped states) either: a short try, so a dead Collector costs no extra wait.
                ok &= self._pipes.log_worker.shutdown(left(0.3 if ok else 0.1))
            if self._system is not None:
                self._system.uninstrument()
            tp, mp, lp = self._pipes.tracer_provider, self._pipes.meter_provider, self._pipes.logger_provider
            if self._pipes.owns_tracer_provider and isinstance(tp, TracerProvider):
                tp.shutdown()  # our processor's worker is already stopped: returns at once
            me = self._pipes.metric_exporter
            # Abandon the metric export in flight only on evidence that the endpoint is failing (the
            # last metric export failed, or the spans and logs could not get out); a slow but healthy
            # one is waited for within the deadline, so the final export (the stopped states) is sent.
            # With a spool, spans that could not get out are that evidence too: the final export is kept.
            if me is not None and (me.failing or ((me.exporting or me.spool is not None) and not ok)):
                me.close()  # the final collection would only wait out a failing export
            if self._pipes.owns_meter_provider and mp is not None:
                try:
                    mp.shutdown(timeout_millis=max(50.0, left() * 1000))  # type: ignore[attr-defined]  # the API MeterProvider type; we own it, so it is the SDK's
                except Exception:  # noqa: BLE001 - the SDK raises when its final collection misses the deadline
                    ok = False
            if self._pipes.owns_logger_provider and lp is not None:
                lp.shutdown()  # type: ignore[attr-defined]  # the API LoggerProvider type; we own it, so it is the SDK's
            if self._dashboard is not None:
                self._dashboard.stop()
        except Exception:  # noqa: BLE001
            report_internal_error("shutdown")
            return False
        finally:
            retire(self._pipes)  # a later configure() builds working providers instead of joining these
            if _state.tracer is self.tracer:
                _state.tracer = trace.get_tracer("otel_agentmon")
            if _state.tracer_provider is self._pipes.tracer_provider:
                _state.tracer_provider = None
        return ok and time.monotonic() <= deadline


def _install(monitor: Monitor) -> None:
    _state.tracer = monitor.tracer
    _state.tracer_provider = monitor.tracer_provider
    _state.event_logger = monitor.event_logger
    _state.enabled = not monitor.settings.disabled
    _state.capture_content = monitor.settings.capture_content


def heartbeat(agent: str) -> None:
    """Mark ``agent`` alive in the configured monitor (no-op before ``configure()``)."""
    monitor = _current
    if monitor is not None:
        monitor.heartbeat(name_arg(agent, "heartbeat", "agent"))


def get_monitor() -> Monitor | None:
    """The monitor :func:`configure` installed, if any."""
    return _current


def _configure_for_testing(options: Mapping[str, Any], extra_readers: list[MetricReader],
                           id_generator: IdGenerator | None) -> Monitor:
    settings = resolve({**options, "set_global": False})
    monitor = Monitor(settings, extra_readers=extra_readers, id_generator=id_generator)
    _install(monitor)
    return monitor
