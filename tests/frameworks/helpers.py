"""Span-tree and metric checks shared by the framework tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from otel_agentmon._names import semconv as sc
from otel_agentmon.testing import Capture
from tests.support.spans import span_attrs

SCOPE = "otel_agentmon.instrumentation."


def ours(cap: Capture, framework: str) -> list[ReadableSpan]:
    """Finished spans our instrumentor for ``framework`` made."""
    return [s for s in cap.spans() if s.instrumentation_scope is not None
            and s.instrumentation_scope.name == SCOPE + framework]


def scopes(cap: Capture) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in cap.spans():
        name = s.instrumentation_scope.name if s.instrumentation_scope is not None else "?"
        out[name] = out.get(name, 0) + 1
    return out


def parent_of(span: ReadableSpan, spans: Iterable[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


def assert_agent_children(cap: Capture, agent: ReadableSpan, tools: int, chats: int) -> None:
    """``agent``'s children are exactly ``tools`` tool calls and ``chats`` model calls, in its trace,
    each carrying the agent's name."""
    kids = cap.children(agent)
    names = [k.name for k in kids]
    assert len([k for k in kids if span_attrs(k)[sc.GEN_AI_OPERATION_NAME] == sc.OP_EXECUTE_TOOL]) == tools, names
    assert len([k for k in kids if span_attrs(k)[sc.GEN_AI_OPERATION_NAME] == sc.OP_CHAT]) == chats, names
    assert len(kids) == tools + chats, names
    for k in kids:
        assert k.context.trace_id == agent.context.trace_id
        assert span_attrs(k)[sc.GEN_AI_AGENT_NAME] == span_attrs(agent)[sc.GEN_AI_AGENT_NAME]


def assert_parallel_agents_under(cap: Capture, workflow: str, agents: dict[str, str]) -> None:
    """Agents run concurrently inside ``with agentmon.workflow(workflow)``: each agent (name ->
    city asked) sits under the workflow span with one tool and two chat children, its tool call id
    is ``call_<city>``, and the whole run is one trace."""
    root = cap.span(f"invoke_workflow {workflow}")
    for name, city in agents.items():
        agent = cap.span(f"invoke_agent {name}")
        assert agent.parent is not None and agent.parent.span_id == root.context.span_id
        assert_agent_children(cap, agent, tools=1, chats=2)
        tool_span = next(k for k in cap.children(agent) if k.name == "execute_tool get_weather")
        assert span_attrs(tool_span)[sc.GEN_AI_TOOL_CALL_ID] == f"call_{city}"
    assert {s.context.trace_id for s in cap.spans()} == {root.context.trace_id}


def metric_sum(cap: Capture, name: str, **attrs: object) -> float:
    """Sum (or count, for histograms) over the points of ``name`` whose attributes include ``attrs``."""
    total = 0.0
    for p in cap.points(name):
        if all(p.attributes.get(k) == v for k, v in attrs.items()):
            total += p.sum if hasattr(p, "sum") else p.value
    return total


def histogram_count(cap: Capture, name: str, **attrs: object) -> int:
    return sum(p.count for p in cap.points(name) if all(p.attributes.get(k) == v for k, v in attrs.items()))


def stub_openai_client() -> Any:
    """The real OpenAI client over an in-process HTTP transport that answers like the Chat
    Completions API: a get_weather tool call first (10 input, 5 output tokens), then the answer
    (20 input, 7 output tokens)."""
    import importlib
    import importlib.util

    from openai import AsyncOpenAI

    http = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
    turns = {"n": 0}

    def answer(request: Any) -> Any:
        turns["n"] += 1
        if turns["n"] == 1:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
            usage, reason = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, "tool_calls"
        else:
            message = {"role": "assistant", "content": "It is sunny in Paris."}
            usage, reason = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}, "stop"
        return http.Response(200, json={"id": f"cc-{turns['n']}", "object": "chat.completion", "created": 0,
                                        "model": "gpt-4o-mini", "usage": usage,
                                        "choices": [{"index": 0, "message": message, "finish_reason": reason}]})

    return AsyncOpenAI(api_key="offline", base_url="http://stub.invalid/v1",
                       http_client=http.AsyncClient(transport=http.MockTransport(answer)))
