"""Build the Resource and the three providers, or attach to the ones the application has."""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any, cast

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from . import _semconv as sc
from ._batch import BatchWorker
from ._exporters import (
    DeadlineMetricExporter,
    PeriodicReader,
    build_log_export,
    build_metric_exporter,
    build_span_export,
)
from ._guard import log_once
from ._metrics import views
from ._settings import Settings

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


def tracer_provider(settings: Settings, resource: Resource, pipes: Pipelines,
                    id_generator: IdGenerator | None = None) -> TracerProvider | None:
    """The SDK TracerProvider to use: the application's, or a new one of ours."""
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider) and settings.set_global:
        log_once(logging.INFO, "reuse:tracer", "using the application's TracerProvider; "
                 "spans are exported by its pipeline, not a second one")
        pipes.tracer_provider = existing
        return existing
    provider = TracerProvider(resource=resource, shutdown_on_exit=False, id_generator=id_generator)
    pipes.tracer_provider = provider
    pipes.owns_tracer_provider = True
    export = build_span_export(settings)
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
    if isinstance(existing, MeterProvider) and settings.set_global and not fresh:
        log_once(logging.INFO, "reuse:meter", "using the application's MeterProvider; bucket advice applies, "
                 "our attribute allow-list Views cannot be added to it")
        pipes.meter_provider = existing
        return existing
    readers = list(extra_readers)
    exporter = build_metric_exporter(settings)
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
    if isinstance(existing, LoggerProvider) and settings.set_global:
        pipes.logger_provider = existing
        return existing
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    export = build_log_export(settings)
    if export is not None:
        from ._processor import AccountingLogProcessor

        pipes.log_worker = BatchWorker(
            "logs", export[0], export[1], max_queue_size=2048, max_batch_size=512,
            schedule_delay_s=settings.span_schedule_delay_ms / 1000.0)
        provider.add_log_record_processor(AccountingLogProcessor(pipes.log_worker, settings.shutdown_timeout))
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
