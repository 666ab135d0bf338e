"""PydanticAI, through its native OpenTelemetry instrumentation.

::

    from otel_agentmon.instrumentation.pydantic_ai import PydanticAIInstrumentor
    PydanticAIInstrumentor().instrument()         # or opentelemetry-instrument (agentmon_pydantic_ai)

PydanticAI already emits GenAI-convention spans (``invoke_agent {agent}``, ``chat {model}`` with
token usage, ``execute_tool {tool}``), nested through the OTel context. Rather than open a
second tree, ``instrument()`` turns that instrumentation on for every agent
(``Agent.instrument_all``) with these settings:

* spans go to our tracer provider (the ``tracer_provider`` kwarg, else the active monitor's) under the
  scope ``otel_agentmon.instrumentation.pydantic_ai``, so our span processor derives the GenAI
  agent metrics, tasks and health from them like from any instrumentation's spans;
* PydanticAI's own metrics are off (a no-op meter provider): ours are derived from the spans,
  and recording both would count every token twice under two scopes;
* message content is included only when content capture is on for spans
  (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), read at ``instrument()`` time.
  PydanticAI's default is to include it.

``uninstrument()`` puts back the previous process-wide default, unless something changed it since.

**Coexistence.** If PydanticAI's native instrumentation is already on process-wide when
``instrument()`` runs (``Agent.instrument_all(...)``, ``logfire.instrument_pydantic_ai()``), we
leave it as it is, add nothing and log one warning: its spans already reach our metrics and
health. An agent built with its own ``instrument=`` or an ``Instrumentation`` capability keeps
its own settings and gets no second tree. OpenInference's PydanticAI package is a span
processor that rewrites these spans, so it coexists without duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.util.types import Attributes

from .._core.active import ActiveTracerProvider
from ._base import SCOPE_PREFIX, FrameworkInstrumentor, content_on_spans

__all__ = ["PydanticAIInstrumentor"]

SCOPE = SCOPE_PREFIX + "pydantic_ai"


class _ScopedTracerProvider(trace.TracerProvider):
    """Hands out tracers of ``delegate`` named by our scope, keeping the framework's version."""

    def __init__(self, delegate: trace.TracerProvider) -> None:
        self._delegate = delegate

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, attributes: Attributes | None = None) -> trace.Tracer:
        return self._delegate.get_tracer(SCOPE, instrumenting_library_version, schema_url, attributes)


class PydanticAIInstrumentor(FrameworkInstrumentor):
    """Turns on PydanticAI's native GenAI spans for every agent, into our pipeline."""

    framework = "pydantic_ai"
    dependencies = ("pydantic-ai-slim >= 1.0, < 3",)

    _previous: Any = None
    _settings: Any = None

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings

        current = Agent._instrument_default  # noqa: SLF001 - the process-wide default instrument_all sets
        if current is not False:
            self.stand_down("PydanticAI's native instrumentation (Agent.instrument_all)")
            return
        provider = kwargs.get("tracer_provider") or ActiveTracerProvider()
        self._settings = InstrumentationSettings(
            tracer_provider=_ScopedTracerProvider(provider), meter_provider=NoOpMeterProvider(),
            include_content=content_on_spans(), include_binary_content=False)
        self._previous = current
        Agent.instrument_all(self._settings)

    def _remove(self) -> None:
        from pydantic_ai import Agent

        settings, self._settings = self._settings, None
        if settings is not None and Agent._instrument_default is settings:  # noqa: SLF001
            Agent.instrument_all(self._previous)

    @property
    def active(self) -> bool:
        """Whether our settings are the process-wide PydanticAI instrumentation right now."""
        from pydantic_ai import Agent

        return self._settings is not None and Agent._instrument_default is self._settings  # noqa: SLF001

