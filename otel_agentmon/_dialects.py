"""Dialects in, standard out: read agent, tool, LLM and workflow spans in any common dialect.

Other instrumentations name the same things differently. ``normalize`` returns a view of a
span's attributes in the current OTel GenAI names, so the metric derivation, the health loop
and ``agentmon serve`` treat a span from OpenInference or OpenLLMetry exactly like one of ours.
The span itself is never changed: exporters still ship what its instrumentation wrote.

The mapping (also in the README):

================================  ==============================  ==========================
Dialect input                     Recognised as                   Standard output
================================  ==============================  ==========================
``openinference.span.kind=AGENT`` agent invocation                ``invoke_agent``;
                                                                  ``agent.name`` or span name
``openinference.span.kind=TOOL``  tool call                       ``execute_tool``; ``tool.name``
``openinference.span.kind=LLM``   inference                       ``chat``; ``llm.model_name``,
                                                                  ``llm.provider``/``llm.system``,
                                                                  ``llm.token_count.prompt`` /
                                                                  ``.completion``
``openinference.span.kind=CHAIN`` workflow, when it is a root     ``invoke_workflow``
``traceloop.span.kind=agent``     agent invocation                ``invoke_agent``;
                                                                  ``traceloop.entity.name``
``traceloop.span.kind=tool``      tool call                       ``execute_tool``
``traceloop.span.kind=workflow``  workflow                        ``invoke_workflow``;
                                                                  ``traceloop.workflow.name``
``llm.request.type`` (OpenLLMetry) inference                      ``chat`` / ``text_completion``
``gen_ai.system``                 older GenAI name                ``gen_ai.provider.name``
``gen_ai.usage.prompt_tokens`` /  older GenAI names               ``gen_ai.usage.input_tokens`` /
``completion_tokens``                                             ``output_tokens``
================================  ==============================  ==========================

An agent invocation made by any instrumentation other than otel_agentmon's core API (whose
tasks are explicit ``task`` spans) also counts as a task of type ``invoke_agent``: that is what
gives framework agents in-flight tracking, stuck detection, error rates and health.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from . import _semconv as sc

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
_LLM_REQUEST_TYPES: Final = {"chat": sc.OP_CHAT, "completion": "text_completion"}
_SPAN_NAME_OPS: Final = (sc.OP_INVOKE_AGENT, sc.OP_EXECUTE_TOOL, sc.OP_INVOKE_WORKFLOW,
                         *sorted(sc.INFERENCE_OPERATIONS))

Attrs = Mapping[str, object]


def normalize(name: str, attrs: Attrs, scope: str | None, is_root: bool) -> Attrs:
    """``attrs`` in standard GenAI names (the same object when nothing needs mapping)."""
    op = attrs.get(sc.GEN_AI_OPERATION_NAME)
    if scope == CORE_SCOPE:
        return attrs  # ours: already standard, and our tasks are explicit
    out: dict[str, object] | None = None
    if op is None:
        out = dict(attrs)
        op = _operation(name, attrs, is_root)
        if op is None:
            return attrs
        out[sc.GEN_AI_OPERATION_NAME] = op
        _names(op, name, attrs, out)
    if GEN_AI_SYSTEM in attrs or _OLD_PROMPT_TOKENS in attrs or _OLD_COMPLETION_TOKENS in attrs \
            or _OI_PROMPT_TOKENS in attrs:
        out = dict(attrs) if out is None else out
        _usage(attrs, out)
    if op == sc.OP_INVOKE_AGENT and sc.AGENTMON_TASK_TYPE not in attrs:
        out = dict(attrs) if out is None else out
        if sc.GEN_AI_AGENT_NAME not in out:
            out[sc.GEN_AI_AGENT_NAME] = _agent_name(name)
        out[sc.AGENTMON_TASK_TYPE] = FOREIGN_TASK_TYPE
    return attrs if out is None else out


def _operation(name: str, attrs: Attrs, is_root: bool) -> str | None:
    kind = attrs.get(OI_KIND)
    if isinstance(kind, str):
        kind = kind.upper()
        if kind == "AGENT":
            return sc.OP_INVOKE_AGENT
        if kind == "TOOL":
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


def _usage(attrs: Attrs, out: dict[str, object]) -> None:
    if sc.GEN_AI_PROVIDER_NAME not in attrs:
        provider = attrs.get(GEN_AI_SYSTEM, attrs.get(_OI_LLM_PROVIDER, attrs.get(_OI_LLM_SYSTEM)))
        if isinstance(provider, str):
            out[sc.GEN_AI_PROVIDER_NAME] = provider
    for standard, older in ((sc.GEN_AI_USAGE_INPUT_TOKENS, (_OLD_PROMPT_TOKENS, _OI_PROMPT_TOKENS)),
                            (sc.GEN_AI_USAGE_OUTPUT_TOKENS, (_OLD_COMPLETION_TOKENS, _OI_COMPLETION_TOKENS))):
        if standard in attrs:
            continue
        for key in older:
            value = attrs.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                out[standard] = value
                break


def _tail(name: str, op: str) -> str:
    prefix = op + " "
    return name[len(prefix):] if name.startswith(prefix) else name


def _agent_name(name: str) -> str:
    return _tail(name, sc.OP_INVOKE_AGENT) or "unknown"
