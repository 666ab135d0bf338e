"""otel_agentmon: OpenTelemetry-native monitoring for software and AI agents.

::

    import otel_agentmon as agentmon

    monitor = agentmon.configure(service_name="research-swarm")

    @agentmon.agent("researcher")
    def research(topic: str) -> str:
        with agentmon.tool("search"):
            ...

Everything users import lives here; the modules behind it are private.
"""

from __future__ import annotations

from ._context import ContextThreadPoolExecutor, with_context
from ._derive import AgentSummary
from ._llm import LLMCall, llm, record_llm_messages, record_llm_usage
from ._monitor import Monitor, configure, get_monitor
from ._providers import VERSION as __version__
from ._spans import SpanHandle, agent, error_type, task, tool, workflow
from ._stats import Stats

__all__ = [
    "AgentSummary",
    "ContextThreadPoolExecutor",
    "LLMCall",
    "Monitor",
    "SpanHandle",
    "Stats",
    "__version__",
    "agent",
    "configure",
    "error_type",
    "get_monitor",
    "llm",
    "record_llm_messages",
    "record_llm_usage",
    "task",
    "tool",
    "with_context",
    "workflow",
]
