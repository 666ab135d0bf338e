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

from ._alerts.engine import AlertEvent, AlertRule
from ._alerts.notify import CallbackNotifier, LoggingNotifier, Notifier, WebhookNotifier
from ._alerts.rules import load_rules, to_prometheus
from ._export.stats import NotifierStats, SpoolStats, Stats
from ._health.loop import AgentHealth, HealthPolicy, SwarmHealth
from ._metrics.derive import AgentSummary
from ._records.recording import RecordingSpanProcessor, read_recording
from ._setup.configure import configure
from ._setup.monitor import Monitor, get_monitor, heartbeat
from ._setup.providers import VERSION as __version__
from ._spans.classes import instrument, uninstrument
from ._spans.context import ContextThreadPoolExecutor, inject_env, with_context
from ._spans.llm import LLMCall, llm, record_llm_messages, record_llm_usage
from ._spans.ops import SpanHandle, agent, error_type, task, tool, workflow

__all__ = [
    "AgentHealth",
    "AgentSummary",
    "AlertEvent",
    "AlertRule",
    "CallbackNotifier",
    "ContextThreadPoolExecutor",
    "HealthPolicy",
    "LLMCall",
    "LoggingNotifier",
    "Monitor",
    "Notifier",
    "NotifierStats",
    "RecordingSpanProcessor",
    "SpanHandle",
    "SpoolStats",
    "Stats",
    "SwarmHealth",
    "WebhookNotifier",
    "__version__",
    "agent",
    "configure",
    "error_type",
    "get_monitor",
    "heartbeat",
    "inject_env",
    "instrument",
    "llm",
    "load_rules",
    "read_recording",
    "record_llm_messages",
    "record_llm_usage",
    "task",
    "to_prometheus",
    "tool",
    "uninstrument",
    "with_context",
    "workflow",
]
