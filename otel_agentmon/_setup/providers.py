"""Build the Resource and the three providers, or attach to the ones the application has."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar, cast

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from .._core.guard import log_once
from .._export.exporters import (
    DeadlineMetricExporter,
    PeriodicReader,
    build_log_export,
    build_metric_exporter,
    build_span_export,
)
from .._export.spool import SpoolDir
from .._export.worker import BatchWorker
from .._metrics.instruments import views
from .._names import semconv as sc
from .settings import Settings

P = TypeVar("P")
SP = TypeVar("SP", bound=SpanProcessor)

try:
    VERSION = metadata.version("otel_agentmon")
except metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0.0.0"

# The curated default set of system/process metrics: what an SRE looks at first.
SYSTEM_METRICS_DEFAULT: dict[str, list[str] | None] = {
    "process.cpu.utilization": ["user", "system"],
    "process.cpu.time": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
    "process.open_file_descriptor.count": None,
    "system.cpu.utilization": ["idle", "user", "system", "irq"],
    "system.memory.usage": ["used", "free", "cached"],
    "system.memory.utilization": ["used", "free", "cached"],
    "system.network.io": ["transmit", "receive"],
}


def build_resource(settings: Settings) -> Resource:
    attrs: dict[str, Any] = {sc.TELEMETRY_DISTRO_NAME: "otel_agentmon", sc.TELEMETRY_DISTRO_VERSION: VERSION}
    for key, value in ((sc.SERVICE_NAMESPACE, settings.service_namespace),
                       (sc.SERVICE_VERSION, settings.service_version),
                       (sc.AGENTMON_SWARM_NAME, settings.swarm),
                       (sc.AGENTMON_AGENT_ROLE, settings.agent_role)):
        if value is not None:
            attrs[key] = value
    if settings.resource_attributes:
        attrs.update({str(k): str(v) for k, v in settings.resource_attributes.items()})
    if "service_name" in settings.explicit:
        attrs[sc.SERVICE_NAME] = settings.service_name
    # Resource.create adds service.instance.id (a UUID regenerated after fork) and applies
    # OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME.
    resource = Resource.create(attrs, schema_url=sc.SCHEMA_URL)
    current = resource.attributes.get(sc.SERVICE_NAME)
    if not isinstance(current, str) or current.startswith("unknown_service"):
        resource = resource.merge(Resource({sc.SERVICE_NAME: settings.service_name}))
    return resource


class Pipelines:
    """The providers in use and the parts of them that are ours."""

    def __init__(self) -> None:
        self.tracer_provider: trace.TracerProvider | None = None
        self.meter_provider: metrics.MeterProvider | None = None
        self.logger_provider: _logs.LoggerProvider | None = None
        self.owns_tracer_provider = False
        self.owns_meter_provider = False
        self.owns_logger_provider = False
        self.span_worker: BatchWorker[ReadableSpan] | None = None
        self.log_worker: BatchWorker[ReadableLogRecord] | None = None
        self.metric_exporter: DeadlineMetricExporter | None = None
        self.span_processor: object = None  # ours, in the tracer provider
        self.log_processor: object = None  # ours, in the logger provider
        self.spool: SpoolDir | None = None  # the disk spool of this service, when in use


#: Providers a Monitor built, and processors of ours, whose monitor has shut down. The OpenTelemetry
#: API sets each global provider once per process, so configure() after shutdown() meets them again.
_retired: weakref.WeakSet[object] = weakref.WeakSet()
#: provider -> the processor of ours it holds
_ours: weakref.WeakKeyDictionary[object, object] = weakref.WeakKeyDictionary()


def retire(pipes: Pipelines) -> None:
    """Remember what ``pipes`` used as shut down (``Monitor.shutdown`` calls this)."""
    for owned, provider in ((pipes.owns_tracer_provider, pipes.tracer_provider),
                            (pipes.owns_meter_provider, pipes.meter_provider),
                            (pipes.owns_logger_provider, pipes.logger_provider),
                            (True, pipes.span_processor), (True, pipes.log_processor)):
        if owned and provider is not None:
            _retired.add(provider)


def _take_over(provider: object, processor: P, add: Callable[[P], object]) -> P:
    """Give ``provider`` our ``processor``. A provider keeps every processor it was ever given, so
    when a shut-down monitor left one of ours in it, that one takes the new one's state and place
    (no processor per configure() that would grow without bound). Returns the one in use."""
    old = _ours.get(provider)
    if old is not None and old in _retired and type(old) is type(processor):
        try:
            vars(old).update(vars(processor))
        except TypeError:  # a class with __slots__: add it after all
            pass
        else:
            _retired.discard(old)
            return old
    add(processor)
    _ours[provider] = processor
    return processor


def add_span_processor(pipes: Pipelines, processor: SP) -> SP:
    """Add our span processor to the tracer provider in use (see ``_take_over``)."""
    provider = pipes.tracer_provider
    if not isinstance(provider, TracerProvider):
        return processor
    in_use = _take_over(provider, processor, provider.add_span_processor)
    pipes.span_processor = in_use
    return in_use


def _identity(resource: Resource) -> dict[str, object]:
    from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID

    return {k: v for k, v in resource.attributes.items() if k != SERVICE_INSTANCE_ID}


def resource_after_shutdown(settings: Settings, resource: Resource) -> Resource:
    """configure() after shutdown(): the Resource to build with.

    Tracer and logger providers keep working after ``shutdown()`` once given new processors, so
    when the identity is unchanged the global ones this process installed are used again (every
    instrumentation that holds a tracer from them exports again) and their Resource is kept. The
    global MeterProvider cannot restart: our own metrics go to a new one. With a different
    identity, new providers are built for everything and the global ones stay shut down.
    """
    existing = trace.get_tracer_provider()
    if not settings.set_global or not isinstance(existing, TracerProvider) or existing not in _retired:
        return resource
    if _identity(existing.resource) == _identity(resource):
        log_once(logging.WARNING, "reconfigure:metrics",
                 "configure() after shutdown(): spans and logs export again through this process's global "
                 "providers; the global MeterProvider cannot be restarted (the OpenTelemetry API sets it once "
                 "per process), so otel_agentmon's metrics use a new one and metrics other libraries record "
                 "through the global API are no longer exported")
        return existing.resource
    log_once(logging.WARNING, "reconfigure:resource",
             "configure() after shutdown() with a different service identity: the global OpenTelemetry "
             "providers the first configure() installed cannot be replaced (the API sets them once per "
             "process) and stay shut down; otel_agentmon's own spans, metrics and logs use new providers, "
             "telemetry other instrumentations send through the global API is no longer exported")
    return resource


def _revive(existing: object, resource: Resource) -> bool:
    if existing not in _retired or getattr(existing, "resource", None) is not resource:
        return False
    _retired.discard(existing)
    return True


def tracer_provider(settings: Settings, resource: Resource, pipes: Pipelines,
                    id_generator: IdGenerator | None = None) -> TracerProvider | None:
    """The SDK TracerProvider to use: the application's, or one of ours (new, or revived after shutdown)."""
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider) and settings.set_global and existing not in _retired:
        log_once(logging.INFO, "reuse:tracer", "using the application's TracerProvider; "
                 "spans are exported by its pipeline, not a second one")
        pipes.tracer_provider = existing
        return existing
    if isinstance(existing, TracerProvider) and settings.set_global and _revive(existing, resource):
        provider = existing
    else:
        provider = TracerProvider(resource=resource, shutdown_on_exit=False, id_generator=id_generator)
    pipes.tracer_provider = provider
    pipes.owns_tracer_provider = True
    export = build_span_export(settings, pipes.spool)
    if export is not None:
        pipes.span_worker = BatchWorker(
            "spans", export[0], export[1], max_queue_size=settings.span_max_queue_size,
            max_batch_size=settings.span_max_export_batch_size,
            schedule_delay_s=settings.span_schedule_delay_ms / 1000.0)
    if settings.set_global and isinstance(existing, trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return provider


def meter_provider(settings: Settings, resource: Resource, pipes: Pipelines,
                   extra_readers: list[MetricReader], *, fresh: bool = False) -> metrics.MeterProvider:
    existing = metrics.get_meter_provider()
    if isinstance(existing, MeterProvider) and settings.set_global and not fresh and existing not in _retired:
        log_once(logging.INFO, "reuse:meter", "using the application's MeterProvider; bucket advice applies, "
                 "our attribute allow-list Views cannot be added to it")
        if isinstance(existing.get_meter("otel_agentmon", VERSION), metrics.NoOpMeter):
            log_once(logging.WARNING, "reuse:meter:shutdown",
                     "the application's MeterProvider is shut down: otel_agentmon's metrics cannot be exported "
                     "through it, and configure() cannot replace a global provider the application owns")
        pipes.meter_provider = existing
        return existing
    readers = list(extra_readers)
    exporter = build_metric_exporter(settings, pipes.spool)
    if exporter is not None:
        pipes.metric_exporter = exporter
        readers.append(PeriodicReader(
            exporter, export_interval_millis=settings.metric_export_interval_ms,
            export_timeout_millis=settings.metric_export_timeout_ms))
    provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False,
                             views=views(settings.metric_cardinality_limit))
    pipes.meter_provider = provider
    pipes.owns_meter_provider = True
    if settings.set_global and _api_placeholder(existing, "_ProxyMeterProvider"):
        metrics.set_meter_provider(provider)
    return provider


def logger_provider(settings: Settings, resource: Resource, pipes: Pipelines) -> _logs.LoggerProvider:
    existing = _logs.get_logger_provider()
    if isinstance(existing, LoggerProvider) and settings.set_global and existing not in _retired:
        pipes.logger_provider = existing
        return existing
    if isinstance(existing, LoggerProvider) and settings.set_global and _revive(existing, resource):
        provider = existing
    else:
        provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    export = build_log_export(settings, pipes.spool)
    if export is not None:
        from .._export.processor import AccountingLogProcessor

        pipes.log_worker = BatchWorker(
            "logs", export[0], export[1], max_queue_size=2048, max_batch_size=512,
            schedule_delay_s=settings.span_schedule_delay_ms / 1000.0)
        pipes.log_processor = _take_over(provider, AccountingLogProcessor(pipes.log_worker, settings.shutdown_timeout),
                                         provider.add_log_record_processor)
    pipes.logger_provider = provider
    pipes.owns_logger_provider = True
    if settings.set_global and _api_placeholder(existing, "ProxyLoggerProvider"):
        _logs.set_logger_provider(provider)
    return provider


def _api_placeholder(provider: object, name: str) -> bool:
    """The OTel API's stand-in, the only global one may replace (e.g. Logfire's proxies are set)."""
    cls = type(provider)
    return cls.__name__ == name and cls.__module__.startswith("opentelemetry.")


def start_system_metrics(settings: Settings, provider: metrics.MeterProvider) -> object | None:
    """Instrument CPU, memory, network, threads and fds; None when off or already instrumented."""
    if settings.system_metrics == "off":
        return None
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    config = None if settings.system_metrics == "all" else SYSTEM_METRICS_DEFAULT
    instrumentor = SystemMetricsInstrumentor(config=config)
    if instrumentor.is_instrumented_by_opentelemetry:
        return None  # e.g. opentelemetry-instrument already did it
    instrumentor.instrument(meter_provider=provider)
    return cast(object, instrumentor)
