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
def test_bad_arguments_warn_once_each_and_the_rest_of_the_configuration_applies() -> None:
    result = run_py("""
        import json, logging, otel_agentmon as am
        logging.basicConfig(level=logging.WARNING)
        m = am.configure(service_name="svc", endpoint=123, protocol=5, resource_attributes=[1],
                         span_max_queue_size=0, shutdown_timeout=-1.0, headers=42, swarm="s1")
        s = m.settings
        print(json.dumps({"endpoint": s.endpoint, "protocol": s.protocol, "queue": s.span_max_queue_size,
                          "shutdown": s.shutdown_timeout, "headers": s.headers, "resource": s.resource_attributes,
                          "service": dict(m.tracer_provider.resource.attributes)["service.name"],
                          "swarm": dict(m.tracer_provider.resource.attributes)["agentmon.swarm.name"],
                          "configured": am.get_monitor() is m}))
    """, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_HEADERS": "k=secret-env"})
    assert result["configured"] and (result["service"], result["swarm"]) == ("svc", "s1")
    # A bad argument falls back to the environment variable, then the default.
    assert (result["endpoint"], result["protocol"], result["queue"]) == (None, "grpc", 2048)
    assert (result["shutdown"], result["resource"], result["headers"]) == (3.0, None, {"k": "secret-env"})
    warnings = [line for line in result["stderr"].splitlines() if line.startswith("WARNING:otel_agentmon")]
    assert len(warnings) == 6, result["stderr"]
    stderr = result["stderr"]
    assert ("configure(endpoint=123) ignored: expected an http:// or https:// URL with a host; "
            "using the default") in stderr
    assert ("configure(protocol=5) ignored: expected one of http/protobuf, grpc; using OTEL_EXPORTER_OTLP_PROTOCOL "
            "from the environment") in stderr
    assert "configure(resource_attributes=[1]) ignored: expected a mapping of attribute names to values" in stderr
    assert "configure(span_max_queue_size=0) ignored: expected a positive integer; using the default 2048" in stderr
    assert "configure(shutdown_timeout=-1.0) ignored" in stderr
    assert "configure(headers=<redacted>) ignored" in stderr and "secret" not in stderr
    assert "Traceback" not in stderr


@pytest.mark.timeout(60)
def test_a_misspelled_option_is_one_warning_with_a_suggestion_and_nothing_else_changes() -> None:
    result = run_py("""
        import json, logging, otel_agentmon as am
        logging.basicConfig(level=logging.WARNING)
        m = am.configure("positional", sevice_name="typo", service_name="svc", zzz=1)
        print(json.dumps({"service": dict(m.tracer_provider.resource.attributes)["service.name"]}))
    """)
    assert result["service"] == "svc"
    stderr = result["stderr"]
    assert "configure(): unknown option 'sevice_name' ignored; did you mean 'service_name'?" in stderr
    assert "configure(): unknown option 'zzz' ignored; see the README's configuration table" in stderr
    assert "configure() takes keyword arguments only; 1 positional argument(s) ignored" in stderr
    assert "typo" not in stderr  # the value of an unknown option is never logged (it may be a secret)


@pytest.mark.timeout(60)
def test_an_internal_failure_while_building_leaves_the_application_running_without_telemetry() -> None:
    result = run_py("""
        import json, logging, otel_agentmon as am
        from otel_agentmon._setup import monitor as _monitor
        logging.basicConfig(level=logging.WARNING)
        def broken(*args, **kwargs):
            raise RuntimeError("injected")
        _monitor.warn_if_plaintext_remote = broken  # fault injection: a bug of ours while building
        m = am.configure(traces_exporter="otlp")
        @am.agent("a")
        def work(x):
            return x * 2
        print(json.dumps({"value": work(21), "disabled": m.settings.disabled, "same": am.get_monitor() is m}))
    """)
    assert result == {"value": 42, "disabled": True, "same": True, "stderr": result["stderr"]}
    assert "configure() failed; telemetry is off" in result["stderr"] and "injected" in result["stderr"]


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
