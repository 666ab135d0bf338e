"""What every framework instrumentor promises: discoverable by ``opentelemetry-instrument``,
declared framework versions, and never a hard dependency."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

from otel_agentmon.instrumentation.agent_framework import AgentFrameworkInstrumentor
from otel_agentmon.instrumentation.autogen import AutoGenInstrumentor
from otel_agentmon.instrumentation.crewai import CrewAIInstrumentor
from otel_agentmon.instrumentation.langgraph import LangGraphInstrumentor
from otel_agentmon.instrumentation.llama_index import LlamaIndexInstrumentor
from otel_agentmon.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from otel_agentmon.instrumentation.pydantic_ai import PydanticAIInstrumentor
from otel_agentmon.instrumentation.smolagents import SmolagentsInstrumentor

INSTRUMENTORS = {
    "agentmon_langgraph": LangGraphInstrumentor,
    "agentmon_openai_agents": OpenAIAgentsInstrumentor,
    "agentmon_pydantic_ai": PydanticAIInstrumentor,
    "agentmon_smolagents": SmolagentsInstrumentor,
    "agentmon_autogen": AutoGenInstrumentor,
    "agentmon_agent_framework": AgentFrameworkInstrumentor,
    "agentmon_llama_index": LlamaIndexInstrumentor,
    "agentmon_crewai": CrewAIInstrumentor,
}
#: Frameworks the dev extra leaves out (tested in venvs of their own by .ci/run).
NOT_IN_DEV = {"agentmon_crewai": "crewai"}


def test_each_instrumentor_is_an_opentelemetry_instrumentor_entry_point() -> None:
    found = {ep.name: ep for ep in metadata.entry_points(group="opentelemetry_instrumentor")
             if ep.name.startswith("agentmon_")}
    assert set(found) == set(INSTRUMENTORS)
    for name, cls in INSTRUMENTORS.items():
        assert found[name].load() is cls
        assert found[name].dist is not None and found[name].dist.name == "otel_agentmon"  # type: ignore[union-attr]  # dist checked not None just before


@pytest.mark.parametrize("cls", [
    pytest.param(cls, id=name, marks=pytest.mark.skipif(
        name in NOT_IN_DEV and importlib.util.find_spec(NOT_IN_DEV[name]) is None,
        reason="not in the dev extra: .ci/run tests it in a venv of its own"))
    for name, cls in INSTRUMENTORS.items()])
def test_declared_framework_range_is_satisfied_by_the_installed_framework(cls: type) -> None:
    deps = list(cls().instrumentation_dependencies())
    assert deps and all("<" in d and ">=" in d for d in deps), deps
    assert get_dependency_conflicts(deps) is None


BLOCKED = ("langchain_core", "langgraph", "agents", "pydantic_ai", "smolagents", "autogen_core", "autogen_agentchat",
           "agent_framework", "llama_index", "crewai")


def test_package_and_instrumentors_work_without_any_framework_installed() -> None:
    """With every framework module unimportable, importing and even instrumenting is harmless."""
    code = textwrap.dedent(f"""
        import sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None   # `import name` now raises ImportError
        import otel_agentmon, otel_agentmon.instrumentation
        from otel_agentmon.instrumentation.langgraph import LangGraphInstrumentor
        from otel_agentmon.instrumentation.openai_agents import OpenAIAgentsInstrumentor
        from otel_agentmon.instrumentation.pydantic_ai import PydanticAIInstrumentor
        from otel_agentmon.instrumentation.smolagents import SmolagentsInstrumentor
        from otel_agentmon.instrumentation.autogen import AutoGenInstrumentor
        from otel_agentmon.instrumentation.agent_framework import AgentFrameworkInstrumentor
        from otel_agentmon.instrumentation.llama_index import LlamaIndexInstrumentor
        from otel_agentmon.instrumentation.crewai import CrewAIInstrumentor
        for cls in (LangGraphInstrumentor, OpenAIAgentsInstrumentor, PydanticAIInstrumentor,
                    SmolagentsInstrumentor, AutoGenInstrumentor, AgentFrameworkInstrumentor,
                    LlamaIndexInstrumentor, CrewAIInstrumentor):
            cls().instrument(skip_dep_check=True)   # what opentelemetry-instrument does
            cls().uninstrument()
            cls().instrument()
        loaded = [m for m in {BLOCKED!r} if sys.modules.get(m) is not None]
        print("ok", loaded)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok []"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
