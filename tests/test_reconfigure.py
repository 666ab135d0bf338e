"""configure() after shutdown() (issue 11, item 8): a new monitor whose telemetry reaches the
receiver, or, where the application owns the providers, a warning that says why it cannot.

Each case runs in a fresh interpreter (the OpenTelemetry API sets global providers once per
process) and exports to an in-process OTLP receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.receiver import OTLPReceiver, ReceivedSpan

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(90)]


def run(code: str, rx: OTLPReceiver) -> tuple[dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    env.update(OTEL_LOGS_EXPORTER="none", AGENTMON_SYSTEM_METRICS="off", RX=rx.endpoint)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=80, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def warnings(stderr: str) -> list[str]:
    # Not the first-run hint (nothing listens at the default endpoint: our own exporters have nowhere
    # to go on this machine), which tests/test_first_run.py covers.
    return [line for line in stderr.splitlines()
            if line.startswith("WARNING:otel_agentmon") and "nothing listens at" not in line]


def spans_by_name(rx: OTLPReceiver, names: set[str]) -> dict[str, ReceivedSpan]:
    assert rx.wait_for(lambda: names <= {s.name for s in rx.spans()}, 15), sorted(s.name for s in rx.spans())
    return {s.name: s for s in rx.spans()}


def agent_metric_points(rx: OTLPReceiver, agent: str) -> list[Any]:
    def points() -> list[Any]:
        return [p for m in rx.metrics() if m.name == "gen_ai.invoke_agent.duration" for p in m.points
                if p.attributes.get("gen_ai.agent.name") == agent]
    rx.wait_for(lambda: bool(points()), 15)
    return points()


AGAIN = """
    import json, logging, os, otel_agentmon as am
    from opentelemetry import trace
    logging.basicConfig(level=logging.WARNING)
    first = am.configure(service_name="svc", endpoint=os.environ["RX"])
    library = trace.get_tracer("some.library")  # an instrumentation holds its tracer for good
    with am.agent("first"), library.start_as_current_span("library-first"):
        pass
    first.shutdown(5.0)
    second = am.configure(service_name={second_name!r}, endpoint=os.environ["RX"])
    with am.agent("second"), library.start_as_current_span("library-second"):
        pass
    flushed = second.force_flush(10.0)
    stats = second.stats()
    second.shutdown(5.0)
    print(json.dumps({{"new": second is not first and am.get_monitor() is second, "flushed": flushed,
                      "exported": stats.spans_exported, "balanced": second.stats().balanced}}))
"""


def test_configure_after_shutdown_exports_again_through_the_same_global_providers(rx: OTLPReceiver) -> None:
    result, stderr = run(AGAIN.format(second_name="svc"), rx)
    assert result == {"new": True, "flushed": True, "exported": 2, "balanced": True}
    spans = spans_by_name(rx, {"invoke_agent first", "library-first", "invoke_agent second", "library-second"})
    # Every instrumentation that holds a tracer of the global provider exports again, under the
    # same Resource (this is the same process: the same service.instance.id).
    assert spans["library-second"].parent_span_id == spans["invoke_agent second"].span_id
    assert len({json.dumps(s.resource, sort_keys=True) for s in spans.values()}) == 1
    assert agent_metric_points(rx, "second"), "the new monitor's metrics arrive"
    [warning] = warnings(stderr)
    assert "configure() after shutdown(): spans and logs export again" in warning
    assert "the global MeterProvider cannot be restarted" in warning


def test_configure_after_shutdown_with_a_new_identity_builds_new_providers_and_says_what_stays_off(
        rx: OTLPReceiver) -> None:
    result, stderr = run(AGAIN.format(second_name="renamed"), rx)
    assert result == {"new": True, "flushed": True, "exported": 1, "balanced": True}
    spans = spans_by_name(rx, {"invoke_agent first", "library-first", "invoke_agent second"})
    assert spans["invoke_agent second"].resource["service.name"] == "renamed"
    assert spans["invoke_agent first"].resource["service.name"] == "svc"
    assert "library-second" not in spans  # the shut-down global provider: said in the warning below
    assert agent_metric_points(rx, "second")[0] is not None
    [warning] = warnings(stderr)
    assert "configure() after shutdown() with a different service identity" in warning
    assert "cannot be replaced (the API sets them once per process)" in warning


APPLICATION_OWNED = """
    import json, logging, os, otel_agentmon as am
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    logging.basicConfig(level=logging.WARNING)
    app = TracerProvider(resource=Resource({"service.name": "the-app"}))
    app.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=os.environ["RX"] + "/v1/traces")))
    trace.set_tracer_provider(app)
    app_meters = MeterProvider()
    metrics.set_meter_provider(app_meters)
    first = am.configure()
    with am.agent("first"):
        pass
    first.shutdown(5.0)
    second = am.configure()  # the application's providers are still running: join them again
    with am.agent("second"):
        pass
    second.shutdown(5.0)
    app_meters.shutdown()  # the application stops its own MeterProvider ...
    third = am.configure()  # ... which configure() cannot replace: it says so
    print(json.dumps({"third": third is not second}))
"""


def test_with_the_applications_providers_configure_again_joins_them_or_warns_why_it_cannot(
        rx: OTLPReceiver) -> None:
    result, stderr = run(APPLICATION_OWNED, rx)
    assert result == {"third": True}
    spans = spans_by_name(rx, {"invoke_agent first", "invoke_agent second"})
    assert {s.resource["service.name"] for s in spans.values()} == {"the-app"}
    ours = warnings(stderr)
    assert len(ours) == 1 and "the application's MeterProvider is shut down" in ours[0], stderr
    assert "configure() cannot replace a global provider the application owns" in ours[0]


CYCLES = """
    import json, logging, os, otel_agentmon as am
    from opentelemetry import _logs, trace
    logging.basicConfig(level=logging.WARNING)
    for cycle in range(5):
        monitor = am.configure(service_name="svc", endpoint=os.environ["RX"], logs_exporter="otlp")
        with am.agent(f"cycle-{cycle}"):
            pass
        stats_ok = monitor.shutdown(5.0) and monitor.stats().balanced and monitor.stats().spans_exported == 1
    # A provider keeps every processor it was given: one of ours per provider, however many cycles.
    spans = trace.get_tracer_provider()._active_span_processor._span_processors
    logs = _logs.get_logger_provider()._multi_log_record_processor._log_record_processors
    print(json.dumps({"span_processors": len(spans), "log_processors": len(logs), "last_cycle_ok": stats_ok}))
"""


def test_repeated_configure_and_shutdown_keeps_one_processor_of_ours_per_provider(rx: OTLPReceiver) -> None:
    result, _ = run(CYCLES, rx)
    assert result == {"span_processors": 1, "log_processors": 1, "last_cycle_ok": True}
    spans_by_name(rx, {f"invoke_agent cycle-{i}" for i in range(5)})
