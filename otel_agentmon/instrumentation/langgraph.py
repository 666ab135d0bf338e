"""LangGraph (and any LangChain runnable) through langchain-core's callback system.

::

    from otel_agentmon.instrumentation.langgraph import LangGraphInstrumentor
    LangGraphInstrumentor().instrument()          # or opentelemetry-instrument (agentmon_langgraph)

A process-wide callback handler is registered with ``register_configure_hook``, so every
LangChain run gets it without passing ``callbacks=``. Spans (scope
``otel_agentmon.instrumentation.langgraph``):

* the outermost run: ``invoke_agent {graph name}`` for a LangGraph graph (name from
  ``compile(name=...)`` / ``run_name``), ``invoke_workflow {name}`` for any other chain;
* a graph nested in it (a compiled graph used as a node, or invoked from a node): a sub-agent,
  ``invoke_agent {its name}``, under the enclosing agent;
* every chat model call: ``chat {model}`` (CLIENT) with provider, model and token usage;
  a completion model: ``text_completion {model}``;
* every tool call: ``execute_tool {tool}`` with the tool call id.

Graph nodes and inner chains get no span of their own: their model and tool calls hang
directly under the agent, whatever thread or task LangGraph ran them on.

**Coexistence.** When another LangChain instrumentation is active (OpenInference's or
OpenLLMetry's ``LangChainInstrumentor``, or any other that wraps ``BaseCallbackManager.__init__``)
a new run gets no spans from us and we log one warning: that peer's spans already feed
otel_agentmon's metrics and health through the dialect mapping. A run we started before the
peer appeared finishes normally.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

from .._spans.inference_scope import register_probe, unregister_probe
from ._base import FrameworkInstrumentor

__all__ = ["LangGraphInstrumentor", "langchain_peer"]


def langchain_peer() -> str | None:
    """The module of another instrumentation that hooks LangChain's callback managers, if any."""
    try:
        from langchain_core.callbacks import BaseCallbackManager
    except ImportError:
        return None
    init = BaseCallbackManager.__dict__.get("__init__")
    if not hasattr(init, "__wrapped__"):
        return None
    wrapper = getattr(init, "_self_wrapper", None)  # wrapt keeps the wrapper function here
    module = getattr(wrapper, "__module__", None)
    return module if isinstance(module, str) else "a wrapper of BaseCallbackManager.__init__"


class LangGraphInstrumentor(FrameworkInstrumentor):
    """Spans for LangGraph graphs, LangChain chat models and tools, from langchain-core callbacks."""

    framework = "langgraph"
    dependencies = ("langchain-core >= 1.0, < 2",)

    _hook: ContextVar[Any] | None = None
    _handler: Any = None

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        from langchain_core.tracers.context import register_configure_hook

        from ._langchain_callbacks import AgentmonCallbackHandler

        handler = AgentmonCallbackHandler(tracer, langchain_peer, self.stand_down)
        # A ContextVar whose default is the handler: every context sees it, every thread too.
        hook: ContextVar[Any] = ContextVar("otel_agentmon_langchain_handler", default=handler)
        register_configure_hook(hook, True)
        self._hook, self._handler = hook, handler
        register_probe(handler.inside_model_call)  # the LLM client under a chat model stands down

    def _remove(self) -> None:
        from langchain_core.tracers import context as lc_context

        hooks = lc_context._configure_hooks  # noqa: SLF001 - langchain-core has no unregister
        hooks[:] = [h for h in hooks if h[0] is not self._hook]
        if self._handler is not None:
            unregister_probe(self._handler.inside_model_call)
        self._hook, self._handler = None, None
