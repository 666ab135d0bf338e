"""``agentmon serve`` behind the real OpenTelemetry Collector, as one more ``otlphttp`` destination."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from otel_agentmon.serve import ServeConfig, Server
from tests.support.polling import wait_for
from tests.support.stack import Binaries, Stack
from tests.test_serve_health import _EMITTER, ROOT, state

CONFIG = """
extensions:
  health_check:
    endpoint: ${env:AGENTMON_HEALTH_ENDPOINT}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:AGENTMON_OTLP_GRPC_ENDPOINT}
      http:
        endpoint: ${env:AGENTMON_OTLP_HTTP_ENDPOINT}
processors:
  batch:
    timeout: 200ms
exporters:
  otlphttp/serve:
    endpoint: ${env:SERVE_URL}   # /v1/traces, /v1/metrics, /v1/logs appended; gzip by default
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [otlphttp/serve]}
    metrics: {receivers: [otlp], processors: [batch], exporters: [otlphttp/serve]}
    logs: {receivers: [otlp], processors: [batch], exporters: [otlphttp/serve]}
"""


def test_a_collector_exports_all_signals_to_serve(binaries: Binaries, tmp_path: Path) -> None:
    config = tmp_path / "to-serve.yaml"
    config.write_text(CONFIG)
    with Server(ServeConfig(port=0)) as srv, Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        col = stack.collector("collector", str(config), env={"SERVE_URL": srv.url})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = col.otlp_http
        proc = subprocess.run([sys.executable, "-c", _EMITTER, "via-collector", "alpha"], env=env,
                              capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
        assert proc.returncode == 0, proc.stderr
        assert wait_for(lambda: state(srv)["store"]["spans"] == 14, timeout=10)
        data = state(srv)
        by_name = {a["name"]: a for a in data["agents"]}
        assert set(by_name) == {"alpha", "shared"}
        assert by_name["alpha"]["instances"][0].startswith("via-collector/")
        assert by_name["alpha"]["source"] == "reported"  # the health gauges and events came through too
        assert data["store"].get("traces_requests_bad", 0) == 0
