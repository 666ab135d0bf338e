"""CrewAI crews, agents, tasks, tools and LLM calls, from CrewAI's own event bus.

::

    from otel_agentmon.instrumentation.crewai import CrewAIInstrumentor
    CrewAIInstrumentor().instrument()             # or opentelemetry-instrument (agentmon_crewai)

Spans (scope ``otel_agentmon.instrumentation.crewai``):

* every crew kickoff: ``invoke_workflow {crew name}`` (default name ``crew``);
* every agent execution (one per task the agent works on, and ``Agent.kickoff()`` on its own):
  ``invoke_agent {agent role}``, opened when the execution starts (so in-flight and stuck
  detection see it), with the agent's goal as description and the task's id
  (``agentmon.task.id``);
* every tool use: ``execute_tool {tool}``;
* every LLM call of any CrewAI LLM (the built-in providers, LiteLLM, your ``BaseLLM``
  subclass as long as it emits the call events as the built-in ones do): ``chat {model}``
  (CLIENT) with provider and token usage.

Tasks, flows, memory, knowledge and reasoning steps get no span of their own: what happens in
them hangs under the enclosing agent or crew. Failures mark the span ERROR with ``error.type``
the exception's class. The tree follows CrewAI's own event ids, whatever thread a task runs on.

CrewAI's own tracing (``CREWAI_TRACING_ENABLED``, ``telemetry_session``) and its anonymous
telemetry (``CREWAI_DISABLE_TELEMETRY``) write to private tracer providers of their own: they
never add spans to your trace. ``uninstrument()`` puts the event bus back as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from ._base import FrameworkInstrumentor

__all__ = ["CrewAIInstrumentor"]


class CrewAIInstrumentor(FrameworkInstrumentor):
    """Spans for CrewAI crews, agents, tools and LLM calls."""

    framework = "crewai"
    dependencies = ("crewai >= 1.0, < 2",)
    _listener: Any = None

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        from ._crewai_events import Listener

        listener = Listener(tracer)
        listener.install()
        self._listener = listener

    def _remove(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.remove()
