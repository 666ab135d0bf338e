"""One inference span per model call when a framework and the LLM client are both instrumented.

The framework layer (our LangChain callbacks, our OpenAI Agents processor) spans each model call;
the real ``openai`` client under it, instrumented by ``configure()``, must stand down: no second
span, no second count of the tokens. Each model here is the framework's real OpenAI model class on
a real ``openai`` client over a scripted HTTP transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from pydantic import SecretStr

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon.testing import Capture, capture
from tests.support import llm_stubs as st
from tests.support.spans import span_attrs

CLIENT_SCOPE = "opentelemetry.instrumentation.genai.openai"


@pytest.fixture
def cap() -> Iterator[Capture]:
    found, close = capture()
    try:
        yield found
    finally:
        close()


def chats(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans() if span_attrs(s).get(sc.GEN_AI_OPERATION_NAME) == sc.OP_CHAT]


def scope_of(span: ReadableSpan) -> str:
    return span.instrumentation_scope.name if span.instrumentation_scope is not None else "?"


def token_sums(cap: Capture) -> dict[str, float]:
    """gen_ai.client.token.usage by token type, summed over every exported scope."""
    cap.monitor._sync()
    data = cap._metrics.get_metrics_data()
    out: dict[str, float] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == sc.M_CLIENT_TOKEN_USAGE:
                    for p in metric.data.data_points:
                        kind = str(span_attrs(p)[sc.GEN_AI_TOKEN_TYPE])
                        out[kind] = out.get(kind, 0.0) + p.sum  # type: ignore[union-attr]
    return out


@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
def test_a_langchain_chat_openai_call_is_one_inference_span(cap: Capture, mode: str) -> None:
    from langchain_openai import ChatOpenAI

    from otel_agentmon.instrumentation.langgraph import LangGraphInstrumentor

    sync_client, async_client = st.openai_clients()
    model = ChatOpenAI(model=st.OPENAI_MODEL, api_key=SecretStr("offline"), client=sync_client.chat.completions,
                                        async_client=async_client.chat.completions,
                                        stream_usage=True)
    inst = LangGraphInstrumentor()
    inst.instrument(tracer_provider=cap.monitor.tracer_provider)
    try:
        with agentmon.agent("weather"):
            if mode == "sync":
                model.invoke("Weather in Paris?")
            elif mode == "async":
                asyncio.run(model.ainvoke("Weather in Paris?"))
            else:
                assert "".join(str(c.content) for c in model.stream("Weather in Paris?")) == "It is sunny."
    finally:
        inst.uninstrument()
    (chat,) = chats(cap)  # ours, from the callbacks; the openai client's stood down
    assert scope_of(chat) == "otel_agentmon.instrumentation.langgraph"
    inp, out = st.OPENAI_CHAT_STREAM if mode == "stream" else st.OPENAI_CHAT
    assert (span_attrs(chat)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(chat)[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        inp, out)
    assert token_sums(cap) == {"input": inp, "output": out}
    # the same client outside the chat model: the client layer spans it
    cap.clear()
    sync_client.chat.completions.create(model=st.OPENAI_MODEL, messages=st.USER)
    assert [scope_of(s) for s in chats(cap)] == [CLIENT_SCOPE]


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_an_openai_agents_run_is_one_inference_span_per_model_call(cap: Capture, api: str) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner

    from otel_agentmon.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    inst = OpenAIAgentsInstrumentor()
    inst.instrument(tracer_provider=cap.monitor.tracer_provider)
    try:
        async def main() -> str:
            client = st.openai_clients()[1]
            model = (OpenAIChatCompletionsModel(st.OPENAI_MODEL, client) if api == "chat_completions"
                     else OpenAIResponsesModel(st.OPENAI_MODEL, client))
            return str((await Runner.run(Agent(name="weather", model=model), "Weather?")).final_output)

        assert asyncio.run(main()) == "It is sunny."
    finally:
        inst.uninstrument()
    (chat,) = chats(cap)
    assert scope_of(chat) == "otel_agentmon.instrumentation.openai_agents"
    inp, out = st.OPENAI_CHAT if api == "chat_completions" else st.OPENAI_RESPONSES
    assert (span_attrs(chat)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(chat)[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        inp, out)
    assert token_sums(cap) == {"input": inp, "output": out}
