"""LlamaIndex agents run for real (FunctionAgent, AgentWorkflow) on a scripted function-calling
LLM, instrumented by ``LlamaIndexInstrumentor`` (the official GenAI instrumentation for the agent
tree, ours for model calls): span tree, run-start visibility, tokens counted once, errors, one
inference span per call, ``instrument()`` on ``run()``, and exact removal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index_instrumentation import get_dispatcher
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from pydantic import Field

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon._spans.inference_scope import inside_inference
from otel_agentmon.instrumentation.llama_index import LlamaIndexInstrumentor
from otel_agentmon.testing import Capture
from tests.frameworks.helpers import assert_agent_children, histogram_count, metric_sum
from tests.support.receiver import OTLPReceiver
from tests.support.spans import span_attrs
from tests.test_examples import ROOT

OFFICIAL = "opentelemetry.instrumentation.genai.llama_index"
# llama-index-workflows lists a step's members with inspect.getmembers, which touches pydantic's
# deprecated ``__fields__`` (and more): LlamaIndex's warning, not ours.
pytestmark = [pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
              pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")]


class ModelDown(Exception):
    pass


class ScriptedLLM(MockFunctionCallingLLM):
    """Calls get_weather (10 in, 5 out tokens), then answers (20 in, 7 out), like
    llama-index-llms-openai reports usage (``additional_kwargs``)."""

    delay: float = 0.0
    fail: bool = False
    fail_in_stream: bool = False
    city: str = "Paris"
    seen_inside: list[bool] = Field(default_factory=list)
    on_call: Any = None  # called at each model call, inside the run

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_function_calling_model=True, model_name="scripted")

    def _reply(self, messages: Sequence[ChatMessage]) -> ChatResponse:
        self.seen_inside.append(inside_inference())  # what an LLM-client instrumentation underneath asks
        if self.on_call is not None:
            self.on_call()
        if self.fail:
            raise ModelDown("model unavailable")
        if any(m.role == MessageRole.TOOL for m in messages):
            msg = ChatMessage(role=MessageRole.ASSISTANT, content="It is sunny in Paris.")
            usage = {"prompt_tokens": 20, "completion_tokens": 7}
        else:
            call = ToolCallBlock(tool_call_id="call_1", tool_name="get_weather", tool_kwargs={"city": self.city})
            msg = ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
            usage = {"prompt_tokens": 10, "completion_tokens": 5}
        return ChatResponse(message=msg, delta=msg.content or "", additional_kwargs=usage)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._reply(messages)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self._reply(messages)

        async def stream() -> Any:
            if self.fail_in_stream:
                raise ModelDown("model unavailable")
            yield reply

        return stream()


class ToolBroke(Exception):
    pass


def get_weather(city: str) -> str:
    """Return the weather for a city."""
    if city == "Atlantis":
        raise ToolBroke("no weather under the sea")
    return f"sunny in {city}"


def weather_agent(**llm: Any) -> FunctionAgent:
    return FunctionAgent(name="weather", description="Reports the weather", tools=[get_weather],
                         llm=ScriptedLLM(**llm))


def run(agent: Any) -> str:
    async def main() -> str:
        return str(await agent.run(user_msg="What is the weather in Paris?"))

    return asyncio.run(main())


@pytest.fixture
def li(agentmon_capture: Capture) -> Iterator[LlamaIndexInstrumentor]:
    inst = LlamaIndexInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    yield inst
    inst.uninstrument()


def _kids(cap: Capture, parent: ReadableSpan) -> list[str]:
    return sorted(s.name for s in cap.children(parent))


@pytest.mark.parametrize("streaming", [True, False])
def test_a_function_agent_gives_agent_tool_and_one_chat_span_per_model_call(
        agentmon_capture: Capture, li: LlamaIndexInstrumentor, streaming: bool) -> None:
    agent = weather_agent()
    agent.streaming = streaming
    assert run(agent) == "It is sunny in Paris."
    root = agentmon_capture.span("invoke_agent weather")
    assert root.parent is None and root.instrumentation_scope is not None
    assert root.instrumentation_scope.name == OFFICIAL
    assert_agent_children(agentmon_capture, root, tools=1, chats=2)
    chats = agentmon_capture.spans("chat scripted")
    assert [c.kind for c in chats] == [SpanKind.CLIENT] * 2
    assert [(span_attrs(c)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(c)[sc.GEN_AI_USAGE_OUTPUT_TOKENS])
            for c in chats] == [(10, 5), (20, 7)]
    assert len(agentmon_capture.spans()) == 4
    # Counted once over every scope: tokens, the agent run, the task.
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 30
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 12
    assert histogram_count(agentmon_capture, sc.M_INVOKE_AGENT_DURATION) == 1
    assert metric_sum(agentmon_capture, sc.M_TASKS_COMPLETED, **{sc.GEN_AI_AGENT_NAME: "weather",
                                                                 sc.AGENTMON_TASK_OUTCOME: "success"}) == 1
    # No content by default.
    assert not any("Paris" in str(v) for s in agentmon_capture.spans() for v in span_attrs(s).values()
                   if not isinstance(v, (int, float)) and s.name != "execute_tool get_weather")


def test_a_model_call_is_marked_so_an_llm_client_instrumentation_underneath_stands_down(
        agentmon_capture: Capture, li: LlamaIndexInstrumentor) -> None:
    agent = weather_agent()
    run(agent)
    assert isinstance(agent.llm, ScriptedLLM) and agent.llm.seen_inside == [True, True]
    assert not inside_inference(), "nothing left marked after the calls"


def test_an_agent_workflow_is_the_workflow_span_above_its_agent(
        agentmon_capture: Capture, li: LlamaIndexInstrumentor) -> None:
    assert run(AgentWorkflow(agents=[weather_agent()])) == "It is sunny in Paris."
    flow = agentmon_capture.span("invoke_workflow AgentWorkflow")
    agent = agentmon_capture.span("invoke_agent weather")
    assert flow.parent is None and agent.parent is not None and agent.parent.span_id == flow.context.span_id
    assert_agent_children(agentmon_capture, agent, tools=1, chats=2)


def test_the_agent_span_starts_when_the_run_starts(agentmon_capture: Capture, li: LlamaIndexInstrumentor) -> None:
    seen: list[float] = []
    agent = weather_agent()
    assert isinstance(agent.llm, ScriptedLLM)
    agent.llm.on_call = lambda: seen.append(
        metric_sum(agentmon_capture, sc.M_TASKS_IN_FLIGHT, **{sc.GEN_AI_AGENT_NAME: "weather"}))
    run(agent)
    assert seen == [1, 1], "the run is in flight while its model calls are going on"
    assert metric_sum(agentmon_capture, sc.M_TASKS_IN_FLIGHT, **{sc.GEN_AI_AGENT_NAME: "weather"}) == 0


@pytest.mark.parametrize("where", ["call", "stream", "no-stream"])
def test_a_failing_model_call_and_a_failing_tool_are_marked_with_their_class(
        agentmon_capture: Capture, li: LlamaIndexInstrumentor, where: str) -> None:
    agent = weather_agent(fail=where != "stream", fail_in_stream=where == "stream")
    agent.streaming = where != "no-stream"
    with pytest.raises(ModelDown, match="model unavailable"):  # the user's exception, unchanged
        run(agent)
    (chat,) = agentmon_capture.spans("chat scripted")
    assert span_attrs(chat)[sc.ERROR_TYPE] == f"{__name__}.ModelDown"
    agent_span = agentmon_capture.span("invoke_agent weather")
    assert span_attrs(agent_span)[sc.ERROR_TYPE] == f"{__name__}.ModelDown"
    assert metric_sum(agentmon_capture, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "error"}) == 1

    agentmon_capture.clear()
    run(weather_agent(city="Atlantis"))  # the tool's error goes back to the model, which answers
    tool = agentmon_capture.span("execute_tool get_weather")
    assert span_attrs(tool)[sc.ERROR_TYPE].endswith("ToolBroke")


def test_uninstrument_removes_every_handler_and_the_official_instrumentation(agentmon_capture: Capture) -> None:
    root = get_dispatcher()
    before = (list(root.event_handlers), list(root.span_handlers))
    inst = LlamaIndexInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)  # twice: nothing more
    assert len(root.span_handlers) == len(before[1]) + 2  # the official one and ours
    inst.uninstrument()
    assert (list(root.event_handlers), list(root.span_handlers)) == before
    run(weather_agent())
    assert agentmon_capture.spans() == []


def test_instrument_on_run_times_the_whole_run_not_the_call_that_starts_it(agentmon_capture: Capture) -> None:
    """Without the framework instrumentor: ``instrument()`` on FunctionAgent.run, which returns a
    WorkflowHandler at once. Before the fix the span ended then (0.015 s for a 1.3 s run)."""
    finished: list[int] = []
    agentmon.instrument(FunctionAgent, agent="@name", invoke=["run"])
    try:
        async def main() -> tuple[Any, list[str]]:
            handler = weather_agent(delay=0.2).run(user_msg="What is the weather in Paris?")
            events = [type(e).__name__ async for e in handler.stream_events()]
            finished.append(time.time_ns())
            await handler
            return handler, events

        handler, events = asyncio.run(main())
    finally:
        agentmon.uninstrument(FunctionAgent)
    assert type(handler).__name__ == "WorkflowHandler" and "StopEvent" in events
    span = agentmon_capture.span("invoke_agent weather")
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time >= 400_000_000, "two 0.2 s model calls happen inside the span"


def test_next_to_another_llama_index_instrumentation_our_model_call_spans_stand_down(
        agentmon_capture: Capture, li: LlamaIndexInstrumentor, caplog: pytest.LogCaptureFixture,
        fresh_log_limiter: None) -> None:
    from llama_index_instrumentation.span_handlers import SimpleSpanHandler

    # A stand-in for OpenInference's handler, which also spans model calls: what we look at is
    # only where its class comes from.
    peer_cls = type("OpenInferenceSpanHandler", (SimpleSpanHandler,),
                    {"__module__": "openinference.instrumentation.llama_index._handler"})
    peer = peer_cls()
    root = get_dispatcher()
    root.add_span_handler(peer)
    try:
        run(weather_agent())
    finally:
        root.span_handlers.remove(peer)
    assert agentmon_capture.spans("chat scripted") == []
    assert agentmon_capture.spans("invoke_agent weather"), "the official agent spans stay"
    assert any("already traces llama_index" in r.getMessage() for r in caplog.records)
    agentmon_capture.clear()
    run(weather_agent())
    assert len(agentmon_capture.spans("chat scripted")) == 2, "ours again once the other one is gone"


def test_another_instrumentation_on_before_ours_keeps_the_official_one_off(
        agentmon_capture: Capture, fresh_log_limiter: None) -> None:
    from llama_index_instrumentation.span_handlers import SimpleSpanHandler

    peer = type("OpenInferenceSpanHandler", (SimpleSpanHandler,),
                {"__module__": "openinference.instrumentation.llama_index._handler"})()
    root = get_dispatcher()
    root.add_span_handler(peer)
    inst = LlamaIndexInstrumentor()
    try:
        inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
        run(weather_agent())
    finally:
        inst.uninstrument()
        root.span_handlers.remove(peer)
    assert agentmon_capture.spans() == [], "no second agent tree next to theirs"


ZERO_CODE_APP = """
import asyncio, importlib.util, sys
spec = importlib.util.spec_from_file_location("fw_example", sys.argv[1])
mod = sys.modules["fw_example"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
agent = mod.FunctionAgent(name="weather", tools=[mod.get_weather], llm=mod.ScriptedLLM())
print("answer:", asyncio.run(mod.ask(agent)))
"""


@pytest.mark.subprocess
@pytest.mark.timeout(90)
def test_unmodified_program_under_opentelemetry_instrument_gets_the_full_tree(tmp_path: Path) -> None:
    """Both entry points load (the official ``llama_index`` and ours): one tree, each span once."""
    bindir = Path(sys.executable).parent
    app = tmp_path / "app.py"
    app.write_text(ZERO_CODE_APP)
    with OTLPReceiver() as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                   OTEL_SERVICE_NAME="zero-code-llama", OTEL_PYTHON_DISTRO="agentmon",
                   OTEL_PYTHON_CONFIGURATOR="agentmon")
        done = subprocess.run([str(bindir / "opentelemetry-instrument"), sys.executable, str(app),
                               str(ROOT / "examples" / "frameworks" / "llama_index.py")],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=80, check=False)
        assert done.returncode == 0, done.stderr
        assert "answer: It is sunny in Paris." in done.stdout
        assert "Attempting to instrument while already instrumented" not in done.stderr
        assert rx.wait_for(lambda: "gen_ai.execute_tool.duration" in rx.metric_names(), 10)
        spans = rx.spans()
    assert sorted((s.scope_name, s.name) for s in spans) == [
        (OFFICIAL, "execute_tool get_weather"), (OFFICIAL, "invoke_agent weather"),
        ("otel_agentmon.instrumentation.llama_index", "chat scripted"),
        ("otel_agentmon.instrumentation.llama_index", "chat scripted")]
    assert len({s.trace_id for s in spans}) == 1
