"""Test utilities for applications instrumented with otel_agentmon (a pytest plugin).

The ``agentmon_capture`` fixture gives each test private providers that keep everything in
memory, with deterministic trace and span ids::

    def test_research_agent(agentmon_capture):
        research("otel")
        (agent_span,) = agentmon_capture.spans("invoke_agent researcher")
        assert agent_span.attributes["gen_ai.agent.name"] == "researcher"
        assert "gen_ai.invoke_agent.duration" in agentmon_capture.metrics()

It touches no global provider and restores the package state afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from ._core import state as _state
from ._records import walks as _walks
from ._setup.monitor import Monitor, _configure_for_testing
from ._spans import sanitize as _sanitize

__all__ = ["Capture", "SequentialIdGenerator", "StepClock", "agentmon_capture", "agentmon_capture_stepclock",
           "capture"]


class SequentialIdGenerator(IdGenerator):
    """Trace ids 1, 2, 3 ... and span ids 1, 2, 3 ...: stable across runs, readable in asserts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trace = 0
        self._span = 0

    def generate_trace_id(self) -> int:
        with self._lock:
            self._trace += 1
            return self._trace

    def generate_span_id(self) -> int:
        with self._lock:
            self._span += 1
            return self._span


class StepClock:
    """A clock for span times: starts at ``start_ns`` and moves ``step_ns`` on every reading, so
    span timestamps and durations are the same on every run."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1_000_000) -> None:
        self._lock = threading.Lock()
        self._now = start_ns
        self._step = step_ns

    def __call__(self) -> int:
        with self._lock:
            self._now += self._step
            return self._now


def _span_tree(spans: Sequence[ReadableSpan]) -> list[Any]:
    """``Capture.tree()`` of any spans: each span once, whatever their parent links say.

    A span whose parent is not among them is a root, and so is each span on a cycle of parent
    links; a parent id that two spans share is the first of them (in start order).
    """
    ordered = sorted(spans, key=lambda s: s.start_time or 0)
    first: dict[tuple[int, int], int] = {}
    for i, span in enumerate(ordered):
        if span.context is not None:
            first.setdefault((span.context.trace_id, span.context.span_id), i)
    links: dict[int, int | None] = {}
    for i, span in enumerate(ordered):
        parent = span.parent
        links[i] = None if parent is None else first.get((parent.trace_id, parent.span_id))
    parents = _walks.acyclic_parents(links)
    nodes: list[tuple[str, list[Any]]] = [(span.name, []) for span in ordered]
    roots: list[Any] = []
    for i, node in enumerate(nodes):  # no recursion: a chain of any depth builds
        parent_index = parents[i]
        (roots if parent_index is None else nodes[parent_index][1]).append(node)
    return roots


class Capture:
    """Spans, metrics and log records produced while it is active."""

    def __init__(self, monitor: Monitor, spans: InMemorySpanExporter, metrics: InMemoryMetricReader,
                 logs: InMemoryLogRecordExporter) -> None:
        self.monitor = monitor
        self._spans = spans
        self._metrics = metrics
        self._logs = logs

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans in end order, optionally only those called ``name``."""
        found = list(self._spans.get_finished_spans())
        return [s for s in found if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (fails the test if there is not exactly one)."""
        matches = self.spans(name)
        assert len(matches) == 1, f"expected one span {name!r}, found {[s.name for s in self.spans()]}"
        return matches[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.parent is not None and s.parent.span_id == parent.context.span_id]

    def tree(self) -> list[Any]:
        """Span names as nested ``(name, [children])`` tuples, roots first, in start order."""
        return _span_tree(self.spans())

    def metrics(self) -> dict[str, Metric]:
        """The current value of every metric, by name (derives pending span metrics first)."""
        self.monitor._sync()  # noqa: SLF001 - the capture owns its monitor
        data = self._metrics.get_metrics_data()
        out: dict[str, Metric] = {}
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out[metric.name] = metric
        return out

    def points(self, name: str) -> Sequence[Any]:
        """Data points of metric ``name`` (an empty list when it has none yet)."""
        metric = self.metrics().get(name)
        return list(metric.data.data_points) if metric is not None else []

    def logs(self) -> list[ReadableLogRecord]:
        return list(self._logs.get_finished_logs())

    def clear(self) -> None:
        self._spans.clear()
        self._logs.clear()


def capture(*, clock: StepClock | None = None, **options: Any) -> tuple[Capture, Any]:
    """Build a capture; returns it and a function that tears it down. See ``agentmon_capture``.

    With ``clock`` (e.g. ``StepClock()``), our spans take their start and end times from it.
    """
    saved = (_state.tracer, _state.event_logger, _state.enabled, _state.capture_content, _state.clock,
             _state.tracer_provider)
    saved_length = _sanitize.get_max_length()
    defaults: Mapping[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none",
                                   "system_metrics": "off", "service_name": "agentmon-test"}
    reader = InMemoryMetricReader()
    monitor = _configure_for_testing({**defaults, **options}, [reader], SequentialIdGenerator())
    _state.clock = clock
    spans = InMemorySpanExporter()
    tp = monitor.tracer_provider
    assert isinstance(tp, TracerProvider)
    tp.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # the SDK leaves InMemoryLogRecordExporter.__init__ unannotated
    lp = monitor.logger_provider
    assert isinstance(lp, LoggerProvider)
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs))

    def close() -> None:
        monitor.shutdown(2.0)
        (_state.tracer, _state.event_logger, _state.enabled, _state.capture_content, _state.clock,
         _state.tracer_provider) = saved
        _sanitize.set_max_length(saved_length)

    return Capture(monitor, spans, reader, logs), close


@pytest.fixture
def agentmon_capture() -> Iterator[Capture]:
    """Private in-memory providers for one test, with deterministic ids (span times are real)."""
    cap, close = capture()
    try:
        yield cap
    finally:
        close()


@pytest.fixture
def agentmon_capture_stepclock() -> Iterator[Capture]:
    """Like ``agentmon_capture``, and our spans' times come from a ``StepClock``: every reading is
    1 ms after the previous one, from a fixed epoch, so whole span trees compare equal across runs."""
    cap, close = capture(clock=StepClock())
    try:
        yield cap
    finally:
        close()
