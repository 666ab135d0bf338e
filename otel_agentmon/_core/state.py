"""Process-wide state read on the hot path: which tracer the decorators use, and flags.

Kept in one tiny module so a decorated call costs one module-attribute read to find it.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import _logs, trace
from opentelemetry import context as otel_context

from .._names.semconv import ContentMode

#: Before configure() this routes through the API's global provider (a no-op until one is set).
tracer: trace.Tracer = trace.get_tracer("otel_agentmon")
#: The active monitor's TracerProvider (None: the global one), for instrumentations that look it
#: up when a span starts (``_core.active``): a test capture's private provider while it is active.
tracer_provider: trace.TracerProvider | None = None
#: Where content events (opt-in) go; our LoggerProvider's logger once configured.
event_logger: _logs.Logger = _logs.get_logger("otel_agentmon")
#: A test clock (ns since the epoch) for span start/end times; None means the SDK's clock.
clock: Callable[[], int] | None = None
#: False under OTEL_SDK_DISABLED=true: decorators call straight through.
enabled: bool = True
capture_content: ContentMode = "NO_CONTENT"

#: Key in the OTel Context naming the agent whose work runs there; tools and tasks inherit it.
#: It travels with the span context into threads, executors and generators.
AGENT_KEY = otel_context.create_key("agentmon-agent-name")


def content_on_spans() -> bool:
    return capture_content in ("SPAN_ONLY", "SPAN_AND_EVENT")


def content_on_events() -> bool:
    return capture_content in ("EVENT_ONLY", "SPAN_AND_EVENT")
