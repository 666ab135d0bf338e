"""A first run with no backend: one line saying what to start; `agentmon --version`; `serve --open`."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_agentmon._setup.first_run import DEFAULT_PORTS, forget_hint, hint_if_nothing_listens
from otel_agentmon._setup.settings import resolve

ROOT = Path(__file__).resolve().parent.parent
HINT = "nothing listens at http://localhost:"


@pytest.fixture(autouse=True)
def _no_endpoint_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "AGENTMON_")):
            monkeypatch.delenv(name)
    yield
    forget_hint()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hints(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if HINT in r.getMessage()]


def test_nothing_listening_at_the_default_endpoint_is_one_line_naming_agentmon_serve(
        caplog: pytest.LogCaptureFixture) -> None:
    port = _closed_port()
    with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        assert hint_if_nothing_listens(resolve({}), port=port)
    (line,) = _hints(caplog)
    assert f"localhost:{port}" in line and "agentmon serve" in line and "OTEL_EXPORTER_OTLP_ENDPOINT" in line
    noisy = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    with caplog.at_level(logging.WARNING):
        noisy.warning("Transient error %s encountered while exporting span batch, retrying in 1s.",
                      "[Errno 111] Connection refused")
        noisy.warning("Failed to export span batch code: 500")  # other failures still show
    messages = [r.getMessage() for r in caplog.records]
    assert not any("Connection refused" in m for m in messages)
    assert any("code: 500" in m for m in messages)


def test_a_listening_receiver_or_a_configured_endpoint_gets_no_hint(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener, caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not hint_if_nothing_listens(resolve({}), port=int(listener.getsockname()[1]))
        closed = _closed_port()
        assert not hint_if_nothing_listens(resolve({"endpoint": f"http://127.0.0.1:{closed}"}), port=closed)
        assert not hint_if_nothing_listens(resolve({"traces_exporter": "none", "metrics_exporter": "none",
                                                    "logs_exporter": "none"}), port=closed)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{closed}/v1/traces")
        assert not hint_if_nothing_listens(resolve({}), port=closed)
    assert _hints(caplog) == []


def _default_port_listening() -> bool:
    try:
        with socket.create_connection(("localhost", DEFAULT_PORTS["http/protobuf"]), timeout=0.5):
            return True
    except OSError:
        return False


def test_quickstart_without_a_backend_says_what_to_start_instead_of_retry_warnings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "The weather:" in proc.stdout
    if _default_port_listening():  # something (a Collector, agentmon serve) took the default port
        assert HINT not in proc.stderr
        return
    assert proc.stderr.count(HINT) == 1, proc.stderr
    assert "Transient error" not in proc.stderr and "Connection refused" not in proc.stderr, proc.stderr


def _agentmon(*args: str) -> list[str]:
    return [sys.executable, "-m", "otel_agentmon.cli", *args]


def test_version_is_the_installed_distributions() -> None:
    proc = subprocess.run(_agentmon("--version"), capture_output=True, text=True, timeout=60, check=True, cwd=ROOT)
    assert proc.stdout.strip() == f"agentmon {importlib.metadata.version('otel_agentmon')}"


def test_serve_open_opens_the_dashboard_url_in_the_browser(tmp_path: Path) -> None:
    opened = tmp_path / "opened"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "BROWSER": str(browser)}
    proc = subprocess.Popen(_agentmon("serve", "--port", "0", "--open", "--duration", "60"), env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split(" at ", 1)[1].strip()
        deadline = time.monotonic() + 60
        while not (opened.exists() and opened.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert opened.read_text().strip() == url
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
