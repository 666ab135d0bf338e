"""Shared fixtures for the behaviour tests (the ``agentmon_capture`` fixture comes from the plugin)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_agentmon import HealthPolicy
from otel_agentmon._core import guard as _guard
from otel_agentmon._core import state as _state
from otel_agentmon._setup import monitor as _monitor
from otel_agentmon._setup.monitor import Monitor
from otel_agentmon._setup.settings import resolve
from otel_agentmon.testing import Capture, capture
from tests.support.receiver import OTLPReceiver
from tests.support.stack import Binaries, binaries_or_skip

# The disk spool is on by default; the suite's fault tests check the memory-only behaviour (what
# is dropped, and why), and no test may write into the user's own state directory. The spool's
# tests (tests/test_spool.py) turn it on with a directory of their own.
os.environ["AGENTMON_SPOOL"] = "off"
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="agentmon-test-state-")

#: Small health thresholds, so health and alert tests run in tenths of a second.
FAST_HEALTH = HealthPolicy(heartbeat_timeout=0.5, stuck_after=0.3, cpu_limit=None)
#: Private monitors against a test receiver: a short shutdown deadline, fast batches, no system
#: metrics. The export timeout is the product default: the receiver shares this (busy) process, and
#: a healthy one must not time out; fault tests that need a short one set it.
MONITOR_BASE: dict[str, Any] = {"set_global": False, "system_metrics": "off", "export_timeout": 10.0,
                                "shutdown_timeout": 2.0, "span_schedule_delay_ms": 50,
                                "service_name": "agentmon-test"}
MonitorFor = Callable[..., Monitor]


@pytest.fixture
def fresh_log_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """``log_once`` lets one message per key through per minute, process-wide; start each test afresh."""
    monkeypatch.setattr(_guard, "_limiter", _guard.RateLimiter())


class StartRecorder(SpanProcessor):
    """Remembers the attributes every span had when it started (what samplers and tail rules see)."""

    def __init__(self) -> None:
        self.at_start: dict[str, dict[str, object]] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.at_start[span.name] = dict(span.attributes or {})

    def on_end(self, span: ReadableSpan) -> None:
        pass


def detach_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Messages of every captured record that mentions a failed context detach."""
    return [r.getMessage() for r in caplog.records if "detach" in r.getMessage().lower()]


def agentmon_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("otel_agentmon") and r.levelno >= logging.WARNING]


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """The built Collector and Jaeger (collector-config/build) and Prometheus; missing ones skip the
    tests with the reason, or fail them under AGENTMON_REQUIRE_STACK=1 (.ci/run sets it)."""
    return binaries_or_skip()


@pytest.fixture
def health_capture() -> Iterator[Callable[..., Capture]]:
    """Build captures with a fast health loop and small thresholds; each is closed afterwards."""
    closers: list[Callable[[], None]] = []

    def build(**options: Any) -> Capture:
        options.setdefault("health_interval", 0.05)
        options.setdefault("health_policy", FAST_HEALTH)
        cap, close = capture(**options)
        closers.append(close)
        return cap

    yield build
    for close in reversed(closers):  # each close restores the state its capture found
        close()


@pytest.fixture
def rx() -> Iterator[OTLPReceiver]:
    """A fault-injecting OTLP/HTTP receiver on 127.0.0.1."""
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture
def monitor_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[MonitorFor]:
    """Build private monitors against a receiver (or an endpoint URL) and point the decorators at
    the newest one; all are shut down and the package state restored afterwards."""
    monkeypatch.setattr(_guard, "_limiter", _guard.RateLimiter())  # rate limits are process-wide
    saved = (_state.tracer, _state.event_logger, _state.enabled, _state.capture_content, _monitor._current)
    made: list[Monitor] = []

    def make(target: OTLPReceiver | str, **opts: Any) -> Monitor:
        endpoint = target if isinstance(target, str) else target.endpoint
        monitor = Monitor(resolve({**MONITOR_BASE, "endpoint": endpoint, **opts}))
        _state.tracer, _state.event_logger = monitor.tracer, monitor.event_logger
        _state.capture_content = monitor.settings.capture_content
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.shutdown(1.0)
    _state.tracer, _state.event_logger, _state.enabled, _state.capture_content, _monitor._current = saved
