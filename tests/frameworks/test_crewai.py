"""CrewAI runs for real (Crew.kickoff, Agent.kickoff) on a scripted ReAct LLM, instrumented by
``CrewAIInstrumentor``: span tree, run-start visibility, tokens counted once, errors with their
class, one inference span per call, the caller's span as parent, exact removal.

CrewAI (1 GB, and pinning openai < 3, which the dev extra's OpenAI Agents SDK does not allow) is
not in the dev extra: CI runs this file in a venv of its own (``.ci/run``, which sets
``AGENTMON_REQUIRE_CREWAI=1`` so a missing CrewAI fails there instead of skipping).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

if importlib.util.find_spec("crewai") is None:
    if os.environ.get("AGENTMON_REQUIRE_CREWAI") == "1":
        raise RuntimeError("AGENTMON_REQUIRE_CREWAI=1 but crewai is not installed")
    pytest.skip("crewai is not installed (not in the dev extra: .ci/run tests it in a venv of its own; "
                "pip install -e '.[crewai]' to run it here)", allow_module_level=True)

# CrewAI writes a key, a config dir, a results DB and a lock file under HOME/XDG/TMPDIR on first
# use, and phones home unless told not to: keep it in a scratch dir, offline.
_SCRATCH = tempfile.mkdtemp(prefix="agentmon-crewai-")
os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
for _var, _sub in (("HOME", "home"), ("CREWAI_STORAGE_DIR", "storage"), ("XDG_DATA_HOME", "data"),
                   ("XDG_CONFIG_HOME", "config")):
    os.environ[_var] = os.path.join(_SCRATCH, _sub)
    os.makedirs(os.environ[_var], exist_ok=True)

with warnings.catch_warnings():  # CrewAI's import-time warnings (ImportWarning, deprecations) are not ours
    warnings.simplefilter("ignore")
    from crewai import Agent, Crew, Task
    from crewai.events import crewai_event_bus
    from crewai.events.types.llm_events import LLMCallType
    from crewai.llms.base_llm import BaseLLM, llm_call_context
    from crewai.tools import tool

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon._names import semconv as sc  # noqa: E402
from otel_agentmon._spans.inference_scope import inside_inference  # noqa: E402
from otel_agentmon.instrumentation.crewai import CrewAIInstrumentor  # noqa: E402
from otel_agentmon.testing import Capture  # noqa: E402
from tests.frameworks.helpers import assert_agent_children, histogram_count, metric_sum, ours  # noqa: E402
from tests.support.receiver import OTLPReceiver  # noqa: E402
from tests.support.spans import span_attrs  # noqa: E402
from tests.test_examples import ROOT  # noqa: E402

# CrewAI's own deprecation warnings are not ours to fail on.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ASK = 'Thought: I should look up the weather.\nAction: get_weather\nAction Input: {"city": "%s"}'
ANSWER = "Thought: I now know the final answer\nFinal Answer: It is sunny in Paris."


class ModelDown(Exception):
    pass


class ToolBroke(Exception):
    pass


class ScriptedLLM(BaseLLM):  # type: ignore[misc]  # crewai is not installed where mypy runs
    """Replays ReAct text (a tool call, then the answer), emitting the call events as CrewAI's
    built-in providers do. Records what an LLM-client instrumentation underneath would see."""

    calls: int = 0
    city: str = "Paris"
    fail: bool = False
    fail_silently: bool = False  # raise without emitting the failure event (a careless custom LLM)
    seen: list[tuple[bool, float]] = []  # noqa: RUF012  # pydantic copies the default per instance

    def call(self, messages: Any, tools: Any = None, callbacks: Any = None, available_functions: Any = None,
             from_task: Any = None, from_agent: Any = None, response_model: Any = None, **kw: Any) -> Any:
        with llm_call_context():
            self._emit_call_started_event(messages=messages, tools=tools, callbacks=callbacks,
                                          available_functions=available_functions, from_task=from_task,
                                          from_agent=from_agent)
            self.seen.append((inside_inference(), 0.0))
            if self.fail_silently:
                raise ModelDown("model unavailable")
            try:
                if self.fail:
                    raise ModelDown("model unavailable")
            except ModelDown as exc:
                self._emit_call_failed_event(error=str(exc), from_task=from_task, from_agent=from_agent)
                raise
            text = ASK % self.city if self.calls == 0 else ANSWER
            self.calls += 1
            self._emit_call_completed_event(response=text, call_type=LLMCallType.LLM_CALL, from_task=from_task,
                                            from_agent=from_agent, messages=messages,
                                            usage={"prompt_tokens": 10 * self.calls, "completion_tokens": 5})
            return text

    def supports_function_calling(self) -> bool:
        return False


@tool("get_weather")  # type: ignore[untyped-decorator]  # crewai is not installed where mypy runs
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    if city == "Atlantis":
        raise ToolBroke("no weather under the sea")
    with agentmon.tool("weather-api"):  # the user's own span inside the tool
        return f"sunny in {city}"


def weather_agent(**llm: Any) -> Agent:
    return Agent(role="weather", goal="Report the weather", backstory="Knows weather.",
                 llm=ScriptedLLM(model="scripted", seen=[], **llm), tools=[get_weather], verbose=False,
                 allow_delegation=False, max_iter=3, max_retry_limit=0)


def weather_crew(**llm: Any) -> Crew:
    agent = weather_agent(**llm)
    task = Task(description="What is the weather in Paris?", expected_output="One sentence.", agent=agent)
    return Crew(agents=[agent], tasks=[task], verbose=False, name="weather-crew")


@pytest.fixture(scope="module", autouse=True)
def _scratch() -> Iterator[None]:
    yield
    shutil.rmtree(_SCRATCH, ignore_errors=True)


@pytest.fixture
def crewai(agentmon_capture: Capture) -> Iterator[CrewAIInstrumentor]:
    inst = CrewAIInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    yield inst
    inst.uninstrument()


def test_a_crew_gives_workflow_agent_tool_and_one_chat_span_per_llm_call(
        agentmon_capture: Capture, crewai: CrewAIInstrumentor) -> None:
    assert weather_crew().kickoff().raw == "It is sunny in Paris."
    crew = agentmon_capture.span("invoke_workflow weather-crew")
    agent = agentmon_capture.span("invoke_agent weather")
    assert crew.parent is None
    assert agent.parent is not None and agent.parent.span_id == crew.context.span_id
    assert_agent_children(agentmon_capture, agent, tools=1, chats=2)
    tool_span = agentmon_capture.span("execute_tool get_weather")
    assert [s.name for s in agentmon_capture.children(tool_span)] == ["execute_tool weather-api"]
    chats = agentmon_capture.spans("chat scripted")
    assert all(c.kind.name == "CLIENT" for c in chats)
    assert [(span_attrs(c)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(c)[sc.GEN_AI_USAGE_OUTPUT_TOKENS])
            for c in chats] == [(10, 5), (20, 5)]
    assert len(agentmon_capture.spans()) == 6, [s.name for s in agentmon_capture.spans()]
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 30
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 10
    assert histogram_count(agentmon_capture, sc.M_INVOKE_AGENT_DURATION) == 1
    assert metric_sum(agentmon_capture, sc.M_TASKS_COMPLETED, **{sc.GEN_AI_AGENT_NAME: "weather",
                                                                 sc.AGENTMON_TASK_OUTCOME: "success"}) == 1
    for s in agentmon_capture.spans():  # no content by default
        assert not any("Paris" in str(v) for v in span_attrs(s).values()), s.name


def test_the_agent_run_is_in_flight_and_its_llm_calls_are_marked_while_they_run(
        agentmon_capture: Capture, crewai: CrewAIInstrumentor) -> None:
    crew = weather_crew()
    in_flight: list[float] = []
    original = ScriptedLLM.call

    def call(self: ScriptedLLM, *args: Any, **kwargs: Any) -> Any:
        in_flight.append(metric_sum(agentmon_capture, sc.M_TASKS_IN_FLIGHT, **{sc.GEN_AI_AGENT_NAME: "weather"}))
        return original(self, *args, **kwargs)

    llm = crew.agents[0].llm
    object.__setattr__(llm, "call", call.__get__(llm))
    crew.kickoff()
    assert in_flight == [1, 1], "the agent span is open from the start of the run"
    assert [inside for inside, _ in llm.seen] == [True, True], "an LLM client underneath must stand down"
    assert not inside_inference()
    assert metric_sum(agentmon_capture, sc.M_TASKS_IN_FLIGHT, **{sc.GEN_AI_AGENT_NAME: "weather"}) == 0


def test_the_callers_span_is_the_parent(agentmon_capture: Capture, crewai: CrewAIInstrumentor) -> None:
    with agentmon.workflow("nightly"):
        weather_crew().kickoff()
    outer = agentmon_capture.span("invoke_workflow nightly")
    crew = agentmon_capture.span("invoke_workflow weather-crew")
    assert crew.parent is not None and crew.parent.span_id == outer.context.span_id


def test_agent_kickoff_alone_is_an_agent_span(agentmon_capture: Capture, crewai: CrewAIInstrumentor) -> None:
    result = weather_agent().kickoff("What is the weather in Paris?")
    assert "sunny" in str(result.raw)
    agent = agentmon_capture.span("invoke_agent weather")
    assert agent.parent is None
    assert_agent_children(agentmon_capture, agent, tools=1, chats=2)


def test_failures_are_marked_with_the_exception_class(agentmon_capture: Capture, crewai: CrewAIInstrumentor) -> None:
    with pytest.raises(ModelDown):
        weather_crew(fail=True).kickoff()
    chat = agentmon_capture.span("chat scripted")
    assert span_attrs(chat)[sc.ERROR_TYPE] == f"{__name__}.ModelDown"
    for name in ("invoke_agent weather", "invoke_workflow weather-crew"):
        assert span_attrs(agentmon_capture.span(name))[sc.ERROR_TYPE] == f"{__name__}.ModelDown", name
    assert metric_sum(agentmon_capture, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "error"}) == 1

    agentmon_capture.clear()
    weather_crew(city="Atlantis").kickoff()  # CrewAI retries the tool, then hands its error to the model
    attempts = agentmon_capture.spans("execute_tool get_weather")
    assert attempts and all(span_attrs(t)[sc.ERROR_TYPE] == f"{__name__}.ToolBroke" for t in attempts)


def test_an_llm_that_raises_without_reporting_it_leaves_nothing_open_or_current(
        agentmon_capture: Capture, crewai: CrewAIInstrumentor) -> None:
    with pytest.raises(ModelDown):
        weather_crew(fail_silently=True).kickoff()
    chat = agentmon_capture.span("chat scripted")  # ended with its agent, failed by what failed the agent
    assert span_attrs(chat)[sc.ERROR_TYPE] == f"{__name__}.ModelDown"
    assert not trace.get_current_span().is_recording(), "no span of ours left current"
    agentmon_capture.clear()
    weather_crew().kickoff()
    assert agentmon_capture.span("invoke_workflow weather-crew").parent is None, "the next run is a root again"


def test_uninstrument_puts_the_event_bus_back(agentmon_capture: Capture) -> None:
    inst = CrewAIInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)  # twice: one hook
    assert "emit" in vars(crewai_event_bus)
    inst.uninstrument()
    assert "emit" not in vars(crewai_event_bus)
    weather_crew().kickoff()
    assert ours(agentmon_capture, "crewai") == []
    assert [s.name for s in agentmon_capture.spans()] == ["execute_tool weather-api"], "only the user's own span"


def test_crewai_native_openai_provider_over_the_sdk_gives_one_chat_span_per_request(
        agentmon_capture: Capture, crewai: CrewAIInstrumentor) -> None:
    """CrewAI's own OpenAI provider, its real OpenAI client over an in-process httpx transport
    answering like the Chat Completions API (native function calling this time)."""
    import httpx
    from crewai import LLM
    from openai import OpenAI

    requests: list[bool] = []  # per HTTP request: did the client layer see an inference span above it?

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(inside_inference())
        if len(requests) == 1:
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
            usage, reason = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, "tool_calls"
        else:
            message = {"role": "assistant", "content": "It is sunny in Paris."}
            usage, reason = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}, "stop"
        return httpx.Response(200, json={"id": f"cc-{len(requests)}", "object": "chat.completion", "created": 0,
                                         "model": "gpt-4o-mini", "usage": usage,
                                         "choices": [{"index": 0, "message": message, "finish_reason": reason}]})

    llm = LLM(model="openai/gpt-4o-mini", api_key="offline", base_url="http://stub.invalid/v1")
    client: Any = OpenAI  # CrewAI's venv has openai 2 on httpx; mypy's has openai 3 on httpx2
    llm._client = client(api_key="offline", base_url="http://stub.invalid/v1",  # the provider's SDK client, offline
                         http_client=httpx.Client(transport=httpx.MockTransport(answer)))
    agent = Agent(role="weather", goal="Report the weather", backstory="Knows weather.", llm=llm,
                  tools=[get_weather], verbose=False, allow_delegation=False, max_iter=3)
    task = Task(description="What is the weather in Paris?", expected_output="One sentence.", agent=agent)
    assert Crew(agents=[agent], tasks=[task], name="weather-crew").kickoff().raw == "It is sunny in Paris."
    assert requests == [True, True], "each request runs under our chat span: an OpenAI instrumentation stands down"
    agent_span = agentmon_capture.span("invoke_agent weather")
    assert_agent_children(agentmon_capture, agent_span, tools=1, chats=2)
    chats = agentmon_capture.spans("chat gpt-4o-mini")
    assert [(span_attrs(c)[sc.GEN_AI_PROVIDER_NAME], span_attrs(c)[sc.GEN_AI_USAGE_INPUT_TOKENS],
             span_attrs(c)[sc.GEN_AI_USAGE_OUTPUT_TOKENS], span_attrs(c)[sc.GEN_AI_RESPONSE_ID]) for c in chats] == [
        ("openai", 10, 5, "cc-1"), ("openai", 20, 7, "cc-2")]


ZERO_CODE_APP = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("fw_example", sys.argv[1])
mod = sys.modules["fw_example"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
agent = mod.Agent(role="weather", goal="Report the weather", backstory="Knows the weather.",
                  llm=mod.ScriptedLLM(model="scripted", provider="scripted"), tools=[mod.get_weather],
                  verbose=False, allow_delegation=False, max_iter=3)
task = mod.Task(description="What is the weather in Paris?", expected_output="One sentence.", agent=agent)
print("answer:", mod.Crew(agents=[agent], tasks=[task], verbose=False, name="weather-crew").kickoff().raw)
"""


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_unmodified_program_under_opentelemetry_instrument(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    app = tmp_path / "app.py"
    app.write_text(ZERO_CODE_APP)
    with OTLPReceiver() as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                   OTEL_SERVICE_NAME="zero-code-crewai", OTEL_PYTHON_DISTRO="agentmon",
                   OTEL_PYTHON_CONFIGURATOR="agentmon")
        done = subprocess.run([str(bindir / "opentelemetry-instrument"), sys.executable, str(app),
                               str(ROOT / "examples" / "frameworks" / "crewai.py")],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=110, check=False)
        assert done.returncode == 0, done.stderr
        assert "answer: It is sunny in Paris." in done.stdout
        assert rx.wait_for(lambda: "gen_ai.execute_tool.duration" in rx.metric_names(), 10)
        spans = rx.spans()
    assert sorted(s.name for s in spans) == ["chat scripted", "chat scripted", "execute_tool get_weather",
                                             "invoke_agent weather", "invoke_workflow weather-crew"]
    assert {s.scope_name for s in spans} == {"otel_agentmon.instrumentation.crewai"}
    assert len({s.trace_id for s in spans}) == 1
