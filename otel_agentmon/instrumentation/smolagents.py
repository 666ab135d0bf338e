"""smolagents, by wrapping its agent, tool and model methods (it has no callback API for them).

::

    from otel_agentmon.instrumentation.smolagents import SmolagentsInstrumentor
    SmolagentsInstrumentor().instrument()         # or opentelemetry-instrument (agentmon_smolagents)

Spans (scope ``otel_agentmon.instrumentation.smolagents``):

* every agent run (``MultiStepAgent.run``, also of a managed agent called by another):
  ``invoke_agent {agent.name or its class}``;
* every model call (``generate`` / ``generate_stream`` of any ``Model`` class, including your
  own subclasses): ``chat {model_id}`` (CLIENT) with token usage;
* every tool call (``Tool.__call__``): ``execute_tool {tool}``. The built-in ``final_answer``
  tool, which is how an agent answers, gets no span.

A ``CodeAgent`` runs its code in a thread of its own; the instrumentor makes that thread carry
the caller's context, so its tool calls stay under the agent. ``uninstrument()`` puts every
original method back (one that someone else replaced since is left to them).

**Coexistence.** When another instrumentation wraps ``MultiStepAgent.run`` (OpenInference's
``SmolagentsInstrumentor``, before or after ours), our wrappers add no spans and we log one
warning: its spans feed otel_agentmon's metrics and health through the dialect mapping. Next to
the official ``opentelemetry-instrumentation-genai-smolagents``, which makes only the agent span,
ours still adds the tool and model-call spans under it (docs/frameworks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from ._base import FrameworkInstrumentor

__all__ = ["SmolagentsInstrumentor"]


def _module_of(wrapper: object) -> str:
    inner = getattr(wrapper, "_self_wrapper", wrapper)  # wrapt keeps the wrapper function here
    module = getattr(inner, "__module__", None)
    return module if isinstance(module, str) else "a wrapper of MultiStepAgent.run"


def _peer(patcher: Any) -> str | None:
    from smolagents import MultiStepAgent

    if not patcher.patched:
        return None
    _, _, original, ours = patcher.patched[0]
    current = MultiStepAgent.__dict__.get("run")
    if current is not ours:
        return _module_of(current)  # someone wrapped ours
    if hasattr(original, "__wrapped__"):
        return _module_of(original)  # we wrapped someone's
    return None


class SmolagentsInstrumentor(FrameworkInstrumentor):
    """Spans for smolagents agents, their model calls and their tool calls."""

    framework = "smolagents"
    dependencies = ("smolagents >= 1.20, < 2",)
    complements_official = "tool and model-call spans"
    _patcher: Any = None

    def _install(self, tracer: trace.Tracer, kwargs: Mapping[str, Any]) -> None:
        from ._smolagents_patch import Patcher

        patcher = Patcher(tracer, _peer, self.stand_down)
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
