"""``normalize`` over span shapes recorded from real instrumentations: every row of the dialect
mapping table in otel_agentmon/_names/dialects.py, what passes through untouched, and what never changes.

The attribute sets are trimmed copies of what the peers wrote in the offline framework runs
(/work/shared/reference/framework-scripts): OpenInference 0.1.80 (LangChain) and 2.6.0 (OpenAI
Agents), OpenLLMetry 0.62.4, PydanticAI 2.68 and AutoGen 0.7 native spans.
"""

from __future__ import annotations

from typing import Any

import pytest

from otel_agentmon._names.dialects import CORE_SCOPE, normalize

OI_LANGCHAIN = "openinference.instrumentation.langchain"
OI_AGENTS = "openinference.instrumentation.openai_agents"
TL_LANGCHAIN = "opentelemetry.instrumentation.langchain"
TL_AGENTS = "opentelemetry.instrumentation.openai_agents"
OI_SMOLAGENTS = "openinference.instrumentation.smolagents"

OP = "gen_ai.operation.name"
AGENT = "gen_ai.agent.name"
TASK = "agentmon.task.type"


def view(name: str, attrs: dict[str, Any], scope: str | None, is_root: bool = False) -> dict[str, Any]:
    out = normalize(name, attrs, scope, is_root)
    assert out is not attrs, "a mapped span must be a copy: the span's own attributes never change"
    return dict(out)


def added(name: str, attrs: dict[str, Any], scope: str | None, is_root: bool = False) -> dict[str, Any]:
    """Only what normalize adds or changes."""
    before = dict(attrs)
    out = view(name, attrs, scope, is_root)
    assert attrs == before
    return {k: v for k, v in out.items() if before.get(k, object()) != v}


# --- OpenInference -----------------------------------------------------------------------------

def test_openinference_agent_is_an_agent_invocation_and_a_task() -> None:
    # LangGraph node span: no agent.name, so the span name is the agent name.
    node = {"openinference.span.kind": "AGENT", "input.value": "{...}", "metadata": "{...}"}
    assert added("agent", node, OI_LANGCHAIN) == {OP: "invoke_agent", AGENT: "agent", TASK: "invoke_agent"}
    # OpenAI Agents agent span (at its end): agent.name wins over the span name.
    sdk = {"openinference.span.kind": "AGENT", "agent.name": "weather", "graph.node.id": "weather"}
    assert added("weather run", sdk, OI_AGENTS) == {OP: "invoke_agent", AGENT: "weather", TASK: "invoke_agent"}


GRAPH_META = '{"ls_integration": "langgraph"}'
NODE_META = ('{"ls_integration": "langgraph", "langgraph_step": 1, "langgraph_node": "agent", '
             '"langgraph_checkpoint_ns": "agent:61a1ee4f"}')


def test_openinference_langgraph_graph_is_the_agent_named_like_ours_and_its_nodes_are_steps() -> None:
    # The graph's own run (compile(name="planner")): a CHAIN at the root, or nested in a user's span.
    graph = {"openinference.span.kind": "CHAIN", "metadata": GRAPH_META}
    expected = {OP: "invoke_agent", AGENT: "planner", TASK: "invoke_agent"}
    assert added("planner", graph, OI_LANGCHAIN, is_root=True) == expected
    assert added("planner", graph, OI_LANGCHAIN, is_root=False) == expected
    # OpenInference calls a node run AGENT when its name contains "agent": a step, not an agent.
    for kind in ("AGENT", "CHAIN"):
        node = {"openinference.span.kind": kind, "metadata": NODE_META}
        assert normalize("agent", node, OI_LANGCHAIN, False) is node
    # Not LangGraph's (a LangChain AgentExecutor): the AGENT row as before.
    executor = {"openinference.span.kind": "AGENT", "metadata": '{"ls_integration": "langchain"}'}
    assert added("AgentExecutor", executor, OI_LANGCHAIN)[AGENT] == "AgentExecutor"
    # Metadata that is not JSON is no evidence either way.
    broken = {"openinference.span.kind": "AGENT", "metadata": "langgraph{"}
    assert added("agent", broken, OI_LANGCHAIN)[AGENT] == "agent"


def test_openinference_smolagents_agent_is_named_by_the_agent_not_its_run_method() -> None:
    run = {"openinference.span.kind": "AGENT", "llm.token_count.prompt": 21}
    assert added("manager.run", run, OI_SMOLAGENTS, is_root=True)[AGENT] == "manager"
    assert added("manager.run", run, OI_LANGCHAIN)[AGENT] == "manager.run"  # only that instrumentation
    # final_answer is how a smolagents agent answers: not a tool call (ours make no span for it).
    answer = {"openinference.span.kind": "TOOL", "tool.name": "final_answer"}
    assert normalize("FinalAnswerTool", answer, OI_SMOLAGENTS, False) is answer
    assert added("SimpleTool", {**answer, "tool.name": "get_weather"}, OI_SMOLAGENTS)[OP] == "execute_tool"


def test_openinference_openai_agents_trace_root_is_a_workflow_not_an_agent() -> None:
    root = {"openinference.span.kind": "AGENT"}
    assert added("Agent workflow", root, OI_AGENTS, is_root=True) == {
        OP: "invoke_workflow", "gen_ai.workflow.name": "Agent workflow"}
    # Only that instrumentation's root: a root AGENT elsewhere, or with agent.name, is an agent.
    assert added("CodeAgent.run", root, "openinference.instrumentation.smolagents", is_root=True)[OP] == "invoke_agent"
    named = {**root, "agent.name": "weather"}
    assert added("weather", named, OI_AGENTS, is_root=True)[AGENT] == "weather"
    assert added("Agent workflow", root, OI_AGENTS, is_root=False)[OP] == "invoke_agent"


def test_openinference_tool() -> None:
    tool = {"openinference.span.kind": "TOOL", "tool.name": "get_weather", "input.value": "Paris",
            "tool.description": "Return the weather for a city."}
    assert added("get_weather", tool, OI_LANGCHAIN) == {OP: "execute_tool", "gen_ai.tool.name": "get_weather"}
    unnamed = {"openinference.span.kind": "tool"}  # kinds are matched case-insensitively
    assert added("lookup", unnamed, OI_LANGCHAIN) == {OP: "execute_tool", "gen_ai.tool.name": "lookup"}


def test_openinference_llm_with_model_provider_and_tokens() -> None:
    llm = {"openinference.span.kind": "LLM", "llm.provider": "faketoolchatmodel", "llm.model_name": "gpt-4o",
           "llm.token_count.prompt": 10, "llm.token_count.completion": 5, "llm.token_count.total": 15,
           "llm.input_messages.0.message.role": "user"}
    assert added("FakeToolChatModel", llm, OI_LANGCHAIN) == {
        OP: "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "faketoolchatmodel",
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
    # OpenAI Agents generation span: only llm.system.
    generation = {"openinference.span.kind": "LLM", "llm.system": "openai"}
    assert added("generation", generation, OI_AGENTS) == {OP: "chat", "gen_ai.provider.name": "openai"}


def test_openinference_chain_is_a_workflow_only_at_a_trace_root() -> None:
    chain = {"openinference.span.kind": "CHAIN", "input.value": "{...}", "metadata": "{...}"}
    assert added("LangGraph", chain, OI_LANGCHAIN, is_root=True) == {
        OP: "invoke_workflow", "gen_ai.workflow.name": "LangGraph"}
    assert normalize("tools_condition", chain, OI_LANGCHAIN, False) is chain


@pytest.mark.parametrize("kind", ["RETRIEVER", "EMBEDDING", "RERANKER", "GUARDRAIL", "EVALUATOR", "UNKNOWN"])
def test_openinference_kinds_that_are_not_counted_pass_through(kind: str) -> None:
    attrs = {"openinference.span.kind": kind, "input.value": "q"}
    assert normalize("step", attrs, OI_LANGCHAIN, True) is attrs


# --- OpenLLMetry (traceloop) ---------------------------------------------------------------------

def test_traceloop_agent_tool_and_workflow_kinds() -> None:
    agent = {"traceloop.span.kind": "agent", "traceloop.entity.name": "researcher"}
    assert added("researcher.agent", agent, "opentelemetry.instrumentation.crewai") == {
        OP: "invoke_agent", AGENT: "researcher", TASK: "invoke_agent"}
    assert added("x.agent", {"traceloop.span.kind": "agent"}, TL_AGENTS)[AGENT] == "x.agent"
    tool = {"traceloop.span.kind": "tool", "traceloop.entity.name": "search"}
    assert added("search.tool", tool, TL_LANGCHAIN) == {OP: "execute_tool", "gen_ai.tool.name": "search"}
    workflow = {"traceloop.span.kind": "workflow", "gen_ai.provider.name": "openai",
                "traceloop.workflow.name": "Agent Workflow"}
    assert added("Agent Workflow", workflow, TL_AGENTS, is_root=True) == {
        OP: "invoke_workflow", "gen_ai.workflow.name": "Agent Workflow"}
    by_entity = {"traceloop.span.kind": "workflow", "traceloop.entity.name": "crew"}
    assert added("crew.workflow", by_entity, TL_LANGCHAIN)["gen_ai.workflow.name"] == "crew"


def test_traceloop_workflow_that_says_invoke_agent_is_counted_as_the_workflow() -> None:
    """OpenLLMetry 0.62 on LangGraph: ``invoke_agent LangGraph`` > ``LangGraph.workflow`` (also
    stamped invoke_agent). Counting both would make every graph run two tasks."""
    workflow = {"traceloop.span.kind": "workflow", "traceloop.entity.name": "LangGraph",
                "traceloop.workflow.name": "LangGraph", OP: "invoke_agent", AGENT: "LangGraph",
                "gen_ai.provider.name": "langgraph"}
    out = view("LangGraph.workflow", workflow, TL_LANGCHAIN)
    assert out[OP] == "invoke_workflow" and out["gen_ai.workflow.name"] == "LangGraph" and TASK not in out
    outer = {"gen_ai.provider.name": "langgraph", OP: "invoke_agent", AGENT: "LangGraph"}
    assert added("invoke_agent LangGraph", outer, TL_LANGCHAIN, is_root=True) == {TASK: "invoke_agent"}


def test_traceloop_task_spans_are_not_counted() -> None:
    task = {"traceloop.span.kind": "task", "traceloop.entity.name": "tools_condition", OP: "execute_task",
            "gen_ai.provider.name": "langgraph"}
    assert normalize("execute_task tools_condition", task, TL_LANGCHAIN, False) is task
    assert normalize("x.task", {"traceloop.span.kind": "task"}, TL_LANGCHAIN, False) == {"traceloop.span.kind": "task"}


@pytest.mark.parametrize(("request_type", "op"), [("chat", "chat"), ("completion", "text_completion")])
def test_older_openllmetry_llm_span(request_type: str, op: str) -> None:
    """OpenLLMetry before the GenAI renames: llm.request.type, gen_ai.system, prompt/completion tokens."""
    llm = {"llm.request.type": request_type, "gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4o",
           "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.prompt_tokens": 12,
           "gen_ai.usage.completion_tokens": 3, "llm.usage.total_tokens": 15}
    assert added("openai.chat", llm, "opentelemetry.instrumentation.openai") == {
        OP: op, "gen_ai.provider.name": "OpenAI", "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}


def test_older_openllmetry_embedding_is_not_inference() -> None:
    emb = {"llm.request.type": "embedding", "gen_ai.system": "OpenAI", "gen_ai.request.model": "text-embedding-3"}
    assert normalize("openai.embeddings", emb, "opentelemetry.instrumentation.openai", False) is emb


# --- older and current GenAI names ---------------------------------------------------------------

def test_genai_span_without_operation_name_takes_it_from_the_span_name() -> None:
    tool = {"gen_ai.system": "vertex", "gen_ai.tool.name": "get_weather"}  # ADK 1.14 execute_tool span
    assert added("execute_tool get_weather", tool, "gcp.vertex.agent") == {
        OP: "execute_tool", "gen_ai.provider.name": "vertex"}
    call = {"gen_ai.system": "gcp.vertex.agent", "gen_ai.request.model": "gemini",  # ADK 1.14 call_llm
            "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 2}
    assert added("call_llm", call, "gcp.vertex.agent") == {OP: "chat", "gen_ai.provider.name": "gcp.vertex.agent"}
    emb = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "text-embedding-3"}
    assert added("embeddings text-embedding-3", emb, "x")[OP] == "embeddings"  # named, and not counted
    assert normalize("agent_run [weather]", {}, "gcp.vertex.agent", False) == {}  # no GenAI keys: not ours to guess


def test_current_genai_spans_pass_through_as_the_same_object() -> None:
    """PydanticAI native chat and tool spans: already standard, no copy (also with gen_ai.system beside
    gen_ai.provider.name)."""
    chat = {OP: "chat", AGENT: "weather", "gen_ai.provider.name": "function", "gen_ai.system": "function",
            "gen_ai.request.model": "scripted", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
    tool = {OP: "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": "call_1",
            AGENT: "weather", "logfire.msg": "running tool: get_weather"}
    assert normalize("chat scripted", chat, "pydantic-ai", False) is chat
    assert normalize("execute_tool get_weather", tool, "pydantic-ai", False) is tool


def test_native_agent_spans_become_tasks_and_keep_everything_else() -> None:
    pydantic = {"model_name": "scripted", "agent_name": "weather", AGENT: "weather", OP: "invoke_agent",
                "gen_ai.aggregated_usage.input_tokens": 30, "final_result": "It is sunny in Paris."}
    assert added("invoke_agent weather", pydantic, "pydantic-ai", is_root=True) == {TASK: "invoke_agent"}
    autogen = {OP: "invoke_agent", "gen_ai.system": "autogen", AGENT: "weather", "gen_ai.agent.description": "d"}
    assert added("invoke_agent weather", autogen, "autogen-core") == {
        TASK: "invoke_agent", "gen_ai.provider.name": "autogen"}
    create = {OP: "create_agent", "gen_ai.system": "autogen", AGENT: "weather"}
    assert added("create_agent weather", create, "autogen-core") == {"gen_ai.provider.name": "autogen"}
    unnamed = {OP: "invoke_agent"}
    assert added("invoke_agent planner", unnamed, "x") == {AGENT: "planner", TASK: "invoke_agent"}
    assert added("invoke_agent", unnamed, "x")[AGENT] == "unknown"
    explicit = {OP: "invoke_agent", AGENT: "a", TASK: "research"}  # a task type already set is kept
    assert normalize("invoke_agent a", explicit, "x", False) is explicit


def test_standard_names_win_over_older_ones() -> None:
    attrs = {OP: "chat", "gen_ai.provider.name": "anthropic", "gen_ai.system": "other",
             "gen_ai.usage.input_tokens": 1, "gen_ai.usage.prompt_tokens": 99,
             "gen_ai.usage.completion_tokens": 4, "llm.token_count.completion": 98}
    assert added("chat claude", attrs, "x") == {"gen_ai.usage.output_tokens": 4}


def test_token_counts_that_are_not_integers_are_ignored() -> None:
    attrs = {OP: "chat", "gen_ai.usage.prompt_tokens": True, "llm.token_count.prompt": "12",
             "gen_ai.usage.completion_tokens": 2.5, "llm.system": "openai"}
    assert added("chat x", attrs, "x") == {"gen_ai.provider.name": "openai"}


# --- ours ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs", [
    {OP: "invoke_agent", AGENT: "researcher"},  # our agent spans: tasks are explicit task spans
    {OP: "execute_tool", "gen_ai.tool.name": "search", AGENT: "researcher"},
    {"openinference.span.kind": "AGENT", "gen_ai.system": "x", "gen_ai.usage.prompt_tokens": 3},
    {"traceloop.span.kind": "workflow", OP: "invoke_agent"},
])
def test_our_own_spans_are_never_promoted_or_rewritten(attrs: dict[str, Any]) -> None:
    assert normalize("invoke_agent researcher", attrs, CORE_SCOPE, True) is attrs


def test_spans_without_any_dialect_pass_through() -> None:
    http = {"http.request.method": "GET", "url.full": "http://x"}
    assert normalize("GET", http, "opentelemetry.instrumentation.requests", True) is http
    assert normalize("anything", {}, None, True) == {}


def test_span_attributes_as_the_sdk_holds_them_give_the_same_view() -> None:
    """Spans carry BoundedAttributes, not dicts: same mapping, and identity is the span's own object."""
    from opentelemetry.attributes import BoundedAttributes

    llm: dict[str, str | int] = {"openinference.span.kind": "LLM", "llm.provider": "openai",
                                 "llm.token_count.prompt": 3}
    bounded = BoundedAttributes(attributes=llm, immutable=True)
    assert dict(normalize("gen", bounded, OI_LANGCHAIN, False)) == dict(normalize("gen", llm, OI_LANGCHAIN, False))
    chat = BoundedAttributes(attributes={OP: "chat", "gen_ai.provider.name": "x"}, immutable=True)
    assert normalize("chat m", chat, "pydantic-ai", False) is chat
    plain = BoundedAttributes(attributes={"http.request.method": "GET"}, immutable=True)
    assert normalize("GET", plain, "x", True) is plain
