"""AutoGen AgentChat (``autogen-agentchat`` / ``autogen-core`` 0.7).

::

    from otel_agentmon.instrumentation.autogen import AutoGenInstrumentor
    AutoGenInstrumentor().instrument()            # or opentelemetry-instrument (agentmon_autogen)

AutoGen emits agent and tool spans of its own (scope ``autogen-core``) but no span for a team
run and none for a model call, so no token usage at all. ``instrument()`` replaces AutoGen's
span helpers with ours and adds the rest (scope ``otel_agentmon.instrumentation.autogen``):

* every team run (``RoundRobinGroupChat``, ``SelectorGroupChat``, ``Swarm``, ... ``run`` and
  ``run_stream``): ``invoke_workflow {team.name}``, the parent of every agent turn in it;
* every agent run (``agent.run``/``run_stream``) and every turn an agent takes in a team:
  ``invoke_agent {agent.name}``, started when the run starts (a task in flight from then on);
* every tool call (``BaseTool.run_json``): ``execute_tool {tool}``;
* every model call (``create`` / ``create_stream`` of any ``ChatCompletionClient``, your own
  subclasses included): ``chat {model}`` (CLIENT) with the ``CreateResult``'s token usage, the
  provider for AutoGen's OpenAI, Azure, Anthropic, Ollama and Azure AI clients, and the
  finish reason. One span per call even when clients wrap each other (a cache): the outermost.

Errors mark the span with ``error.type`` = the exception's class; exceptions pass through
unchanged. AutoGen's ``create_agent`` span for building an agent object in process is dropped
(the conventions' ``create_agent`` is the creation of a remote agent; each would be a trace of
its own). AutoGen's runtime's messaging
spans (``autogen publish``, ``autogen process``..., on the global provider) are not GenAI spans:
they are left as they are (``AUTOGEN_DISABLE_RUNTIME_TRACING=true`` turns them off).
``uninstrument()`` puts every original back (one that someone else replaced since is left to them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from ._base import FrameworkInstrumentor

__all__ = ["AutoGenInstrumentor"]


class AutoGenInstrumentor(FrameworkInstrumentor):
    """Spans for AutoGen AgentChat teams, agents, tool calls and model calls (with tokens)."""

    framework = "autogen"
    dependencies = ("autogen-agentchat >= 0.7, < 0.8",)
    _patcher: Any = None

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        from ._autogen_patch import Patcher

        patcher = Patcher(tracer)
        try:
            patcher.install()
        except BaseException:
            patcher.remove()  # all or nothing
            raise
        self._patcher = patcher

    def _remove(self) -> None:
        patcher, self._patcher = self._patcher, None
        if patcher is not None:
            patcher.remove()
