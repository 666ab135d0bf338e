"""The tracer provider of the active agentmon monitor, resolved when a span starts.

Instrumentations (ours, a framework's native telemetry we route, an LLM client's) are set up
once per process, usually before the test or the program picks its providers. A tracer fixed
at ``instrument()`` time would keep sending spans to whatever provider was global then; the
``agentmon_capture`` fixture, whose providers are private, would see nothing. The tracers here
look the provider up on every span start instead: the provider of the monitor installed last
(``configure()``, or a test capture while it is active), else the global one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

from . import state as _state


def active_provider() -> trace.TracerProvider:
    """The active monitor's tracer provider, else the global one."""
    return _state.tracer_provider or trace.get_tracer_provider()


class ActiveTracer(trace.Tracer):
    """A tracer of the active provider (``active_provider()``), looked up at each span start."""

    __slots__ = ("_args", "_provider", "_tracer")

    def __init__(self, name: str, version: str | None, schema_url: str | None, attributes: Attributes) -> None:
        self._args = (name, version, schema_url, attributes)
        self._provider: trace.TracerProvider | None = None
        self._tracer: trace.Tracer = trace.NoOpTracer()

    def _current(self) -> trace.Tracer:
        provider = _state.tracer_provider or trace.get_tracer_provider()
        if provider is not self._provider:  # one identity check on the usual path
            name, version, schema_url, attributes = self._args
            self._tracer = provider.get_tracer(name, version, schema_url, attributes)
            self._provider = provider
        return self._tracer

    def start_span(self, name: str, context: otel_context.Context | None = None,
                   kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes = None,
                   links: Sequence[Link] | None = None, start_time: int | None = None,
                   record_exception: bool = True, set_status_on_exception: bool = True) -> Span:
        return self._current().start_span(name, context, kind, attributes, links, start_time, record_exception,
                                          set_status_on_exception)

    @_agnosticcontextmanager  # the API's own ProxyTracer overrides it the same way
    def start_as_current_span(self, name: str, context: otel_context.Context | None = None,
                              kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes = None,
                              links: Sequence[Link] | None = None, start_time: int | None = None,
                              record_exception: bool = True, set_status_on_exception: bool = True,
                              end_on_exit: bool = True) -> Iterator[Span]:
        with self._current().start_as_current_span(name, context, kind, attributes, links, start_time,
                                                   record_exception, set_status_on_exception,
                                                   end_on_exit) as span:
            yield span


class ActiveTracerProvider(trace.TracerProvider):
    """Hands out :class:`ActiveTracer` s, optionally all under one instrumentation scope name
    (``scope``: a framework's native spans routed into our pipeline under our scope)."""

    def __init__(self, scope: str | None = None, version: str | None = None) -> None:
        self._scope = scope
        self._version = version

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, attributes: Attributes | None = None) -> trace.Tracer:
        name = self._scope or instrumenting_module_name
        return ActiveTracer(name, self._version or instrumenting_library_version, schema_url, attributes)

