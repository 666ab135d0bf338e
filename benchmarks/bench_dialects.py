"""pyperf: what reading other instrumentations' dialects costs per span.

Run (from the repo root)::

    python benchmarks/bench_dialects.py -o benchmarks/results/bench_dialects.json   # recorded run
    python benchmarks/bench_dialects.py --fast                                      # quick look

``normalize(name, attributes, scope, is_root)`` runs on the Deriver thread twice per agent span
(start and end) and once per other span. The attributes are ``BoundedAttributes``, as the SDK's
spans hold them, with the keys the real instrumentations write (tests/test_dialects.py has the
recorded shapes). Benchmarks:

  normalize_ours_agent           our own invoke_agent span (scope otel_agentmon): the identity path
  normalize_standard_chat        a PydanticAI chat span: standard names, passed through, no copy
  normalize_plain_http           an HTTP client span: no GenAI key, passed through
  normalize_oi_llm               OpenInference LLM span (LangChain): mapped, 25 keys copied
  normalize_oi_agent             OpenInference AGENT span: mapped, becomes a task
  normalize_tl_tool              OpenLLMetry tool span (already has gen_ai.operation.name)
  normalize_tl_workflow          OpenLLMetry's LangGraph workflow span (stamped invoke_agent): remapped
  on_start_check_ours            the span processor's on_start test on our agent span's attributes
  on_start_check_plain           the same on the HTTP span (three failed lookups, a KeyError each)
  on_start_check_plain_rawdict   the same lookups on the BoundedAttributes' own dict (a proposed change)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyperf  # type: ignore[import-untyped]
from opentelemetry.attributes import BoundedAttributes

from otel_agentmon._names.dialects import OI_KIND, TL_KIND, normalize
from otel_agentmon._names.semconv import GEN_AI_AGENT_NAME

LOOPS = 1000


def bounded(attrs: dict[str, object]) -> Mapping[str, object]:
    return BoundedAttributes(attributes=attrs, immutable=True)  # type: ignore[arg-type]


OURS = bounded({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"})
STANDARD_CHAT = bounded({
    "gen_ai.operation.name": "chat", "gen_ai.agent.name": "weather", "gen_ai.provider.name": "function",
    "gen_ai.system": "function", "gen_ai.request.model": "scripted", "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 5, "gen_ai.conversation.id": "c1"})
PLAIN_HTTP = bounded({"http.request.method": "GET", "url.full": "http://x/y", "server.address": "x",
                      "http.response.status_code": 200})
OI_LLM = bounded({
    "input.value": "{...}", "input.mime_type": "application/json", "output.value": "{...}",
    "output.mime_type": "application/json", "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": "Weather in Paris?", "llm.output_messages.0.message.role": "assistant",
    **{f"llm.output_messages.0.message.tool_calls.0.tool_call.k{i}": "v" for i in range(10)},
    "llm.invocation_parameters": "{}", "llm.provider": "openai", "llm.model_name": "gpt-4o",
    "llm.token_count.prompt": 10, "llm.token_count.completion": 5, "llm.token_count.total": 15,
    "metadata": "{}", "openinference.span.kind": "LLM"})
OI_AGENT = bounded({"input.value": "{...}", "output.value": "{...}", "metadata": "{}",
                    "openinference.span.kind": "AGENT"})
TL_TOOL = bounded({"traceloop.span.kind": "tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.type": "function",
                   "gen_ai.provider.name": "openai", "gen_ai.operation.name": "execute_tool",
                   "gen_ai.tool.call.arguments": "{}", "gen_ai.tool.call.result": "sunny"})
TL_WORKFLOW = bounded({"traceloop.workflow.name": "LangGraph", "traceloop.entity.path": "",
                       "traceloop.span.kind": "workflow", "traceloop.entity.name": "LangGraph",
                       "gen_ai.provider.name": "langgraph", "gen_ai.operation.name": "invoke_agent",
                       "gen_ai.agent.name": "LangGraph", "gen_ai.agent.id": "a1"})

CASES: dict[str, tuple[str, Mapping[str, object], str, bool]] = {
    "normalize_ours_agent": ("invoke_agent planner", OURS, "otel_agentmon", True),
    "normalize_standard_chat": ("chat scripted", STANDARD_CHAT, "pydantic-ai", False),
    "normalize_plain_http": ("GET", PLAIN_HTTP, "opentelemetry.instrumentation.requests", False),
    "normalize_oi_llm": ("FakeToolChatModel", OI_LLM, "openinference.instrumentation.langchain", False),
    "normalize_oi_agent": ("agent", OI_AGENT, "openinference.instrumentation.langchain", False),
    "normalize_tl_tool": ("get_weather.tool", TL_TOOL, "opentelemetry.instrumentation.openai_agents", False),
    "normalize_tl_workflow": ("LangGraph.workflow", TL_WORKFLOW, "opentelemetry.instrumentation.langchain", False),
}


def timed_normalize(name: str, attrs: Mapping[str, object], scope: str, is_root: bool) -> Callable[[int], float]:
    def run(loops: int) -> float:
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            normalize(name, attrs, scope, is_root)
        return float(pyperf.perf_counter() - t0)

    return run


def timed_on_start_check(attrs: Mapping[str, object]) -> Callable[[int], float]:
    def run(loops: int) -> float:
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            _ = GEN_AI_AGENT_NAME in attrs or OI_KIND in attrs or TL_KIND in attrs
        return float(pyperf.perf_counter() - t0)

    return run


def timed_on_start_check_rawdict(attrs: Mapping[str, object]) -> Callable[[int], float]:
    def run(loops: int) -> float:
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            raw = getattr(attrs, "_dict", attrs)
            _ = GEN_AI_AGENT_NAME in raw or OI_KIND in raw or TL_KIND in raw
        return float(pyperf.perf_counter() - t0)

    return run


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = "normalize() and the on_start dialect check, per span"
    for bench, (name, attrs, scope, is_root) in CASES.items():
        runner.bench_time_func(bench, timed_normalize(name, attrs, scope, is_root), inner_loops=1)
    runner.bench_time_func("on_start_check_ours", timed_on_start_check(OURS))
    runner.bench_time_func("on_start_check_plain", timed_on_start_check(PLAIN_HTTP))
    runner.bench_time_func("on_start_check_plain_rawdict", timed_on_start_check_rawdict(PLAIN_HTTP))


if __name__ == "__main__":
    main()
