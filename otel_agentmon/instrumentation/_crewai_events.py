"""CrewAI's event bus turned into spans (imports crewai).

CrewAI reports every crew kickoff, task, agent execution, tool use and LLM call on its event bus
(``crewai.events.crewai_event_bus``), each event with an ``event_id``, the ``parent_event_id`` of
the scope it happens in and, for an ending event, the ``started_event_id`` it closes. Listeners
registered with ``bus.on`` run later on a thread pool of ten, in no guaranteed order, which
would let a tool's start be handled before its agent's. So we hook the bus's ``emit`` (the one
call every event goes through, put back exactly by ``remove``): each event is seen once, in the
emitting thread and context, in emission order, after CrewAI has set its ids. While a tool or
LLM call runs its span is the current span, so the user's spans inside a tool nest under it and
an LLM-client instrumentation underneath (openai, anthropic) sees the inference span and adds no
second one.

A failure event mostly carries only ``str(error)``; CrewAI emits it while handling the exception,
so ``error.type`` is taken from the exception being handled then (else ``_OTHER``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

from crewai.events import crewai_event_bus
from crewai.events.types.agent_events import (
    AgentExecutionCompletedEvent,
    AgentExecutionErrorEvent,
    AgentExecutionStartedEvent,
    LiteAgentExecutionCompletedEvent,
    LiteAgentExecutionErrorEvent,
    LiteAgentExecutionStartedEvent,
)
from crewai.events.types.crew_events import CrewKickoffCompletedEvent, CrewKickoffFailedEvent, CrewKickoffStartedEvent
from crewai.events.types.llm_events import LLMCallCompletedEvent, LLMCallFailedEvent, LLMCallStartedEvent
from crewai.events.types.tool_usage_events import ToolUsageErrorEvent, ToolUsageFinishedEvent, ToolUsageStartedEvent
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .._core.guard import report_internal_error
from .._names import semconv as sc
from .._spans.llm import record_llm_messages, record_llm_usage
from .._spans.sanitize import clean_name, to_json
from ._base import MAX_OPEN, SpanTable, content_on_spans, mark_error

#: CrewAI's ``LLM.provider`` -> gen_ai.provider.name (others are passed on as CrewAI names them).
_PROVIDERS: Final = {"gemini": "gcp.gemini", "google": "gcp.gemini", "vertex_ai": "gcp.vertex_ai",
                     "bedrock": "aws.bedrock", "azure": "azure.ai.openai", "mistral": "mistral_ai", "xai": "x_ai",
                     "watsonx": "ibm.watsonx.ai"}
_OTHER: Final = "_OTHER"  # error.type when the exception is not at hand
_INPUT_KEYS: Final = ("prompt_tokens", "input_tokens")
_OUTPUT_KEYS: Final = ("completion_tokens", "output_tokens")
#: Scope-starting events we show no span for: their children hang under the nearest shown one.
_ALIASED: Final = frozenset({"task_started", "flow_started", "method_execution_started", "agent_reasoning_started",
                             "memory_retrieval_started", "memory_save_started", "memory_query_started",
                             "knowledge_query_started", "knowledge_search_query_started",
                             "llm_guardrail_started", "a2a_delegation_started", "mcp_tool_execution_started"})
_ALIAS_ENDS: Final = frozenset({"task_completed", "task_failed", "flow_finished", "flow_failed", "flow_paused",
                                "method_execution_finished", "method_execution_failed", "method_execution_paused",
                                "agent_reasoning_completed", "agent_reasoning_failed", "memory_retrieval_completed",
                                "memory_retrieval_failed", "memory_save_completed", "memory_save_failed",
                                "memory_query_completed", "memory_query_failed", "knowledge_query_completed",
                                "knowledge_query_failed", "knowledge_search_query_completed",
                                "knowledge_search_query_failed", "llm_guardrail_completed", "llm_guardrail_failed",
                                "a2a_delegation_completed", "mcp_tool_execution_completed",
                                "mcp_tool_execution_failed"})


def _number(usage: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _handled_error() -> BaseException | None:
    return sys.exc_info()[1]


class Listener:
    """Hooks ``crewai_event_bus.emit``; turns the events into spans on ``tracer``."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.table = SpanTable(tracer)
        # Which crew or agent each open tool/LLM call belongs to, so that one ending ends those it
        # left open (see _close_inner): event id -> parent event id, owner -> its open calls.
        self._up: dict[str, str | None] = {}
        self._owners: set[str] = set()
        self._inner: dict[str, list[str]] = {}
        self._original: Callable[..., Any] | None = None
        self._hook: Callable[..., Any] | None = None
        self._on: dict[type, Callable[[Any, Any], None]] = {
            CrewKickoffStartedEvent: self._crew_started,
            AgentExecutionStartedEvent: self._agent_started,
            LiteAgentExecutionStartedEvent: self._lite_agent_started,
            ToolUsageStartedEvent: self._tool_started,
            LLMCallStartedEvent: self._llm_started,
            CrewKickoffCompletedEvent: self._ended,
            AgentExecutionCompletedEvent: self._ended,
            LiteAgentExecutionCompletedEvent: self._ended,
            ToolUsageFinishedEvent: self._tool_finished,
            LLMCallCompletedEvent: self._llm_completed,
            CrewKickoffFailedEvent: self._failed,
            AgentExecutionErrorEvent: self._failed,
            LiteAgentExecutionErrorEvent: self._failed,
            ToolUsageErrorEvent: self._failed,
            LLMCallFailedEvent: self._failed,
        }

    def install(self) -> None:
        bus: Any = crewai_event_bus
        original = bus.emit  # the bound method (or someone's wrapper of it)
        listener = self

        def emit(source: Any, event: Any) -> Any:
            result = original(source, event)
            try:
                listener.on_event(source, event)
            except Exception:  # noqa: BLE001
                report_internal_error("crewai event")
            return result

        self._original, self._hook = original, emit
        setattr(bus, "emit", emit)  # noqa: B010  # an instance attribute, removed again by remove()

    def remove(self) -> None:
        bus: Any = crewai_event_bus
        if self._hook is not None and vars(bus).get("emit") is self._hook:
            if getattr(self._original, "__self__", None) is bus:
                delattr(bus, "emit")  # back to the class's method
            else:
                setattr(bus, "emit", self._original)  # noqa: B010  # someone else's wrapper, as it was
        self._original = self._hook = None

    # --- dispatch -----------------------------------------------------------------------------
    def on_event(self, source: Any, event: Any) -> None:
        handler = self._on.get(type(event))
        if handler is not None:
            handler(source, event)
            return
        kind = getattr(event, "type", None)
        if kind in _ALIASED:
            self.table.alias(event.event_id, event.parent_event_id)
            self._remember(event.event_id, event.parent_event_id)
        elif kind in _ALIAS_ENDS:
            self._end(getattr(event, "started_event_id", None))

    # --- starts -------------------------------------------------------------------------------
    def _crew_started(self, source: Any, event: CrewKickoffStartedEvent) -> None:
        name = clean_name(event.crew_name or "crew")
        self.table.start(event.event_id, event.parent_event_id, f"{sc.OP_INVOKE_WORKFLOW} {name}",
                         SpanKind.INTERNAL, {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW,
                                             sc.GEN_AI_WORKFLOW_NAME: name})
        self._mark(event.event_id)

    def _agent_started(self, source: Any, event: AgentExecutionStartedEvent) -> None:
        agent = event.agent
        self._start_agent(event, getattr(agent, "role", None), getattr(agent, "goal", None),
                          getattr(event.task, "id", None), getattr(getattr(agent, "llm", None), "model", None))

    def _lite_agent_started(self, source: Any, event: LiteAgentExecutionStartedEvent) -> None:
        info = event.agent_info or {}
        llm = info.get("llm")
        self._start_agent(event, info.get("role"), info.get("goal"), None,
                          llm if isinstance(llm, str) else getattr(llm, "model", None))

    def _start_agent(self, event: Any, role: Any, goal: Any, task_id: Any, model: Any) -> None:
        name = clean_name(role if isinstance(role, str) and role else "agent")
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: name}
        if isinstance(goal, str) and goal:
            attrs[sc.GEN_AI_AGENT_DESCRIPTION] = goal[:1024]
        if isinstance(model, str) and model:
            attrs[sc.GEN_AI_REQUEST_MODEL] = model
        if task_id is not None:
            attrs[sc.AGENTMON_TASK_ID] = str(task_id)
        self.table.start(event.event_id, event.parent_event_id, f"{sc.OP_INVOKE_AGENT} {name}", SpanKind.INTERNAL,
                         attrs, agent=name)
        self._mark(event.event_id)

    def _mark(self, key: str) -> None:
        self._remember(key, None)
        self._owners.add(key)

    def _remember(self, key: str, parent: str | None) -> None:
        if len(self._up) >= 4 * MAX_OPEN:  # runs that never ended: forget them (the span table does too)
            self._up.clear()
            self._owners.clear()
            self._inner.clear()
        self._up[key] = parent

    def _add_inner(self, key: str, parent: str | None) -> None:
        self._remember(key, parent)
        owner = parent
        for _ in range(64):  # up through tasks and other steps we show no span for
            if owner is None or owner in self._owners:
                break
            owner = self._up.get(owner)
        if owner is not None and owner in self._owners:
            self._inner.setdefault(owner, []).append(key)

    def _tool_started(self, source: Any, event: ToolUsageStartedEvent) -> None:
        name = clean_name(event.tool_name or "tool")
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name,
                                 sc.GEN_AI_TOOL_TYPE: "function"}
        if content_on_spans():
            attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = to_json(event.tool_args)
        entry = self.table.start(event.event_id, event.parent_event_id, f"{sc.OP_EXECUTE_TOOL} {name}",
                                 SpanKind.INTERNAL, attrs)
        SpanTable.make_current(entry)
        self._add_inner(event.event_id, event.parent_event_id)

    def _llm_started(self, source: Any, event: LLMCallStartedEvent) -> None:
        model = clean_name(event.model or getattr(source, "model", None) or "llm")
        attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_REQUEST_MODEL: model}
        provider = getattr(source, "provider", None)
        if isinstance(provider, str) and provider:
            attrs[sc.GEN_AI_PROVIDER_NAME] = _PROVIDERS.get(provider.lower(), provider.lower())
        entry = self.table.start(event.event_id, event.parent_event_id, f"{sc.OP_CHAT} {model}", SpanKind.CLIENT,
                                 attrs)
        record_llm_messages(input=event.messages, span=entry.span)
        SpanTable.make_current(entry)
        self._add_inner(event.event_id, event.parent_event_id)

    # --- ends ---------------------------------------------------------------------------------
    def _end(self, key: str | None, error: BaseException | None = None) -> None:
        if key is None:
            return
        self._up.pop(key, None)
        if key in self._owners:
            self._owners.discard(key)
            self._close_inner(key, error)
        self.table.end(key, error=error)

    def _close_inner(self, key: str, error: BaseException | None) -> None:
        """A crew or agent ends: end the tool and LLM calls it left open (a custom LLM that raised
        without reporting the failure), failed by what failed it, so no span stays open or current."""
        for inner in reversed(self._inner.pop(key, [])):
            if self.table.get(inner) is not None:
                self.table.end(inner, error=error)

    def _ended(self, source: Any, event: Any) -> None:
        self._end(event.started_event_id)

    def _tool_finished(self, source: Any, event: ToolUsageFinishedEvent) -> None:
        entry = self.table.get(event.started_event_id)
        if entry is not None and content_on_spans():
            entry.span.set_attribute(sc.GEN_AI_TOOL_CALL_RESULT, to_json(event.output))
        self._end(event.started_event_id)

    def _llm_completed(self, source: Any, event: LLMCallCompletedEvent) -> None:
        entry = self.table.get(event.started_event_id)
        if entry is not None:
            usage = event.usage or {}
            record_llm_usage(input_tokens=_number(usage, _INPUT_KEYS), output_tokens=_number(usage, _OUTPUT_KEYS),
                             response_id=event.response_id,
                             finish_reasons=[event.finish_reason] if event.finish_reason else None, span=entry.span)
            record_llm_messages(output=[{"role": "assistant", "content": event.response}], span=entry.span)
        self._end(event.started_event_id)

    def _failed(self, source: Any, event: Any) -> None:
        key = event.started_event_id
        entry = self.table.get(key)
        if entry is None:
            return
        given = getattr(event, "error", None)  # a tool error event carries the exception itself
        error = given if isinstance(given, BaseException) else _handled_error()
        if error is None:
            mark_error(entry.span, _OTHER, str(given) if given is not None else None)
        self._end(key, error)
