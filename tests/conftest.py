"""Shared fixtures for the behaviour tests (the ``agentmon_capture`` fixture comes from the plugin)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_agentmon import _guard
from tests.support.stack import Binaries, MissingBinaries, locate_binaries


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
    """The built Collector and Jaeger (collector-config/build) and Prometheus; missing ones fail the tests."""
    try:
        return locate_binaries()
    except MissingBinaries as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)
