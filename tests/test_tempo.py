"""collector-config/tempo.yaml: its OTLP exporter, exercised against Jaeger's OTLP endpoint standing
in for Tempo's (no Tempo binary can be installed here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import Binaries, Stack, clean_env, wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_tempo_config_ships_traces_over_otlp(binaries: Binaries, tmp_path: Path) -> None:
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        jaeger = stack.jaeger()
        collector = stack.collector("otelcol-tempo", "tempo.yaml",
                                    env={"TEMPO_ENDPOINT": jaeger.otlp_grpc, "TEMPO_INSECURE": "true"})
        env = clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http})
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], env=env,
                              capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
        assert proc.returncode == 0, proc.stderr
        traces = wait_until(lambda: jaeger.traces("quickstart") or None, 30, "the quickstart trace in Jaeger")
        names = {s["operationName"] for s in traces[0]["spans"]}
        assert names == {"invoke_agent weather-assistant", "execute_tool geocode", "execute_tool forecast",
                         "chat stub-model"}
    assert os.environ.get("TEMPO_ENDPOINT") is None  # nothing leaked into this process
