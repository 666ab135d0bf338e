"""otel_agentmon.configure() inside a program whose tracing someone else set up first.

Usage: coexist.py MODE ENDPOINT, MODE one of
  app        the application installed SDK providers exporting to ENDPOINT, then configure()
  instrument run under the stock ``opentelemetry-instrument`` (distro and configurator of
             opentelemetry-distro, exporting to ENDPOINT), then configure()
  logfire    logfire.configure(send_to_logfire=False) exporting to ENDPOINT, then configure()

Every mode then runs the same work: an agent span > an application span > two tool spans, and
an LLM call with token usage. Nothing is flushed by hand: the process exits normally and every
pipeline must deliver at exit. Prints one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from opentelemetry import metrics, trace

MODE, ENDPOINT = sys.argv[1], sys.argv[2]
SPANS = f"{ENDPOINT}/v1/traces"


def application_providers() -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "the-app"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=SPANS)))
    trace.set_tracer_provider(provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{ENDPOINT}/v1/metrics"))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def logfire_providers() -> None:
    import logfire
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    logfire.configure(send_to_logfire=False, console=False, service_name="the-logfire-app", metrics=False,
                      additional_span_processors=[BatchSpanProcessor(OTLPSpanExporter(endpoint=SPANS))])


def work() -> None:
    import otel_agentmon as am

    app_tracer = trace.get_tracer("the-app")
    if MODE == "logfire":
        import logfire

        app_span = logfire.span("app step")
    else:
        app_span = app_tracer.start_as_current_span("app step")  # type: ignore[assignment]  # either span works as a context manager here
    with am.agent("coexisting"), app_span:
        for name in ("lookup", "summarise"):
            with am.tool(name):
                pass
        with am.llm("m1", provider="p1") as call:
            call.record_usage(input_tokens=5, output_tokens=2)


def main() -> None:
    if MODE == "app":
        application_providers()
    elif MODE == "logfire":
        logfire_providers()
    before = trace.get_tracer_provider(), metrics.get_meter_provider()
    import otel_agentmon as am

    monitor = am.configure(service_name="ours", endpoint=ENDPOINT, system_metrics="off", export_timeout=2.0,
                           shutdown_timeout=3.0)
    after = trace.get_tracer_provider(), metrics.get_meter_provider()
    work()
    monitor._sync()  # derive now, so the snapshot below is complete (exit would do it too)
    print(json.dumps({
        "global_tracer_provider_kept": after[0] is before[0],
        "global_meter_provider_kept": after[1] is before[1],
        "ours_is_global": monitor.tracer_provider is after[0],
        "snapshot": {name: dataclasses.asdict(s)["invocations"] for name, s in monitor.snapshot().items()},
    }), flush=True)


if __name__ == "__main__":
    main()
