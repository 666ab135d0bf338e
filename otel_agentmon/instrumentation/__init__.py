"""Auto-instrumentation of agent frameworks, as OpenTelemetry ``BaseInstrumentor`` classes.

==================  =========================================  ============================
extra               instrumentor                               entry point
==================  =========================================  ============================
``langgraph``       ``langgraph.LangGraphInstrumentor``        ``agentmon_langgraph``
``openai-agents``   ``openai_agents.OpenAIAgentsInstrumentor`` ``agentmon_openai_agents``
``pydantic-ai``     ``pydantic_ai.PydanticAIInstrumentor``     ``agentmon_pydantic_ai``
``smolagents``      ``smolagents.SmolagentsInstrumentor``      ``agentmon_smolagents``
==================  =========================================  ============================

Also ``autogen.AutoGenInstrumentor`` (extra ``autogen-agentchat``, entry point ``agentmon_autogen``)
and ``agent_framework.AgentFrameworkInstrumentor`` (extra ``agent-framework``, entry point
``agentmon_agent_framework``).

Each is registered in the ``opentelemetry_instrumentor`` entry-point group, so
``opentelemetry-instrument`` enables the ones whose framework is installed. Importing this
package or any of its public modules never imports a framework: the framework is imported
when ``instrument()`` runs, and a missing one is skipped (one debug log line).
"""

from __future__ import annotations

__all__: list[str] = []
