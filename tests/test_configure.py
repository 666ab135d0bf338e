"""configure(): the Resource, the precedence of arguments and environment, reuse of providers the
application already installed, and the disabled switch. Each case runs in a fresh interpreter,
because OpenTelemetry's global providers can be set only once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_py(code: str, env: dict[str, str] | None = None, argv0: str = "-c") -> dict[str, Any]:
    """Run ``code`` in a child interpreter; it must print one JSON object as its last line."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    base = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
            "AGENTMON_SYSTEM_METRICS": "off"}
    script = textwrap.dedent(code)
    if argv0 == "-c":
        args = [sys.executable, "-c", script]
    else:
        path = Path(argv0)
        path.write_text(script, encoding="utf-8")
        args = [sys.executable, str(path)]
    proc = subprocess.run(args, env={**clean, **base, **(env or {})}, capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result


RESOURCE = """
import json, otel_agentmon as am
m = am.configure({args})
print(json.dumps(dict(m.tracer_provider.resource.attributes)))
"""


@pytest.mark.timeout(60)
def test_resource_carries_service_and_swarm_identity() -> None:
    attrs = run_py(RESOURCE.format(args="service_name='svc', service_namespace='ns', service_version='1.2', "
                                        "swarm='s1', agent_role='researcher'"))
    assert attrs["service.name"] == "svc"
    assert attrs["service.namespace"] == "ns"
    assert attrs["service.version"] == "1.2"
    assert attrs["agentmon.swarm.name"] == "s1"
    assert attrs["agentmon.agent.role"] == "researcher"
    assert attrs["telemetry.distro.name"] == "otel_agentmon"
    assert len(attrs["service.instance.id"]) == 36


@pytest.mark.timeout(60)
def test_service_name_precedence_argument_env_resource_attributes_script(tmp_path: Path) -> None:
    env = {"OTEL_SERVICE_NAME": "from-env", "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,team=x"}
    assert run_py(RESOURCE.format(args="service_name='arg'"), env)["service.name"] == "arg"
    assert run_py(RESOURCE.format(args=""), env)["service.name"] == "from-env"
    only_attrs = run_py(RESOURCE.format(args=""), {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,team=x"})
    assert only_attrs["service.name"] == "from-attrs"
    assert only_attrs["team"] == "x"
    script = run_py(RESOURCE.format(args=""), argv0=str(tmp_path / "my_agent.py"))
    assert script["service.name"] == "my_agent"


@pytest.mark.timeout(60)
def test_existing_sdk_providers_are_reused_not_replaced_and_nothing_is_exported_twice() -> None:
    result = run_py("""
        import json
        from opentelemetry import trace, metrics
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        app_spans = InMemorySpanExporter()
        app_tp = TracerProvider()
        app_tp.add_span_processor(SimpleSpanProcessor(app_spans))
        trace.set_tracer_provider(app_tp)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        import otel_agentmon as am
        m = am.configure(service_name="mine", traces_exporter="otlp", metrics_exporter="otlp")
        @am.agent("a")
        def work():
            with am.tool("t"):
                pass
        work()
        m.force_flush(2)
        names = sorted(x.name for rm in reader.get_metrics_data().resource_metrics
                       for sm in rm.scope_metrics for x in sm.metrics)
        stats = m.stats()
        print(json.dumps({"same_tp": trace.get_tracer_provider() is app_tp,
                          "spans": sorted(s.name for s in app_spans.get_finished_spans()),
                          "metrics": names, "exported": stats.spans_exported,
                          "not_exported": stats.spans_not_exported, "balanced": stats.balanced}))
    """)
    assert result["same_tp"] is True
    assert result["spans"] == ["execute_tool t", "invoke_agent a"]  # each span once, via the app's pipeline
    assert "gen_ai.invoke_agent.duration" in result["metrics"]
    assert result["exported"] == 0 and result["not_exported"] == 2 and result["balanced"]
    assert result["stderr"].count("WARNING") <= 1


@pytest.mark.timeout(60)
def test_sdk_disabled_makes_decorators_call_straight_through() -> None:
    result = run_py("""
        import json, otel_agentmon as am
        m = am.configure()
        @am.agent("a")
        def f(x):
            return x * 2
        with am.tool("t") as t:
            t.set_attribute("k", "v")
        print(json.dumps({"value": f(21), "started": m.stats().spans_started}))
    """, {"OTEL_SDK_DISABLED": "true"})
    assert result == {"value": 42, "started": 0, "stderr": ""}


@pytest.mark.timeout(60)
def test_configure_twice_returns_the_running_monitor_with_one_warning() -> None:
    result = run_py("""
        import json, logging, otel_agentmon as am
        logging.basicConfig(level=logging.WARNING)
        a = am.configure(service_name="one")
        b = am.configure(service_name="two")
        c = am.configure(service_name="three")
        print(json.dumps({"same": a is b is c and am.get_monitor() is a}))
    """)
    assert result["same"] is True
    assert result["stderr"].count("configure() already ran") == 1


@pytest.mark.timeout(60)
def test_bad_environment_values_warn_once_and_fall_back() -> None:
    result = run_py("""
        import json, logging, otel_agentmon as am
        logging.basicConfig(level=logging.WARNING)
        m = am.configure()
        print(json.dumps({"queue": m.settings.span_max_queue_size, "realtime": m.settings.realtime}))
    """, {"OTEL_BSP_MAX_QUEUE_SIZE": "abc", "AGENTMON_REALTIME": "maybe"})
    assert result["queue"] == 2048 and result["realtime"] is True
    assert result["stderr"].count("OTEL_BSP_MAX_QUEUE_SIZE") == 1
    assert result["stderr"].count("AGENTMON_REALTIME") == 1


@pytest.mark.timeout(60)
def test_invalid_arguments_fail_fast_at_configure() -> None:
    result = run_py("""
        import json, otel_agentmon as am
        errors = []
        for bad in ({"endpoint": "not a url"}, {"protocol": "carrier-pigeon"}, {"span_max_queue_size": 0},
                    {"shutdown_timeout": -1.0}, {"unknown_option": 1}):
            try:
                am.configure(**bad)
            except (ValueError, TypeError) as exc:
                errors.append(type(exc).__name__ + ": " + str(exc))
        print(json.dumps({"errors": errors, "configured": am.get_monitor() is not None}))
    """)
    assert len(result["errors"]) == 5, result["errors"]
    assert "carrier-pigeon" in result["errors"][1] and "http/protobuf" in result["errors"][1]
    assert result["errors"][4].startswith("TypeError")
    assert result["configured"] is False


@pytest.mark.timeout(60)
def test_plaintext_remote_endpoint_warns_once_and_never_logs_headers() -> None:
    result = run_py("""
        import json, logging, otel_agentmon as am
        logging.basicConfig(level=logging.DEBUG)
        # Nothing is emitted and only the (idle) trace exporter is on: no connection is ever tried.
        m = am.configure(endpoint="http://collector.invalid:4318", traces_exporter="otlp",
                         headers={"authorization": "Bearer s3cret-token"})
        m.shutdown(0.5)
        print(json.dumps({}))
    """, {"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cret-env"})
    assert result["stderr"].count("plain http://") == 1
    assert "s3cret" not in result["stderr"]
