"""The OpenAI Agents SDK through its own tracing API (``agents.tracing.TracingProcessor``).

::

    from otel_agentmon.instrumentation.openai_agents import OpenAIAgentsInstrumentor
    OpenAIAgentsInstrumentor().instrument()       # or opentelemetry-instrument (agentmon_openai_agents)

``instrument()`` adds one trace processor next to the SDK's others (its default exporter to the
OpenAI backend is left alone); ``uninstrument()`` removes exactly that one. Spans (scope
``otel_agentmon.instrumentation.openai_agents``):

* an SDK trace (one ``Runner.run``, or your ``agents.trace(...)`` block): ``invoke_workflow {name}``;
* an agent span: ``invoke_agent {agent}``;
* a generation or response span (a model call): ``chat {model}`` (CLIENT), provider ``openai``,
  with token usage when the model reports it (``chat`` alone when the model is unknown);
* a function span: ``execute_tool {tool}``.

The SDK's task, turn, handoff, guardrail and custom spans get no span of their own; what runs
inside them hangs under the enclosing agent. An SDK span with an error marks ours ERROR with
``error.type`` the failing exception's class (a tool's own exception, the model's, the one
``Runner.run`` raises; taken from the SDK's ``SpanImpl.set_error``, which we wrap while
instrumented), never the SDK's message; the workflow span of a run that raised is ERROR too.
With no exception in hand (an error the SDK records without one) ``error.type`` is ``_OTHER``.

**Coexistence.** When another OTel bridge is registered as a trace processor (OpenInference's
or OpenLLMetry's ``OpenAIAgentsInstrumentor``, the OTel GenAI contrib processor: any processor
from an ``openinference.*``, ``opentelemetry.*`` or ``logfire*`` module) a new SDK trace gets no
spans from us and we log one warning; that peer's spans feed otel_agentmon's metrics and
health through the dialect mapping. Next to the official
``opentelemetry-instrumentation-genai-openai-agents``, which makes no model-call span, ours still
adds those under its agent spans (docs/frameworks.md). OpenInference's default (exclusive) mode removes the other
processors, ours included, and puts them back when it is uninstrumented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from .._spans.inference_scope import register_probe, unregister_probe
from ._base import FrameworkInstrumentor

__all__ = ["OpenAIAgentsInstrumentor", "registered_processors"]

_PEER_MODULES = ("openinference.", "opentelemetry.", "logfire")


def registered_processors() -> list[Any] | None:
    """The SDK's current trace processors, or None when they cannot be read."""
    from agents.tracing import get_trace_provider

    multi = getattr(get_trace_provider(), "_multi_processor", None)
    processors = getattr(multi, "_processors", None)
    return list(processors) if isinstance(processors, (tuple, list)) else None


def _peer(ours: object) -> str | None:
    for processor in registered_processors() or ():
        module = type(processor).__module__
        if processor is not ours and module.startswith(_PEER_MODULES):
            return module
    return None


class OpenAIAgentsInstrumentor(FrameworkInstrumentor):
    """Spans for OpenAI Agents SDK runs, from the SDK's own trace events."""

    framework = "openai_agents"
    dependencies = ("openai-agents >= 0.21, < 1",)
    complements_official = "model-call spans"

    _processor: Any = None
    _undo: Any = None

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        from agents import add_trace_processor

        from ._openai_agents_processor import AgentmonTracingProcessor, watch_set_error

        self._processor = AgentmonTracingProcessor(tracer, _peer, self.stand_down)
        self._undo = watch_set_error(self._processor)
        add_trace_processor(self._processor)
        register_probe(self._processor.inside_model_call)  # the LLM client under a model call stands down

    def _remove(self) -> None:
        from agents import set_trace_processors

        processor, self._processor = self._processor, None
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()
        if processor is not None:
            unregister_probe(processor.inside_model_call)
        current = registered_processors()
        if current is not None and any(p is processor for p in current):
            set_trace_processors([p for p in current if p is not processor])
