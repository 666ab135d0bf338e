"""One agent, two scripted LLM calls (10+20 input, 5+7 output tokens) and one tool call, under
one instrumentation, exported by ``agentmon.configure()`` to ``OTEL_EXPORTER_OTLP_ENDPOINT``.

Usage: ``python -m tests.frameworks.count_once_app FRAMEWORK:INSTRUMENTATION`` (see ``SETUPS``).
The agent is called ``weather`` in every framework. Runs offline on each framework's scripted model,
instruments as a user would (after ``configure()``, on the global providers, unless the setup says
``early``: before it), shuts down (the final export) and prints ``done``.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

INPUT_TOKENS, OUTPUT_TOKENS = 30, 12  # what every setup's model reports, summed over its two calls


def instrument(spec: str) -> None:
    import importlib

    module, cls = spec.split(":")
    getattr(importlib.import_module(module), cls)().instrument()


# --- LangGraph ------------------------------------------------------------------------------------

LANGCHAIN_PEERS = {
    "ours": "otel_agentmon.instrumentation.langgraph:LangGraphInstrumentor",
    "openinference": "openinference.instrumentation.langchain:LangChainInstrumentor",
    "openllmetry": "opentelemetry.instrumentation.langchain:LangchainInstrumentor",
}


def run_langgraph() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
    from langchain_core.tools import tool
    from langgraph.graph import START, StateGraph
    from langgraph.graph.message import add_messages
    from langgraph.prebuilt import ToolNode, tools_condition

    class FakeToolChatModel(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> FakeToolChatModel:
            return self

    @tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"sunny in {city}"

    # The functional form: evaluated here, where the local names are (annotations are lazy).
    State = TypedDict("State", {"messages": Annotated[list[AnyMessage], add_messages]})  # noqa: UP013

    model = FakeToolChatModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}],
                  usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}),
        AIMessage(content="It is sunny in Paris.",
                  usage_metadata={"input_tokens": 20, "output_tokens": 7, "total_tokens": 27}),
    ]))

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    out = graph.compile(name="weather").invoke({"messages": [HumanMessage("Weather in Paris?")]})
    assert out["messages"][-1].content == "It is sunny in Paris."


# --- Microsoft Agent Framework (native telemetry: spans and its own GenAI metrics) ----------------

def run_agent_framework() -> None:
    from agent_framework import (
        Agent,
        BaseChatClient,
        ChatMiddlewareLayer,
        ChatResponse,
        Content,
        FunctionInvocationLayer,
        Message,
        UsageDetails,
        tool,
    )
    from agent_framework.observability import ChatTelemetryLayer, enable_instrumentation

    enable_instrumentation()

    class ScriptedChatClient(FunctionInvocationLayer, ChatMiddlewareLayer, ChatTelemetryLayer,
                             BaseChatClient):
        OTEL_PROVIDER_NAME = "scripted"

        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.turn = 0

        def _inner_get_response(self, *, messages: Any, stream: Any, options: Any, **kwargs: Any) -> Any:
            async def respond() -> ChatResponse:
                self.turn += 1
                if self.turn == 1:
                    content = Content.from_function_call("call_1", "get_weather", arguments={"city": "Paris"})
                    usage = UsageDetails(input_token_count=10, output_token_count=5)
                else:
                    content = Content.from_text("It is sunny in Paris.")
                    usage = UsageDetails(input_token_count=20, output_token_count=7)
                return ChatResponse(messages=[Message(role="assistant", contents=[content])],
                                    usage_details=usage, model="scripted")
            return respond()

    @tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"sunny in {city}"

    agent = Agent(client=ScriptedChatClient(), name="weather", instructions="Answer weather questions.",
                  tools=[get_weather])
    assert asyncio.run(agent.run("Weather in Paris?")).text == "It is sunny in Paris."  # type: ignore[arg-type]  # run() returns a coroutine, typed as an Awaitable


# --- AutoGen AgentChat (native spans: agent and tool, no model-call span) --------------------------

def run_autogen() -> None:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, ModelFamily, ModelInfo, RequestUsage
    from autogen_ext.models.replay import ReplayChatCompletionClient

    async def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"sunny in {city}"

    client = ReplayChatCompletionClient(
        [CreateResult(finish_reason="function_calls", cached=False,
                      content=[FunctionCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')],
                      usage=RequestUsage(prompt_tokens=10, completion_tokens=5)),
         CreateResult(finish_reason="stop", cached=False, content="It is sunny in Paris.",
                      usage=RequestUsage(prompt_tokens=20, completion_tokens=7))],
        model_info=ModelInfo(vision=False, function_calling=True, json_output=False,
                             family=ModelFamily.UNKNOWN, structured_output=False))
    agent = AssistantAgent("weather", model_client=client, tools=[get_weather],
                           system_message="Answer weather questions.", reflect_on_tool_use=True)
    result = asyncio.run(agent.run(task="Weather in Paris?"))
    assert result.messages[-1].content == "It is sunny in Paris."  # type: ignore[union-attr]  # the last message is the model's text reply


# --- PydanticAI (ours, or its native instrumentation with its own token metric) -------------------

def run_pydantic_ai() -> None:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import RequestUsage

    def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if any(isinstance(p, ToolReturnPart) for p in messages[-1].parts):
            return ModelResponse(parts=[TextPart("It is sunny in Paris.")],
                                 usage=RequestUsage(input_tokens=20, output_tokens=7))
        return ModelResponse(parts=[ToolCallPart("get_weather", {"city": "Paris"}, tool_call_id="call_1")],
                             usage=RequestUsage(input_tokens=10, output_tokens=5))

    agent: Agent[None, str] = Agent(FunctionModel(scripted, model_name="scripted"), name="weather")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"sunny in {city}"

    assert asyncio.run(agent.run("Weather in Paris?")).output == "It is sunny in Paris."


def native_pydantic_ai() -> None:
    from pydantic_ai import Agent

    Agent.instrument_all(True)  # PydanticAI's own spans and its gen_ai.client.token.usage


# --- smolagents ---------------------------------------------------------------------------------------

def run_smolagents() -> None:
    from smolagents import ToolCallingAgent, tool
    from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole, Model
    from smolagents.monitoring import LogLevel, TokenUsage

    class ScriptedModel(Model):  # type: ignore[misc]  # smolagents ships no type information
        def __init__(self) -> None:
            super().__init__(model_id="scripted")
            self.replies = [("get_weather", {"city": "Paris"}, (10, 5)),
                            ("final_answer", {"answer": "It is sunny in Paris."}, (20, 7))]

        def generate(self, messages: Any, stop_sequences: Any = None, response_format: Any = None,
                     tools_to_call_from: Any = None, **kwargs: Any) -> ChatMessage:
            name, args, usage = self.replies.pop(0)
            return ChatMessage(role=MessageRole.ASSISTANT, content="", token_usage=TokenUsage(*usage), tool_calls=[
                ChatMessageToolCall(id="call_1", type="function",
                                    function=ChatMessageToolCallFunction(name=name, arguments=args))])

    @tool  # type: ignore[untyped-decorator]  # smolagents ships no type information
    def get_weather(city: str) -> str:
        """Return the weather for a city.

        Args:
            city: the city name
        """
        return f"sunny in {city}"

    agent = ToolCallingAgent(tools=[get_weather], model=ScriptedModel(), name="weather", max_steps=3,
                             verbosity_level=LogLevel.OFF)
    assert agent.run("Weather in Paris?") == "It is sunny in Paris."


# --- OpenAI Agents SDK (the real chat-completions model over an in-process HTTP stub) ---------------

OPENAI_AGENTS_PEERS = {
    "ours": "otel_agentmon.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
    "openinference": "openinference.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
    "openllmetry": "opentelemetry.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
}


def instrument_openai_agents(spec: str) -> None:
    from agents import set_trace_processors
    from agents.tracing.processors import BatchTraceProcessor

    from otel_agentmon.instrumentation.openai_agents import registered_processors

    instrument(spec)
    # Offline: drop the SDK's exporter to the OpenAI backend, keep the instrumentation's processor.
    set_trace_processors([p for p in registered_processors() or [] if not isinstance(p, BatchTraceProcessor)])


def run_openai_agents() -> None:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool

    from tests.frameworks.helpers import stub_openai_client

    @function_tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"sunny in {city}"

    async def main() -> str:
        client = stub_openai_client()
        agent = Agent(name="weather", tools=[get_weather], model=OpenAIChatCompletionsModel("gpt-4o-mini", client))
        try:
            return str((await Runner.run(agent, "Weather in Paris?")).final_output)
        finally:
            await client.close()

    assert asyncio.run(main()) == "It is sunny in Paris."


# --- setups ----------------------------------------------------------------------------------------------

Setup = tuple[Callable[[], None], Callable[[], None]]  # (instrument, run)
SETUPS: dict[str, Setup] = {
    **{f"langgraph:{peer}": (functools.partial(instrument, spec), run_langgraph)
       for peer, spec in LANGCHAIN_PEERS.items()},
    **{f"openai_agents:{peer}": (functools.partial(instrument_openai_agents, spec), run_openai_agents)
       for peer, spec in OPENAI_AGENTS_PEERS.items()},
    # OpenLLMetry instrumented before configure(): its meter is the API's proxy until then.
    "langgraph:openllmetry-early": (lambda: instrument(LANGCHAIN_PEERS["openllmetry"]), run_langgraph),
    "agent_framework:native": (lambda: None, run_agent_framework),
    "autogen:native": (lambda: None, run_autogen),
    "agent_framework:ours": (
        lambda: instrument("otel_agentmon.instrumentation.agent_framework:AgentFrameworkInstrumentor"),
        run_agent_framework),
    "autogen:ours": (lambda: instrument("otel_agentmon.instrumentation.autogen:AutoGenInstrumentor"), run_autogen),
    "pydantic_ai:ours": (lambda: instrument("otel_agentmon.instrumentation.pydantic_ai:PydanticAIInstrumentor"),
                         run_pydantic_ai),
    "pydantic_ai:native": (native_pydantic_ai, run_pydantic_ai),
    "smolagents:ours": (lambda: instrument("otel_agentmon.instrumentation.smolagents:SmolagentsInstrumentor"),
                        run_smolagents),
    # OpenInference does not wrap a custom model: only its agent span reports the tokens.
    "smolagents:openinference": (lambda: instrument("openinference.instrumentation.smolagents:SmolagentsInstrumentor"),
                                 run_smolagents),
}


def app_meter_provider() -> None:
    """The application's own SDK MeterProvider, exporting to the same endpoint (configure() reuses it)."""
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    metrics.set_meter_provider(MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]))


def main(setup: str, *flags: str) -> None:
    import otel_agentmon as agentmon

    do_instrument, do_run = SETUPS[setup]
    if "app-provider" in flags:
        app_meter_provider()
    if setup.endswith("-early"):
        do_instrument()
    monitor = agentmon.configure(service_name="count-once", health=False, system_metrics="off")
    if not setup.endswith("-early"):
        do_instrument()
    do_run()
    monitor.shutdown()
    if "app-provider" in flags:
        from opentelemetry import metrics

        metrics.get_meter_provider().shutdown()  # type: ignore[attr-defined]
    print("done")


if __name__ == "__main__":
    main(*sys.argv[1:])
