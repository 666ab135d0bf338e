"""LlamaIndex agents (``FunctionAgent``, ``ReActAgent``, ``CodeActAgent``, ``AgentWorkflow``):
the official OpenTelemetry GenAI instrumentation for the agent tree, plus ours for model calls.

::

    from otel_agentmon.instrumentation.llama_index import LlamaIndexInstrumentor
    LlamaIndexInstrumentor().instrument()         # or opentelemetry-instrument (agentmon_llama_index)

Spans:

* from ``opentelemetry-instrumentation-genai-llama-index`` (scope
  ``opentelemetry.instrumentation.genai.llama_index``; the extra ``llama-index`` installs it,
  ``instrument()`` turns it on unless it is on already): ``invoke_workflow {workflow}`` for an
  ``AgentWorkflow`` run, ``invoke_agent {agent.name}`` for each agent (opened when the run
  starts, so in-flight and stuck detection see it), ``execute_tool {tool}`` for each tool call;
  errors marked with ``error.type``. It makes no span for the model calls themselves (it leaves
  them to an LLM-client instrumentation, which a custom, local or mock LLM does not have).
* ours (scope ``otel_agentmon.instrumentation.llama_index``): one ``chat {model}`` /
  ``text_completion {model}`` (CLIENT) per model call of any LlamaIndex ``LLM`` class, with
  provider and token usage, under the agent. An LLM-client instrumentation underneath (the
  OpenAI or Anthropic SDK's) stands down for these calls: one inference span per call.

**Coexistence.** Next to OpenInference's or OpenLLMetry's LlamaIndex instrumentation (a span
handler of theirs on the root dispatcher) ours adds no model-call spans (checked per call) and
logs one warning; when theirs is on before ``instrument()``, the official instrumentation is not
turned on either (theirs spans agents and tools already). Their spans feed our metrics and health
through the dialect mapping. ``uninstrument()`` removes
our handlers, and turns the official instrumentation off again only if ``instrument()`` turned
it on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from ._base import FrameworkInstrumentor

__all__ = ["LlamaIndexInstrumentor"]

_PEER_MODULES = ("openinference.", "opentelemetry.instrumentation.llamaindex")


def _peer() -> str | None:
    from llama_index_instrumentation import get_dispatcher

    for handler in get_dispatcher().span_handlers:
        module = type(handler).__module__
        if module.startswith(_PEER_MODULES):
            return module
    return None


class LlamaIndexInstrumentor(FrameworkInstrumentor):
    """LlamaIndex agent, workflow, tool and model-call spans."""

    framework = "llama_index"
    dependencies = ("llama-index-core >= 0.14, < 0.15",)
    _llm: Any = None
    _official: Any = None  # the official instrumentor, when we turned it on

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        from ._llama_index_llm import LLMSpans

        llm = LLMSpans(tracer, _peer, self.stand_down)
        peer = _peer()
        if peer is not None:  # it spans agents and tools too: the official one would be a second tree
            self.stand_down(peer)
        official = _official_on(kwargs) if peer is None else None
        try:
            llm.install()
        except BaseException:
            llm.remove()
            if official is not None:
                official.uninstrument()
            raise
        self._llm, self._official = llm, official

    def _remove(self) -> None:
        llm, self._llm = self._llm, None
        official, self._official = self._official, None
        if llm is not None:
            llm.remove()
        if official is not None:
            official.uninstrument()


def _official_on(kwargs: Mapping[str, Any]) -> Any:
    """Turn the official LlamaIndex instrumentation on (with our providers); None if it was on
    already or is not installed (then the agent and tool spans come from whoever turned it on)."""
    try:
        from opentelemetry.instrumentation.genai.llama_index import LlamaIndexInstrumentor as Official
    except ImportError:
        from ._base import logger

        logger.warning("otel_agentmon: opentelemetry-instrumentation-genai-llama-index is not installed: "
                       "LlamaIndex model calls are traced, agents and tools are not "
                       "(pip install 'otel_agentmon[llama-index]')")
        return None
    official = Official()
    if official.is_instrumented_by_opentelemetry:
        return None
    passed = {k: v for k, v in kwargs.items() if k in ("tracer_provider", "meter_provider", "logger_provider")}
    official.instrument(**passed)
    return official
