"""Framework agents with zero code: an unmodified program run by ``opentelemetry-instrument`` with
our distro gets our framework spans, and next to a peer instrumentation of the same framework
(installed, so ``opentelemetry-instrument`` enables it too) still exactly one span tree."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.receiver import OTLPReceiver
from tests.test_examples import ROOT

#: An application that knows nothing of OpenTelemetry: it runs the example's agent.
APP = textwrap.dedent("""
    import asyncio, importlib.util, sys
    example = sys.argv[1]
    spec = importlib.util.spec_from_file_location("fw_example", sys.argv[2])
    mod = sys.modules["fw_example"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if example == "langgraph":
        out = mod.build_graph().invoke({"messages": [("user", "What is the weather in Paris?")]})
        print("answer:", out["messages"][-1].content)
    elif example == "openai_agents":
        print("answer:", asyncio.run(mod.run()))
    elif example == "pydantic_ai":
        print("answer:", mod.agent.run_sync("What is the weather in Paris?").output)
    else:
        from smolagents.monitoring import LogLevel
        agent = mod.ToolCallingAgent(tools=[mod.get_weather], model=mod.ScriptedModel(), name="weather",
                                     verbosity_level=LogLevel.OFF)
        print("answer:", agent.run("What is the weather in Paris?"))
""")
SCOPE = "otel_agentmon.instrumentation."

CASES = [
    # example, peer entry points disabled, spans of ours expected
    pytest.param("langgraph", "langchain", 4, id="langgraph"),
    pytest.param("langgraph", "", 0, id="langgraph-with-peers"),
    pytest.param("openai_agents", "openai_agents", 5, id="openai_agents"),
    pytest.param("openai_agents", "", 0, id="openai_agents-with-peers"),
    pytest.param("pydantic_ai", "", 4, id="pydantic_ai"),
    pytest.param("smolagents", "smolagents", 4, id="smolagents"),
    pytest.param("smolagents", "", 0, id="smolagents-with-peers"),
]


@pytest.mark.subprocess
@pytest.mark.timeout(90)
@pytest.mark.parametrize(("example", "disabled", "expected"), CASES)
def test_unmodified_program_under_opentelemetry_instrument(tmp_path: Path, example: str, disabled: str,
                                                          expected: int) -> None:
    bindir = Path(sys.executable).parent
    app = tmp_path / "app.py"
    app.write_text(APP)
    with OTLPReceiver() as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                   OTEL_SERVICE_NAME="zero-code-fw", OTEL_PYTHON_DISTRO="agentmon",
                   OTEL_PYTHON_CONFIGURATOR="agentmon", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
        done = subprocess.run([str(bindir / "opentelemetry-instrument"), sys.executable, str(app), example,
                               str(ROOT / "examples" / "frameworks" / f"{example}.py")],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=80, check=False)
        assert done.returncode == 0, done.stderr
        assert "answer: It is sunny in Paris." in done.stdout
        assert "Attempting to instrument while already instrumented" not in done.stderr  # each instrumentor once
        # The tool metric, derived from whichever instrumentation's tool span, arrives last.
        assert rx.wait_for(lambda: "gen_ai.execute_tool.duration" in rx.metric_names(), 10)
        spans = rx.spans()
    mine = [s for s in spans if s.scope_name == SCOPE + example]
    assert len(mine) == expected, sorted((s.scope_name, s.name) for s in spans)
    if expected:
        assert len({s.trace_id for s in mine}) == 1
        tools = [s for s in spans if "get_weather" in s.name]
        assert len(tools) == 1 and tools[0] in mine  # ours is the only tree
    else:
        assert "already traces" in done.stderr  # the one warning of our stand-down
