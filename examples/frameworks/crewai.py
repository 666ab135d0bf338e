"""CrewAI, auto-instrumented: one crew, one agent with one tool, on a scripted offline LLM.

    pip install -e '.[crewai]' && python examples/frameworks/crewai.py

Produces one trace: invoke_workflow weather-crew -> invoke_agent weather -> chat scripted,
execute_tool get_weather, chat scripted (with token usage), plus the GenAI agent, tool and
token metrics and agentmon's task metrics.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

# This file is named like the package it shows: keep its directory off the import path, or
# `import crewai` below would import this file instead of CrewAI.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

# Offline and self-contained: no CrewAI telemetry or cloud tracing, and the files CrewAI writes
# on first use (a key, a config dir, a results DB) go to a scratch dir, not your home.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
_SCRATCH = tempfile.mkdtemp(prefix="crewai-example-")
atexit.register(shutil.rmtree, _SCRATCH, True)
for _var in ("HOME", "CREWAI_STORAGE_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
    os.environ[_var] = os.path.join(_SCRATCH, _var.lower())
    os.makedirs(os.environ[_var], exist_ok=True)

from typing import Any  # noqa: E402

from crewai import Agent, Crew, Task  # noqa: E402
from crewai.events.types.llm_events import LLMCallType  # noqa: E402
from crewai.llms.base_llm import BaseLLM, llm_call_context  # noqa: E402
from crewai.tools import tool  # noqa: E402

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon.instrumentation.crewai import CrewAIInstrumentor  # noqa: E402

REPLIES = ['Thought: I should look up the weather.\nAction: get_weather\nAction Input: {"city": "Paris"}',
           "Thought: I now know the final answer\nFinal Answer: It is sunny in Paris."]
USAGE = [{"prompt_tokens": 10, "completion_tokens": 5}, {"prompt_tokens": 20, "completion_tokens": 7}]


class ScriptedLLM(BaseLLM):
    """An offline LLM replaying ReAct text; it emits the LLM call events like CrewAI's providers."""

    calls: int = 0

    def call(self, messages: Any, tools: Any = None, callbacks: Any = None, available_functions: Any = None,
             from_task: Any = None, from_agent: Any = None, response_model: Any = None, **kw: Any) -> Any:
        with llm_call_context():
            self._emit_call_started_event(messages=messages, tools=tools, callbacks=callbacks,
                                          available_functions=available_functions, from_task=from_task,
                                          from_agent=from_agent)
            text, usage = REPLIES[self.calls], USAGE[self.calls]
            self.calls += 1
            self._emit_call_completed_event(response=text, call_type=LLMCallType.LLM_CALL, from_task=from_task,
                                            from_agent=from_agent, messages=messages, usage=usage)
            return text

    def supports_function_calling(self) -> bool:
        return False  # the text ReAct path: CrewAI parses Action / Action Input itself


@tool("get_weather")
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


def main() -> None:
    monitor = agentmon.configure(service_name="crewai-example")
    CrewAIInstrumentor().instrument()
    agent = Agent(role="weather", goal="Report the weather", backstory="Knows the weather.",
                  llm=ScriptedLLM(model="scripted", provider="scripted"), tools=[get_weather], verbose=False,
                  allow_delegation=False, max_iter=3)
    task = Task(description="What is the weather in Paris?", expected_output="One sentence.", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], verbose=False, name="weather-crew")
    answer = crew.kickoff().raw
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {answer}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
