"""Dialects in, standard out: read agent, tool, LLM and workflow spans in any common dialect.

Other instrumentations name the same things differently. ``normalize`` returns a view of a
span's attributes in the current OTel GenAI names, so the metric derivation, the health loop
and ``agentmon serve`` treat a span from OpenInference or OpenLLMetry exactly like one of ours.
The span itself is never changed: exporters still ship what its instrumentation wrote.

The mapping (also in the README). The operation comes from the first row that matches, and only
for a span without ``gen_ai.operation.name`` (except ²); the provider and token rows apply to every
span not made by otel_agentmon.

| Dialect input                                      | Recognised as | Standard view                                 |
|----------------------------------------------------|---------------|-----------------------------------------------|
| OpenInference LangChain span of a LangGraph graph ⁵ | agent run    | `invoke_agent`; the graph's name              |
| the same for a graph node (AGENT or CHAIN) ⁵       | a step        | not counted; its calls go to the graph        |
| `openinference.span.kind=AGENT`                    | agent run     | `invoke_agent`; `agent.name` ⁶                |
| the same on a trace root, no `agent.name` ¹        | workflow      | `invoke_workflow`                             |
| `openinference.span.kind=TOOL`                     | tool call     | `execute_tool`; `tool.name`                   |
| `openinference.span.kind=LLM`                      | inference     | `chat`; model: `llm.model_name`               |
| `openinference.span.kind=CHAIN` on a trace root    | workflow      | `invoke_workflow`                             |
| `traceloop.span.kind=agent`                        | agent run     | `invoke_agent`; `traceloop.entity.name`       |
| `traceloop.span.kind=tool`                         | tool call     | `execute_tool`; `traceloop.entity.name`       |
| `traceloop.span.kind=workflow` ²                   | workflow      | `invoke_workflow`; `traceloop.workflow.name`  |
| `llm.request.type=chat` / `completion`             | inference     | `chat` / `text_completion`                    |
| `gen_ai.system` or `gen_ai.provider.name`          | GenAI span    | see ³                                         |
| `gen_ai.system`, `llm.provider`, `llm.system`      | provider      | `gen_ai.provider.name`                        |
| `gen_ai.usage.prompt_tokens` / `completion_tokens` | tokens        | `gen_ai.usage.input_tokens` / `output_tokens` |
| `llm.token_count.prompt` / `completion`            | tokens        | `gen_ai.usage.input_tokens` / `output_tokens` |
| `gen_ai.operation.name` set ⁴                      | as it says    | unchanged (same object)                       |
| scope `otel_agentmon` (ours)                       | as it says    | unchanged (same object)                       |

Names: the ones the row gives, else the span name (less a leading ``<operation> ``).
Other CHAIN spans, and the kinds RETRIEVER, EMBEDDING, RERANKER, GUARDRAIL, EVALUATOR, are not counted.

1. Scope ``openinference.instrumentation.openai_agents``: it opens the SDK's trace as a root AGENT
   span named by ``RunConfig.workflow_name``; the agents are its descendants.
2. Also when the span says ``gen_ai.operation.name=invoke_agent``: OpenLLMetry on LangGraph nests it
   in an ``invoke_agent`` span of the same graph, and counting both would count every run twice.
3. The first word of the span name when it is a GenAI operation (``invoke_agent``, ``execute_tool``,
   ``invoke_workflow``, an inference one, ``embeddings``, ``create_agent``), else ``chat`` when
   ``gen_ai.request.model`` is set. Only agent, tool, inference and workflow spans are counted.
4. The current GenAI conventions (PydanticAI, AutoGen, ADK 2, MS Agent Framework, OpenLLMetry 0.5x+).
   An ``invoke_agent`` span from them still gets its task type (below), so it is a copy.
5. Scope ``openinference.instrumentation.langchain``: its ``metadata`` says
   ``"ls_integration": "langgraph"``. A graph run (no ``langgraph_node``: not itself a node of an
   enclosing graph) is the agent, named by the graph like ours and OpenLLMetry's; a node run
   (``langgraph_node`` set) is a step of it, even when OpenInference calls it AGENT (it does so
   for any run whose name contains "agent"). A graph used as a node of another graph is a step.
6. Else the span name; OpenInference's smolagents spans are named ``<agent>.run``: the agent is
   ``<agent>``. Its ``final_answer`` TOOL spans are how an agent answers, not tool calls (as ours),
   and its AGENT spans' token counts are that agent's own model calls: they count when no LLM
   span sits under the agent (a custom model, which OpenInference does not wrap).

**Agent names, whichever instrumentation saw the agent** (docs/dialects.md): an agent is named by
the name its framework gives the agent object, never by a graph node, step or method: LangGraph's
graph name (``compile(name=...)``, ``create_react_agent(name=...)``, default ``LangGraph``), the
OpenAI Agents ``Agent.name``, PydanticAI's ``Agent.name``, smolagents' ``name`` (else its class),
Agent Framework's and AutoGen's agent name.

An agent invocation made by any instrumentation other than otel_agentmon's core API (whose
tasks are explicit ``task`` spans) also counts as a task of type ``invoke_agent``: that is what
gives framework agents in-flight tracking, stuck detection, error rates and health.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from . import semconv as sc

#: The instrumentation scope of otel_agentmon's own decorators and context managers.
CORE_SCOPE: Final = "otel_agentmon"
#: Task type given to agent invocations from other instrumentations.
FOREIGN_TASK_TYPE: Final = sc.OP_INVOKE_AGENT

OI_KIND: Final = "openinference.span.kind"
TL_KIND: Final = "traceloop.span.kind"
TL_ENTITY: Final = "traceloop.entity.name"
TL_WORKFLOW: Final = "traceloop.workflow.name"
LLM_REQUEST_TYPE: Final = "llm.request.type"
GEN_AI_SYSTEM: Final = "gen_ai.system"

_OI_LLM_MODEL: Final = "llm.model_name"
_OI_LLM_PROVIDER: Final = "llm.provider"
_OI_LLM_SYSTEM: Final = "llm.system"
_OI_PROMPT_TOKENS: Final = "llm.token_count.prompt"
_OI_COMPLETION_TOKENS: Final = "llm.token_count.completion"
_OI_AGENT_NAME: Final = "agent.name"
_OI_TOOL_NAME: Final = "tool.name"
_OLD_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
_OLD_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
_LLM_REQUEST_TYPES: Final = {"chat": sc.OP_CHAT, "completion": sc.OP_TEXT_COMPLETION}
#: OpenInference's OpenAI Agents SDK instrumentation: its trace root is an AGENT span (see ¹).
OI_OPENAI_AGENTS_SCOPE: Final = "openinference.instrumentation.openai_agents"
OI_LANGCHAIN_SCOPE: Final = "openinference.instrumentation.langchain"
OI_SMOLAGENTS_SCOPE: Final = "openinference.instrumentation.smolagents"
#: Scopes whose agent spans report the token usage of that agent's own model calls, which count
#: when no model-call span sits under the agent (OpenInference only sees smolagents' own model
#: classes: a custom model's calls show only in the agent span's totals).
AGENT_USAGE_SCOPES: Final = frozenset({OI_SMOLAGENTS_SCOPE})
_FINAL_ANSWER: Final = "final_answer"  # how a smolagents agent answers: not a tool call (as ours)
_OI_METADATA: Final = "metadata"
_MAX_METADATA: Final = 65536  # characters of OpenInference's metadata JSON worth parsing
#: Operation names a GenAI span's name may start with ("chat gpt-4o", "embeddings ...").
_SPAN_NAME_OPS: Final = frozenset({sc.OP_INVOKE_AGENT, sc.OP_EXECUTE_TOOL, sc.OP_INVOKE_WORKFLOW,
                                   *sc.INFERENCE_OPERATIONS, sc.OP_EMBEDDINGS, sc.OP_CREATE_AGENT})

Attrs = Mapping[str, object]


def normalize(name: str, attrs: Attrs, scope: str | None, is_root: bool, fast: Attrs | None = None) -> Attrs:
    """``attrs`` in standard GenAI names (the same object when nothing needs mapping).

    ``fast``, when given, is a faster read-only view of the same attributes (a span's
    BoundedAttributes raises and catches a KeyError for every missing key it is asked about;
    ``_core.sdk_compat.fast_attributes`` gives its plain dict, 10x faster)."""
    if scope == CORE_SCOPE:
        return attrs  # ours: already standard, and our tasks are explicit
    look: Attrs = attrs if fast is None else fast
    op = look.get(sc.GEN_AI_OPERATION_NAME)
    out: dict[str, object] | None = None
    if op is None or (op == sc.OP_INVOKE_AGENT and look.get(TL_KIND) == "workflow"):
        op = _operation(name, look, scope, is_root)
        if op is None:
            return attrs
        out = dict(look)
        out[sc.GEN_AI_OPERATION_NAME] = op
        _names(op, _agent_span_name(name, scope), look, out)
    if _has_legacy_names(look):
        found = _usage(look)
        if found:
            out = dict(look) if out is None else out
            out.update(found)
    if op == sc.OP_INVOKE_AGENT and sc.AGENTMON_TASK_TYPE not in look:
        out = dict(look) if out is None else out
        if sc.GEN_AI_AGENT_NAME not in out:
            out[sc.GEN_AI_AGENT_NAME] = _agent_name(_agent_span_name(name, scope))
        out[sc.AGENTMON_TASK_TYPE] = FOREIGN_TASK_TYPE
    return attrs if out is None else out


def _operation(name: str, attrs: Attrs, scope: str | None, is_root: bool) -> str | None:
    kind = attrs.get(OI_KIND)
    if isinstance(kind, str):
        kind = kind.upper()
        if scope == OI_LANGCHAIN_SCOPE and kind in ("AGENT", "CHAIN"):
            graph = _langgraph_run(attrs)
            if graph is not None:
                return sc.OP_INVOKE_AGENT if graph else None
        if kind == "AGENT":
            if is_root and scope == OI_OPENAI_AGENTS_SCOPE and _OI_AGENT_NAME not in attrs:
                return sc.OP_INVOKE_WORKFLOW  # the SDK's trace, whose descendants are the agents
            return sc.OP_INVOKE_AGENT
        if kind == "TOOL":
            if scope == OI_SMOLAGENTS_SCOPE and attrs.get(_OI_TOOL_NAME) == _FINAL_ANSWER:
                return None
            return sc.OP_EXECUTE_TOOL
        if kind == "LLM":
            return sc.OP_CHAT
        if kind == "CHAIN" and is_root:
            return sc.OP_INVOKE_WORKFLOW
        return None
    kind = attrs.get(TL_KIND)
    if isinstance(kind, str):
        return {"agent": sc.OP_INVOKE_AGENT, "tool": sc.OP_EXECUTE_TOOL,
                "workflow": sc.OP_INVOKE_WORKFLOW}.get(kind.lower())
    request_type = attrs.get(LLM_REQUEST_TYPE)
    if isinstance(request_type, str):
        return _LLM_REQUEST_TYPES.get(request_type.lower())
    if GEN_AI_SYSTEM in attrs or sc.GEN_AI_PROVIDER_NAME in attrs:
        first = name.split(" ", 1)[0]
        if first in _SPAN_NAME_OPS:
            return first
        if sc.GEN_AI_REQUEST_MODEL in attrs:
            return sc.OP_CHAT
    return None


def _has_legacy_names(attrs: Attrs) -> bool:
    """Provider or token names from older GenAI conventions or OpenInference (seven lookups)."""
    return (GEN_AI_SYSTEM in attrs or _OI_LLM_PROVIDER in attrs or _OI_LLM_SYSTEM in attrs
            or _OLD_PROMPT_TOKENS in attrs or _OLD_COMPLETION_TOKENS in attrs
            or _OI_PROMPT_TOKENS in attrs or _OI_COMPLETION_TOKENS in attrs)


def _names(op: str, name: str, attrs: Attrs, out: dict[str, object]) -> None:
    entity = attrs.get(TL_ENTITY)
    if op == sc.OP_INVOKE_AGENT and sc.GEN_AI_AGENT_NAME not in attrs:
        found = attrs.get(_OI_AGENT_NAME, entity)
        out[sc.GEN_AI_AGENT_NAME] = found if isinstance(found, str) and found else _agent_name(name)
    elif op == sc.OP_EXECUTE_TOOL and sc.GEN_AI_TOOL_NAME not in attrs:
        found = attrs.get(_OI_TOOL_NAME, entity)
        out[sc.GEN_AI_TOOL_NAME] = found if isinstance(found, str) and found else _tail(name, op)
    elif op == sc.OP_INVOKE_WORKFLOW and sc.GEN_AI_WORKFLOW_NAME not in attrs:
        found = attrs.get(TL_WORKFLOW, entity)
        out[sc.GEN_AI_WORKFLOW_NAME] = found if isinstance(found, str) and found else _tail(name, op)
    elif op in sc.INFERENCE_OPERATIONS and sc.GEN_AI_REQUEST_MODEL not in attrs:
        model = attrs.get(_OI_LLM_MODEL)
        if isinstance(model, str):
            out[sc.GEN_AI_REQUEST_MODEL] = model


def _usage(attrs: Attrs) -> dict[str, object]:
    """The standard provider and token attributes a span lacks but has under an older name."""
    found: dict[str, object] = {}
    if sc.GEN_AI_PROVIDER_NAME not in attrs:
        provider = attrs.get(GEN_AI_SYSTEM, attrs.get(_OI_LLM_PROVIDER, attrs.get(_OI_LLM_SYSTEM)))
        if isinstance(provider, str):
            found[sc.GEN_AI_PROVIDER_NAME] = provider
    for standard, older in ((sc.GEN_AI_USAGE_INPUT_TOKENS, (_OLD_PROMPT_TOKENS, _OI_PROMPT_TOKENS)),
                            (sc.GEN_AI_USAGE_OUTPUT_TOKENS, (_OLD_COMPLETION_TOKENS, _OI_COMPLETION_TOKENS))):
        if standard in attrs:
            continue
        for key in older:
            value = attrs.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                found[standard] = value
                break
    return found


def exception_type(events: Iterable[Any]) -> str | None:
    """The class of the exception a failed span recorded (its last ``exception`` event), for
    ``error.type`` when the instrumentation did not set it (PydanticAI's native spans, ...)."""
    for event in reversed(list(events)):
        if getattr(event, "name", None) == sc.EXCEPTION_EVENT:
            found = (getattr(event, "attributes", None) or {}).get(sc.EXCEPTION_TYPE)
            if isinstance(found, str) and found:
                return found
    return None


def _langgraph_run(attrs: Attrs) -> bool | None:
    """True for an OpenInference LangChain span of a whole LangGraph graph, False for one of its
    nodes (or anything run inside one), None when it is not LangGraph's."""
    meta = attrs.get(_OI_METADATA)
    if not isinstance(meta, str) or "langgraph" not in meta or len(meta) > _MAX_METADATA:
        return None
    try:
        found = json.loads(meta)
    except ValueError:
        return None
    if not isinstance(found, dict) or found.get("ls_integration") != "langgraph":
        return None
    return "langgraph_node" not in found


def _agent_span_name(name: str, scope: str | None) -> str:
    return name[:-4] if scope == OI_SMOLAGENTS_SCOPE and name.endswith(".run") and len(name) > 4 else name


def _tail(name: str, op: str) -> str:
    prefix = op + " "
    return name[len(prefix):] if name.startswith(prefix) else name


def _agent_name(name: str) -> str:
    tail = _tail(name, sc.OP_INVOKE_AGENT)
    return tail if tail and tail != sc.OP_INVOKE_AGENT else "unknown"
